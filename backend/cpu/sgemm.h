// backend/cpu/sgemm.h — the CPU backend's one plain f32 GEMM call: the attention kernels'
// per-tile products (attention.cpp, grouped_attention.cpp, flash_attention.cpp, called
// inside their OpenMP loops, one tile per thread) and gemm.cpp's f32 GEMMs that run no
// oneDNN primitive (OpenBLAS's own path, and the widened f16 / mixed-dtype path).
//
// C (M,N) = alpha op(A) op(B) + beta C, row-major, ld* row strides. beta == 0 overwrites C
// (NaN or garbage there does not survive); K == 0 gives C = beta C (both libraries may
// skip that; this wrapper does not).
//
// Which library: the same rule as gemm.cpp's whole GEMMs (Context::f32_on_dnnl). Where
// OpenBLAS runs its generic "Prescott" kernels, oneDNN's dnnl_sgemm; else OpenBLAS's
// cblas_sgemm. Why dnnl_sgemm rather than cached oneDNN matmul primitives (what
// dnnl_gemm.h keeps for whole GEMMs): at the flash kernel's tile shapes (64x128x32,
// 64x32x128, 128x32x64, single-threaded inside a parallel region) dnnl_sgemm ran 3.6-7x
// Prescott sgemm and 1.0-5.8x a cached primitive executed with per-call dnnl::memory
// objects (equal within noise at worst), and it needs no cache, no lock and no stream
// (docs/performance.md, "CPU attention: the tile GEMMs on oneDNN").
// Threads: both libraries use the process's OpenMP (libgomp) and do not nest: inside a
// parallel region a call runs on the calling thread only (oneDNN counts 1 thread there),
// outside one on all threads.
#pragma once

#include <cstdint>

#include "backend/backend.h"
#include "backend/cpu/context.h"

namespace loom::cpu {

void sgemm(const Context& ctx, Trans ta, Trans tb, std::int64_t M, std::int64_t N, std::int64_t K,
           float alpha, const float* A, std::int64_t lda, const float* B, std::int64_t ldb, float beta,
           float* C, std::int64_t ldc);

}  // namespace loom::cpu
