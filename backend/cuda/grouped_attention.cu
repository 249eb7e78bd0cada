// backend/cuda/grouped_attention.cu — the row kernel of grouped-query / ALiBi attention
// (the GEMMs are in grouped_attention.cpp). Backward reuses attention.cu's causal softmax
// backward: dS = P * (dP - sum P dP) needs only P, so ALiBi's bias adds nothing there.
//
// scores: (B*H*T) rows of T f32, row r being query position i = r % T of head
// h = (r / T) % H. In place, as backend/cpu/grouped_attention.cpp: with slopes, score
// j <= i gets -slopes[h] * (i - j) (slopes are this rank's heads, the caller's slice of the
// global ones); then softmax over j <= i, 0 above the diagonal. One block a row,
// fixed-order reductions (block_reduce.cuh).
#include "backend/cuda/block_reduce.cuh"
#include "backend/cuda/device_dtype.cuh"
#include "backend/cuda/kernels.h"

namespace loom::cuda {

namespace {

constexpr int kRowThreads = 128;

__global__ void alibi_causal_softmax_kernel(float* s, const float* slopes, std::int64_t H, std::int64_t T) {
  __shared__ float shared[kMaxWarps];
  const std::int64_t r = blockIdx.x, i = r % T, h = (r / T) % H;
  float* row = s + r * T;
  if (slopes) {
    const float slope = slopes[h];
    for (std::int64_t j = threadIdx.x; j <= i; j += blockDim.x) row[j] -= slope * float(i - j);
  }
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

}  // namespace

cudaError_t launch_alibi_causal_softmax(float* scores, const float* slopes, std::int64_t rows, std::int64_t H,
                                        std::int64_t T, cudaStream_t stream) {
  alibi_causal_softmax_kernel<<<unsigned(rows), kRowThreads, 0, stream>>>(scores, slopes, H, T);
  return cudaGetLastError();
}

}  // namespace loom::cuda
