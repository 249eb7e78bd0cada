// tests/unit/test_plan_bubble.cpp — plan/bubble.h against schedule/pipeline_sim.h: the
// closed-form bubble of 1F1B, GPipe and interleaved 1F1B is what the simulator measures
// running loom's own plans, and stage 0's peak in-flight micro-batches (the activation
// memory the planner charges) is the simulator's max_in_flight.
#include <gtest/gtest.h>

#include <tuple>

#include "plan/bubble.h"
#include "schedule/pipeline_plan.h"
#include "schedule/pipeline_sim.h"

namespace loom::plan {
namespace {

TEST(PlanBubble, ClosedFormIsTheSimulatedBubble) {
  const std::tuple<int, int, int> cases[] = {{2, 4, 1}, {4, 8, 1}, {4, 4, 1}, {8, 8, 1}, {4, 3, 1},
                                             {2, 4, 2}, {4, 8, 2}, {4, 8, 4}, {3, 6, 3}, {8, 16, 2}};
  for (auto [p, m, v] : cases) {
    const auto schedule = v > 1 ? PipeSchedule::interleaved : PipeSchedule::one_f_one_b;
    const PlanStats st =
        simulate(make_pipeline_plans(schedule, p, m, v), {1.0 / v, 2.0 / v, CommModel::grouped});
    EXPECT_NEAR(bubble_share_of_step(p, m, v), st.bubble_fraction, 1e-9) << p << " " << m << " " << v;
    // Ideal time m (f + b) = 3 m; the bubble over it.
    EXPECT_NEAR(bubble_over_ideal(p, m, v), (st.total_time - 3.0 * m) / (3.0 * m), 1e-9)
        << p << " " << m << " " << v;
    EXPECT_DOUBLE_EQ(stage0_in_flight(p, m, v, false) * v, st.max_in_flight[0]) << p << " " << m << " " << v;
  }
  const PlanStats gp = simulate(make_pipeline_plans(PipeSchedule::gpipe, 4, 8), {});
  EXPECT_NEAR(bubble_share_of_step(4, 8), gp.bubble_fraction, 1e-9);
  EXPECT_DOUBLE_EQ(stage0_in_flight(4, 8, 1, true), gp.max_in_flight[0]);
}

TEST(PlanBubble, NarayanansNumbers) {
  EXPECT_DOUBLE_EQ(bubble_over_ideal(8, 64), 7.0 / 64);
  EXPECT_DOUBLE_EQ(bubble_over_ideal(8, 64, 4), 7.0 / 256);
  EXPECT_DOUBLE_EQ(bubble_share_of_step(1, 5), 0.0);
  // Korthikanti et al.: interleaving holds p (1 + (p-1)/(p v)) micro-batches on stage 0.
  EXPECT_DOUBLE_EQ(stage0_in_flight(8, 64, 4, false), 8 * (1 + 7.0 / 32));
}

}  // namespace
}  // namespace loom::plan
