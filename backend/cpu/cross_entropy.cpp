// backend/cpu/cross_entropy.cpp — the vocabulary-parallel softmax cross-entropy (backend.h).
//
// logits (N, Vs) hold global columns [vocab_start, vocab_start + Vs); the first
// `valid` of them (global id < vocab) are real, the rest padding. targets (N) are
// int32 host memory below vocab; a negative target marks a row that is not a
// target (no loss, zero gradient). Per-row vectors max / lse / losses are f32 (N),
// stats f32 (2, N) planar. Every op is a
// row loop, OpenMP over rows, over the same three row kernels; each row is reduced
// in a fixed order, so results are the same for any thread count. Outputs are
// written (=) except losses (+=). Backward may run in place on the logits buffer:
// each x is read before its dx is written.
#include <algorithm>
#include <cmath>

#include "backend/checks.h"
#include "backend/cpu/fast_math.h"
#include "backend/cpu/kernels.h"

namespace loom::cpu {

namespace {

// ---- row kernels ------------------------------------------------------------------

// max over the first `valid` entries of a row (-inf when valid = 0).
template <class T>
float row_max(const T* row, std::int64_t valid) {
  float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
  for (std::int64_t j = 0; j < valid; ++j) mx = std::max(mx, ld(row, j));
  return mx;
}

// sum of exp(x - shift) over the first `valid` entries of a row (0 when valid = 0).
template <class T>
float row_sumexp(const T* row, std::int64_t valid, float shift) {
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (std::int64_t j = 0; j < valid; ++j) sum += fast_exp(ld(row, j) - shift);
  return sum;
}

// The target's logit when this shard holds it among its real columns, else 0
// (also for an ignored target < 0).
template <class T>
float row_target(const T* row, std::int64_t valid, std::int32_t target, std::int64_t vocab_start) {
  const std::int64_t local = std::int64_t(target) - vocab_start;
  return target >= 0 && 0 <= local && local < valid ? ld(row, local) : 0.0f;
}

// One row of the gradient: dloss * (exp(x - shift) - onehot(local)) on the `valid`
// real columns, 0 on the rest of the row's `cols`. Reads each x before writing
// its dx, so dx may alias x. `local` outside [0, valid) means another shard holds
// the target; valid = 0 writes a row of zeros.
template <class T>
void row_gradient(const T* x, T* dx, std::int64_t valid, std::int64_t cols, float shift, std::int64_t local,
                  float dloss) {
#pragma omp simd
  for (std::int64_t j = 0; j < valid; ++j) st(dx, j, dloss * fast_exp(ld(x, j) - shift));
  for (std::int64_t j = valid; j < cols; ++j) st(dx, j, 0.0f);
  if (0 <= local && local < valid) st(dx, local, ld(dx, local) - dloss);
}

// ---- checks -------------------------------------------------------------------------

// One id per row, in host memory (this backend reads them).
void check_target_rows(const char* op, TokenView targets, std::int64_t rows, const Tensor& of) {
  check::targets(op, targets, rows, of);
  LOOM_CHECK(targets.device == Device::cpu || rows == 0, "",
             "{}: targets {} live on {} but this is the cpu backend", op, targets.shape.str(),
             device_name(targets.device));
}

// ...and each below the vocabulary (negatives are "ignore").
void check_targets(const char* op, TokenView targets, const Tensor& logits, std::int64_t vocab) {
  const std::int64_t N = logits.shape.rows();
  check_target_rows(op, targets, N, logits);
  for (std::int64_t i = 0; i < N; ++i)
    LOOM_CHECK(targets.ptr[i] < vocab,
               "the dataset's vocabulary must fit the model's; negative ids mark positions without a target",
               "{}: target {} at row {} is not below the vocabulary size {}", op, targets.ptr[i], i, vocab);
}

// The real columns of a shard: [0, valid) of its Vs local columns.
std::int64_t valid_columns(std::int64_t vocab_start, std::int64_t Vs, std::int64_t vocab) {
  return std::clamp<std::int64_t>(vocab - vocab_start, 0, Vs);
}

}  // namespace

void cross_entropy_shard_max(Tensor max, Tensor logits, std::int64_t vocab_start, std::int64_t vocab) {
  const char* op = "cross_entropy_shard_max";
  check::vocab_shard(op, logits, vocab_start, vocab);
  const std::int64_t N = logits.shape.rows(), Vs = logits.shape.last();
  check::row_f32(op, "max", max, N);
  const std::int64_t valid = valid_columns(vocab_start, Vs, vocab);
  float* pm = max.data<float>();
  visit_dtype(logits.dtype, [&](auto t) {
    using T = decltype(t);
    const T* x = static_cast<const T*>(logits.ptr);
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < N; ++i) pm[i] = row_max(x + i * Vs, valid);
  });
}

void cross_entropy_shard_sumexp(Tensor stats, Tensor logits, Tensor max, TokenView targets,
                                std::int64_t vocab_start, std::int64_t vocab) {
  const char* op = "cross_entropy_shard_sumexp";
  check::vocab_shard(op, logits, vocab_start, vocab);
  const std::int64_t N = logits.shape.rows(), Vs = logits.shape.last();
  check::planar_stats(op, stats, N);
  check::row_f32(op, "max", max, N);
  check_targets(op, targets, logits, vocab);
  const std::int64_t valid = valid_columns(vocab_start, Vs, vocab);
  float* sum = stats.data<float>();
  float* tgt = sum + N;
  const float* pm = max.data<float>();
  visit_dtype(logits.dtype, [&](auto t) {
    using T = decltype(t);
    const T* x = static_cast<const T*>(logits.ptr);
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < N; ++i) {
      sum[i] = row_sumexp(x + i * Vs, valid, pm[i]);
      tgt[i] = row_target(x + i * Vs, valid, targets.ptr[i], vocab_start);
    }
  });
}

void cross_entropy_loss(Tensor lse, Tensor losses, Tensor max, Tensor stats, TokenView targets) {
  const char* op = "cross_entropy_loss";
  const std::int64_t N = max.numel();
  check::row_f32(op, "max", max, N);
  check::row_f32(op, "lse", lse, N);
  check::row_f32(op, "losses", losses, N);
  check::planar_stats(op, stats, N);
  check_target_rows(op, targets, N, max);
  float* pl = lse.data<float>();
  float* ploss = losses.data<float>();
  const float* pm = max.data<float>();
  const float* sum = stats.data<float>();
  const float* tgt = sum + N;
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < N; ++i) {
    pl[i] = pm[i] + std::log(sum[i]);
    ploss[i] += targets.ptr[i] >= 0 ? pl[i] - tgt[i] : 0.0f;
  }
}

void cross_entropy_shard_backward(Tensor dlogits, Tensor logits, TokenView targets, std::int64_t vocab_start,
                                  std::int64_t vocab, Tensor lse, float dloss) {
  const char* op = "cross_entropy_shard_backward";
  check::vocab_shard(op, logits, vocab_start, vocab);
  check::same_shape(op, "dlogits", dlogits, "logits", logits);
  check::dtype(op, "dlogits", dlogits, logits.dtype);
  const std::int64_t N = logits.shape.rows(), Vs = logits.shape.last();
  check::row_f32(op, "lse", lse, N);
  check_targets(op, targets, logits, vocab);
  const std::int64_t valid = valid_columns(vocab_start, Vs, vocab);
  const float* pl = lse.data<float>();
  visit_dtype(logits.dtype, [&](auto t) {
    using T = decltype(t);
    const T* x = static_cast<const T*>(logits.ptr);
    T* dx = static_cast<T*>(dlogits.ptr);
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < N; ++i) {
      const std::int32_t target = targets.ptr[i];
      row_gradient(x + i * Vs, dx + i * Vs, target < 0 ? 0 : valid, Vs, pl[i],
                   std::int64_t(target) - vocab_start, dloss);
    }
  });
}

}  // namespace loom::cpu
