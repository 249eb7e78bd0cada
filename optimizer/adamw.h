// optimizer/adamw.h — AdamW over a ParamStore, with clipping by the global gradient norm.
//
// PyTorch semantics (torch.optim.AdamW): decoupled weight decay, bias-corrected
// moments; no weight decay on parameters whose ParamSpec says Decay::no
// (biases and layernorm parameters). Moments m, v are f32, allocated here once,
// in flat buffers parallel to the ParamStore's.
#pragma once

#include "core/config.h"
#include "layers/param_store.h"
#include <vector>

#include "parallel/communicator.h"

namespace loom {

class AdamW {
public:
  // `model_parallel`: the groups whose ranks hold different parts of one model copy
  // (tp, pp; none for one rank). The gradient norm is over the whole model: each
  // parameter's squared gradient weighted by `norm_weights[i]` (1/tp for tensors
  // replicated over tp, 0 for a second copy of a tied tensor; all 1 when empty),
  // summed over those groups.
  AdamW(Backend& be, ParamStore& params, const OptimConfig& cfg, std::vector<Communicator*> model_parallel = {},
        std::vector<float> norm_weights = {});

  // L2 norm of all gradients of the whole model (before clipping).
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
  std::vector<Communicator*> mp_;
  std::vector<float> norm_weights_;
  Buffer m_, v_;
};

}  // namespace loom
