// backend/cpu/cross_entropy.cpp — softmax cross-entropy over (padded) logits.
//
// logits (N, Vp); targets (N) int32 in [0, vocab); only the first `vocab`
// columns are real, the padding up to Vp is excluded from the softmax and gets
// gradient 0. losses (N) f32. Backward writes dlogits (=) and may run in
// place on the logits buffer: each row is read fully (max, sum) before it is
// overwritten.
#include <algorithm>
#include <cmath>

#include "backend/checks.h"
#include "backend/cpu/fast_math.h"
#include "backend/cpu/kernels.h"

namespace loom::cpu {

namespace {
// Targets: one per logits row, host memory, inside the real vocabulary [0, vocab).
void check_targets(const char* op, Tensor logits, TokenView targets, std::int64_t vocab) {
  const std::int64_t N = logits.shape.rows();
  LOOM_CHECK(targets.numel() == N && targets.device == Device::cpu, "",
             "{}: targets {} must hold one token per logits row of {}", op, targets.shape.str(), logits.str());
  for (std::int64_t i = 0; i < N; ++i)
    LOOM_CHECK(0 <= targets.ptr[i] && targets.ptr[i] < vocab, "the dataset's vocabulary must fit the model's",
               "{}: target {} at row {} is outside the vocabulary [0, {})", op, targets.ptr[i], i, vocab);
}

void check_ce(const char* op, Tensor logits, TokenView targets, std::int64_t vocab) {
  LOOM_CHECK(0 < vocab && vocab <= logits.shape.last(), "", "{}: vocab {} must be in [1, {}] for logits {}", op,
             vocab, logits.shape.last(), logits.str());
  check_targets(op, logits, targets, vocab);
}

// max and log(sum(exp(x - max))) over the first `vocab` entries of a row.
template <class T>
void row_stats(const T* row, std::int64_t vocab, float& mx, float& log_sum) {
  mx = -INFINITY;
  #pragma omp simd reduction(max : mx)
  for (std::int64_t j = 0; j < vocab; ++j) mx = std::max(mx, ld(row, j));
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (std::int64_t j = 0; j < vocab; ++j) sum += fast_exp(ld(row, j) - mx);
  log_sum = std::log(sum);
}

// One row of the gradient: dloss * (exp(x - shift) - onehot(local)) on the `valid`
// real columns, 0 on the rest of the row's `cols`. Reads each x before writing
// its dx, so dx may alias x. `local` outside [0, valid) means another shard holds it.
template <class T>
void row_gradient(const T* x, T* dx, std::int64_t valid, std::int64_t cols, float shift, std::int64_t local,
                  float dloss) {
#pragma omp simd
  for (std::int64_t j = 0; j < valid; ++j) st(dx, j, dloss * fast_exp(ld(x, j) - shift));
  for (std::int64_t j = valid; j < cols; ++j) st(dx, j, 0.0f);
  if (0 <= local && local < valid) st(dx, local, ld(dx, local) - dloss);
}

// The real columns of a shard: [0, valid) of its Vs local columns.
std::int64_t valid_columns(std::int64_t vocab_start, std::int64_t Vs, std::int64_t vocab) {
  return std::clamp<std::int64_t>(vocab - vocab_start, 0, Vs);
}

void check_shard(const char* op, Tensor logits, TokenView targets, std::int64_t vocab_start, std::int64_t vocab) {
  LOOM_CHECK(vocab > 0 && vocab_start >= 0, "", "{}: vocab {} and vocab_start {} must be positive / non-negative", op,
             vocab, vocab_start);
  check_targets(op, logits, targets, vocab);
}
}  // namespace

void cross_entropy_forward(Tensor losses, Tensor logits, TokenView targets, std::int64_t vocab) {
  const char* op = "cross_entropy_forward";
  check_ce(op, logits, targets, vocab);
  const std::int64_t N = logits.shape.rows(), Vp = logits.shape.last();
  check::numel(op, "losses", losses, N);
  check::dtype(op, "losses", losses, DType::f32);
  float* pl = losses.data<float>();
  visit_dtype(logits.dtype, [&](auto t) {
    using T = decltype(t);
    const T* x = static_cast<const T*>(logits.ptr);
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < N; ++i) {
      float mx, log_sum;
      row_stats(x + i * Vp, vocab, mx, log_sum);
      pl[i] = mx + log_sum - ld(x, i * Vp + targets.ptr[i]);
    }
  });
}

void cross_entropy_backward(Tensor dlogits, Tensor logits, TokenView targets, std::int64_t vocab, float dloss) {
  const char* op = "cross_entropy_backward";
  check_ce(op, logits, targets, vocab);
  check::same_shape(op, "dlogits", dlogits, "logits", logits);
  const std::int64_t N = logits.shape.rows(), Vp = logits.shape.last();
  visit_dtype(logits.dtype, [&](auto t) {
    using T = decltype(t);
    const T* x = static_cast<const T*>(logits.ptr);
    T* dx = dlogits.data<T>();
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < N; ++i) {
      float mx, log_sum;
      row_stats(x + i * Vp, vocab, mx, log_sum);
      row_gradient(x + i * Vp, dx + i * Vp, vocab, Vp, mx + log_sum, targets.ptr[i], dloss);
    }
  });
}

void cross_entropy_shard_stats(Tensor stats, Tensor logits, TokenView targets, std::int64_t vocab_start,
                               std::int64_t vocab) {
  const char* op = "cross_entropy_shard_stats";
  check_shard(op, logits, targets, vocab_start, vocab);
  const std::int64_t N = logits.shape.rows(), Vs = logits.shape.last();
  LOOM_CHECK(stats.shape == (Shape{N, 3}), "", "{}: stats is {} but must be ({}, 3) for logits {}", op, stats.str(), N,
             logits.str());
  check::dtype(op, "stats", stats, DType::f32);
  const std::int64_t valid = valid_columns(vocab_start, Vs, vocab);
  float* st_ = stats.data<float>();
  visit_dtype(logits.dtype, [&](auto t) {
    using T = decltype(t);
    const T* x = static_cast<const T*>(logits.ptr);
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < N; ++i) {
      float mx = -INFINITY, sum = 0;
      if (valid > 0) {
        float log_sum;
        row_stats(x + i * Vs, valid, mx, log_sum);
        sum = std::exp(log_sum);
      }
      const std::int64_t local = std::int64_t(targets.ptr[i]) - vocab_start;
      st_[i * 3 + 0] = mx;
      st_[i * 3 + 1] = sum;
      st_[i * 3 + 2] = (0 <= local && local < valid) ? ld(x, i * Vs + local) : 0.0f;
    }
  });
}

void cross_entropy_shard_backward(Tensor dlogits, Tensor logits, TokenView targets, std::int64_t vocab_start,
                                  std::int64_t vocab, Tensor lse, float dloss) {
  const char* op = "cross_entropy_shard_backward";
  check_shard(op, logits, targets, vocab_start, vocab);
  check::same_shape(op, "dlogits", dlogits, "logits", logits);
  const std::int64_t N = logits.shape.rows(), Vs = logits.shape.last();
  check::numel(op, "lse", lse, N);
  check::dtype(op, "lse", lse, DType::f32);
  const std::int64_t valid = valid_columns(vocab_start, Vs, vocab);
  const float* pl = lse.data<float>();
  visit_dtype(logits.dtype, [&](auto t) {
    using T = decltype(t);
    const T* x = static_cast<const T*>(logits.ptr);
    T* dx = dlogits.data<T>();
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < N; ++i) {
      row_gradient(x + i * Vs, dx + i * Vs, valid, Vs, pl[i], std::int64_t(targets.ptr[i]) - vocab_start, dloss);
    }
  });
}

}  // namespace loom::cpu
