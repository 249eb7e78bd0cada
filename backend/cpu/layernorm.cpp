// backend/cpu/layernorm.cpp — layernorm over the last dim, forward and backward.
//
// x, out: (N, C); weight, bias: (C); mean, rstd: (N) f32, saved for backward.
// Backward: dx (=, or += with Accumulate::yes), dweight +=, dbias +=. The
// parameter gradients are summed in a second pass where each thread owns whole
// columns: no races, no scratch memory, and the same result on every run.
#include <algorithm>
#include <cmath>

#include "backend/checks.h"
#include "backend/cpu/kernels.h"

namespace loom::cpu {

void layernorm_forward(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor weight, Tensor bias,
                       float eps) {
  const char* op = "layernorm_forward";
  const std::int64_t N = x.shape.rows(), C = x.shape.last();
  check::same_shape(op, "out", out, "x", x);
  check::numel(op, "weight", weight, C);
  check::numel(op, "bias", bias, C);
  check::numel(op, "mean", mean, N);
  check::numel(op, "rstd", rstd, N);
  check::dtype(op, "mean", mean, DType::f32);
  check::dtype(op, "rstd", rstd, DType::f32);
  float* pm = mean.data<float>();
  float* pr = rstd.data<float>();
  visit_dtype(x.dtype, [&](auto t) {
    using T = decltype(t);
    const T* px = static_cast<const T*>(x.ptr);
    T* po = out.data<T>();
    const T* w = weight.data<T>();
    const T* b = bias.data<T>();
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < N; ++i) {
      const T* xr = px + i * C;
      float m = 0;
#pragma omp simd reduction(+ : m)
      for (std::int64_t c = 0; c < C; ++c) m += ld(xr, c);
      m /= float(C);
      float var = 0;  // two-pass: no cancellation for large means
#pragma omp simd reduction(+ : var)
      for (std::int64_t c = 0; c < C; ++c) {
        const float d = ld(xr, c) - m;
        var += d * d;
      }
      const float r = 1.0f / std::sqrt(var / float(C) + eps);
      T* orow = po + i * C;
#pragma omp simd
      for (std::int64_t c = 0; c < C; ++c) st(orow, c, (ld(xr, c) - m) * r * ld(w, c) + ld(b, c));
      pm[i] = m;
      pr[i] = r;
    }
  });
}

void layernorm_backward(Tensor dx, Tensor dweight, Tensor dbias, Tensor dout, Tensor x, Tensor weight,
                        Tensor mean, Tensor rstd, Accumulate dx_acc) {
  const char* op = "layernorm_backward";
  const std::int64_t N = x.shape.rows(), C = x.shape.last();
  check::same_shape(op, "dx", dx, "x", x);
  check::same_shape(op, "dout", dout, "x", x);
  check::numel(op, "weight", weight, C);
  check::numel(op, "dweight", dweight, C);
  check::numel(op, "dbias", dbias, C);
  check::numel(op, "mean", mean, N);
  check::numel(op, "rstd", rstd, N);
  check::dtype(op, "mean", mean, DType::f32);
  check::dtype(op, "rstd", rstd, DType::f32);
  const float* pm = mean.data<float>();
  const float* pr = rstd.data<float>();
  const bool acc = dx_acc == Accumulate::yes;
  visit_dtype(x.dtype, [&](auto t) {
    using T = decltype(t);
    const T* px = static_cast<const T*>(x.ptr);
    const T* pd = dout.data<T>();
    const T* w = weight.data<T>();
    T* pdx = dx.data<T>();
    // Pass 1, over rows: dnorm = dout * w; dx = r * (dnorm - mean(dnorm) - xhat * mean(dnorm * xhat)).
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < N; ++i) {
      const T* xr = px + i * C;
      const T* dr = pd + i * C;
      const float m = pm[i], r = pr[i];
      float mean_dn = 0, mean_dn_xhat = 0;
#pragma omp simd reduction(+ : mean_dn, mean_dn_xhat)
      for (std::int64_t c = 0; c < C; ++c) {
        const float dn = ld(dr, c) * ld(w, c);
        mean_dn += dn;
        mean_dn_xhat += dn * (ld(xr, c) - m) * r;
      }
      mean_dn /= float(C);
      mean_dn_xhat /= float(C);
      T* dxr = pdx + i * C;
#pragma omp simd
      for (std::int64_t c = 0; c < C; ++c) {
        const float xhat = (ld(xr, c) - m) * r;
        const float g = r * (ld(dr, c) * ld(w, c) - mean_dn - xhat * mean_dn_xhat);
        st(dxr, c, acc ? ld(dxr, c) + g : g);
      }
    }
    // Pass 2, over column blocks: dweight += sum_i dout * xhat, dbias += sum_i dout.
    // Each thread owns whole columns, so the sums are race-free and deterministic.
    // The parameter gradients may be f32 while x is 16-bit (mixed precision's main_grad).
    visit_dtype(dweight.dtype, [&](auto tg) {
      using G = decltype(tg);
      G* dw = dweight.data<G>();
      G* db = dbias.data<G>();
      constexpr std::int64_t kCols = 64;
#pragma omp parallel for schedule(static)
      for (std::int64_t c0 = 0; c0 < C; c0 += kCols) {
        const std::int64_t nc = std::min(kCols, C - c0);
        float sw[kCols] = {}, sb[kCols] = {};
        for (std::int64_t i = 0; i < N; ++i) {
          const float m = pm[i], r = pr[i];
#pragma omp simd
          for (std::int64_t c = 0; c < nc; ++c) {
            const float d = ld(pd, i * C + c0 + c);
            sw[c] += d * (ld(px, i * C + c0 + c) - m) * r;
            sb[c] += d;
          }
        }
        for (std::int64_t c = 0; c < nc; ++c) {
          st(dw, c0 + c, ld(dw, c0 + c) + sw[c]);
          st(db, c0 + c, ld(db, c0 + c) + sb[c]);
        }
      }
    });
  });
}

}  // namespace loom::cpu
