// backend/cuda/attention.cu — the row kernels of causal attention (the GEMMs are in attention.cpp).
//
// probs / dprobs: (B*H*T) rows of T f32; row r is query position i = r % T,
// which sees keys 0..i. Forward turns the scaled scores into probabilities in
// place: softmax over j <= i, 0 above the diagonal, as backend/cpu/attention.cpp
// does. Backward turns dP into dS = P * (dP - sum_j P dP) over j <= i, 0 above.
// One block a row, fixed-order reductions (block_reduce.cuh).
#include "backend/cuda/block_reduce.cuh"
#include "backend/cuda/device_dtype.cuh"
#include "backend/cuda/kernels.h"

namespace loom::cuda {

namespace {

constexpr int kRowThreads = 128;

__global__ void causal_softmax_kernel(float* s, std::int64_t T) {
  __shared__ float shared[kMaxWarps];
  const std::int64_t r = blockIdx.x, i = r % T;
  float* row = s + r * T;
  float mx = -INFINITY;
  for (std::int64_t j = threadIdx.x; j <= i; j += blockDim.x) mx = fmaxf(mx, row[j]);
  mx = block_max(mx, shared);
  float sum = 0;
  for (std::int64_t j = threadIdx.x; j <= i; j += blockDim.x) {
    const float e = expf(row[j] - mx);
    row[j] = e;
    sum += e;
  }
  const float inv = 1.0f / block_sum(sum, shared);
  for (std::int64_t j = threadIdx.x; j < T; j += blockDim.x) row[j] = j <= i ? row[j] * inv : 0.0f;
}

__global__ void causal_softmax_backward_kernel(float* ds, const float* p, std::int64_t T) {
  __shared__ float shared[kMaxWarps];
  const std::int64_t r = blockIdx.x, i = r % T;
  float* g = ds + r * T;
  const float* pr = p + r * T;
  float dot = 0;
  for (std::int64_t j = threadIdx.x; j <= i; j += blockDim.x) dot += pr[j] * g[j];
  dot = block_sum(dot, shared);
  for (std::int64_t j = threadIdx.x; j < T; j += blockDim.x) g[j] = j <= i ? pr[j] * (g[j] - dot) : 0.0f;
}

}  // namespace

cudaError_t launch_causal_softmax(float* scores, std::int64_t rows, std::int64_t T, cudaStream_t stream) {
  causal_softmax_kernel<<<unsigned(rows), kRowThreads, 0, stream>>>(scores, T);
  return cudaGetLastError();
}

cudaError_t launch_causal_softmax_backward(float* dscores, const float* probs, std::int64_t rows, std::int64_t T,
                                           cudaStream_t stream) {
  causal_softmax_backward_kernel<<<unsigned(rows), kRowThreads, 0, stream>>>(dscores, probs, T);
  return cudaGetLastError();
}

}  // namespace loom::cuda
