// launch/trainer.cpp — see trainer.h.
#include "launch/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "schedule/lr_schedule.h"

namespace loom {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Targets (>= 0) among the first n.
std::int64_t count_targets(const std::int32_t* y, std::int64_t n) {
  return std::count_if(y, y + n, [](std::int32_t t) { return t >= 0; });
}

constexpr const char* kDivergedHint =
    "lower optim.lr (or raise optim.warmup_steps), check the data, and resume from the last checkpoint";

}  // namespace

// Divergence ends the run with its step named, before anything non-finite is saved.
void Trainer::check_finite_step(std::int64_t s, const char* what, double value) const {
  if (!std::isfinite(value))
    throw Diverged(fmt::format("step {}/{}: the {} is {}: training diverged", s + 1, cfg_.train.steps, what, value),
                   kDivergedHint);
}

// The executor's view of the model for one pass: micro-batch mb is rows
// [mb * B, (mb + 1) * B) of this rank's inputs and targets (and lengths, when padded).
class Trainer::Stage final : public PipelineStage {
public:
  Stage(StageModel& m, const std::int32_t* x, const std::int32_t* y, const std::int32_t* len, float dloss)
      : m_(m), x_(x), y_(y), len_(len), n_(m.batch() * m.seq_len()), dloss_(dloss) {}
  int slots(int chunk) const override { return m_.slots(chunk); }
  std::vector<Tensor> inputs(int chunk, int slot) override { return m_.inputs(chunk, slot); }
  std::vector<Tensor> outputs(int chunk, int slot) override { return m_.outputs(chunk, slot); }
  std::vector<Tensor> input_grads(int chunk) override { return m_.input_grads(chunk); }
  std::vector<Tensor> output_grads(int chunk) override { return m_.output_grads(chunk); }
  void forward(int chunk, int mb, int slot) override {
    m_.forward(chunk, {x_ + mb * n_, y_ + mb * n_, len_ ? len_ + mb * m_.batch() : nullptr}, slot);
  }
  void backward(int chunk, int, int slot) override { m_.backward(chunk, slot, dloss_); }

private:
  StageModel& m_;
  const std::int32_t *x_, *y_, *len_;  // len_: null for unpadded data
  std::int64_t n_;
  float dloss_;
};

PipePlan Trainer::plan_for(const RunConfig& cfg, const ParallelContext& ctx) {
  const int accum = int(cfg.train.global_batch / ctx.shape.dp / cfg.train.micro_batch);
  const int chunks = cfg.parallel.virtual_stages;
  const PipeSchedule schedule = pipe_schedule(cfg.parallel.schedule, chunks);
  return make_pipeline_plan(schedule, ctx.shape.pp, ctx.coord.pp, accum, chunks);
}

std::vector<int> Trainer::slots_for(const PipePlan& plan, int chunks) {
  std::vector<int> slots;
  for (int v = 0; v < chunks; ++v) slots.push_back(slots_needed(plan, v));
  return slots;
}

Trainer::Trainer(const RunConfig& cfg, ParallelContext& ctx, Backend& be, StageModel& model, TimedCommunicator& tp,
                 TimedCommunicator& pp, const DataLoader& train, const DataLoader& val)
    : Trainer(cfg, ctx, be, model, tp, pp, std::make_unique<LmBatches>(train, cfg.train.eval_batches),
              std::make_unique<LmBatches>(val, cfg.train.eval_batches)) {}

Trainer::Trainer(const RunConfig& cfg, ParallelContext& ctx, Backend& be, StageModel& model, TimedCommunicator& tp,
                 TimedCommunicator& pp, std::unique_ptr<LmBatches> train, std::unique_ptr<LmBatches> val)
    : Trainer(cfg, ctx, be, model, tp, pp, *train, *val) {
  own_train_ = std::move(train);  // the objects (and the references to them) stay put
  own_val_ = std::move(val);
}

Trainer::Trainer(const RunConfig& cfg, ParallelContext& ctx, Backend& be, StageModel& model, TimedCommunicator& tp,
                 TimedCommunicator& pp, const Batches& train, const Batches& val)
    : cfg_(cfg),
      ctx_(ctx),
      be_(be),
      model_(model),
      tp_(tp),
      pp_(pp),
      train_(train),
      val_(val),
      T_(model.seq_len()),
      MB_(model.batch()),
      local_(cfg.train.global_batch / ctx.shape.dp),
      first_(ctx.coord.dp * local_),
      accum_(local_ / MB_),
      dp_(*ctx.dp),
      plan_(plan_for(cfg, ctx)),
      dp_grads_(be, dp_, model.grad_buckets(), parse_dtype(cfg.parallel.grad_reduce_dtype)),
      scaler_(cfg.train.precision, cfg.optim) {
  ParamStore& ps = model_.params();
  std::vector<TiedGrads::Group> groups;
  for (std::size_t i = 0; i < ps.size(); ++i)
    if (!ps.spec(i).tied.empty()) groups.push_back({ps.grad(i), model_.tied_stages(ps.spec(i).tied)});
  if (ctx.shape.pp > 1) tied_ = std::make_unique<TiedGrads>(be, pp_, groups);
  const int stage = ctx.coord.pp;
  auto first_holder = [&](const std::string& g) { return model_.tied_stages(g).front() == stage; };
  const std::vector<float> weights = norm_weights(ps.specs(), tp_.size(), first_holder);
  if (cfg.optim.zero == 1) {
    zero_ = std::make_unique<ZeroAdamW>(be, ps.specs(), ps.flat_params(), ps.flat_grads(), model.grad_buckets(),
                                        cfg.optim, dp_, std::vector<Communicator*>{&tp_, &pp_}, weights,
                                        parse_dtype(cfg.parallel.grad_reduce_dtype));
    model_.set_bucket_hook([this](std::size_t b) { zero_->bucket_done(b); });
  } else {
    opt_ = std::make_unique<AdamW>(be, ps.specs(), ps.flat_params(), ps.flat_grads(), cfg.optim,
                                   std::vector<Communicator*>{&tp_, &pp_}, weights);
    model_.set_bucket_hook([this](std::size_t b) { dp_grads_.bucket_done(b); });
  }
  batch_x_.resize(std::size_t(cfg.train.global_batch * T_));
  batch_y_.resize(batch_x_.size());
  x_ = Buffer(be, Shape{local_ * T_}, DType::f32, Memory::staging);
  y_ = Buffer(be, Shape{local_ * T_}, DType::f32, Memory::staging);
  if (train_.padded()) {
    batch_len_.resize(std::size_t(cfg.train.global_batch));
    len_ = Buffer(be, Shape{local_}, DType::f32, Memory::staging);
  }
}

MemoryPlan Trainer::memory_plan() const {
  MemoryPlan plan = model_.memory_plan();
  if (tied_) plan.add(tied_->memory_plan());
  if (!zero_) plan.add(dp_grads_.memory_plan());
  plan.add(zero_ ? zero_->memory_plan() : opt_->memory_plan());
  return plan;
}

double Trainer::global_sum(double value) {
  float v = float(value);
  pp_.all_reduce(host_tensor(&v, Shape{1}));  // the loss lives on the last stage
  dp_.all_reduce(host_tensor(&v, Shape{1}));
  return v;
}

StepRecord Trainer::step(std::int64_t s) {
  ctx_.watchdog->set_step(s + 1);  // named by a rank that gives up waiting for its peers
  const auto t0 = std::chrono::steady_clock::now();
  tp_.reset();
  pp_.reset();
  dp_.reset();
  model_.params().zero_grads();
  // The whole global batch is read (a pure function of (seed, step, sequence)) to count its
  // target tokens — the loss normaliser — without communication; this rank runs its slice.
  // Masked LM masks the whole batch too: the mask of a sequence depends on its global index only.
  const std::int64_t G = cfg_.train.global_batch;
  train_.train(s, G, batch_x_.data(), batch_y_.data(), batch_len_.empty() ? nullptr : batch_len_.data());
  const std::int64_t targets = count_targets(batch_y_.data(), G * T_);
  LOOM_CHECK(targets > 0, "check the dataset", "step {}: the global batch has no target tokens", s);
  // x_ and y_ may still be read by the last step's copies to the device only if that step
  // ended without synchronising, which it never does; this makes the invariant local (and
  // costs nothing on an idle device).
  be_.synchronize();
  auto* x = static_cast<std::int32_t*>(x_.tensor().ptr);  // int32 ids in 4-byte elements
  auto* y = static_cast<std::int32_t*>(y_.tensor().ptr);
  std::copy_n(batch_x_.data() + first_ * T_, local_ * T_, x);
  std::copy_n(batch_y_.data() + first_ * T_, local_ * T_, y);
  std::int32_t* len = nullptr;
  if (!batch_len_.empty()) {
    len = static_cast<std::int32_t*>(len_.tensor().ptr);
    std::copy_n(batch_len_.data() + first_, local_, len);
  }

  if (zero_) zero_->begin_step(int(accum_));
  else dp_grads_.begin_step(int(accum_));
  StepRecord r;
  r.step = s;
  r.loss_scale = scaler_.scale();
  Stage stage(model_, x, y, len, float(r.loss_scale / double(targets)));
  run_pipeline_plan(plan_, ctx_.coord.pp, ctx_.shape.pp, pp_, stage);
  be_.synchronize();
  // Both copies of a tied tensor get the summed gradient (first and last stage). Sums
  // commute, so ZeRO-0 adds the dp-reduced copies; ZeRO-1 must add them before its
  // reduce-scatter, after which no rank holds a whole tied gradient.
  if (zero_) {
    if (tied_) tied_->sum();
    zero_->finish();
  } else {
    dp_grads_.finish();
    if (tied_) tied_->sum();
  }
  // The norm is the same on every rank (all-reduced), so is the decision to skip or stop.
  r.grad_norm = (zero_ ? zero_->grad_norm() : opt_->grad_norm()) / r.loss_scale;
  // Without a loss scale an inf/NaN gradient is divergence, not overflow: stop before the
  // update writes it into the weights.
  if (scaler_.mode() == LossScaler::Mode::none) check_finite_step(s, "gradient norm", r.grad_norm);
  r.skipped = scaler_.update(std::isfinite(r.grad_norm));
  if (scaler_.exhausted())
    throw Diverged(fmt::format("step {}/{}: the gradients overflowed on {} steps in a row at optim.min_loss_scale = {}: "
                               "fp16 cannot represent this run's gradients (training diverged)",
                               s + 1, cfg_.train.steps, scaler_.skipped_at_min(), cfg_.optim.min_loss_scale),
                   kDivergedHint);
  r.lr = learning_rate(cfg_.optim, cfg_.train.steps, progress_.updates);
  if (!r.skipped) {
    const float grad_scale = float(clip_scale(cfg_.optim, r.grad_norm) / r.loss_scale);
    if (zero_) zero_->update(float(r.lr), progress_.updates + 1, grad_scale);
    else opt_->update(float(r.lr), progress_.updates + 1, grad_scale);
    ++progress_.updates;
  }
  progress_.step = s + 1;
  progress_.tokens += G * T_;
  be_.synchronize();
  r.t_step = seconds_since(t0);
  r.t_tp = tp_.seconds();
  r.t_pp = pp_.seconds();
  r.t_dp = dp_.seconds();  // what of the dp communication was not hidden behind backward
  r.loss = global_sum(model_.take_loss_sum()) / double(targets);
  // A skipped step's loss may be inf/NaN from the overflow itself. Every rank holds the same
  // sum (tp ranks compute the loss from tp-reduced statistics; pp and dp sum it), and an
  // inf/NaN term makes any summation order non-finite, so all ranks stop alike.
  if (!r.skipped) check_finite_step(s, "loss", r.loss);
  return r;
}

Evaluation Trainer::evaluate() {
  const std::int64_t G = cfg_.train.global_batch, E = val_.eval_batches(G);
  std::vector<std::int32_t> x(std::size_t(E * local_ * T_)), y(x.size()), xg(std::size_t(G * T_)), yg(xg.size());
  const bool padded = val_.padded();
  std::vector<std::int32_t> len(padded ? std::size_t(E * local_) : 0), lg(padded ? std::size_t(G) : 0);
  std::int64_t targets = 0;
  for (std::int64_t e = 0; e < E; ++e) {
    val_.eval(e, G, xg.data(), yg.data(), padded ? lg.data() : nullptr);
    targets += count_targets(yg.data(), G * T_);
    std::copy_n(xg.data() + first_ * T_, local_ * T_, x.data() + e * local_ * T_);  // this dp rank's slice
    std::copy_n(yg.data() + first_ * T_, local_ * T_, y.data() + e * local_ * T_);
    if (padded) std::copy_n(lg.data() + first_, local_, len.data() + e * local_);
  }
  LOOM_CHECK(targets > 0, "check the validation split", "evaluation: no target tokens");
  model_.take_loss_sum();  // nothing should be pending; start from zero
  model_.take_correct();
  Stage stage(model_, x.data(), y.data(), padded ? len.data() : nullptr, 0.0f);
  const PipePlan plan = make_forward_only_plan(ctx_.shape.pp, ctx_.coord.pp, int(E * accum_), model_.chunks());
  run_pipeline_plan(plan, ctx_.coord.pp, ctx_.shape.pp, pp_, stage);
  Evaluation ev;
  ev.loss = global_sum(model_.take_loss_sum()) / double(targets);
  ev.majority = val_.majority_share();
  if (ev.majority >= 0) ev.accuracy = global_sum(model_.take_correct()) / double(targets);
  return ev;
}

TrainProgress Trainer::progress() const {
  TrainProgress p = progress_;
  p.scaler = scaler_.state();
  return p;
}

void Trainer::restore(const TrainProgress& p) {
  progress_ = p;
  scaler_.restore(p.scaler);
}

StepRecord Trainer::run(std::ostream* metrics, double peak, double& last_val, const StepHook& after_step) {
  const bool lead = ctx_.world_rank == 0;
  const double tokens_per_step = double(cfg_.train.global_batch * T_);
  StepRecord r;
  last_val = -1;
  for (std::int64_t s = progress_.step; s < cfg_.train.steps; ++s) {
    r = step(s);
    history_.push_back(r);
    // Throughput of the whole job; MFU per rank against this rank's measured GEMM peak.
    const double tok_s = tokens_per_step / r.t_step;
    const double flops = tok_s * model_.flops_per_token() / ctx_.shape.size();
    const bool last = s + 1 == cfg_.train.steps;
    nlohmann::json rec = {{"step", s},           {"loss", r.loss},     {"lr", r.lr},
                          {"grad_norm", r.grad_norm}, {"tokens_per_s", tok_s}, {"tflops", flops / 1e12},
                          {"mfu", flops / peak}, {"t_step", r.t_step}, {"t_compute", r.t_step - r.t_tp - r.t_pp - r.t_dp},
                          {"t_tp", r.t_tp},      {"t_pp", r.t_pp},     {"t_dp", r.t_dp},
                          {"loss_scale", r.loss_scale}, {"skipped", r.skipped}};
    if ((cfg_.train.eval_interval > 0 && (s + 1) % cfg_.train.eval_interval == 0) || last) {
      const auto t0 = std::chrono::steady_clock::now();
      const Evaluation ev = evaluate();
      last_val = ev.loss;
      rec["val_loss"] = last_val;
      if (ev.accuracy >= 0) rec["val_accuracy"] = ev.accuracy, rec["val_majority"] = ev.majority;
      rec["t_eval"] = seconds_since(t0);
    }
    if (lead && metrics) *metrics << rec.dump() << "\n" << std::flush;
    if (lead && (s % cfg_.train.log_interval == 0 || last || rec.contains("val_loss"))) {
      fmt::print(
          "step {:>5}/{} | loss {:.4f} | lr {:.2e} | norm {:.3f} | {:.0f} tok/s | {:.3f} TFLOP/s/rank | MFU {:.1f}% | "
          "{:.0f} ms (tp {:.0f}, pp {:.0f}, dp {:.0f}){}{}{}\n",
          s + 1, cfg_.train.steps, r.loss, r.lr, r.grad_norm, tok_s, flops / 1e12, 100 * flops / peak, r.t_step * 1e3,
          r.t_tp * 1e3, r.t_pp * 1e3, r.t_dp * 1e3,
          scaler_.mode() == LossScaler::Mode::none
              ? ""
              : fmt::format(" | scale {:g}{}", r.loss_scale, r.skipped ? " | skipped (inf/NaN gradient)" : ""),
          rec.contains("val_loss") ? fmt::format(" | val {:.4f}", last_val) : "",
          rec.contains("val_accuracy")
              ? fmt::format(" acc {:.3f} (majority {:.3f})", rec["val_accuracy"].get<double>(),
                            rec["val_majority"].get<double>())
              : "");
      std::fflush(stdout);
    }
    if (after_step && after_step(progress(), last)) break;
  }
  return r;
}

}  // namespace loom
