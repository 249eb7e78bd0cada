// optimizer/adamw.cpp — grad norm, clipping factor, and the per-parameter AdamW call.
#include "optimizer/adamw.h"

#include <cmath>

namespace loom {

namespace {
Tensor offset_view(Tensor flat, std::int64_t offset, Shape shape) {
  flat.ptr = static_cast<float*>(flat.ptr) + offset;
  flat.shape = shape;
  return flat;
}
}  // namespace

AdamW::AdamW(Backend& be, ParamStore& params, const OptimConfig& cfg, std::vector<Communicator*> model_parallel,
             std::vector<float> norm_weights)
    : be_(be),
      params_(params),
      cfg_(cfg),
      mp_(std::move(model_parallel)),
      norm_weights_(std::move(norm_weights)),
      m_(be, Shape{params.numel()}, DType::f32),
      v_(be, Shape{params.numel()}, DType::f32) {
  be_.fill(m_, 0.0f);
  be_.fill(v_, 0.0f);
}

double AdamW::grad_norm() const {
  LOOM_CHECK(norm_weights_.empty() || norm_weights_.size() == params_.size(), "",
             "AdamW: {} norm weights for {} parameters", norm_weights_.size(), params_.size());
  double local = 0;
  if (norm_weights_.empty()) {
    local = be_.sum_squares(params_.flat_grads());
  } else {
    for (std::size_t i = 0; i < params_.size(); ++i)
      if (norm_weights_[i] != 0) local += double(norm_weights_[i]) * be_.sum_squares(params_.grad(i));
  }
  if (mp_.empty()) return std::sqrt(local);
  float total = float(local);
  for (Communicator* c : mp_) c->all_reduce(host_tensor(&total, Shape{1}));
  return std::sqrt(double(total));
}

double AdamW::step(float lr, std::int64_t step) {
  const double norm = grad_norm();
  float scale = 1.0f;
  if (cfg_.clip_grad > 0 && norm > cfg_.clip_grad) scale = float(cfg_.clip_grad / (norm + 1e-6));
  std::int64_t offset = 0;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const ParamSpec& s = params_.spec(i);
    AdamWArgs a{.lr = lr,
                .beta1 = cfg_.beta1,
                .beta2 = cfg_.beta2,
                .eps = cfg_.eps,
                .weight_decay = s.decay == Decay::yes ? cfg_.weight_decay : 0.0f,
                .step = step,
                .grad_scale = scale};
    be_.adamw(params_.param(i), params_.grad(i), offset_view(m_, offset, s.shape), offset_view(v_, offset, s.shape), a);
    offset += s.shape.numel();
  }
  return norm;
}

}  // namespace loom
