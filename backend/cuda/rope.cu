// backend/cuda/rope.cu — rotary position embedding, in place on the q and k heads of a fused qkv.
//
// As backend/cpu/rope.cpp: qkv (B,T,W), W = (H + 2 Hkv) D; at position t = row % T,
// channels (i, i + D/2) of each of the first H + Hkv heads (q and k; v untouched) are
// rotated by a = t * base^(-2i/D), the angle formed in double and its cos and sin
// rounded to f32; backward (inverse) uses -sin. One thread a (row, i) pair runs over
// the rotated heads; each element is read and written by that thread only.
#include "backend/cuda/device_dtype.cuh"
#include "backend/cuda/kernels.h"

namespace loom::cuda {

namespace {

template <class T>
__global__ void rope_kernel(T* qkv, std::int64_t rows, std::int64_t T_, std::int64_t W, std::int64_t D,
                            std::int64_t rotated, double base, float sign) {
  const std::int64_t half = D / 2;
  LOOM_GRID_STRIDE(k, rows * half) {
    const std::int64_t row = k / half, i = k % half;
    const double inv_freq = pow(base, -2.0 * double(i) / double(D));
    const double a = double(row % T_) * inv_freq;
    const float c = float(cos(a)), s = sign * float(sin(a));
    T* r = qkv + row * W;
    for (std::int64_t h = 0; h < rotated; ++h) {
      T* x = r + h * D;
      const float x1 = ld(x, i), x2 = ld(x, i + half);
      st(x, i, x1 * c - x2 * s);
      st(x, i + half, x2 * c + x1 * s);
    }
  }
}

}  // namespace

cudaError_t launch_rope(void* qkv, DType t, std::int64_t B, std::int64_t T, std::int64_t W, std::int64_t D,
                        std::int64_t rotated_heads, float base, bool inverse, cudaStream_t stream) {
  visit_dtype(t, [&](auto tag) {
    using E = decltype(tag);
    rope_kernel<<<grid_for(B * T * (D / 2)), kThreads, 0, stream>>>(
        static_cast<E*>(qkv), B * T, T, W, D, rotated_heads, double(base), inverse ? -1.0f : 1.0f);
  });
  return cudaGetLastError();
}

}  // namespace loom::cuda
