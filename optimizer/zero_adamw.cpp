// optimizer/zero_adamw.cpp — see zero_adamw.h.
#include "optimizer/zero_adamw.h"

#include <algorithm>
#include <cmath>

#include "optimizer/adamw.h"

namespace loom {

ZeroAdamW::ZeroAdamW(Backend& be, std::vector<ParamSpec> specs, Tensor params, Tensor grads,
                     std::vector<Tensor> buckets, const OptimConfig& cfg, Communicator& dp,
                     std::vector<Communicator*> model_parallel, std::vector<float> norm_weights)
    : be_(be),
      specs_(std::move(specs)),
      params_(params),
      grads_(grads),
      cfg_(cfg),
      dp_(dp),
      mp_(std::move(model_parallel)),
      norm_weights_(std::move(norm_weights)),
      mem_(be) {
  LOOM_CHECK(norm_weights_.size() == specs_.size(), "", "ZeRO-1: {} norm weights for {} parameters",
             norm_weights_.size(), specs_.size());
  std::vector<Range> param_flat;  // each parameter's place in the flat buffers
  std::int64_t total = 0;
  for (const ParamSpec& s : specs_) param_flat.push_back({total, total += s.shape.numel()});
  LOOM_CHECK(total == params.numel() && total == grads.numel(), "", "ZeRO-1: the specs hold {} values, the buffers {}",
             total, params.numel());
  std::int64_t covered = 0;
  for (const Tensor& t : buckets) {
    const std::int64_t begin = static_cast<const float*>(t.ptr) - static_cast<const float*>(grads.ptr);
    Bucket b{.flat = {begin, begin + t.numel()}, .shard = owned_,
             .mine = shard_range(t.numel(), dp.size(), dp.rank())};
    LOOM_CHECK(0 <= begin && b.flat.end <= total, "", "ZeRO-1: a gradient bucket lies outside the gradient buffer");
    const Range own{begin + b.mine.begin, begin + b.mine.end};
    for (std::size_t i = 0; i < specs_.size(); ++i) {
      const Range& p = param_flat[i];
      if (p.end > b.flat.begin && p.begin < b.flat.end) b.tied = b.tied || !specs_[i].tied.empty();
      const Range cut{std::max(p.begin, own.begin), std::min(p.end, own.end)};
      if (cut.size() > 0) segments_.push_back({i, cut, owned_ + (cut.begin - own.begin)});
    }
    owned_ += b.mine.size();
    covered += t.numel();
    buckets_.push_back(b);
  }
  LOOM_CHECK(covered == total, "", "ZeRO-1: the gradient buckets cover {} of {} values", covered, total);
  m_ = mem_.alloc("AdamW moments m, v (f32, this rank's shard)", {std::max<std::int64_t>(owned_, 1)});
  v_ = mem_.alloc("AdamW moments m, v (f32, this rank's shard)", {std::max<std::int64_t>(owned_, 1)});
  for (Tensor t : {m_, v_}) be_.fill(t, 0.0f);
}

Tensor ZeroAdamW::flat_view(Tensor flat, Range r) const {
  flat.ptr = static_cast<float*>(flat.ptr) + r.begin;
  flat.shape = Shape{r.size()};
  return flat;
}

void ZeroAdamW::begin_step(int microbatches) {
  microbatches_ = microbatches;
  for (Bucket& b : buckets_) b.done = 0, b.started = false;
}

void ZeroAdamW::start(Bucket& b) {
  b.started = true;
  // In place: this rank's part of the bucket gets the dp sum; the rest is left undefined.
  const Range own{b.flat.begin + b.mine.begin, b.flat.begin + b.mine.end};
  dp_.reduce_scatter_start(flat_view(grads_, own), flat_view(grads_, b.flat));
}

void ZeroAdamW::bucket_done(std::size_t i) {
  LOOM_CHECK(i < buckets_.size(), "", "gradient bucket {} of {}", i, buckets_.size());
  Bucket& b = buckets_[i];
  if (++b.done < microbatches_ || b.tied) return;
  LOOM_CHECK(!b.started, "", "gradient bucket {} reported complete more than {} times", i, microbatches_);
  start(b);  // the last micro-batch is in: reduce-scatter while backward goes on
}

void ZeroAdamW::finish() {
  for (Bucket& b : buckets_)
    if (!b.started) start(b);
  dp_.wait_all();
}

double ZeroAdamW::grad_norm() const {
  double local = 0;
  for (const Segment& s : segments_)
    if (norm_weights_[s.param] != 0)
      local += double(norm_weights_[s.param]) * be_.sum_squares(flat_view(grads_, s.flat));
  float total = float(local);
  dp_.all_reduce(host_tensor(&total, Shape{1}));  // the shards of one model copy
  for (Communicator* c : mp_) c->all_reduce(host_tensor(&total, Shape{1}));
  return std::sqrt(double(total));
}

double ZeroAdamW::step(float lr, std::int64_t step) {
  const double norm = grad_norm();
  const float scale = clip_scale(cfg_, norm);
  for (const Segment& s : segments_) {
    const Range shard{s.shard, s.shard + s.flat.size()};
    be_.adamw(flat_view(params_, s.flat), flat_view(grads_, s.flat), flat_view(m_, shard), flat_view(v_, shard),
              adamw_args(cfg_, specs_[s.param].role, lr, step, scale));
  }
  for (const Bucket& b : buckets_) dp_.all_gather_parts(flat_view(params_, b.flat));  // every rank's updated part
  return norm;
}

}  // namespace loom
