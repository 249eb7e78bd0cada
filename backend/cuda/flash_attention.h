// backend/cuda/flash_attention.h — launchers of the tiled (flash-style) attention kernels.
//
// Shapes and semantics are backend.h's flash_attention_forward/backward (glossary: B
// batch, Tq query and Tk key positions, Hq query heads, Hkv key/value heads, G = Hq / Hkv,
// D head size). The CudaBackend (cuda_backend.cpp) checks every argument with
// backend/flash_checks.h first; these launchers take plain device pointers, enqueue on
// `stream`, write (=) every output element, and return the first CUDA error for the
// caller to check (the .cu never throws). Included by flash_attention.cu (C++17) and
// cuda_backend.cpp: nothing here but core/dtype.h and the CUDA runtime.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "core/dtype.h"

namespace loom::cuda {

// Head sizes the kernels support: 1..kFlashMaxHeadDim (each lane of a warp keeps
// kFlashMaxHeadDim / 32 output columns of a row in registers).
inline constexpr std::int64_t kFlashMaxHeadDim = 128;

// One of q, k, v, dq, dk, dv, out, dout on the device: element (b, t, h, d) at
// p + ((b * T + t) * W + h * D + d) elements; p already points past the view's offset.
struct FlashOperand {
  void* p = nullptr;
  std::int64_t T = 0, W = 0;
};

// The checked geometry (backend/flash_checks.h) and the mask. key_lengths (B) int32,
// slopes (Hq) f32, rel_bias (Tq + Tk - 1, Hq) f32 and (backward) drel_bias (B, Tq + Tk - 1,
// Hq) f32 (+=) live in device memory, or are null. A length outside [0, Tk] is read as
// clamped to it (the CPU backend throws; here the values are never on the host).
struct FlashGeometry {
  std::int64_t B = 0, Tq = 0, Tk = 0, Hq = 0, Hkv = 0, D = 0;
  float scale = 1.0f;
  bool causal = true;
  std::int64_t window = 0;
  const std::int32_t* key_lengths = nullptr;
  const float* slopes = nullptr;
  const float* rel_bias = nullptr;
  float* drel_bias = nullptr;
};

// out (B,Tq,Hq*D) of dtype t (=); lse (B,Hq,Tq) f32 (=).
cudaError_t launch_flash_attention_forward(void* out, float* lse, FlashOperand q, FlashOperand k,
                                           FlashOperand v, DType t, const FlashGeometry& g,
                                           cudaStream_t stream);

// f32 scratch the backward needs: rowsum(dO * O), one float per (b, query head, t).
inline std::int64_t flash_backward_scratch_floats(const FlashGeometry& g) { return g.B * g.Hq * g.Tq; }

// dq, dk, dv (=), all of dtype t like q, k, v, dout, out; dk, dv summed over the G query
// heads of their kv head; drel_bias (+=) when g.drel_bias is set. scratch: flash_backward_scratch_floats(g) floats of f32.
cudaError_t launch_flash_attention_backward(FlashOperand dq, FlashOperand dk, FlashOperand dv,
                                            const void* dout, FlashOperand q, FlashOperand k, FlashOperand v,
                                            const void* out, const float* lse, DType t,
                                            const FlashGeometry& g, float* scratch, cudaStream_t stream);

}  // namespace loom::cuda
