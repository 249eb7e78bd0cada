// backend/cpu/activations.cpp — ReLU and SwiGLU, forward and backward (GELU, GPT-2's, is in
// elementwise.cpp).
//
// relu: out = max(x, 0); dx = dout where x > 0, else 0 (dx may alias dout).
// swiglu (Shazeer 2020, Llama's MLP): h (N, 2F) holds [gate | up] on each row (the fused
// gate and up projections' output; under tensor parallelism this rank's F/tp columns of
// each); out (N, F) = silu(gate) * up with silu(g) = g * sigmoid(g). Backward writes dh (=):
// dgate = dout * up * sigmoid(g) * (1 + g * (1 - sigmoid(g))), dup = dout * silu(g).
#include <cmath>

#include "backend/checks.h"
#include "backend/cpu/fast_math.h"
#include "backend/cpu/kernels.h"

namespace loom::cpu {

void relu_forward(Tensor out, Tensor x) {
  check::same_shape("relu_forward", "out", out, "x", x);
  visit_dtype(x.dtype, [&](auto t) {
    using T = decltype(t);
    const T* px = static_cast<const T*>(x.ptr);
    T* o = out.data<T>();
    const std::int64_t n = x.numel();
#pragma omp parallel for simd schedule(static)
    for (std::int64_t i = 0; i < n; ++i) st(o, i, std::max(ld(px, i), 0.0f));
  });
}

void relu_backward(Tensor dx, Tensor dout, Tensor x) {
  check::same_shape("relu_backward", "dx", dx, "x", x);
  check::same_shape("relu_backward", "dout", dout, "x", x);
  visit_dtype(x.dtype, [&](auto t) {
    using T = decltype(t);
    const T* px = static_cast<const T*>(x.ptr);
    const T* pd = dout.data<T>();
    T* pdx = dx.data<T>();
    const std::int64_t n = x.numel();
#pragma omp parallel for simd schedule(static)
    for (std::int64_t i = 0; i < n; ++i) st(pdx, i, ld(px, i) > 0.0f ? ld(pd, i) : 0.0f);
  });
}

namespace {
void check_swiglu(const char* op, const Tensor& half, const char* half_name, const Tensor& h) {
  LOOM_CHECK(h.shape.last() % 2 == 0 && half.shape.rows() == h.shape.rows() && 2 * half.shape.last() == h.shape.last() &&
                 half.dtype == h.dtype,
             "", "{}: h is {} ([gate | up], (N, 2F)) but {} is {}; it must be (N, F) of the same dtype", op, h.str(),
             half_name, half.str());
}
}  // namespace

void swiglu_forward(Tensor out, Tensor h) {
  check_swiglu("swiglu_forward", out, "out", h);
  const std::int64_t N = h.shape.rows(), F = out.shape.last();
  visit_dtype(h.dtype, [&](auto t) {
    using T = decltype(t);
    const T* ph = static_cast<const T*>(h.ptr);
    T* po = out.data<T>();
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < N; ++i) {
      const T* gate = ph + i * 2 * F;
      const T* up = gate + F;
      T* o = po + i * F;
#pragma omp simd
      for (std::int64_t j = 0; j < F; ++j) {
        const float g = ld(gate, j);
        st(o, j, g / (1.0f + fast_exp(-g)) * ld(up, j));
      }
    }
  });
}

void swiglu_backward(Tensor dh, Tensor dout, Tensor h) {
  check::same_shape("swiglu_backward", "dh", dh, "h", h);
  check_swiglu("swiglu_backward", dout, "dout", h);
  const std::int64_t N = h.shape.rows(), F = dout.shape.last();
  visit_dtype(h.dtype, [&](auto t) {
    using T = decltype(t);
    const T* ph = static_cast<const T*>(h.ptr);
    const T* pd = dout.data<T>();
    T* pdh = dh.data<T>();
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < N; ++i) {
      const T* gate = ph + i * 2 * F;
      const T* up = gate + F;
      const T* d = pd + i * F;
      T* dgate = pdh + i * 2 * F;
      T* dup = dgate + F;
#pragma omp simd
      for (std::int64_t j = 0; j < F; ++j) {
        const float g = ld(gate, j), u = ld(up, j), dy = ld(d, j);
        const float sig = 1.0f / (1.0f + fast_exp(-g));
        st(dgate, j, dy * u * sig * (1.0f + g * (1.0f - sig)));
        st(dup, j, dy * g * sig);
      }
    }
  });
}

}  // namespace loom::cpu
