// optimizer/zero_adamw.cpp — see zero_adamw.h.
#include "optimizer/zero_adamw.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "optimizer/adamw.h"

namespace loom {

ZeroAdamW::ZeroAdamW(Backend& be, std::vector<ParamSpec> specs, Tensor params, Tensor grads,
                     std::vector<Tensor> buckets, const OptimConfig& cfg, Communicator& dp,
                     std::vector<Communicator*> model_parallel, std::vector<float> norm_weights, DType reduce_dtype)
    : be_(be),
      specs_(std::move(specs)),
      params_(params),
      grads_(grads),
      cfg_(cfg),
      dp_(dp),
      mp_(std::move(model_parallel)),
      norm_weights_(std::move(norm_weights)),
      ready_({}, {}),
      mem_(be) {
  LOOM_CHECK(norm_weights_.size() == specs_.size(), "", "ZeRO-1: {} norm weights for {} parameters",
             norm_weights_.size(), specs_.size());
  std::vector<Range> param_flat;  // each parameter's place in the flat buffers
  std::int64_t total = 0;
  for (const ParamSpec& s : specs_) param_flat.push_back({total, total += s.shape.numel()});
  LOOM_CHECK(total == params.numel() && total == grads.numel(), "", "ZeRO-1: the specs hold {} values, the buffers {}",
             total, params.numel());
  std::int64_t covered = 0;
  std::vector<bool> tied;  // per bucket: holds a tied copy
  for (const Tensor& t : buckets) {
    LOOM_CHECK(t.dtype == DType::f32 && grads.dtype == DType::f32, "", "ZeRO-1: gradients must be f32");
    const std::int64_t begin = static_cast<const float*>(t.ptr) - static_cast<const float*>(grads.ptr);
    Bucket b{.flat = {begin, begin + t.numel()}, .shard = owned_,
             .mine = shard_range(t.numel(), dp.size(), dp.rank())};
    LOOM_CHECK(0 <= begin && b.flat.end <= total, "", "ZeRO-1: a gradient bucket lies outside the gradient buffer");
    const Range own{begin + b.mine.begin, begin + b.mine.end};
    tied.push_back(false);
    for (std::size_t i = 0; i < specs_.size(); ++i) {
      const Range& p = param_flat[i];
      if (p.end > b.flat.begin && p.begin < b.flat.end && !specs_[i].tied.empty()) tied.back() = true;
      const Range cut{std::max(p.begin, own.begin), std::min(p.end, own.end)};
      if (cut.size() > 0) segments_.push_back({i, cut, owned_ + (cut.begin - own.begin)});
    }
    owned_ += b.mine.size();
    covered += t.numel();
    buckets_.push_back(b);
  }
  LOOM_CHECK(covered == total, "", "ZeRO-1: the gradient buckets cover {} of {} values", covered, total);
  ready_ = BucketReadiness(tied, [this](std::size_t b) { start(buckets_[b]); });
  m_ = mem_.alloc("AdamW moments m, v (f32, this rank's shard)", {std::max<std::int64_t>(owned_, 1)});
  v_ = mem_.alloc("AdamW moments m, v (f32, this rank's shard)", {std::max<std::int64_t>(owned_, 1)});
  for (Tensor t : {m_, v_}) be_.fill(t, 0.0f);
  if (params_.dtype != DType::f32) {
    master_ = mem_.alloc("master weights (f32, this rank's shard)", {std::max<std::int64_t>(owned_, 1)});
    for (const Bucket& b : buckets_) be_.cast(flat_range(master_, shard(b)), flat_range(params_, own(b)));
  }
  if (reduce_dtype != DType::f32)
    staging_ = mem_.alloc(fmt::format("gradient reduction staging ({})", dtype_name(reduce_dtype)), {total},
                          reduce_dtype);
}

void ZeroAdamW::start(const Bucket& b) {
  // In place: this rank's part of the bucket gets the dp sum; the rest is left undefined.
  if (staging_.empty()) {
    dp_.reduce_scatter_start(flat_range(grads_, own(b)), flat_range(grads_, b.flat));
    return;
  }
  be_.cast(flat_range(staging_, b.flat), flat_range(grads_, b.flat));
  be_.synchronize();  // the rounded copy is complete before the communicator reads it
  dp_.reduce_scatter_start(flat_range(staging_, own(b)), flat_range(staging_, b.flat));
}

void ZeroAdamW::finish() {
  ready_.start_rest();
  dp_.wait_all();
  if (!staging_.empty())
    for (const Bucket& b : buckets_) be_.cast(flat_range(grads_, own(b)), flat_range(staging_, own(b)));
}

double ZeroAdamW::grad_norm() const {
  double local = 0;
  for (const Segment& s : segments_)
    if (norm_weights_[s.param] != 0)
      local += double(norm_weights_[s.param]) * be_.sum_squares(flat_range(grads_, s.flat));
  float total = float(local);
  dp_.all_reduce(host_tensor(&total, Shape{1}));  // the shards of one model copy
  for (Communicator* c : mp_) c->all_reduce(host_tensor(&total, Shape{1}));
  return std::sqrt(double(total));
}

void ZeroAdamW::update(float lr, std::int64_t step, float grad_scale) {
  for (const Segment& s : segments_) {
    if (specs_[s.param].frozen == Frozen::yes) continue;  // finetune.freeze_backbone: unchanged
    const Range state{s.shard, s.shard + s.flat.size()};
    const Tensor weights = master_.empty() ? flat_range(params_, s.flat) : flat_range(master_, state);
    be_.adamw(weights, flat_range(grads_, s.flat), flat_range(m_, state), flat_range(v_, state),
              adamw_args(cfg_, specs_[s.param].role, lr, step, grad_scale));
  }
  params_from_master();
}

void ZeroAdamW::params_from_master() {
  for (const Bucket& b : buckets_) {
    if (!master_.empty()) be_.cast(flat_range(params_, own(b)), flat_range(master_, shard(b)));  // round my part
    be_.synchronize();
    dp_.all_gather_parts(flat_range(params_, b.flat));  // every rank's part
  }
}

std::vector<StateSlice> ZeroAdamW::state() const {
  std::vector<std::int64_t> offset;  // of each parameter in the flat buffers
  std::int64_t total = 0;
  for (const ParamSpec& s : specs_) offset.push_back(std::exchange(total, total + s.shape.numel()));
  std::vector<StateSlice> out;
  for (const Segment& s : segments_) {
    const Range state{s.shard, s.shard + s.flat.size()};
    out.push_back({s.param, {s.flat.begin - offset[s.param], s.flat.end - offset[s.param]},
                   master_.empty() ? flat_range(params_, s.flat) : flat_range(master_, state),
                   flat_range(m_, state), flat_range(v_, state)});
  }
  return out;
}

double ZeroAdamW::step(float lr, std::int64_t step) {
  const double norm = grad_norm();
  update(lr, step, clip_scale(cfg_, norm));
  return norm;
}

}  // namespace loom
