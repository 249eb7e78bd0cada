// tests/unit/test_pipeline_plan.cpp — pipeline plans and their simulator
// (schedule/pipeline_plan.h, schedule/pipeline_sim.h).
//
// Exhaustive over GPipe and 1F1B (p in 1..8, m in 1..16) and interleaved 1F1B (p in 2..8,
// V chunks in 1..4, m a multiple of p up to 16), every stage: each (microbatch, chunk) is
// forwarded once then backwarded once, its recv/send placed as the header states; the
// in-flight bound holds and activation slots mb % slots_needed never collide; simulate()
// of all stages matches every send with its receive (kind, microbatch, chunk) and finishes
// under the buffered and grouped models with the theoretical bubble. Also: Megatron's order
// spelled out; 1F1B deadlocks under plain rendezvous, interleaved unless each steady
// forward-backward pair's communication is one group; bad input and bad plans throw.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "schedule/pipeline_plan.h"
#include "schedule/pipeline_sim.h"

namespace loom {

void PrintTo(const PipeStep& step, std::ostream* os) { *os << to_string(step); }  // for gtest

namespace {

// One plan family: the schedule, p, m, V (all stages).
struct Case {
  PipeSchedule schedule;
  int p, m, v;
  std::string str() const {
    const char* names[] = {"gpipe", "1f1b", "interleaved"};
    return std::string(names[int(schedule)]) + " p=" + std::to_string(p) + " m=" + std::to_string(m) +
           " V=" + std::to_string(v);
  }
};

// Every case the header promises: GPipe and 1F1B for p <= 8, m <= 16; interleaved for
// p in 2..8, V in 1..4, m a multiple of p up to 16.
std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (PipeSchedule schedule : {PipeSchedule::gpipe, PipeSchedule::one_f_one_b})
    for (int p = 1; p <= 8; ++p)
      for (int m = 1; m <= 16; ++m) cases.push_back({schedule, p, m, 1});
  for (int p = 2; p <= 8; ++p)
    for (int v = 1; v <= 4; ++v)
      for (int m = p; m <= 16; m += p) cases.push_back({PipeSchedule::interleaved, p, m, v});
  return cases;
}

// Forwards before the first backward: what in-flight peaks at (w + 1, at most all).
int warmup(const Case& c, int s) {
  if (c.schedule == PipeSchedule::gpipe) return c.m;
  if (c.v == 1) return std::min(c.p - s - 1, c.m);
  return std::min(c.m * c.v, 2 * (c.p - s - 1) + (c.v - 1) * c.p);
}

// The nearest run of communication steps before (dir < 0) or after plan[k], skipping at
// most `skip` compute steps; {0, 0} when there is none.
std::pair<std::size_t, std::size_t> nearest_run(const PipePlan& plan, std::size_t k, int dir, int skip) {
  std::ptrdiff_t j = std::ptrdiff_t(k) + dir;
  const auto inside = [&] { return j >= 0 && j < std::ptrdiff_t(plan.size()); };
  for (; inside() && !is_communication(plan[std::size_t(j)].op) && skip >= 0; j += dir) --skip;
  if (!inside() || skip < 0) return {0, 0};
  std::size_t begin = std::size_t(j);
  while (begin > 0 && is_communication(plan[begin - 1].op)) --begin;
  return {begin, comm_group_end(plan, begin)};
}

// The placement rule: plan[k]'s recv (when `recv`) is in the nearest run of communication
// before it and its send (when `send`) in the nearest run after, a run that is separated
// from it by at most one compute step (interleaved's steady forward-backward pair).
std::string check_comm(const PipePlan& plan, std::size_t k, bool recv, bool send) {
  const PipeStep step = plan[k];
  const bool fwd = step.op == PipeOp::forward;
  const PipeStep r{fwd ? PipeOp::recv_activation : PipeOp::recv_grad, step.microbatch, step.chunk};
  const PipeStep x{fwd ? PipeOp::send_activation : PipeOp::send_grad, step.microbatch, step.chunk};
  const auto in = [&](std::pair<std::size_t, std::size_t> run, PipeStep want) {
    return std::find(plan.begin() + std::ptrdiff_t(run.first), plan.begin() + std::ptrdiff_t(run.second),
                     want) != plan.begin() + std::ptrdiff_t(run.second);
  };
  if (recv != in(nearest_run(plan, k, -1, 1), r)) return to_string(r) + " misplaced or missing";
  if (send != in(nearest_run(plan, k, +1, 1), x)) return to_string(x) + " misplaced or missing";
  return "";
}

// Everything one stage's plan must satisfy on its own; returns the first problem, or "".
std::string check_stage(const PipePlan& plan, const Case& c, int s) {
  const int p = c.p, m = c.m, v = c.v;
  std::map<std::pair<int, int>, int> forwarded, backwarded;         // (mb, chunk) -> count
  std::vector<std::vector<int>> live(static_cast<std::size_t>(v));  // per chunk: mbs in flight
  std::vector<int> slots;
  for (int k = 0; k < v; ++k) slots.push_back(slots_needed(plan, k));
  int in_flight = 0, max_in_flight = 0;
  std::size_t comm = 0;
  for (std::size_t k = 0; k < plan.size(); ++k) {
    const PipeStep step = plan[k];
    if (step.microbatch < 0 || step.microbatch >= m || step.chunk < 0 || step.chunk >= v)
      return "microbatch or chunk out of range at step " + std::to_string(k);
    const int virt = step.chunk * p + s;
    const bool first = virt == 0, last = virt == v * p - 1;
    const std::pair<int, int> key{step.microbatch, step.chunk};
    std::vector<int>& mine = live[std::size_t(step.chunk)];
    if (step.op == PipeOp::forward) {
      if (forwarded[key]++ != 0) return "second " + to_string(step);
      if (std::string e = check_comm(plan, k, !first, !last); !e.empty()) return e;
      const int slot = step.microbatch % slots[std::size_t(step.chunk)];
      for (int other : mine)
        if (other % slots[std::size_t(step.chunk)] == slot) return to_string(step) + " takes a used slot";
      mine.push_back(step.microbatch);
      max_in_flight = std::max(max_in_flight, ++in_flight);
    } else if (step.op == PipeOp::backward) {
      if (forwarded[key] != 1) return to_string(step) + " before its forward";
      if (backwarded[key]++ != 0) return "second " + to_string(step);
      if (std::string e = check_comm(plan, k, !last, !first); !e.empty()) return e;
      mine.erase(std::find(mine.begin(), mine.end(), step.microbatch));
      --in_flight;
    } else {
      ++comm;
      if (comm_group_end(plan, k) == k) return "comm_group_end ends before " + to_string(step);
      // What the executor relies on: a send of an activation or a recv of a gradient finds
      // its microbatch in flight (its slot alive), and a group holds at most one step of each
      // kind (one input slot, one output slot, one gradient in, one gradient out).
      const bool needs_slot = step.op == PipeOp::send_activation || step.op == PipeOp::recv_grad;
      if (needs_slot && std::find(mine.begin(), mine.end(), step.microbatch) == mine.end())
        return to_string(step) + " outside its microbatch's lifetime";
      if (k == 0 || !is_communication(plan[k - 1].op))
        for (std::size_t i = k; i < comm_group_end(plan, k); ++i)
          for (std::size_t j = i + 1; j < comm_group_end(plan, k); ++j)
            if (plan[i].op == plan[j].op) return "two " + to_string(plan[i].op) + " in one group";
    }
    if (!is_communication(step.op) && comm_group_end(plan, k) != k) return "comm_group_end at compute";
  }
  for (int i = 0; i < m; ++i)
    for (int k = 0; k < v; ++k)
      if (backwarded[{i, k}] != 1)
        return "(" + std::to_string(i) + ", " + std::to_string(k) + ") not backwarded";
  // Each compute step has its communication next to it (checked above), so counting suffices.
  const int ends = (s == 0) + (s == p - 1);  // virtual stages 0 and V*p - 1 each lack one side
  if (comm != std::size_t(2 * m * (2 * v - ends))) return "extra communication steps";
  const int expected = std::min(warmup(c, s) + 1, m * v);
  if (max_in_flight != expected)
    return "max in flight " + std::to_string(max_in_flight) + ", expected " + std::to_string(expected);
  for (int k = 0; k < v; ++k)
    if (slots[std::size_t(k)] > std::min(m, expected)) return "too many slots";
  return "";
}

PipeStep F(int i, int c = 0) { return {PipeOp::forward, i, c}; }
PipeStep B(int i, int c = 0) { return {PipeOp::backward, i, c}; }
PipeStep SA(int i, int c = 0) { return {PipeOp::send_activation, i, c}; }
PipeStep RA(int i, int c = 0) { return {PipeOp::recv_activation, i, c}; }
PipeStep SG(int i, int c = 0) { return {PipeOp::send_grad, i, c}; }
PipeStep RG(int i, int c = 0) { return {PipeOp::recv_grad, i, c}; }

TEST(PipelinePlan, OneFOneBHasWarmupSteadyCooldown) {
  // p = 3, m = 3, first stage: warmup 2 forwards, one 1F1B pair, cooldown 2 backwards.
  EXPECT_EQ(make_1f1b_plan(3, 0, 3),
            (PipePlan{F(0), SA(0), F(1), SA(1), F(2), SA(2), RG(0), B(0), RG(1), B(1), RG(2), B(2)}));
  // Last stage: no warmup; forward i is followed at once by backward i.
  EXPECT_EQ(make_1f1b_plan(3, 2, 2), (PipePlan{RA(0), F(0), B(0), SG(0), RA(1), F(1), B(1), SG(1)}));
  // Middle stage: the paired exchanges are (send_activation, recv_grad) and (send_grad, recv_activation).
  const PipePlan mid = make_1f1b_plan(3, 1, 2);
  EXPECT_EQ(mid, (PipePlan{RA(0), F(0), SA(0), RA(1), F(1), SA(1), RG(0), B(0), SG(0), RG(1), B(1), SG(1)}));
  EXPECT_TRUE(pairs_with_next(mid, 5, 1));   // send_activation 1 + recv_grad 0, both with stage 2
  EXPECT_FALSE(pairs_with_next(mid, 2, 1));  // send_activation 0 to stage 2, recv_activation 1 from stage 0
  EXPECT_FALSE(pairs_with_next(mid, 8, 1));  // send_grad 0 to stage 0, recv_grad 1 from stage 2
  EXPECT_TRUE(pairs_with_next(make_1f1b_plan(2, 1, 2), 3, 1));  // send_grad 0 + recv_activation 1
  // The groups an executor posts at once: a compute step ends its own (empty) run.
  EXPECT_EQ(comm_group_end(mid, 2), 4u);  // send_activation 0, recv_activation 1
  EXPECT_EQ(comm_group_end(mid, 5), 7u);  // send_activation 1, recv_grad 0
  EXPECT_EQ(comm_group_end(mid, 4), 4u);
  EXPECT_EQ(comm_group_end(mid, 11), 12u);
  EXPECT_EQ(comm_group_end(mid, 12), 12u);
}

TEST(PipelinePlan, GPipeForwardsAllThenBackwardsInReverse) {
  EXPECT_EQ(make_gpipe_plan(2, 1, 2), (PipePlan{RA(0), F(0), RA(1), F(1), B(1), SG(1), B(0), SG(0)}));
  EXPECT_EQ(make_gpipe_plan(1, 0, 2), (PipePlan{F(0), F(1), B(1), B(0)}));
}

TEST(PipelinePlan, InterleavedFollowsMegatronOrder) {
  // p = 2, V = 2, m = 4. Megatron's forward order on every rank: microbatches in groups of
  // p through chunk 0, then chunk 1; backwards the same with the chunks reversed.
  const PipePlan plan = make_interleaved_plan(2, 0, 4, 2);
  std::vector<std::pair<int, int>> forwards;
  for (const PipeStep& step : plan)
    if (step.op == PipeOp::forward) forwards.push_back({step.microbatch, step.chunk});
  EXPECT_EQ(forwards, (std::vector<std::pair<int, int>>{
                          {0, 0}, {1, 0}, {0, 1}, {1, 1}, {2, 0}, {3, 0}, {2, 1}, {3, 1}}));
  // Stage 0: warmup 2*(p-1) + (V-1)*p = 4 forwards, 4 pairs, 4 cooldown backwards. Chunk 0
  // is virtual stage 0 (no recv_activation, no send_grad); chunk 1 is virtual stage 2. In
  // the steady state a forward and a backward run back to back: their sends and the next
  // pair's receives are one group (Megatron's send_forward_backward_recv_forward_backward).
  // clang-format off
  EXPECT_EQ(plan, (PipePlan{F(0, 0), SA(0, 0), F(1, 0), SA(1, 0), RA(0, 1), F(0, 1), SA(0, 1), RA(1, 1),
                            F(1, 1),  // warmup
                            SA(1, 1), RG(0, 1), F(2, 0), B(0, 1),
                            SA(2, 0), SG(0, 1), RG(1, 1), F(3, 0), B(1, 1),
                            SA(3, 0), SG(1, 1), RA(2, 1), RG(0, 0), F(2, 1), B(0, 0),
                            SA(2, 1), RA(3, 1), RG(1, 0), F(3, 1), B(1, 0),  // steady
                            SA(3, 1), RG(2, 1), B(2, 1), SG(2, 1), RG(3, 1), B(3, 1), SG(3, 1), RG(2, 0),
                            B(2, 0), RG(3, 0), B(3, 0)}));  // cooldown
  // clang-format on
  EXPECT_EQ(comm_group_end(plan, 13), 16u);  // SA(2, 0), SG(0, 1), RG(1, 1): one group
  // Stage 1 (last): chunk 1 is the last virtual stage, so it never sends activations.
  const PipePlan last = make_interleaved_plan(2, 1, 2, 2);
  // clang-format off
  EXPECT_EQ(last, (PipePlan{RA(0, 0), F(0, 0), SA(0, 0), RA(1, 0), F(1, 0),  // warmup
                            SA(1, 0), RA(0, 1), F(0, 1), B(0, 1), SG(0, 1), RA(1, 1), F(1, 1), B(1, 1),
                            SG(1, 1), RG(0, 0), B(0, 0), SG(0, 0), RG(1, 0), B(1, 0), SG(1, 0)}));
  // clang-format on
  EXPECT_EQ(make_interleaved_plan(3, 1, 5, 1), make_1f1b_plan(3, 1, 5));
  EXPECT_EQ(make_pipeline_plan(PipeSchedule::interleaved, 4, 2, 8, 3), make_interleaved_plan(4, 2, 8, 3));
  EXPECT_EQ(slots_needed(plan, 0), 4);
  EXPECT_EQ(slots_needed(plan, 1), 2);
}

TEST(PipelinePlan, PeersWrapAround) {
  EXPECT_EQ(peer_stage(PipeOp::send_activation, 3, 4), 0);  // rank p-1 chunk v -> rank 0 chunk v+1
  EXPECT_EQ(peer_stage(PipeOp::recv_grad, 3, 4), 0);
  EXPECT_EQ(peer_stage(PipeOp::recv_activation, 0, 4), 3);
  EXPECT_EQ(peer_stage(PipeOp::send_grad, 0, 4), 3);
  EXPECT_EQ(peer_stage(PipeOp::send_activation, 1, 4), 2);
  EXPECT_EQ(peer_stage(PipeOp::send_grad, 1, 4), 0);
  EXPECT_EQ(peer_stage(PipeOp::forward, 2, 4), 2);
}

TEST(PipelinePlan, EveryPlanIsWellFormed) {
  for (const Case& c : all_cases())
    for (int s = 0; s < c.p; ++s) {
      const PipePlan plan = make_pipeline_plan(c.schedule, c.p, s, c.m, c.v);
      ASSERT_EQ(check_stage(plan, c, s), "") << c.str() << " s=" << s;
      if (c.v > 1) continue;
      // Paired exchanges: wherever a forward is directly followed by a backward
      // (send_activation, recv_grad with s+1: 1F1B's steady pairs or its one turn from
      // warmup to cooldown, GPipe's one turn) and a backward by a forward (send_grad,
      // recv_activation with s-1: 1F1B's steady phase only).
      std::size_t pairs = 0;
      for (std::size_t k = 0; k < plan.size(); ++k) pairs += pairs_with_next(plan, k, s);
      const int steady = c.m - std::min(c.p - s - 1, c.m);
      const int with_next = s < c.p - 1 ? std::max(steady, 1) : 0,
                with_prev = s > 0 ? std::max(steady - 1, 0) : 0;
      const std::size_t expected =
          c.schedule == PipeSchedule::gpipe ? std::size_t(s < c.p - 1) : std::size_t(with_next + with_prev);
      EXPECT_EQ(pairs, expected) << c.str() << " s=" << s;
    }
}

TEST(PipelinePlan, SimulatedBubbleIsTheory) {
  // Per-chunk costs f/V and b/V: bubble time / ideal time = (p-1) / (V*m), so the bubble
  // fraction is (p-1) / (V*m + p-1), and every stage idles (p-1)(f+b)/V.
  const std::pair<double, double> costs[] = {{1, 2}, {1, 1}, {1, 3}, {2, 3}};
  for (CommModel comm : {CommModel::buffered, CommModel::grouped, CommModel::paired_rendezvous})
    for (const Case& c : all_cases()) {
      if (comm == CommModel::paired_rendezvous && c.v > 1) continue;
      const std::vector<PipePlan> plans = make_pipeline_plans(c.schedule, c.p, c.m, c.v);
      ASSERT_EQ(plans.size(), std::size_t(c.p));
      for (auto [f, b] : costs) {
        const std::string where = c.str() + " costs " + std::to_string(f) + "," + std::to_string(b) +
                                  " model " + std::to_string(int(comm));
        PlanStats st;
        ASSERT_NO_THROW(st = simulate(plans, {f / c.v, b / c.v, comm})) << where;
        const double bubble = (c.p - 1) * (f + b) / c.v;
        EXPECT_NEAR(st.bubble_fraction, double(c.p - 1) / double(c.v * c.m + c.p - 1), 1e-9) << where;
        EXPECT_NEAR(st.total_time, c.m * (f + b) + bubble, 1e-9) << where;
        ASSERT_EQ(st.idle_time.size(), std::size_t(c.p)) << where;
        for (int s = 0; s < c.p; ++s) {
          EXPECT_NEAR(st.idle_time[std::size_t(s)], bubble, 1e-9) << where << " s=" << s;
          EXPECT_EQ(st.max_in_flight[std::size_t(s)], std::min(warmup(c, s) + 1, c.m * c.v)) << where;
        }
      }
    }
}

TEST(PipelinePlan, OneFOneBDeadlocksUnlessSendsArePaired) {
  // With rendezvous sends issued one at a time, stage 0 blocks in send_activation 1 while
  // stage 1 blocks in send_grad 0: why the executor must post them together.
  const std::vector<PipePlan> plans = make_pipeline_plans(PipeSchedule::one_f_one_b, 2, 2);
  try {
    simulate(plans, {.comm = CommModel::rendezvous});
    FAIL() << "expected a deadlock";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("deadlock"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("stage 0 waits at step 3 (send_activation 1)"), std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(simulate(plans, {.comm = CommModel::paired_rendezvous}));
  EXPECT_NO_THROW(simulate(plans, {.comm = CommModel::grouped}));
  // GPipe needs no pairing (its one pair, at the forward-to-backward turn, is harmless).
  for (int p = 1; p <= 8; ++p)
    for (int m = 1; m <= 16; ++m)
      EXPECT_NO_THROW(
          simulate(make_pipeline_plans(PipeSchedule::gpipe, p, m), {.comm = CommModel::rendezvous}));
}

// The same compute order with each compute step's recv right before it and its send right
// after it: two groups per steady forward-backward pair instead of one.
PipePlan one_group_per_step(const PipePlan& plan) {
  PipePlan out;
  const auto add_if_in_plan = [&](PipeStep step) {
    if (std::find(plan.begin(), plan.end(), step) != plan.end()) out.push_back(step);
  };
  for (const PipeStep& c : plan) {
    if (is_communication(c.op)) continue;
    const bool fwd = c.op == PipeOp::forward;
    add_if_in_plan({fwd ? PipeOp::recv_activation : PipeOp::recv_grad, c.microbatch, c.chunk});
    out.push_back(c);
    add_if_in_plan({fwd ? PipeOp::send_activation : PipeOp::send_grad, c.microbatch, c.chunk});
  }
  return out;
}

TEST(PipelinePlan, InterleavedNeedsOneGroupPerForwardBackwardPair) {
  // Around the ring every rank would wait in (send_grad, recv_activation) for its
  // predecessor's (send_activation, recv_grad): with blocking groups, the steady pair's
  // communication must be one group. Buffered sends do not care.
  std::vector<PipePlan> plans = make_pipeline_plans(PipeSchedule::interleaved, 4, 8, 2);
  for (PipePlan& plan : plans) plan = one_group_per_step(plan);
  EXPECT_NO_THROW(simulate(plans, {.comm = CommModel::buffered}));
  try {
    simulate(plans, {.comm = CommModel::grouped});
    FAIL() << "expected a deadlock";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("deadlock; stage 0 waits at step 28 (send_grad 0 chunk 1)"),
              std::string::npos)
        << e.what();
  }
  // Interleaved plans need grouped (or buffered) exchanges: one step at a time, every rank
  // of the ring sends first.
  plans = make_pipeline_plans(PipeSchedule::interleaved, 2, 4, 2);
  EXPECT_THROW(simulate(plans, {.comm = CommModel::rendezvous}), Error);
  EXPECT_THROW(simulate(plans, {.comm = CommModel::paired_rendezvous}), Error);
  EXPECT_NO_THROW(simulate(plans, {.comm = CommModel::grouped}));
}

TEST(PipelinePlan, BadInputThrows) {
  for (auto make : {make_gpipe_plan, make_1f1b_plan}) {
    EXPECT_THROW(make(0, 0, 4), Error);
    EXPECT_THROW(make(2, -1, 4), Error);
    EXPECT_THROW(make(2, 2, 4), Error);
    EXPECT_THROW(make(2, 0, 0), Error);
  }
  EXPECT_THROW(make_pipeline_plans(PipeSchedule::one_f_one_b, 0, 4), Error);
  EXPECT_THROW(make_interleaved_plan(4, 0, 6, 2), Error);  // m not a multiple of p
  EXPECT_THROW(make_interleaved_plan(4, 0, 8, 0), Error);  // chunks < 1
  EXPECT_THROW(make_interleaved_plan(4, 0, 8, -1), Error);
  EXPECT_THROW(make_interleaved_plan(1, 0, 4, 2), Error);  // one stage cannot interleave
  EXPECT_THROW(make_pipeline_plans(PipeSchedule::interleaved, 3, 4, 2), Error);
  EXPECT_THROW(make_pipeline_plan(PipeSchedule::one_f_one_b, 2, 0, 4, 2), Error);  // chunks need interleaved
  EXPECT_THROW(make_pipeline_plan(PipeSchedule::gpipe, 2, 0, 4, 2), Error);
  try {
    make_interleaved_plan(4, 1, 6, 2);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a multiple of stages = 4"), std::string::npos) << e.what();
    EXPECT_FALSE(e.hint().empty());
  }
  EXPECT_THROW(simulate({}), Error);
}

TEST(PipelinePlan, SimulatorRejectsBadPlans) {
  // Stage 1 receives microbatch 1 first while stage 0 sends 0 first.
  std::vector<PipePlan> plans = make_pipeline_plans(PipeSchedule::gpipe, 2, 2);
  std::swap(plans[1][0], plans[1][2]);
  for (CommModel comm : {CommModel::buffered, CommModel::rendezvous, CommModel::grouped})
    EXPECT_THROW(simulate(plans, {.comm = comm}), Error);
  // A send nobody receives; a recv with no other stage; backward before forward.
  plans = make_pipeline_plans(PipeSchedule::gpipe, 2, 1);
  plans[1].erase(plans[1].begin());
  EXPECT_THROW(simulate(plans), Error);
  EXPECT_THROW(simulate({{RA(0), F(0), B(0)}}), Error);
  EXPECT_THROW(simulate({{B(0), F(0)}}), Error);
  // One stream per ordered pair of ranks, whatever the kind: with p = 2, rank 0 sends both
  // activations and gradients to rank 1. A wrong chunk or kind on the receiver throws.
  plans = make_pipeline_plans(PipeSchedule::interleaved, 2, 2, 2);
  EXPECT_NO_THROW(simulate(plans, {.comm = CommModel::grouped}));
  for (PipeStep& step : plans[0])
    if (step == RA(0, 1)) step.chunk = 0;  // rank 1 chunk 0 sent it, rank 0 chunk 1 must receive it
  EXPECT_THROW(simulate(plans, {.comm = CommModel::grouped}), Error);
  plans = make_pipeline_plans(PipeSchedule::interleaved, 2, 2, 2);
  for (PipeStep& step : plans[1])
    if (step == RG(0, 0)) step.op = PipeOp::recv_activation;  // a gradient received as an activation
  EXPECT_THROW(simulate(plans), Error);
}

}  // namespace
}  // namespace loom
