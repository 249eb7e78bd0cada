// backend/cuda/relu_swiglu.cu — ReLU and SwiGLU, forward and backward (GELU is in activations.cu).
//
// Same formulas as backend/cpu/activations.cpp, in f32, rounded on store (the CPU's
// fast_exp is a ~2 ulp approximation; these use CUDA's expf). relu: out = max(x, 0);
// dx = dout where x > 0, else 0; dx may alias dout (each element is read before it is
// written, by the same thread). swiglu: h (N, 2F) = [gate | up] per row; out (N, F) =
// g / (1 + exp(-g)) * up; backward writes dh (=): dgate = dout * up * sig * (1 + g (1 -
// sig)), dup = dout * g * sig, sig = 1 / (1 + exp(-g)). Grid-stride over the N*F
// (row, j) pairs. All outputs `=`.
#include "backend/cuda/device_dtype.cuh"
#include "backend/cuda/kernels.h"

namespace loom::cuda {

namespace {

template <class T>
__global__ void relu_forward_kernel(T* out, const T* x, std::int64_t n) {
  LOOM_GRID_STRIDE(i, n) st(out, i, fmaxf(ld(x, i), 0.0f));
}

template <class T>
__global__ void relu_backward_kernel(T* dx, const T* dout, const T* x, std::int64_t n) {
  LOOM_GRID_STRIDE(i, n) st(dx, i, ld(x, i) > 0.0f ? ld(dout, i) : 0.0f);
}

template <class T>
__global__ void swiglu_forward_kernel(T* out, const T* h, std::int64_t N, std::int64_t F) {
  LOOM_GRID_STRIDE(k, N * F) {
    const std::int64_t i = k / F, j = k % F;
    const T* gate = h + i * 2 * F;
    const float g = ld(gate, j);
    st(out, k, g / (1.0f + expf(-g)) * ld(gate, F + j));
  }
}

template <class T>
__global__ void swiglu_backward_kernel(T* dh, const T* dout, const T* h, std::int64_t N, std::int64_t F) {
  LOOM_GRID_STRIDE(k, N * F) {
    const std::int64_t i = k / F, j = k % F;
    const T* gate = h + i * 2 * F;
    const float g = ld(gate, j), u = ld(gate, F + j), dy = ld(dout, k);
    const float sig = 1.0f / (1.0f + expf(-g));
    T* dgate = dh + i * 2 * F;
    st(dgate, j, dy * u * sig * (1.0f + g * (1.0f - sig)));
    st(dgate, F + j, dy * g * sig);
  }
}

}  // namespace

cudaError_t launch_relu_forward(void* out, const void* x, DType t, std::int64_t n, cudaStream_t stream) {
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    relu_forward_kernel<<<grid_for(n), kThreads, 0, stream>>>(static_cast<T*>(out), static_cast<const T*>(x),
                                                              n);
  });
  return cudaGetLastError();
}

cudaError_t launch_relu_backward(void* dx, const void* dout, const void* x, DType t, std::int64_t n,
                                 cudaStream_t stream) {
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    relu_backward_kernel<<<grid_for(n), kThreads, 0, stream>>>(
        static_cast<T*>(dx), static_cast<const T*>(dout), static_cast<const T*>(x), n);
  });
  return cudaGetLastError();
}

cudaError_t launch_swiglu_forward(void* out, const void* h, DType t, std::int64_t N, std::int64_t F,
                                  cudaStream_t stream) {
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    swiglu_forward_kernel<<<grid_for(N * F), kThreads, 0, stream>>>(static_cast<T*>(out),
                                                                    static_cast<const T*>(h), N, F);
  });
  return cudaGetLastError();
}

cudaError_t launch_swiglu_backward(void* dh, const void* dout, const void* h, DType t, std::int64_t N,
                                   std::int64_t F, cudaStream_t stream) {
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    swiglu_backward_kernel<<<grid_for(N * F), kThreads, 0, stream>>>(
        static_cast<T*>(dh), static_cast<const T*>(dout), static_cast<const T*>(h), N, F);
  });
  return cudaGetLastError();
}

}  // namespace loom::cuda
