// backend/cpu/rmsnorm.cpp — RMSNorm over the last dim (Zhang & Sennrich 2019; Llama's norm),
// forward and backward.
//
// x, out: (N, C); weight: (C), no bias; rstd: (N) f32 = 1 / sqrt(mean(x^2) + eps), saved
// for backward. out = x * rstd * weight. Backward, with xhat = x * rstd and dn = dout * weight:
// dx = rstd * (dn - xhat * mean(dn * xhat)) (=, or += with Accumulate::yes); dweight += sum_i
// dout * xhat, summed by column blocks that each thread owns (race-free and deterministic, as
// layernorm.cpp does).
#include <algorithm>
#include <cmath>

#include "backend/checks.h"
#include "backend/cpu/kernels.h"

namespace loom::cpu {

void rmsnorm_forward(Tensor out, Tensor rstd, Tensor x, Tensor weight, float eps) {
  const char* op = "rmsnorm_forward";
  const std::int64_t N = x.shape.rows(), C = x.shape.last();
  check::same_shape(op, "out", out, "x", x);
  check::numel(op, "weight", weight, C);
  check::row_f32(op, "rstd", rstd, N);
  float* pr = rstd.data<float>();
  visit_dtype(x.dtype, [&](auto t) {
    using T = decltype(t);
    const T* px = static_cast<const T*>(x.ptr);
    T* po = out.data<T>();
    const T* w = weight.data<T>();
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < N; ++i) {
      const T* xr = px + i * C;
      float ss = 0;
#pragma omp simd reduction(+ : ss)
      for (std::int64_t c = 0; c < C; ++c) ss += ld(xr, c) * ld(xr, c);
      const float r = 1.0f / std::sqrt(ss / float(C) + eps);
      T* orow = po + i * C;
#pragma omp simd
      for (std::int64_t c = 0; c < C; ++c) st(orow, c, ld(xr, c) * r * ld(w, c));
      pr[i] = r;
    }
  });
}

void rmsnorm_backward(Tensor dx, Tensor dweight, Tensor dout, Tensor x, Tensor weight, Tensor rstd,
                      Accumulate dx_acc) {
  const char* op = "rmsnorm_backward";
  const std::int64_t N = x.shape.rows(), C = x.shape.last();
  check::same_shape(op, "dx", dx, "x", x);
  check::same_shape(op, "dout", dout, "x", x);
  check::numel(op, "weight", weight, C);
  check::numel(op, "dweight", dweight, C);
  check::row_f32(op, "rstd", rstd, N);
  const float* pr = rstd.data<float>();
  const bool acc = dx_acc == Accumulate::yes;
  visit_dtype(x.dtype, [&](auto t) {
    using T = decltype(t);
    const T* px = static_cast<const T*>(x.ptr);
    const T* pd = dout.data<T>();
    const T* w = weight.data<T>();
    T* pdx = dx.data<T>();
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < N; ++i) {
      const T* xr = px + i * C;
      const T* dr = pd + i * C;
      const float r = pr[i];
      float mean_dn_xhat = 0;
#pragma omp simd reduction(+ : mean_dn_xhat)
      for (std::int64_t c = 0; c < C; ++c) mean_dn_xhat += ld(dr, c) * ld(w, c) * ld(xr, c) * r;
      mean_dn_xhat /= float(C);
      T* dxr = pdx + i * C;
#pragma omp simd
      for (std::int64_t c = 0; c < C; ++c) {
        const float g = r * (ld(dr, c) * ld(w, c) - ld(xr, c) * r * mean_dn_xhat);
        st(dxr, c, acc ? ld(dxr, c) + g : g);
      }
    }
    visit_dtype(dweight.dtype, [&](auto tg) {  // f32 under mixed precision (main_grad)
      using G = decltype(tg);
      G* dw = dweight.data<G>();
      constexpr std::int64_t kCols = 64;
#pragma omp parallel for schedule(static)
      for (std::int64_t c0 = 0; c0 < C; c0 += kCols) {
        const std::int64_t nc = std::min(kCols, C - c0);
        float sw[kCols] = {};
        for (std::int64_t i = 0; i < N; ++i) {
          const float r = pr[i];
#pragma omp simd
          for (std::int64_t c = 0; c < nc; ++c) sw[c] += ld(pd, i * C + c0 + c) * ld(px, i * C + c0 + c) * r;
        }
        for (std::int64_t c = 0; c < nc; ++c) st(dw, c0 + c, ld(dw, c0 + c) + sw[c]);
      }
    });
  });
}

}  // namespace loom::cpu
