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

AdamW::AdamW(Backend& be, ParamStore& params, const OptimConfig& cfg, Communicator* model_parallel)
    : be_(be),
      params_(params),
      cfg_(cfg),
      mp_(model_parallel),
      m_(be, Shape{params.numel()}, DType::f32),
      v_(be, Shape{params.numel()}, DType::f32) {
  be_.fill(m_, 0.0f);
  be_.fill(v_, 0.0f);
}

double AdamW::grad_norm() const {
  if (!mp_ || mp_->size() == 1) return std::sqrt(be_.sum_squares(params_.flat_grads()));
  // Every model-parallel rank holds an identical copy of each replicated
  // gradient: weight those by 1/size so the sum over ranks counts them once.
  double local = 0;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const bool replicated = params_.spec(i).shard.split == Shard::Split::none;
    local += be_.sum_squares(params_.grad(i)) / (replicated ? mp_->size() : 1);
  }
  float total = float(local);
  mp_->all_reduce(host_tensor(&total, Shape{1}));
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
