// schedule/pipeline_plan.cpp — GPipe, 1F1B and interleaved 1F1B plans (see pipeline_plan.h).
//
// Every schedule is built by a Builder from units of compute (a forward, a backward, or an
// interleaved steady forward-backward pair), which places each unit's receives and sends, so
// the virtual-stage boundary and placement rules live in one place. The simulator that
// checks these plans is pipeline_sim.cpp.
#include "schedule/pipeline_plan.h"

#include <algorithm>
#include <initializer_list>
#include <utility>

#include "core/error.h"

namespace loom {
namespace {

void check_args(const char* fn, int stages, int stage, int microbatches) {
  LOOM_CHECK(stages >= 1, "use --parallel.pp >= 1", "{}: stages = {} (must be >= 1)", fn, stages);
  LOOM_CHECK(0 <= stage && stage < stages, "", "{}: stage {} outside [0, {})", fn, stage, stages);
  LOOM_CHECK(microbatches >= 1, "the per-rank batch must hold at least one micro batch",
             "{}: microbatches = {} (must be >= 1)", fn, microbatches);
}

// Builds a plan from units of compute: a forward, a backward, or (interleaved steady state)
// a forward and a backward back to back. The receives a unit needs are posted in the run of
// communication right before it, together with the sends of the unit before; so every
// compute step's recv is in the nearest run before it and its send in the nearest run after.
class Builder {
 public:
  Builder(int stages, int stage, int chunks) : p_(stages), s_(stage), v_(chunks) {}

  // One unit: each step is a forward or a backward of (microbatch, chunk).
  void unit(std::initializer_list<PipeStep> compute) {
    flush();
    for (const PipeStep& c : compute)
      if (!edge(c.op == PipeOp::forward, c.chunk)) plan_.push_back({recv_of(c.op), c.microbatch, c.chunk});
    for (const PipeStep& c : compute) {
      plan_.push_back(c);
      if (!edge(c.op == PipeOp::backward, c.chunk)) sends_.push_back({send_of(c.op), c.microbatch, c.chunk});
    }
  }
  void forward(int mb) { unit({{PipeOp::forward, mb}}); }
  void backward(int mb) { unit({{PipeOp::backward, mb}}); }
  PipePlan finish() {
    flush();
    return std::move(plan_);
  }

 private:
  // Posts the previous unit's sends: before this unit's receives, in one run with them.
  void flush() {
    plan_.insert(plan_.end(), sends_.begin(), sends_.end());
    sends_.clear();
  }
  // Virtual stage 0 (first = true) or V*p - 1 (first = false): where the pipeline ends.
  bool edge(bool first, int chunk) const {
    return first ? chunk == 0 && s_ == 0 : chunk == v_ - 1 && s_ == p_ - 1;
  }
  static PipeOp recv_of(PipeOp op) {
    return op == PipeOp::forward ? PipeOp::recv_activation : PipeOp::recv_grad;
  }
  static PipeOp send_of(PipeOp op) {
    return op == PipeOp::forward ? PipeOp::send_activation : PipeOp::send_grad;
  }

  int p_, s_, v_;
  PipePlan plan_;
  std::vector<PipeStep> sends_;  // of the last unit, not yet in the plan
};

}  // namespace

PipePlan make_gpipe_plan(int stages, int stage, int microbatches) {
  check_args("make_gpipe_plan", stages, stage, microbatches);
  Builder plan(stages, stage, 1);
  for (int i = 0; i < microbatches; ++i) plan.forward(i);
  for (int i = microbatches - 1; i >= 0; --i) plan.backward(i);
  return plan.finish();
}

PipePlan make_1f1b_plan(int stages, int stage, int microbatches) {
  check_args("make_1f1b_plan", stages, stage, microbatches);
  Builder plan(stages, stage, 1);
  const int warmup = std::min(stages - stage - 1, microbatches);
  const int steady = microbatches - warmup;
  for (int i = 0; i < warmup; ++i) plan.forward(i);
  for (int k = 0; k < steady; ++k) {
    plan.forward(warmup + k);
    plan.backward(k);
  }
  for (int k = steady; k < microbatches; ++k) plan.backward(k);
  return plan.finish();
}

PipePlan make_interleaved_plan(int stages, int stage, int microbatches, int chunks) {
  check_args("make_interleaved_plan", stages, stage, microbatches);
  LOOM_CHECK(chunks >= 1, "use 1 chunk per stage for plain 1F1B",
             "make_interleaved_plan: chunks = {} (must be >= 1)", chunks);
  if (chunks == 1) return make_1f1b_plan(stages, stage, microbatches);
  LOOM_CHECK(stages >= 2, "use --parallel.pp >= 2, or 1 chunk per stage",
             "make_interleaved_plan: {} chunks on {} stage (interleaving needs >= 2 stages)", chunks, stages);
  LOOM_CHECK(microbatches % stages == 0,
             "make the micro-batches per step (per-rank batch / train.micro_batch) a multiple of "
             "--parallel.pp, or use 1 chunk per stage",
             "make_interleaved_plan: microbatches = {} is not a multiple of stages = {}", microbatches,
             stages);
  const int p = stages, v = chunks, total = microbatches * chunks;
  // Megatron's order: groups of p microbatches go through chunk 0, then chunk 1, ...
  const auto fwd = [&](int k) { return PipeStep{PipeOp::forward, (k / (p * v)) * p + k % p, (k / p) % v}; };
  const auto bwd = [&](int k) {
    return PipeStep{PipeOp::backward, (k / (p * v)) * p + k % p, v - 1 - (k / p) % v};
  };
  const int warmup = std::min(total, 2 * (p - stage - 1) + (v - 1) * p);
  Builder plan(stages, stage, chunks);
  for (int k = 0; k < warmup; ++k) plan.unit({fwd(k)});
  // Steady state: forward and backward back to back, so their sends and the next pair's
  // receives form one run (Megatron's send_forward_backward_recv_forward_backward).
  for (int k = 0; k < total - warmup; ++k) plan.unit({fwd(warmup + k), bwd(k)});
  for (int k = total - warmup; k < total; ++k) plan.unit({bwd(k)});
  return plan.finish();
}

PipeSchedule pipe_schedule(const std::string& schedule, int chunks) {
  if (chunks > 1) return PipeSchedule::interleaved;
  return schedule == "gpipe" ? PipeSchedule::gpipe : PipeSchedule::one_f_one_b;
}

PipePlan make_pipeline_plan(PipeSchedule schedule, int stages, int stage, int microbatches, int chunks) {
  if (schedule == PipeSchedule::interleaved)
    return make_interleaved_plan(stages, stage, microbatches, chunks);
  LOOM_CHECK(chunks == 1, "use the interleaved schedule for more than one chunk per stage",
             "make_pipeline_plan: {} chunks per stage with {}", chunks,
             schedule == PipeSchedule::gpipe ? "gpipe" : "1f1b");
  return schedule == PipeSchedule::gpipe ? make_gpipe_plan(stages, stage, microbatches)
                                         : make_1f1b_plan(stages, stage, microbatches);
}

std::vector<PipePlan> make_pipeline_plans(PipeSchedule schedule, int stages, int microbatches, int chunks) {
  check_args("make_pipeline_plans", stages, 0, microbatches);
  std::vector<PipePlan> plans;
  for (int s = 0; s < stages; ++s)
    plans.push_back(make_pipeline_plan(schedule, stages, s, microbatches, chunks));
  return plans;
}

bool is_communication(PipeOp op) { return op != PipeOp::forward && op != PipeOp::backward; }

bool is_send(PipeOp op) { return op == PipeOp::send_activation || op == PipeOp::send_grad; }

namespace {
// +1 towards the next rank, -1 towards the previous, 0 for compute.
int direction(PipeOp op) {
  if (op == PipeOp::send_activation || op == PipeOp::recv_grad) return 1;
  if (op == PipeOp::recv_activation || op == PipeOp::send_grad) return -1;
  return 0;
}
}  // namespace

int peer_stage(PipeOp op, int stage, int stages) {
  return stages > 0 ? (stage + direction(op) + stages) % stages : stage;
}

std::size_t comm_group_end(const PipePlan& plan, std::size_t i) {
  while (i < plan.size() && is_communication(plan[i].op)) ++i;
  return i;
}

bool pairs_with_next(const PipePlan& plan, std::size_t i, int /*stage*/) {
  if (i + 1 >= plan.size() || !is_send(plan[i].op)) return false;
  const PipeOp next = plan[i + 1].op;
  return is_communication(next) && !is_send(next) && direction(next) == direction(plan[i].op);
}

int slots_needed(const PipePlan& plan, int chunk) {
  int in_flight = 0, most = 1;
  for (const PipeStep& step : plan) {
    if (step.chunk != chunk) continue;
    if (step.op == PipeOp::forward) most = std::max(most, ++in_flight);
    if (step.op == PipeOp::backward) --in_flight;
  }
  return most;
}

std::string to_string(PipeOp op) {
  switch (op) {
    case PipeOp::forward:
      return "forward";
    case PipeOp::backward:
      return "backward";
    case PipeOp::send_activation:
      return "send_activation";
    case PipeOp::recv_activation:
      return "recv_activation";
    case PipeOp::send_grad:
      return "send_grad";
    case PipeOp::recv_grad:
      return "recv_grad";
  }
  return "?";
}

std::string to_string(PipeStep step) {
  return step.chunk == 0 ? fmt::format("{} {}", to_string(step.op), step.microbatch)
                         : fmt::format("{} {} chunk {}", to_string(step.op), step.microbatch, step.chunk);
}

}  // namespace loom
