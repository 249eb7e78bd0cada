// backend/cuda/device_dtype.cuh — device-side element access and launch geometry for the kernels.
//
// ld() loads any storage type (float, loom::bf16, loom::f16) as f32; st()
// rounds an f32 to the storage type with round-to-nearest-even (the
// cuda_bf16.h / cuda_fp16.h _rn intrinsics), overflow to inf, exactly as
// core/dtype.h's from_float does on the host. Included only by .cu files.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "core/dtype.h"

namespace loom::cuda {

__device__ __forceinline__ float ld(const float* p, std::int64_t i) { return p[i]; }
__device__ __forceinline__ float ld(const bf16* p, std::int64_t i) {
  return __bfloat162float(__ushort_as_bfloat16(p[i].bits));
}
__device__ __forceinline__ float ld(const f16* p, std::int64_t i) {
  return __half2float(__ushort_as_half(p[i].bits));
}

__device__ __forceinline__ void st(float* p, std::int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void st(bf16* p, std::int64_t i, float v) {
  p[i].bits = __bfloat16_as_ushort(__float2bfloat16_rn(v));
}
__device__ __forceinline__ void st(f16* p, std::int64_t i, float v) {
  p[i].bits = __half_as_ushort(__float2half_rn(v));
}

// v rounded to storage type T and back (what st then ld would give).
template <class T>
__device__ __forceinline__ float rnd(float v) {
  T t;
  st(&t, 0, v);
  return ld(&t, 0);
}

// Grid-stride launches: 256 threads a block, at most kMaxBlocks blocks.
inline constexpr int kThreads = 256;
inline constexpr std::int64_t kMaxBlocks = 65535;
inline unsigned grid_for(std::int64_t n) {
  const std::int64_t blocks = (n + kThreads - 1) / kThreads;
  return unsigned(blocks < 1 ? 1 : (blocks > kMaxBlocks ? kMaxBlocks : blocks));
}

// for (i = global thread index; i < n; i += total threads)
#define LOOM_GRID_STRIDE(i, n)                                                        \
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += std::int64_t(gridDim.x) * blockDim.x)

}  // namespace loom::cuda
