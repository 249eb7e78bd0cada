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
void check_ce(const char* op, Tensor logits, TokenView targets, std::int64_t vocab) {
  const std::int64_t N = logits.shape.rows(), Vp = logits.shape.last();
  LOOM_CHECK(0 < vocab && vocab <= Vp, "", "{}: vocab {} must be in [1, {}] for logits {}", op, vocab, Vp,
             logits.str());
  LOOM_CHECK(targets.numel() == N && targets.device == Device::cpu, "",
             "{}: targets {} must hold one token per logits row of {}", op, targets.shape.str(), logits.str());
  for (std::int64_t i = 0; i < N; ++i)
    LOOM_CHECK(0 <= targets.ptr[i] && targets.ptr[i] < vocab, "the dataset's vocabulary must fit the model's",
               "{}: target {} at row {} is outside the vocabulary [0, {})", op, targets.ptr[i], i, vocab);
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
      const std::int64_t target = targets.ptr[i];
      const float shift = mx + log_sum;
#pragma omp simd
      for (std::int64_t j = 0; j < vocab; ++j) st(dx, i * Vp + j, dloss * fast_exp(ld(x, i * Vp + j) - shift));
      st(dx, i * Vp + target, ld(dx, i * Vp + target) - dloss);
      for (std::int64_t j = vocab; j < Vp; ++j) st(dx, i * Vp + j, 0.0f);
    }
  });
}

}  // namespace loom::cpu
