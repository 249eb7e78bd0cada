// backend/cuda/kernels.h — launchers for the CUDA kernels (one .cu file per op family).
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

// ---- layernorm.cu --------------------------------------------------------------
// x, out (N, C) and weight, bias (C) of dtype t; mean, rstd (N) f32 (=).
cudaError_t launch_layernorm_forward(void* out, float* mean, float* rstd, const void* x, const void* weight,
                                     const void* bias, DType t, std::int64_t N, std::int64_t C, float eps,
                                     cudaStream_t stream);
// The parameter gradients are summed over at most kLayernormGroups row groups
// (layernorm_param_groups(N), fixed for a given N) into f32 partials, then in
// order: scratch must hold layernorm_scratch_floats(N, C) floats.
inline constexpr int kLayernormGroups = 64;
int layernorm_param_groups(std::int64_t N);
inline std::int64_t layernorm_scratch_floats(std::int64_t N, std::int64_t C) {
  return std::int64_t(layernorm_param_groups(N)) * 2 * C;
}
// dx (= or += with accumulate_dx) of dtype t; dweight, dbias (+=) of dtype tg.
cudaError_t launch_layernorm_backward(void* dx, void* dweight, void* dbias, DType tg, const void* dout,
                                      const void* x, const void* weight, const float* mean, const float* rstd,
                                      DType t, std::int64_t N, std::int64_t C, bool accumulate_dx,
                                      float* scratch, cudaStream_t stream);

// ---- activations.cu ------------------------------------------------------------
cudaError_t launch_gelu_forward(void* out, const void* x, DType t, std::int64_t n, cudaStream_t stream);
// dx may alias dout.
cudaError_t launch_gelu_backward(void* dx, const void* dout, const void* x, DType t, std::int64_t n,
                                 cudaStream_t stream);
// Softmax over rows of n elements (rows >= 1).
cudaError_t launch_softmax_forward(void* out, const void* x, DType t, std::int64_t rows, std::int64_t n,
                                   cudaStream_t stream);
cudaError_t launch_softmax_backward(void* dx, const void* dout, const void* y, DType t, std::int64_t rows,
                                    std::int64_t n, cudaStream_t stream);

// ---- attention.cu (the row kernels; attention.cpp runs the GEMMs) ---------------
// In place over rows of T f32, row r being query position r % T: scaled scores ->
// causal softmax (0 above the diagonal).
cudaError_t launch_causal_softmax(float* scores, std::int64_t rows, std::int64_t T, cudaStream_t stream);
// In place: dP -> dS = P * (dP - rowsum(P dP)) below the diagonal, 0 above.
cudaError_t launch_causal_softmax_backward(float* dscores, const float* probs, std::int64_t rows, std::int64_t T,
                                           cudaStream_t stream);

// ---- rmsnorm.cu ------------------------------------------------------------------
// x, out (N, C) and weight (C) of dtype t; rstd (N) f32 (=).
cudaError_t launch_rmsnorm_forward(void* out, float* rstd, const void* x, const void* weight, DType t, std::int64_t N,
                                   std::int64_t C, float eps, cudaStream_t stream);
// dx (= or += with accumulate_dx) of dtype t; dweight (+=) of dtype tg, summed over
// layernorm_param_groups(N) row groups in order: scratch must hold
// layernorm_param_groups(N) * C floats.
cudaError_t launch_rmsnorm_backward(void* dx, void* dweight, DType tg, const void* dout, const void* x,
                                    const void* weight, const float* rstd, DType t, std::int64_t N, std::int64_t C,
                                    bool accumulate_dx, float* scratch, cudaStream_t stream);

// ---- relu_swiglu.cu ----------------------------------------------------------------
cudaError_t launch_relu_forward(void* out, const void* x, DType t, std::int64_t n, cudaStream_t stream);
// dx may alias dout.
cudaError_t launch_relu_backward(void* dx, const void* dout, const void* x, DType t, std::int64_t n,
                                 cudaStream_t stream);
// h (N, 2F) = [gate | up] rows, out / dout (N, F), dh (N, 2F) (=).
cudaError_t launch_swiglu_forward(void* out, const void* h, DType t, std::int64_t N, std::int64_t F,
                                  cudaStream_t stream);
cudaError_t launch_swiglu_backward(void* dh, const void* dout, const void* h, DType t, std::int64_t N,
                                   std::int64_t F, cudaStream_t stream);

// ---- rope.cu -----------------------------------------------------------------------
// In place on qkv (B, T, W): the first rotated_heads heads of D channels (D even) of each
// row; inverse rotates back (backward).
cudaError_t launch_rope(void* qkv, DType t, std::int64_t B, std::int64_t T, std::int64_t W, std::int64_t D,
                        std::int64_t rotated_heads, float base, bool inverse, cudaStream_t stream);

// ---- grouped_attention.cu (the row kernel; grouped_attention.cpp runs the GEMMs) ----
// In place over rows of T f32, row r being query position r % T of head (r / T) % H:
// minus slopes[h] * (i - j) when slopes is not null, then the causal softmax.
cudaError_t launch_alibi_causal_softmax(float* scores, const float* slopes, std::int64_t rows, std::int64_t H,
                                        std::int64_t T, cudaStream_t stream);

// ---- embedding.cu (tokens in device memory) --------------------------------------
// wpe may be null (no position term).
cudaError_t launch_embedding_forward(void* out, const std::int32_t* tokens, const void* wte, const void* wpe,
                                     DType t, std::int64_t B, std::int64_t T, std::int64_t C, std::int64_t Vs,
                                     std::int64_t vocab_start, cudaStream_t stream);
// dwte (Vs, C) and dwpe (>= T, C) of dtype tg, either null to skip; dout of dtype t.
cudaError_t launch_embedding_backward(void* dwte, void* dwpe, DType tg, const void* dout, DType t,
                                      const std::int32_t* tokens, std::int64_t B, std::int64_t T, std::int64_t C,
                                      std::int64_t Vs, std::int64_t vocab_start, cudaStream_t stream);

// ---- cross_entropy.cu (targets in device memory; `valid` real columns of Vs) ------
cudaError_t launch_cross_entropy_shard_max(float* max, const void* logits, DType t, std::int64_t N,
                                           std::int64_t Vs, std::int64_t valid, cudaStream_t stream);
// Sets *bad_target = 1 when a target is >= vocab (it is left alone otherwise).
cudaError_t launch_cross_entropy_shard_sumexp(float* stats, const void* logits, DType t, const float* max,
                                              const std::int32_t* targets, std::int64_t N, std::int64_t Vs,
                                              std::int64_t valid, std::int64_t vocab_start, std::int64_t vocab,
                                              int* bad_target, cudaStream_t stream);
cudaError_t launch_cross_entropy_loss(float* lse, float* losses, const float* max, const float* stats,
                                      const std::int32_t* targets, std::int64_t N, cudaStream_t stream);
cudaError_t launch_cross_entropy_shard_backward(void* dlogits, const void* logits, DType t,
                                                const std::int32_t* targets, const float* lse, std::int64_t N,
                                                std::int64_t Vs, std::int64_t valid, std::int64_t vocab_start,
                                                float dloss, cudaStream_t stream);

}  // namespace loom::cuda
