// tests/unit/test_pipeline_plan.cpp — GPipe and 1F1B plans (schedule/pipeline_plan.h).
//
// Exhaustive over p stages in 1..8, m microbatches in 1..16 and every stage s: each
// microbatch is forwarded once then backwarded once, wrapped in its recv/send; a stage's
// sends match its neighbour's recvs in count and order; in-flight bounds hold; simulate()
// of all stages finishes with bubble (p-1)/(m+p-1) for several backward/forward cost
// ratios, also with rendezvous sends once pairs_with_next steps are one exchange (issuing
// them one by one deadlocks 1F1B, which is why the executor must pair them). Bad input throws.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/error.h"
#include "schedule/pipeline_plan.h"

namespace loom {
namespace {

constexpr PipeSchedule kSchedules[] = {PipeSchedule::gpipe, PipeSchedule::one_f_one_b};

std::string name(PipeSchedule s) { return s == PipeSchedule::gpipe ? "gpipe" : "1f1b"; }

std::vector<int> microbatches_of(const PipePlan& plan, PipeOp op) {
  std::vector<int> out;
  for (const PipeStep& step : plan)
    if (step.op == op) out.push_back(step.microbatch);
  return out;
}

// Everything one stage's plan must satisfy on its own; returns the first problem, or "".
std::string check_stage(const PipePlan& plan, int p, int s, int m, int expected_in_flight) {
  const bool first = s == 0, last = s == p - 1;
  std::vector<int> forwarded(std::size_t(m), 0), backwarded(std::size_t(m), 0);
  int in_flight = 0, max_in_flight = 0;
  std::size_t comm = 0;
  for (std::size_t k = 0; k < plan.size(); ++k) {
    const PipeStep step = plan[k];
    if (step.microbatch < 0 || step.microbatch >= m)
      return "microbatch out of range at step " + std::to_string(k);
    const auto at = [&](std::ptrdiff_t d, PipeOp op) {
      const std::ptrdiff_t j = std::ptrdiff_t(k) + d;
      return j >= 0 && j < std::ptrdiff_t(plan.size()) &&
             plan[std::size_t(j)] == PipeStep{op, step.microbatch};
    };
    const std::size_t mb = std::size_t(step.microbatch);
    if (step.op == PipeOp::forward) {
      if (forwarded[mb]++ != 0) return "second " + to_string(step);
      if (!first && !at(-1, PipeOp::recv_activation)) return "no recv_activation before " + to_string(step);
      if (!last && !at(+1, PipeOp::send_activation)) return "no send_activation after " + to_string(step);
      max_in_flight = std::max(max_in_flight, ++in_flight);
    } else if (step.op == PipeOp::backward) {
      if (forwarded[mb] != 1) return to_string(step) + " before its forward";
      if (backwarded[mb]++ != 0) return "second " + to_string(step);
      if (!last && !at(-1, PipeOp::recv_grad)) return "no recv_grad before " + to_string(step);
      if (!first && !at(+1, PipeOp::send_grad)) return "no send_grad after " + to_string(step);
      --in_flight;
    } else {
      ++comm;
      const int peer = peer_stage(step.op, s);
      if (peer < 0 || peer >= p) return to_string(step) + " talks to missing stage " + std::to_string(peer);
    }
  }
  for (int i = 0; i < m; ++i)
    if (backwarded[std::size_t(i)] != 1) return "microbatch " + std::to_string(i) + " never backwarded";
  // Every communication step sits next to its compute step (checked above), so counting suffices.
  if (comm != std::size_t(2 * m * (int(!first) + int(!last)))) return "extra communication steps";
  if (max_in_flight != expected_in_flight)
    return "max in flight " + std::to_string(max_in_flight) + ", expected " +
           std::to_string(expected_in_flight);
  return "";
}

int expected_in_flight(PipeSchedule schedule, int p, int s, int m) {
  return schedule == PipeSchedule::gpipe ? m : std::min(p - s, m);
}

PipeStep F(int i) { return {PipeOp::forward, i}; }
PipeStep B(int i) { return {PipeOp::backward, i}; }
PipeStep SA(int i) { return {PipeOp::send_activation, i}; }
PipeStep RA(int i) { return {PipeOp::recv_activation, i}; }
PipeStep SG(int i) { return {PipeOp::send_grad, i}; }
PipeStep RG(int i) { return {PipeOp::recv_grad, i}; }

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
}

TEST(PipelinePlan, GPipeForwardsAllThenBackwardsInReverse) {
  EXPECT_EQ(make_gpipe_plan(2, 1, 2), (PipePlan{RA(0), F(0), RA(1), F(1), B(1), SG(1), B(0), SG(0)}));
  EXPECT_EQ(make_gpipe_plan(1, 0, 2), (PipePlan{F(0), F(1), B(1), B(0)}));
}

TEST(PipelinePlan, EveryPlanIsWellFormed) {
  for (PipeSchedule schedule : kSchedules)
    for (int p = 1; p <= 8; ++p)
      for (int m = 1; m <= 16; ++m)
        for (int s = 0; s < p; ++s) {
          const PipePlan plan = make_pipeline_plan(schedule, p, s, m);
          EXPECT_EQ(check_stage(plan, p, s, m, expected_in_flight(schedule, p, s, m)), "")
              << name(schedule) << " p=" << p << " m=" << m << " s=" << s;
          if (s == 0) {
            EXPECT_TRUE(microbatches_of(plan, PipeOp::recv_activation).empty());
          }
          if (s == p - 1) {
            EXPECT_TRUE(microbatches_of(plan, PipeOp::send_activation).empty());
          }
          // Paired exchanges: wherever a forward is directly followed by a backward
          // (send_activation, recv_grad with s+1: 1F1B's steady pairs or its one turn from
          // warmup to cooldown, GPipe's one turn) and a backward by a forward (send_grad,
          // recv_activation with s-1: 1F1B's steady phase only).
          std::size_t pairs = 0;
          for (std::size_t k = 0; k < plan.size(); ++k) pairs += pairs_with_next(plan, k, s);
          const int steady = m - std::min(p - s - 1, m);
          const int with_next = s < p - 1 ? std::max(steady, 1) : 0,
                    with_prev = s > 0 ? std::max(steady - 1, 0) : 0;
          const std::size_t expected =
              schedule == PipeSchedule::gpipe ? std::size_t(s < p - 1) : std::size_t(with_next + with_prev);
          EXPECT_EQ(pairs, expected) << name(schedule) << " p=" << p << " m=" << m << " s=" << s;
        }
}

TEST(PipelinePlan, SendsMatchNeighbourReceivesInOrder) {
  for (PipeSchedule schedule : kSchedules)
    for (int p = 1; p <= 8; ++p)
      for (int m = 1; m <= 16; ++m) {
        const std::vector<PipePlan> plans = make_pipeline_plans(schedule, p, m);
        ASSERT_EQ(plans.size(), std::size_t(p));
        for (int s = 1; s < p; ++s) {
          const PipePlan &up = plans[std::size_t(s - 1)], &down = plans[std::size_t(s)];
          EXPECT_EQ(microbatches_of(down, PipeOp::recv_activation),
                    microbatches_of(up, PipeOp::send_activation))
              << name(schedule) << " p=" << p << " m=" << m << " s=" << s;
          EXPECT_EQ(microbatches_of(up, PipeOp::recv_grad), microbatches_of(down, PipeOp::send_grad))
              << name(schedule) << " p=" << p << " m=" << m << " s=" << s;
          EXPECT_EQ(microbatches_of(down, PipeOp::recv_activation).size(), std::size_t(m));
        }
      }
}

TEST(PipelinePlan, SimulatedBubbleIsTheory) {
  const std::pair<double, double> costs[] = {{1, 2}, {1, 1}, {1, 3}, {2, 3}};
  for (CommModel comm : {CommModel::buffered, CommModel::paired_rendezvous})
    for (PipeSchedule schedule : kSchedules)
      for (auto [tf, tb] : costs)
        for (int p = 1; p <= 8; ++p)
          for (int m = 1; m <= 16; ++m) {
            const PlanStats st = simulate(make_pipeline_plans(schedule, p, m), {tf, tb, comm});
            const std::string where = name(schedule) + " p=" + std::to_string(p) + " m=" + std::to_string(m) +
                                      " costs " + std::to_string(tf) + "," + std::to_string(tb) +
                                      (comm == CommModel::buffered ? " buffered" : " paired");
            EXPECT_NEAR(st.bubble_fraction, double(p - 1) / double(m + p - 1), 1e-12) << where;
            EXPECT_NEAR(st.total_time, (m + p - 1) * (tf + tb), 1e-9) << where;
            ASSERT_EQ(st.idle_time.size(), std::size_t(p)) << where;
            for (int s = 0; s < p; ++s) {
              EXPECT_NEAR(st.idle_time[std::size_t(s)], (p - 1) * (tf + tb), 1e-9) << where << " s=" << s;
              EXPECT_EQ(st.max_in_flight[std::size_t(s)], expected_in_flight(schedule, p, s, m)) << where;
            }
          }
}

TEST(PipelinePlan, OneFOneBDeadlocksUnlessSendsArePaired) {
  // With rendezvous sends issued one at a time, stage 0 blocks in send_activation 1 while
  // stage 1 blocks in send_grad 0: why the executor must use send_recv for paired steps.
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
  // GPipe needs no pairing (its one pair, at the forward-to-backward turn, is harmless).
  for (int p = 1; p <= 8; ++p)
    for (int m = 1; m <= 16; ++m)
      EXPECT_NO_THROW(
          simulate(make_pipeline_plans(PipeSchedule::gpipe, p, m), {.comm = CommModel::rendezvous}));
}

TEST(PipelinePlan, BadInputThrows) {
  for (auto make : {make_gpipe_plan, make_1f1b_plan}) {
    EXPECT_THROW(make(0, 0, 4), Error);
    EXPECT_THROW(make(2, -1, 4), Error);
    EXPECT_THROW(make(2, 2, 4), Error);
    EXPECT_THROW(make(2, 0, 0), Error);
  }
  EXPECT_THROW(make_pipeline_plans(PipeSchedule::one_f_one_b, 0, 4), Error);
  EXPECT_THROW(simulate({}), Error);
  // Stage 1 receives microbatch 1 first while stage 0 sends 0 first.
  std::vector<PipePlan> plans = make_pipeline_plans(PipeSchedule::gpipe, 2, 2);
  std::swap(plans[1][0], plans[1][2]);
  EXPECT_THROW(simulate(plans), Error);
  EXPECT_THROW(simulate(plans, {.comm = CommModel::rendezvous}), Error);
  // A send nobody receives; a recv from a stage that does not exist; backward before forward.
  plans = make_pipeline_plans(PipeSchedule::gpipe, 2, 1);
  plans[1].erase(plans[1].begin());
  EXPECT_THROW(simulate(plans), Error);
  EXPECT_THROW(simulate({{RA(0), F(0), B(0)}}), Error);
  EXPECT_THROW(simulate({{B(0), F(0)}}), Error);
}

}  // namespace
}  // namespace loom
