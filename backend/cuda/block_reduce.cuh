// backend/cuda/block_reduce.cuh — deterministic block-wide sum and max for the row kernels.
//
// Every thread of the block calls block_sum / block_max with its partial value
// and gets the block's total back. The combination order is fixed (warp
// butterfly, then warp 0 over the per-warp results), so the same inputs give the
// same bits on every run: no atomics. `shared` is kMaxWarps floats of shared memory
// the caller declares; the function synchronises before reusing it, so one
// buffer serves several calls in a row. Included only by .cu files.
#pragma once

#include <cmath>

namespace loom::cuda {

inline constexpr int kMaxWarps = 32;  // blockDim.x <= 1024

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// blockDim.x must be a multiple of 32.
template <bool Max>
__device__ float block_reduce(float v, float* shared) {
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32, warps = int(blockDim.x) / 32;
  v = Max ? warp_max(v) : warp_sum(v);
  __syncthreads();  // `shared` may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const float identity = Max ? -INFINITY : 0.0f;
  float w = lane < warps ? shared[lane] : identity;
  w = Max ? warp_max(w) : warp_sum(w);
  return w;  // every warp computed the same total from the same shared values
}

__device__ __forceinline__ float block_sum(float v, float* shared) { return block_reduce<false>(v, shared); }
__device__ __forceinline__ float block_max(float v, float* shared) { return block_reduce<true>(v, shared); }

}  // namespace loom::cuda
