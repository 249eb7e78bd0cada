// schedule/pipeline_plan.cpp — GPipe and 1F1B plans, and the pipeline simulator.
//
// Both schedules are built from add_forward / add_backward, which wrap one compute step in
// its communication (recv before, send after), so the stage-boundary rules live in one
// place. simulate() is a discrete-event loop: every stage has a clock and runs as far as it
// can; communication takes no time, so a recv finishes at max(own clock, sender's clock).
// When no stage can move and some are unfinished, that is a deadlock.
#include "schedule/pipeline_plan.h"

#include <algorithm>
#include <deque>
#include <map>
#include <set>
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

void add_forward(PipePlan& plan, int stages, int stage, int mb) {
  if (stage > 0) plan.push_back({PipeOp::recv_activation, mb});
  plan.push_back({PipeOp::forward, mb});
  if (stage < stages - 1) plan.push_back({PipeOp::send_activation, mb});
}

void add_backward(PipePlan& plan, int stages, int stage, int mb) {
  if (stage < stages - 1) plan.push_back({PipeOp::recv_grad, mb});
  plan.push_back({PipeOp::backward, mb});
  if (stage > 0) plan.push_back({PipeOp::send_grad, mb});
}

bool is_send(PipeOp op) { return op == PipeOp::send_activation || op == PipeOp::send_grad; }

// The step on the peer that completes `op`.
PipeOp partner(PipeOp op) {
  switch (op) {
    case PipeOp::send_activation:
      return PipeOp::recv_activation;
    case PipeOp::recv_activation:
      return PipeOp::send_activation;
    case PipeOp::send_grad:
      return PipeOp::recv_grad;
    case PipeOp::recv_grad:
      return PipeOp::send_grad;
    default:
      return op;
  }
}

struct StageState {
  std::size_t next = 0;  // index of the next step in the plan
  double clock = 0, busy = 0;
  std::set<int> in_flight;
  int max_in_flight = 0;
  // Rendezvous only: which steps of the posted group (plan[next], plan[next+1] when
  // paired) have met their partner, and when.
  bool matched[2] = {false, false};
  double matched_at[2] = {0, 0};
};

struct Simulator {
  Simulator(const std::vector<PipePlan>& plans, const SimOptions& opt)
      : plans(plans), opt(opt), st(plans.size()) {}

  const std::vector<PipePlan>& plans;
  SimOptions opt;
  std::vector<StageState> st;
  // Buffered only: (from, to) -> steps sent and not yet received, with the sender's clock.
  std::map<std::pair<int, int>, std::deque<std::pair<PipeStep, double>>> mail;

  std::size_t group_size(int s) const {
    const PipePlan& plan = plans[s];
    if (st[s].next >= plan.size()) return 0;
    const bool paired = opt.comm == CommModel::paired_rendezvous && pairs_with_next(plan, st[s].next, s);
    return paired ? 2 : 1;
  }

  // Rendezvous: meets half h of stage s's posted group with the peer's posted partner step.
  bool match(int s, std::size_t h) {
    StageState& x = st[s];
    const PipeStep step = plans[s][x.next + h];
    const int peer = peer_stage(step.op, s);
    StageState& y = st[peer];
    for (std::size_t g = 0; g < group_size(peer); ++g) {
      const PipeStep other = plans[peer][y.next + g];
      if (y.matched[g] || other.op != partner(step.op)) continue;
      LOOM_CHECK(other.microbatch == step.microbatch, "",
                 "simulate: stage {} posts {} while stage {} posts {}", s, to_string(step), peer,
                 to_string(other));
      x.matched[h] = y.matched[g] = true;
      x.matched_at[h] = y.matched_at[g] = std::max(x.clock, y.clock);
      return true;
    }
    return false;
  }

  // Runs stage s's next step (or paired group); false when it is finished or must wait.
  bool advance(int s) {
    StageState& x = st[s];
    const PipePlan& plan = plans[s];
    if (x.next >= plan.size()) return false;
    const PipeStep step = plan[x.next];
    if (step.op == PipeOp::forward || step.op == PipeOp::backward) {
      const bool fwd = step.op == PipeOp::forward;
      LOOM_CHECK(fwd || x.in_flight.erase(step.microbatch) == 1, "",
                 "simulate: stage {} runs {} before its forward", s, to_string(step));
      if (fwd) x.in_flight.insert(step.microbatch);
      x.max_in_flight = std::max(x.max_in_flight, int(x.in_flight.size()));
      const double cost = fwd ? opt.forward_cost : opt.backward_cost;
      x.clock += cost;
      x.busy += cost;
      ++x.next;
      return true;
    }
    const int peer = peer_stage(step.op, s);
    if (opt.comm == CommModel::buffered) {
      if (is_send(step.op)) {
        mail[{s, peer}].push_back({step, x.clock});
      } else {
        auto& box = mail[{peer, s}];
        if (box.empty()) return false;
        const auto [sent, time] = box.front();
        LOOM_CHECK(sent.microbatch == step.microbatch, "",
                   "simulate: stage {} waits for {} but stage {} sent {} first", s, to_string(step), peer,
                   to_string(sent));
        x.clock = std::max(x.clock, time);
        box.pop_front();
      }
      ++x.next;
      return true;
    }
    const std::size_t n = group_size(s);
    bool progress = false;
    for (std::size_t h = 0; h < n; ++h) progress = (!x.matched[h] && match(s, h)) || progress;
    if (!x.matched[0] || (n == 2 && !x.matched[1])) return progress;
    x.clock = std::max(x.matched_at[0], n == 2 ? x.matched_at[1] : 0.0);
    x.next += n;
    x.matched[0] = x.matched[1] = false;
    return true;
  }

  PlanStats run() {
    const int p = int(plans.size());
    for (int progress = 1; progress;) {
      progress = 0;
      for (int s = 0; s < p; ++s)
        while (advance(s)) progress = 1;
    }
    std::string stuck;
    for (int s = 0; s < p; ++s)
      if (st[s].next < plans[s].size())
        stuck +=
            fmt::format("; stage {} waits at step {} ({})", s, st[s].next, to_string(plans[s][st[s].next]));
    LOOM_CHECK(stuck.empty(),
               "a stage waits for a step its neighbour never reaches: check the plans' order; with "
               "blocking sends, issue each pairs_with_next() pair as one send_recv",
               "simulate: deadlock{}", stuck);
    for (const auto& [edge, box] : mail)
      LOOM_CHECK(box.empty(), "", "simulate: stage {} sends {} that stage {} never receives", edge.first,
                 to_string(box.front().first), edge.second);
    PlanStats stats;
    double idle = 0;
    for (const StageState& x : st) stats.total_time = std::max(stats.total_time, x.clock);
    for (const StageState& x : st) {
      stats.idle_time.push_back(stats.total_time - x.busy);
      stats.max_in_flight.push_back(x.max_in_flight);
      idle += stats.idle_time.back();
    }
    stats.bubble_fraction = stats.total_time > 0 ? idle / (p * stats.total_time) : 0;
    return stats;
  }
};

}  // namespace

PipePlan make_gpipe_plan(int stages, int stage, int microbatches) {
  check_args("make_gpipe_plan", stages, stage, microbatches);
  PipePlan plan;
  for (int i = 0; i < microbatches; ++i) add_forward(plan, stages, stage, i);
  for (int i = microbatches - 1; i >= 0; --i) add_backward(plan, stages, stage, i);
  return plan;
}

PipePlan make_1f1b_plan(int stages, int stage, int microbatches) {
  check_args("make_1f1b_plan", stages, stage, microbatches);
  const int warmup = std::min(stages - stage - 1, microbatches);
  const int steady = microbatches - warmup;
  PipePlan plan;
  for (int i = 0; i < warmup; ++i) add_forward(plan, stages, stage, i);
  for (int k = 0; k < steady; ++k) {
    add_forward(plan, stages, stage, warmup + k);
    add_backward(plan, stages, stage, k);
  }
  for (int k = steady; k < microbatches; ++k) add_backward(plan, stages, stage, k);
  return plan;
}

PipePlan make_pipeline_plan(PipeSchedule schedule, int stages, int stage, int microbatches) {
  return schedule == PipeSchedule::gpipe ? make_gpipe_plan(stages, stage, microbatches)
                                         : make_1f1b_plan(stages, stage, microbatches);
}

std::vector<PipePlan> make_pipeline_plans(PipeSchedule schedule, int stages, int microbatches) {
  check_args("make_pipeline_plans", stages, 0, microbatches);
  std::vector<PipePlan> plans;
  for (int s = 0; s < stages; ++s) plans.push_back(make_pipeline_plan(schedule, stages, s, microbatches));
  return plans;
}

bool is_communication(PipeOp op) { return op != PipeOp::forward && op != PipeOp::backward; }

int peer_stage(PipeOp op, int stage) {
  if (op == PipeOp::send_activation || op == PipeOp::recv_grad) return stage + 1;
  if (op == PipeOp::recv_activation || op == PipeOp::send_grad) return stage - 1;
  return stage;
}

bool pairs_with_next(const PipePlan& plan, std::size_t i, int stage) {
  if (i + 1 >= plan.size() || !is_send(plan[i].op)) return false;
  const PipeOp next = plan[i + 1].op;
  return is_communication(next) && !is_send(next) && peer_stage(next, stage) == peer_stage(plan[i].op, stage);
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

std::string to_string(PipeStep step) { return fmt::format("{} {}", to_string(step.op), step.microbatch); }

PlanStats simulate(const std::vector<PipePlan>& plans, const SimOptions& options) {
  LOOM_CHECK(!plans.empty(), "", "simulate: no stages");
  LOOM_CHECK(options.forward_cost >= 0 && options.backward_cost >= 0, "", "simulate: negative cost ({}, {})",
             options.forward_cost, options.backward_cost);
  const int p = int(plans.size());
  for (int s = 0; s < p; ++s)
    for (const PipeStep& step : plans[s]) {
      const int peer = peer_stage(step.op, s);
      LOOM_CHECK(0 <= peer && peer < p, "", "simulate: stage {} has {} with stage {}, outside [0, {})", s,
                 to_string(step), peer, p);
    }
  return Simulator(plans, options).run();
}

}  // namespace loom
