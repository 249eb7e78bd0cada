// optimizer/adamw.cpp — grad norm, clipping factor, and the per-parameter AdamW call.
#include "optimizer/adamw.h"

#include <cmath>
#include <functional>

namespace loom {

bool decays(ParamRole role, const OptimConfig& cfg) {
  switch (role) {
    case ParamRole::matrix: return true;
    case ParamRole::embedding: return cfg.decay_embeddings;
    case ParamRole::bias:
    case ParamRole::norm: return false;
  }
  return false;
}

AdamWArgs adamw_args(const OptimConfig& cfg, ParamRole role, float lr, std::int64_t step, float grad_scale) {
  return AdamWArgs{.lr = lr,
                   .beta1 = cfg.beta1,
                   .beta2 = cfg.beta2,
                   .eps = cfg.eps,
                   .weight_decay = decays(role, cfg) ? cfg.weight_decay : 0.0f,
                   .step = step,
                   .grad_scale = grad_scale};
}

float clip_scale(const OptimConfig& cfg, double norm) {
  return cfg.clip_grad > 0 && norm > cfg.clip_grad ? float(cfg.clip_grad / (norm + 1e-6)) : 1.0f;
}

std::vector<float> norm_weights(const std::vector<ParamSpec>& specs, int tp_size,
                                const std::function<bool(const std::string&)>& first_holder) {
  std::vector<float> w;
  for (const ParamSpec& s : specs) {
    if (!s.tied.empty() && !first_holder(s.tied)) w.push_back(0.0f);
    else w.push_back(s.tp_replicated == TpReplicated::yes ? 1.0f / float(tp_size) : 1.0f);
  }
  return w;
}

AdamW::AdamW(Backend& be, std::vector<ParamSpec> specs, Tensor params, Tensor grads, const OptimConfig& cfg,
             std::vector<Communicator*> model_parallel, std::vector<float> norm_weights)
    : be_(be),
      specs_(std::move(specs)),
      params_(params),
      grads_(grads),
      cfg_(cfg),
      mp_(std::move(model_parallel)),
      norm_weights_(std::move(norm_weights)),
      mem_(be) {
  std::int64_t total = 0;
  for (const ParamSpec& s : specs_) offsets_.push_back(std::exchange(total, total + s.shape.numel()));
  LOOM_CHECK(total == params.numel() && total == grads.numel(), "", "AdamW: the specs hold {} values, the buffers {} and {}",
             total, params.numel(), grads.numel());
  LOOM_CHECK(grads.dtype == DType::f32, "", "AdamW: gradients must be f32 (got {})", dtype_name(grads.dtype));
  LOOM_CHECK(norm_weights_.empty() || norm_weights_.size() == specs_.size(), "",
             "AdamW: {} norm weights for {} parameters", norm_weights_.size(), specs_.size());
  master_ = params_;
  if (params_.dtype != DType::f32) {
    master_ = mem_.alloc("master weights (f32)", {total});
    be_.cast(master_, params_);
  }
  m_ = mem_.alloc("AdamW moments m, v (f32)", {total});
  v_ = mem_.alloc("AdamW moments m, v (f32)", {total});
  be_.fill(m_, 0.0f);
  be_.fill(v_, 0.0f);
}

Tensor AdamW::view(Tensor flat, std::size_t i) const {
  flat = flat_range(flat, {offsets_[i], offsets_[i] + specs_[i].shape.numel()});
  flat.shape = specs_[i].shape;
  return flat;
}

double AdamW::grad_norm() const {
  double local = 0;
  if (norm_weights_.empty()) {
    local = be_.sum_squares(grads_);
  } else {
    for (std::size_t i = 0; i < specs_.size(); ++i)
      if (norm_weights_[i] != 0) local += double(norm_weights_[i]) * be_.sum_squares(view(grads_, i));
  }
  if (mp_.empty()) return std::sqrt(local);
  float total = float(local);
  for (Communicator* c : mp_) c->all_reduce(host_tensor(&total, Shape{1}));
  return std::sqrt(double(total));
}

void AdamW::update(float lr, std::int64_t step, float grad_scale) {
  for (std::size_t i = 0; i < specs_.size(); ++i)
    if (specs_[i].frozen == Frozen::no)
      be_.adamw(view(master_, i), view(grads_, i), view(m_, i), view(v_, i),
              adamw_args(cfg_, specs_[i].role, lr, step, grad_scale));
  if (master_.ptr != params_.ptr) be_.cast(params_, master_);  // the working copy, rounded
}

std::vector<StateSlice> AdamW::state() const {
  std::vector<StateSlice> out;
  for (std::size_t i = 0; i < specs_.size(); ++i) {
    const Range r{offsets_[i], offsets_[i] + specs_[i].shape.numel()};
    out.push_back({i, {0, r.size()}, flat_range(master_, r), flat_range(m_, r), flat_range(v_, r)});
  }
  return out;
}

void AdamW::params_from_master() {
  if (master_.ptr != params_.ptr) be_.cast(params_, master_);
}

double AdamW::step(float lr, std::int64_t step) {
  const double norm = grad_norm();
  update(lr, step, clip_scale(cfg_, norm));
  return norm;
}

}  // namespace loom
