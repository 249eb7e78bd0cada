// backend/cuda/cross_entropy.cu — the vocabulary-parallel softmax cross-entropy (backend.h).
//
// logits (N, Vs) hold global columns [vocab_start, vocab_start + Vs), of which
// the first `valid` are real; targets (N) int32 in device memory, < 0 = no
// target. max / lse / losses f32 (N), stats f32 (2, N) planar. One block a row
// for the three row ops (fixed-order reductions, block_reduce.cuh), one thread a
// row for the loss. Outputs `=` except losses (`+=`). Backward may run in place
// (dlogits == logits): every x is read by the thread that then writes its dx.
// A target >= vocab cannot throw from a kernel: shard_sumexp raises a device flag
// (the backend reports it at its next host synchronisation) and every op treats
// such a target as held by no shard.
#include "backend/cuda/block_reduce.cuh"
#include "backend/cuda/device_dtype.cuh"
#include "backend/cuda/kernels.h"

namespace loom::cuda {

namespace {

constexpr int kRowThreads = 256;

template <class T>
__global__ void shard_max_kernel(float* max, const T* logits, std::int64_t Vs, std::int64_t valid) {
  __shared__ float shared[kMaxWarps];
  const T* row = logits + std::int64_t(blockIdx.x) * Vs;
  float mx = -INFINITY;
  for (std::int64_t j = threadIdx.x; j < valid; j += blockDim.x) mx = fmaxf(mx, ld(row, j));
  mx = block_max(mx, shared);
  if (threadIdx.x == 0) max[blockIdx.x] = mx;
}

template <class T>
__global__ void shard_sumexp_kernel(float* stats, const T* logits, const float* max, const std::int32_t* targets,
                                    std::int64_t N, std::int64_t Vs, std::int64_t valid, std::int64_t vocab_start,
                                    std::int64_t vocab, int* bad_target) {
  __shared__ float shared[kMaxWarps];
  const std::int64_t i = blockIdx.x;
  const T* row = logits + i * Vs;
  const float shift = max[i];
  float sum = 0;
  for (std::int64_t j = threadIdx.x; j < valid; j += blockDim.x) sum += expf(ld(row, j) - shift);
  sum = block_sum(sum, shared);
  if (threadIdx.x == 0) {
    const std::int32_t target = targets[i];
    const std::int64_t local = std::int64_t(target) - vocab_start;
    if (target >= vocab) *bad_target = 1;  // every writer stores the same value: no race to resolve
    stats[i] = sum;
    stats[N + i] = target >= 0 && 0 <= local && local < valid ? ld(row, local) : 0.0f;
  }
}

__global__ void loss_kernel(float* lse, float* losses, const float* max, const float* stats,
                            const std::int32_t* targets, std::int64_t N) {
  LOOM_GRID_STRIDE(i, N) {
    const float l = max[i] + logf(stats[i]);
    lse[i] = l;
    losses[i] += targets[i] >= 0 ? l - stats[N + i] : 0.0f;
  }
}

template <class T>
__global__ void shard_backward_kernel(T* dlogits, const T* logits, const std::int32_t* targets, const float* lse,
                                      std::int64_t Vs, std::int64_t valid, std::int64_t vocab_start, float dloss) {
  const std::int64_t i = blockIdx.x;
  const T* x = logits + i * Vs;
  T* dx = dlogits + i * Vs;
  const std::int32_t target = targets[i];
  const std::int64_t real = target < 0 ? 0 : valid;  // an ignored row is all zeros
  const std::int64_t local = std::int64_t(target) - vocab_start;
  const float shift = lse[i];
  for (std::int64_t j = threadIdx.x; j < Vs; j += blockDim.x) {
    float g = j < real ? dloss * expf(ld(x, j) - shift) : 0.0f;
    if (j == local && j < real) g = rnd<T>(g) - dloss;  // the CPU rounds, then subtracts
    st(dx, j, g);
  }
}

}  // namespace

cudaError_t launch_cross_entropy_shard_max(float* max, const void* logits, DType t, std::int64_t N,
                                           std::int64_t Vs, std::int64_t valid, cudaStream_t stream) {
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    shard_max_kernel<<<unsigned(N), kRowThreads, 0, stream>>>(max, static_cast<const T*>(logits), Vs, valid);
  });
  return cudaGetLastError();
}

cudaError_t launch_cross_entropy_shard_sumexp(float* stats, const void* logits, DType t, const float* max,
                                              const std::int32_t* targets, std::int64_t N, std::int64_t Vs,
                                              std::int64_t valid, std::int64_t vocab_start, std::int64_t vocab,
                                              int* bad_target, cudaStream_t stream) {
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    shard_sumexp_kernel<<<unsigned(N), kRowThreads, 0, stream>>>(stats, static_cast<const T*>(logits), max, targets,
                                                                 N, Vs, valid, vocab_start, vocab, bad_target);
  });
  return cudaGetLastError();
}

cudaError_t launch_cross_entropy_loss(float* lse, float* losses, const float* max, const float* stats,
                                      const std::int32_t* targets, std::int64_t N, cudaStream_t stream) {
  loss_kernel<<<grid_for(N), kThreads, 0, stream>>>(lse, losses, max, stats, targets, N);
  return cudaGetLastError();
}

cudaError_t launch_cross_entropy_shard_backward(void* dlogits, const void* logits, DType t,
                                                const std::int32_t* targets, const float* lse, std::int64_t N,
                                                std::int64_t Vs, std::int64_t valid, std::int64_t vocab_start,
                                                float dloss, cudaStream_t stream) {
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    shard_backward_kernel<<<unsigned(N), kRowThreads, 0, stream>>>(
        static_cast<T*>(dlogits), static_cast<const T*>(logits), targets, lse, Vs, valid, vocab_start, dloss);
  });
  return cudaGetLastError();
}

}  // namespace loom::cuda
