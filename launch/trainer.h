// launch/trainer.h — the model-agnostic training loop: steps, evaluation, logging.
//
// Works on any StageModel (layers/stage_model.h) and any Batches (launch/batches.h:
// language-model windows, or labelled sequences for a classification head, whose
// evaluation also reports accuracy). One step: this dp rank's slice of the
// global batch runs through the stage's pipeline plan (schedule/pipeline_executor.h),
// each micro-batch's loss gradient scaled by 1 / (target tokens of the global batch);
// the dp gradient sum overlaps the backward (optimizer/grad_sync.h); tied copies are
// summed over the stages that hold them; AdamW clips by the whole model's norm and
// updates. With optim.zero = 1 the dp sum is a reduce-scatter into this rank's shard
// and AdamW updates only that shard (optimizer/zero_adamw.h). Mixed precision: the model
// computes in 16 bits, the optimizers keep f32 master weights; under a loss scale
// (optimizer/loss_scaler.h) the loss gradient is multiplied by it, the norm and the update
// divide it out, and a step whose gradient norm is not finite is skipped on every rank.
// Without a loss scale an inf/NaN loss or gradient norm stops the run with a loom::Error
// naming the step, as do fp16 overflows that persist at the minimum loss scale.
// The AdamW step count and the learning-rate schedule advance with applied updates only
// (Megatron: a skipped iteration does not step the scheduler). Evaluation runs a forward-only plan through the same executor. Each step
// logs a line (rank 0) and a JSON record; the time split compute + tp + pp + dp adds
// up to the step time (evaluation is timed apart, as t_eval).
#pragma once

#include <fstream>
#include <functional>
#include <memory>

#include "core/config.h"
#include "io/data_loader.h"
#include "launch/batches.h"
#include "layers/stage_model.h"
#include "optimizer/adamw.h"
#include "optimizer/grad_sync.h"
#include "optimizer/loss_scaler.h"
#include "optimizer/zero_adamw.h"
#include "parallel/parallel_context.h"
#include "parallel/timed_communicator.h"
#include "schedule/pipeline_executor.h"

namespace loom {

struct StepRecord {
  std::int64_t step = 0;
  double loss = 0, grad_norm = 0, lr = 0;
  double t_step = 0, t_tp = 0, t_pp = 0, t_dp = 0;
  double loss_scale = 1;  // the scale this step's backward ran with
  bool skipped = false;   // no update: the scaled gradients overflowed
};

// Thrown by Trainer::step when training diverged (a non-finite loss or gradient norm, or
// fp16 overflows persisting at the minimum loss scale). The verdict comes from all-reduced
// values, so every rank throws it at the same step: the caller may still act collectively
// (commit a checkpoint already written) before ending the run.
class Diverged : public Error {
public:
  using Error::Error;
};

// Where a run stands: what a checkpoint saves and a resumed run restores. The data
// loader needs no position of its own: the batch of step s is a pure function of
// (seed, s), so `step` is the position.
struct TrainProgress {
  std::int64_t step = 0;     // steps completed: the index of the next step
  std::int64_t updates = 0;  // optimizer updates applied (skipped steps excluded): Adam's step
                             // count and the learning-rate schedule's position
  std::int64_t tokens = 0;   // training tokens consumed
  LossScaler::State scaler;
};

// One evaluation pass: the mean loss per target; for classification also the accuracy
// and the majority-class baseline of the split (-1 otherwise).
struct Evaluation {
  double loss = 0, accuracy = -1, majority = -1;
};

class Trainer {
public:
  // `tp` and `pp` are the timed communicators the model and the trainer use; `model`
  // was built with tp, and with slots for `plan` (slots_for()). The batches carry the
  // objective: next tokens, masked tokens (launch/batches.h) or labels.
  Trainer(const RunConfig& cfg, ParallelContext& ctx, Backend& be, StageModel& model, TimedCommunicator& tp,
          TimedCommunicator& pp, const DataLoader& train, const DataLoader& val);
  // Any data (launch/batches.h): language modelling or classification. Borrows both.
  Trainer(const RunConfig& cfg, ParallelContext& ctx, Backend& be, StageModel& model, TimedCommunicator& tp,
          TimedCommunicator& pp, const Batches& train, const Batches& val);

  // The plan of one training step on this stage, and the activation slots it needs per chunk.
  static PipePlan plan_for(const RunConfig& cfg, const ParallelContext& ctx);
  static std::vector<int> slots_for(const PipePlan& plan, int chunks);

  // Everything this rank allocated for training: the model's plan plus the optimizer's.
  MemoryPlan memory_plan() const;
  StepRecord step(std::int64_t step);
  // Over val.eval_batches(global_batch) global batches: train.eval_batches of the LM val
  // split, or the whole labelled val split.
  Evaluation evaluate();
  // Called collectively after every step with the progress so far; returns true to end
  // the run there (a stop signal, train.exit_after_*). Checkpoints are saved from here.
  using StepHook = std::function<bool(const TrainProgress&, bool last)>;
  // The steps from progress().step to train.steps, with logging to stdout (world rank 0)
  // and `metrics` (JSONL, rank 0) and periodic evaluation. Returns the last record;
  // `last_val` gets the last val loss (-1 when the run ended before an evaluation).
  // Classification adds val_accuracy and val_majority to the log line and the record.
  StepRecord run(std::ostream* metrics, double gemm_peak_flops, double& last_val, const StepHook& after_step = {});

  // The records of the steps run() ran in this invocation (loom-train --plan.cluster compares them).
  const std::vector<StepRecord>& history() const { return history_; }

  TrainProgress progress() const;
  void restore(const TrainProgress& p);  // a resumed run: the step loop starts at p.step
  // This rank's optimizer state (the runs of each parameter it keeps), for checkpoints.
  std::vector<StateSlice> optimizer_state() const { return zero_ ? zero_->state() : opt_->state(); }
  // The working parameters from the optimizer's master weights (ZeRO-1: collective over dp).
  void params_from_master() { zero_ ? zero_->params_from_master() : opt_->params_from_master(); }

private:
  class Stage;  // the PipelineStage adapter: data in, model calls out
  Trainer(const RunConfig& cfg, ParallelContext& ctx, Backend& be, StageModel& model, TimedCommunicator& tp,
          TimedCommunicator& pp, std::unique_ptr<LmBatches> train, std::unique_ptr<LmBatches> val);
  double global_sum(double v);  // over pp then dp
  // Throws (naming step s and `what`) when value is inf or NaN: training diverged.
  void check_finite_step(std::int64_t s, const char* what, double value) const;

  const RunConfig& cfg_;
  ParallelContext& ctx_;
  Backend& be_;
  StageModel& model_;
  TimedCommunicator &tp_, &pp_;
  std::unique_ptr<LmBatches> own_train_, own_val_;  // the DataLoader constructor's
  const Batches &train_, &val_;
  std::int64_t T_, MB_, local_, first_, accum_;
  TimedCommunicator dp_;  // gradient sync, ZeRO-1's gather and norm: t_dp
  PipePlan plan_;
  DataParallelGrads dp_grads_;          // ZeRO-0: the dp all-reduce; AdamW on every dp rank
  std::unique_ptr<TiedGrads> tied_;
  std::unique_ptr<AdamW> opt_;
  std::unique_ptr<ZeroAdamW> zero_;    // ZeRO-1: reduce-scatter, AdamW on this rank's shard
  LossScaler scaler_;
  TrainProgress progress_;             // scaler state lives in scaler_ and is copied out on demand
  std::vector<std::int32_t> batch_x_, batch_y_;  // the global batch (G, T), read whole to count its targets
  std::vector<std::int32_t> batch_len_;          // (G) real tokens per sequence (padded data only)
  // This rank's inputs and targets of a step, (local_, T) int32 ids in 4-byte elements, in
  // staging memory (page-locked on CUDA) so the model's copies to the device do not wait
  // (Backend::upload_async). Invariant: written only at the start of step(), after the
  // previous step's be_.synchronize(), so no copy from them is still in flight.
  Buffer x_, y_;
  Buffer len_;  // (local_) lengths, padded data only (Batches::padded): MicroBatch::lengths
  std::vector<StepRecord> history_;
};

}  // namespace loom
