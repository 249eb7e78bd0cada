// optimizer/adamw.h — AdamW over a ParamStore, with clipping by the global gradient norm.
//
// PyTorch semantics (torch.optim.AdamW): decoupled weight decay, bias-corrected
// moments; no weight decay on parameters whose ParamSpec says Decay::no
// (biases and layernorm parameters). Moments m, v are f32, allocated here once,
// in flat buffers parallel to the ParamStore's.
#pragma once

#include "core/config.h"
#include "layers/param_store.h"

namespace loom {

class AdamW {
public:
  AdamW(Backend& be, ParamStore& params, const OptimConfig& cfg);

  // L2 norm of all gradients (before clipping).
  double grad_norm() const;
  // One update with learning rate lr; `step` is 1-based (bias correction).
  // Gradients are scaled by min(1, clip_grad / norm) first when clipping is on.
  // Returns the gradient norm it measured.
  double step(float lr, std::int64_t step);

  Tensor m() const { return m_.tensor(); }
  Tensor v() const { return v_.tensor(); }
  static std::size_t state_bytes(std::int64_t params) { return 2 * std::size_t(params) * sizeof(float); }

private:
  Backend& be_;
  ParamStore& params_;
  OptimConfig cfg_;
  Buffer m_, v_;
};

}  // namespace loom
