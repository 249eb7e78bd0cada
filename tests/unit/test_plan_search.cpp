// tests/unit/test_plan_search.cpp — plan/search.h: every proposed layout is valid (loom's
// own layout checks pass, it fits in memory), every rejected one says why (divisibility
// naming the constraint, memory naming the largest term), and on a small synthetic cluster
// the known-best layout wins.
#include <gtest/gtest.h>

#include "core/error.h"
#include "layers/gpt.h"
#include "plan/search.h"

namespace loom::plan {
namespace {

Cluster synthetic(double memory_gib = 16) {
  Cluster c;
  c.name = "synthetic";
  c.devices_per_node = 2;
  c.device_memory = memory_gib * (1 << 30);
  c.peak_16bit = c.peak_fp32 = 100e12;
  c.memory_bandwidth = 1e12;
  c.gemm_efficiency = 0.5;
  c.intra_node = {.bandwidth = 100e9, .latency = 5e-6};
  c.inter_node = {.bandwidth = 1e9, .latency = 5e-5};  // slow between nodes
  return c;
}

RunConfig model(std::int64_t heads = 6) {
  RunConfig c;
  c.model.layers = 8, c.model.channels = 768, c.model.heads = heads, c.model.vocab = 50257,
  c.model.seq_len = 1024;
  c.train.global_batch = 32, c.train.precision = "bf16";
  return c;
}

TEST(PlanSearch, ProposesOnlyValidLayoutsAndSaysWhyOthersFail) {
  const Cluster cl = synthetic();
  const auto all = search_layouts(model(), cl, 8);
  ASSERT_FALSE(all.empty());
  bool seen_heads = false, valid_done = false;
  for (const Candidate& k : all) {
    if (k.rejected.empty()) {
      ASSERT_FALSE(valid_done) << "valid layouts come first";
      RunConfig c = k.config;
      EXPECT_NO_THROW(validate_layout(c, 8)) << describe(c);
      EXPECT_NO_THROW(Gpt::check_tp(c.model, c.parallel.tp)) << describe(c);
      EXPECT_LE(k.prediction.memory.total(), cl.device_memory) << describe(c);
      EXPECT_GT(k.prediction.tokens_per_s, 0);
      continue;
    }
    valid_done = true;
    const bool div = k.rejected.rfind("divisibility: ", 0) == 0, mem = k.rejected.rfind("memory: ", 0) == 0;
    EXPECT_TRUE(div || mem) << k.rejected;
    if (k.config.parallel.tp == 4) {  // 6 heads do not split over 4 ranks
      EXPECT_NE(k.rejected.find("model.heads (6) is not divisible by parallel.tp (4)"), std::string::npos)
          << k.rejected;
      seen_heads = true;
    }
  }
  EXPECT_TRUE(seen_heads);
  for (std::size_t i = 1; i < all.size() && all[i].rejected.empty(); ++i)
    EXPECT_GE(all[i - 1].prediction.tokens_per_s, all[i].prediction.tokens_per_s);
}

TEST(PlanSearch, MemoryRejectionsNameTheLargestTerm) {
  RunConfig c = model(8);
  c.train.micro_batch = 32, c.train.recompute = "none", c.parallel.dp = 1;
  c.train.attention = "dense";  // its (b, a, s, s) tensors make activations the largest term
  Prediction p;
  const std::string why = check_layout(c, synthetic(1), 1, {}, &p);
  EXPECT_EQ(why.rfind("memory: stage 0 needs", 0), 0u) << why;
  EXPECT_NE(why.find("largest term activations"), std::string::npos) << why;
  EXPECT_GT(p.memory.total(), 1.0 * (1 << 30));
  // Full recompute keeps only each layer's input (the f32 logits of 32 x 1024 tokens stay).
  RunConfig full = c;
  full.train.recompute = "full";
  Prediction pf;
  EXPECT_EQ(check_layout(full, synthetic(16), 1, {}, &pf), "");
  EXPECT_LT(pf.memory.activations, p.memory.activations / 2);
}

TEST(PlanSearch, FindsTheKnownBestLayout) {
  // A small model that fits one device, 4 devices in one node: tensor parallelism adds
  // collectives to every layer, pipeline parallelism a bubble, recompute compute; data
  // parallelism only the gradient all-reduce, which overlaps backward. The winner is dp 4,
  // no recompute.
  RunConfig c = model(8);
  c.model.layers = 4, c.model.channels = 256, c.model.seq_len = 256;
  Cluster one_node = synthetic();
  one_node.devices_per_node = 4;
  const auto all = search_layouts(c, one_node, 4);
  ASSERT_TRUE(all.front().rejected.empty());
  const RunConfig& best = all.front().config;
  EXPECT_EQ(best.parallel.dp, 4) << describe(best);
  EXPECT_EQ(best.train.recompute, "none") << describe(best);
  // Nodes of 2 with a slow link between them: the 64 MB gradient all-reduce over it costs
  // more than a pipeline's bubble, so the winner keeps dp x tp inside a node and crosses
  // nodes only with small pipeline messages.
  const auto two_nodes = search_layouts(c, synthetic(), 4);
  const RunConfig& best2 = two_nodes.front().config;
  EXPECT_LE(best2.parallel.dp * best2.parallel.tp, 2) << describe(best2);
  EXPECT_EQ(best2.parallel.pp, 2) << describe(best2);
}

}  // namespace
}  // namespace loom::plan
