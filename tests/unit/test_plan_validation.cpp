// tests/unit/test_plan_validation.cpp — the report card (docs/scaling.md): loom-plan's
// predicted iteration times against Korthikanti et al. 2022, Table 5, on the shipped
// plan/clusters/a100-80gb.json. The errors must stay what docs/scaling.md documents (to
// 0.1 points, either way: a change to the model that moves them updates the doc too), and
// within the goal: mean |error| <= 3.5 %, worst <= 8 %. And Megatron-LM's H100 weak-scaling
// table (MFU per model size and GPU count) on plan/clusters/h100-80gb.json: the errors
// docs/scaling.md documents, the goal (10 % relative) on the rows it meets, and checks that
// the transcription of the table (an image in the Megatron-LM README) is self-consistent.
#include <gtest/gtest.h>

#include <cmath>

#include "plan/search.h"
#include "plan/validation.h"

namespace loom::plan {
namespace {

TEST(PlanValidation, Table5ErrorsAreTheDocumentedOnes) {
  const Cluster a100 = load_cluster(LOOM_SOURCE_DIR "/plan/clusters/a100-80gb.json");
  // Signed errors in percent, docs/scaling.md "Validation": full recompute, sp + selective.
  const double documented[] = {+4.4, -2.5, -2.8, -6.3, +0.3, -3.4, +2.8, +1.2};
  const auto rows = validate_table5(a100);
  ASSERT_EQ(rows.size(), 8u);
  double sum = 0, worst = 0;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const double e = 100 * rows[i].error();
    EXPECT_NEAR(e, documented[i], 0.1) << rows[i].name << " " << rows[i].mode;
    sum += std::abs(e), worst = std::max(worst, std::abs(e));
  }
  EXPECT_LE(sum / 8, 3.5);
  EXPECT_LE(worst, 8.0);
}

TEST(PlanValidation, MfuOfThePublishedRunsIsTheirs) {
  // Korthikanti et al. Table 5 MFU, sp + selective: 41.5, 51.4, 56.0, 56.3 %: model FLOPs
  // over published time, so this checks the FLOP count and peak, not the predictor.
  const double mfu[] = {0.415, 0.514, 0.560, 0.563};
  const auto runs = korthikanti_table5();
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const RunConfig c = published_config(runs[i], true);
    const double devices = double(runs[i].tp * runs[i].pp);
    const double published_mfu = model_flops_per_step(c) / (runs[i].sp_selective_s * devices * 312e12);
    EXPECT_NEAR(published_mfu, mfu[i], 0.0035) << runs[i].name;
  }
}

TEST(PlanValidation, MegatronH100ErrorsAreTheDocumentedOnes) {
  const Cluster h100 = load_cluster(LOOM_SOURCE_DIR "/plan/clusters/h100-80gb.json");
  // Relative MFU errors in percent, docs/scaling.md: f32 gradient reduction, multi-rail dp,
  // Megatron-Core's chunk-wise gradient sync, the planner's micro-batch; gemm_efficiency 0.50
  // chosen on the four pp = 1 rows. All nine meet the goal (10 %).
  const double documented[] = {+6.6, -1.6, -5.2, +1.1, +9.0, +8.0, +4.1, -5.1, -5.6};
  const std::int64_t micro_batch[] = {1, 4, 4, 4, 2, 1, 1, 1, 1};
  const auto rows = validate_megatron_h100(h100);
  ASSERT_EQ(rows.size(), 9u);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const double e = 100 * rows[i].error();
    EXPECT_NEAR(e, documented[i], 0.1) << rows[i].name;
    EXPECT_LE(std::abs(e), 10.0) << rows[i].name;
    // The assumed layout (no recompute, ZeRO-1) fits in the 80 GB: Megatron's memory account.
    EXPECT_LT(rows[i].prediction.memory.total(), h100.device_memory) << rows[i].name;
  }
  const auto runs = megatron_h100_weak_scaling();
  for (std::size_t i = 0; i < runs.size(); ++i)
    EXPECT_EQ(planned_config(runs[i], h100).train.micro_batch, micro_batch[i]) << runs[i].name;
  // The first hypothesis, micro-batch 1 on every row (published_config), kept in the doc:
  // 16B and 32B miss (their dp reduce-scatter is exposed behind one micro-batch's backward).
  const double with_mb1[] = {+6.6, -1.7, -11.8, -27.4, -0.1, +8.0, +4.1, -5.1, -5.6};
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const double mfu = predict(published_config(runs[i]), h100, megatron_core_2024()).mfu;
    EXPECT_NEAR(100 * (mfu / (runs[i].tflops_per_gpu / 989) - 1), with_mb1[i], 0.1) << runs[i].name;
  }
}

TEST(PlanValidation, PlannedMicroBatchIsTheFastestThatFits) {
  // planned_config against the planner itself: no micro-batch search would try is valid and
  // faster; a memory-bound row is limited by memory (314B: micro-batch 2 needs > 80 GB).
  const Cluster h100 = load_cluster(LOOM_SOURCE_DIR "/plan/clusters/h100-80gb.json");
  for (const PublishedScalingRun& r : megatron_h100_weak_scaling()) {
    RunConfig chosen = planned_config(r, h100);
    Prediction pc;
    ASSERT_EQ(check_layout(chosen, h100, r.dp * r.tp * r.pp, megatron_core_2024(), &pc), "") << r.name;
    for (std::int64_t mb : {1, 2, 4, 8, 16}) {
      RunConfig c = published_config(r);
      c.train.micro_batch = mb;
      Prediction p;
      if (check_layout(c, h100, r.dp * r.tp * r.pp, megatron_core_2024(), &p).empty()) {
        EXPECT_LE(p.tokens_per_s, pc.tokens_per_s * (1 + 1e-9)) << r.name << " mb " << mb;
      }
    }
  }
  RunConfig big = published_config(megatron_h100_weak_scaling()[7]);  // 314B
  big.train.micro_batch = 2;
  EXPECT_NE(check_layout(big, h100, 3072, megatron_core_2024()).find("memory"), std::string::npos);
}

TEST(PlanValidation, MegatronH100TableIsSelfConsistent) {
  // Read off images/model_table.png: per-GPU TFLOP/s x GPUs = the aggregate PFLOP/s column,
  // TFLOP/s / 989 = the MFU column (rounded), and the parameters (untied input and output
  // embeddings, no position table) = the model size column within 3 % (1.745 for "1.7B"),
  // so a misread digit fails here.
  const double aggregate_pflops[] = {19.6, 44.7, 93.9, 176.5, 322.3, 645.9, 997.2, 1457.4, 2825.6};
  const double size_b[] = {1.7, 7.1, 16, 32, 70, 119, 177, 314, 462};
  const auto runs = megatron_h100_weak_scaling();
  ASSERT_EQ(runs.size(), 9u);
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const auto& r = runs[i];
    const double gpus = double(r.dp * r.tp * r.pp);
    EXPECT_NEAR(r.tflops_per_gpu * gpus / 1000, aggregate_pflops[i], 0.06) << r.name;
    EXPECT_NEAR(r.tflops_per_gpu / 989, r.mfu, 0.005) << r.name;
    const double l = double(r.model.layers), h = double(r.model.channels), V = double(r.model.vocab);
    const double params = l * (12 * h * h + 13 * h) + 2 * V * h + 2 * h;
    EXPECT_NEAR(params / 1e9 / size_b[i], 1.0, 0.03) << r.name;
    EXPECT_EQ(r.global_batch % (r.dp * r.pp), 0) << r.name;  // whole micro-batches, interleavable
  }
}

}  // namespace
}  // namespace loom::plan
