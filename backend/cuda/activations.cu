// backend/cuda/activations.cu — GELU (tanh form) and softmax over the last dim, forward and backward.
//
// Same formulas as backend/cpu/elementwise.cpp, in f32, rounded on store; the
// CPU's fast_tanh/fast_exp are ~2 ulp approximations, these use CUDA's tanhf and
// expf. GELU is elementwise (grid-stride); dx may alias dout (each element is
// read before it is written, by the same thread). Softmax runs one block a row
// with the fixed-order block reductions of block_reduce.cuh. All outputs `=`.
#include "backend/cuda/block_reduce.cuh"
#include "backend/cuda/device_dtype.cuh"
#include "backend/cuda/kernels.h"

namespace loom::cuda {

namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;
constexpr int kRowThreads = 256;

template <class T>
__global__ void gelu_forward_kernel(T* out, const T* x, std::int64_t n) {
  LOOM_GRID_STRIDE(i, n) {
    const float v = ld(x, i);
    st(out, i, 0.5f * v * (1.0f + tanhf(kSqrt2OverPi * (v + kGeluCubic * v * v * v))));
  }
}

template <class T>
__global__ void gelu_backward_kernel(T* dx, const T* dout, const T* x, std::int64_t n) {
  LOOM_GRID_STRIDE(i, n) {
    const float v = ld(x, i);
    const float u = kSqrt2OverPi * (v + kGeluCubic * v * v * v);
    const float th = tanhf(u);
    const float du = kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * v * v);
    const float grad = 0.5f * (1.0f + th) + 0.5f * v * (1.0f - th * th) * du;
    st(dx, i, grad * ld(dout, i));
  }
}

template <class T>
__global__ void softmax_forward_kernel(T* out, const T* x, std::int64_t n) {
  __shared__ float shared[kMaxWarps];
  const T* xr = x + std::int64_t(blockIdx.x) * n;
  T* orow = out + std::int64_t(blockIdx.x) * n;
  float mx = -INFINITY;
  for (std::int64_t j = threadIdx.x; j < n; j += blockDim.x) mx = fmaxf(mx, ld(xr, j));
  mx = block_max(mx, shared);
  float sum = 0;
  for (std::int64_t j = threadIdx.x; j < n; j += blockDim.x) sum += expf(ld(xr, j) - mx);
  const float inv = 1.0f / block_sum(sum, shared);
  // out may alias x: every x of the row was read above (the reductions synchronise).
  for (std::int64_t j = threadIdx.x; j < n; j += blockDim.x) st(orow, j, expf(ld(xr, j) - mx) * inv);
}

template <class T>
__global__ void softmax_backward_kernel(T* dx, const T* dout, const T* y, std::int64_t n) {
  __shared__ float shared[kMaxWarps];
  const std::int64_t off = std::int64_t(blockIdx.x) * n;
  float dot = 0;
  for (std::int64_t j = threadIdx.x; j < n; j += blockDim.x) dot += ld(dout + off, j) * ld(y + off, j);
  dot = block_sum(dot, shared);
  for (std::int64_t j = threadIdx.x; j < n; j += blockDim.x)
    st(dx + off, j, ld(y + off, j) * (ld(dout + off, j) - dot));
}

}  // namespace

cudaError_t launch_gelu_forward(void* out, const void* x, DType t, std::int64_t n, cudaStream_t stream) {
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    gelu_forward_kernel<<<grid_for(n), kThreads, 0, stream>>>(static_cast<T*>(out), static_cast<const T*>(x), n);
  });
  return cudaGetLastError();
}

cudaError_t launch_gelu_backward(void* dx, const void* dout, const void* x, DType t, std::int64_t n,
                                 cudaStream_t stream) {
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    gelu_backward_kernel<<<grid_for(n), kThreads, 0, stream>>>(static_cast<T*>(dx), static_cast<const T*>(dout),
                                                              static_cast<const T*>(x), n);
  });
  return cudaGetLastError();
}

cudaError_t launch_softmax_forward(void* out, const void* x, DType t, std::int64_t rows, std::int64_t n,
                                   cudaStream_t stream) {
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    softmax_forward_kernel<<<unsigned(rows), kRowThreads, 0, stream>>>(static_cast<T*>(out),
                                                                       static_cast<const T*>(x), n);
  });
  return cudaGetLastError();
}

cudaError_t launch_softmax_backward(void* dx, const void* dout, const void* y, DType t, std::int64_t rows,
                                    std::int64_t n, cudaStream_t stream) {
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    softmax_backward_kernel<<<unsigned(rows), kRowThreads, 0, stream>>>(
        static_cast<T*>(dx), static_cast<const T*>(dout), static_cast<const T*>(y), n);
  });
  return cudaGetLastError();
}

}  // namespace loom::cuda
