// backend/cuda/attention.h — causal self-attention on the GPU: batched f32 GEMMs + row kernels.
//
// Shapes as backend.h: qkv (B,T,3*H*D), out and dout (B,T,H*D), probs and the
// backward scratch (B,H,T,T) f32. The first implementation (not flash-style):
// per batch row b, cuBLAS strided-batched SGEMMs over the H heads (a head's
// q/k/v are D columns at stride D inside rows of 3C) compute the full T x T
// scores; attention.cu masks and normalises them. All GEMMs run in f32
// (CUBLAS_COMPUTE_32F, no TF32), as the CPU reference does; bf16/f16 tensors are
// widened into the caller's f32 workspace first and the results rounded back,
// so the workspace needs workspace_floats() floats (0 for f32). Owns a cuBLAS
// handle bound to the backend's stream. Arguments are checked by the caller.
#pragma once

#include <cstdint>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "backend/backend.h"

namespace loom::cuda {

struct AttentionDims {
  std::int64_t B, T, H, D;
};

// Grouped-query attention (grouped_attention.cpp): H query heads, Hkv key/value heads,
// qkv rows of W = (H + 2 Hkv) D.
struct GroupedDims {
  std::int64_t B, T, H, Hkv, D;
  std::int64_t G() const { return H / Hkv; }
  std::int64_t W() const { return (H + 2 * Hkv) * D; }
};

class Attention {
 public:
  explicit Attention(cudaStream_t stream);
  ~Attention();
  Attention(const Attention&) = delete;
  Attention& operator=(const Attention&) = delete;

  // f32 workspace for forward (backward = false) or backward on dtype dt.
  static std::int64_t workspace_floats(DType dt, const AttentionDims& d, bool backward);

  void forward(Tensor out, Tensor probs, Tensor qkv, const AttentionDims& d, float* workspace);
  void backward(Tensor dqkv, Tensor scratch, Tensor dout, Tensor qkv, Tensor probs, const AttentionDims& d,
                float* workspace);

  // Grouped-query attention with optional ALiBi slopes (H f32 on the device, or null),
  // the same scheme (grouped_attention.cpp); workspace as above.
  static std::int64_t grouped_workspace_floats(DType dt, const GroupedDims& d, bool backward);
  void grouped_forward(Tensor out, Tensor probs, Tensor qkv, const float* slopes, const GroupedDims& d,
                       float* workspace);
  void grouped_backward(Tensor dqkv, Tensor scratch, Tensor dout, Tensor qkv, Tensor probs, const GroupedDims& d,
                        float* workspace);

 private:
  cublasHandle_t blas_ = nullptr;
  cudaStream_t stream_;
};

}  // namespace loom::cuda
