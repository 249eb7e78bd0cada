// optimizer/adamw.h — AdamW over flat parameter / gradient buffers, with clipping by the
// global gradient norm.
//
// PyTorch semantics (torch.optim.AdamW): decoupled weight decay, bias-corrected moments.
// Weight-decay groups come from each ParamSpec's role (core/param_spec.h): matrices
// decay, biases and norms never, embeddings when optim.decay_embeddings is set. The
// parameters are packed in spec order, contiguous, as ParamStore lays them out; the
// moments m, v are f32 buffers parallel to them, allocated here once.
// Mixed precision: when the parameters are 16-bit (the model's working copy), AdamW keeps
// an f32 master copy (made from the parameters when constructed), updates it, and rounds
// it into the working parameters after every update. The gradients are always f32.
#pragma once

#include <functional>
#include <vector>

#include "backend/backend.h"
#include "core/config.h"
#include "core/memory_plan.h"
#include "core/param_spec.h"
#include "core/range.h"
#include "parallel/communicator.h"

namespace loom {

// A run of one parameter's optimizer state kept on this rank, for checkpoints: local
// elements `elems` of parameter `param` (spec order), and f32 views of exactly those
// elements of the master weights (the parameters themselves in fp32), m and v.
struct StateSlice {
  std::size_t param = 0;
  Range elems;
  Tensor master, m, v;
};

bool decays(ParamRole role, const OptimConfig& cfg);
// The per-tensor arguments of the AdamW update (backend/adamw_math.h), shared with ZeRO-1.
AdamWArgs adamw_args(const OptimConfig& cfg, ParamRole role, float lr, std::int64_t step, float grad_scale);
// min(1, clip_grad / norm) when clipping is on.
float clip_scale(const OptimConfig& cfg, double norm);

class AdamW {
public:
  // `model_parallel`: the groups whose ranks hold different parts of one model copy
  // (tp, pp; none for one rank). The gradient norm is over the whole model: each
  // parameter's squared gradient weighted by `norm_weights[i]` (norm_weights() below;
  // all 1 when empty), summed over those groups.
  AdamW(Backend& be, std::vector<ParamSpec> specs, Tensor params, Tensor grads, const OptimConfig& cfg,
        std::vector<Communicator*> model_parallel = {}, std::vector<float> norm_weights = {});

  // L2 norm of all gradients of the whole model (before clipping and `grad_scale`).
  double grad_norm() const;
  // One update with learning rate lr; `step` is 1-based (bias correction); every gradient
  // is multiplied by grad_scale first (clipping, undoing a loss scale).
  void update(float lr, std::int64_t step, float grad_scale);
  // grad_norm, then update with min(1, clip_grad / norm) when clipping is on. Returns the norm.
  double step(float lr, std::int64_t step);

  Tensor m() const { return m_; }
  Tensor v() const { return v_; }
  Tensor master() const { return master_; }  // the f32 weights AdamW updates
  std::vector<StateSlice> state() const;      // every parameter, whole
  // The working parameters from the master weights (rounded; nothing to do in fp32, where
  // they are one buffer): after a checkpoint wrote the master weights.
  void params_from_master();
  MemoryPlan memory_plan() const { return mem_.plan(); }

private:
  Tensor view(Tensor flat, std::size_t i) const;

  Backend& be_;
  std::vector<ParamSpec> specs_;
  std::vector<std::int64_t> offsets_;
  Tensor params_, grads_;
  OptimConfig cfg_;
  std::vector<Communicator*> mp_;
  std::vector<float> norm_weights_;
  Allocations mem_;
  Tensor master_;  // params_ itself when they are f32
  Tensor m_, v_;
};

// Each parameter's weight in the whole model's squared gradient norm: 1/tp for a tensor
// every tp rank holds alike (counted once over the tp group), 0 for a tied copy whose
// stage is not the group's first holder (`first_holder(group)`), else 1.
std::vector<float> norm_weights(const std::vector<ParamSpec>& specs, int tp_size,
                                const std::function<bool(const std::string& group)>& first_holder);

}  // namespace loom
