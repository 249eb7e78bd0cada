// backend/cuda/kernels.h — launchers for the CUDA kernels (elementwise.cu, reduce.cu, adamw.cu).
//
// Plain pointers, element counts and runtime DTypes: the CudaBackend class
// (cuda_backend.cpp) validates Tensors and calls these; inside, visit_dtype
// picks the kernel template. Every launcher enqueues on `stream`, writes `=`
// unless its name or comment says it accumulates, and returns the launch's
// cudaError_t for the caller to check (the .cu files never throw).
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "core/dtype.h"

namespace loom {
struct AdamWScalars;  // backend/adamw_math.h
}

namespace loom::cuda {

// ---- elementwise.cu -----------------------------------------------------------
cudaError_t launch_fill(void* x, DType t, std::int64_t n, float value, cudaStream_t stream);
cudaError_t launch_scale(void* x, DType t, std::int64_t n, float alpha, cudaStream_t stream);
// y += alpha * x; y and x may have different dtypes.
cudaError_t launch_axpy(void* y, DType ty, float alpha, const void* x, DType tx, std::int64_t n,
                        cudaStream_t stream);
// out = a + b, all of dtype t; out may alias a or b.
cudaError_t launch_add(void* out, const void* a, const void* b, DType t, std::int64_t n, cudaStream_t stream);
cudaError_t launch_cast(void* dst, DType td, const void* src, DType ts, std::int64_t n, cudaStream_t stream);
// out (rows, cols) = bias[col] (+ out when accumulate): the bias half of matmul.
cudaError_t launch_bias_rows(void* out, DType to, const void* bias, DType tb, std::int64_t rows,
                             std::int64_t cols, bool accumulate, cudaStream_t stream);

// ---- reduce.cu ----------------------------------------------------------------
// Scratch the backend allocates once for sum and sum_squares: kReduceBlocks
// partial sums followed by the result (doubles). Fixed grid for a given n, no
// atomics, so the sum is deterministic.
inline constexpr int kReduceBlocks = 1024;
inline constexpr std::size_t kReduceScratchBytes = (kReduceBlocks + 1) * sizeof(double);
// scratch[kReduceBlocks] = sum x, or sum x^2, in double (left on the device).
cudaError_t launch_sum(const void* x, DType t, std::int64_t n, double* scratch, cudaStream_t stream);
cudaError_t launch_sum_squares(const void* x, DType t, std::int64_t n, double* scratch, cudaStream_t stream);
// dbias (cols) += column sums of dout (rows, cols), accumulated in f32.
cudaError_t launch_bias_backward(void* dbias, DType tb, const void* dout, DType td, std::int64_t rows,
                                 std::int64_t cols, cudaStream_t stream);

// ---- adamw.cu -----------------------------------------------------------------
// One adamw_element (backend/adamw_math.h) per element of f32 param/grad/m/v.
cudaError_t launch_adamw(float* param, const float* grad, float* m, float* v, std::int64_t n,
                         const AdamWScalars& s, cudaStream_t stream);

}  // namespace loom::cuda
