// tests/unit/test_plan_collectives.cpp — plan/collectives.h (alpha-beta ring costs, the
// link a group crosses) and plan/cluster.h (the shipped cluster files, JSON round trip,
// errors naming the field).
#include <gtest/gtest.h>

#include "core/error.h"
#include "plan/cluster.h"
#include "plan/collectives.h"

namespace loom::plan {
namespace {

const Link kLink{.bandwidth = 100e9, .latency = 1e-5, .efficiency = 1};

TEST(PlanCollectives, RingFormulas) {
  const double n = 1e9;
  // 8 ranks: 2 x 7 steps of alpha, 2 x 7/8 of the bytes at 100 GB/s.
  EXPECT_DOUBLE_EQ(all_reduce_time(n, 8, kLink), 14 * 1e-5 + 2 * 7.0 / 8 * n / 100e9);
  EXPECT_DOUBLE_EQ(all_gather_time(n, 8, kLink), 7 * 1e-5 + 7.0 / 8 * n / 100e9);
  EXPECT_DOUBLE_EQ(reduce_scatter_time(n, 8, kLink), all_gather_time(n, 8, kLink));
  // An all-reduce is a reduce-scatter then an all-gather (what sequence parallelism does).
  EXPECT_DOUBLE_EQ(all_reduce_time(n, 4, kLink),
                   reduce_scatter_time(n, 4, kLink) + all_gather_time(n, 4, kLink));
  EXPECT_DOUBLE_EQ(p2p_time(n, kLink), 1e-5 + 0.01);
  EXPECT_EQ(all_reduce_time(n, 1, kLink), 0);
  EXPECT_EQ(all_gather_time(n, 1, kLink), 0);
  Link slow = kLink;
  slow.efficiency = 0.5;
  EXPECT_DOUBLE_EQ(p2p_time(n, slow), 1e-5 + 0.02);
}

TEST(PlanCollectives, GroupsCrossNodesWhenTheyOutgrowOne) {
  Cluster c;
  c.devices_per_node = 8;
  c.intra_node = kLink;
  c.inter_node = {.bandwidth = 25e9, .latency = 1e-5};
  EXPECT_EQ(&group_link(c, 8, 1), &c.intra_node);   // tp 8
  EXPECT_EQ(&group_link(c, 2, 4), &c.intra_node);   // dp 2 over tp 4
  EXPECT_EQ(&group_link(c, 2, 8), &c.inter_node);   // dp 2 over tp 8
  EXPECT_EQ(&group_link(c, 16, 1), &c.inter_node);  // tp 16
}

TEST(PlanCluster, ShippedFilesHoldThePublishedFigures) {
  const Cluster a = load_cluster(LOOM_SOURCE_DIR "/plan/clusters/a100-80gb.json");
  EXPECT_EQ(a.devices_per_node, 8);
  EXPECT_DOUBLE_EQ(a.peak(DType::bf16), 312e12);
  EXPECT_DOUBLE_EQ(a.intra_node.bandwidth, 300e9);
  EXPECT_DOUBLE_EQ(a.inter_node.bandwidth, 25e9);  // 200 Gb/s per GPU
  const Cluster h = load_cluster(LOOM_SOURCE_DIR "/plan/clusters/h100-80gb.json");
  EXPECT_DOUBLE_EQ(h.peak(DType::bf16), 989e12);
  EXPECT_DOUBLE_EQ(h.intra_node.bandwidth, 450e9);
  EXPECT_DOUBLE_EQ(h.inter_node.bandwidth, 50e9);  // 400 Gb/s per GPU
  EXPECT_FALSE(h.sources.empty());
}

TEST(PlanCluster, JsonRoundTripAndErrors) {
  Cluster a = load_cluster(LOOM_SOURCE_DIR "/plan/clusters/a100-80gb.json");
  a.gemm_rates.push_back({.m = 512, .n = 768, .k = 768, .flops = 5e10});
  a.attention_rates.push_back({.s = 1024, .d = 64, .causal = false, .forward = 3e10, .backward = 2e10});
  const Cluster b = parse_cluster(to_json(a));
  EXPECT_EQ(b.name, a.name);
  EXPECT_NEAR(b.device_memory, a.device_memory, 1);
  EXPECT_NEAR(b.inter_node.latency, a.inter_node.latency, 1e-12);
  ASSERT_EQ(b.gemm_rates.size(), 1u);
  EXPECT_NEAR(b.gemm_rates[0].flops, 5e10, 1);
  ASSERT_EQ(b.attention_rates.size(), 1u);
  EXPECT_EQ(b.attention_rates[0].s, 1024);
  EXPECT_EQ(b.attention_rates[0].d, 64);
  EXPECT_FALSE(b.attention_rates[0].causal);
  EXPECT_NEAR(b.attention_rates[0].forward, 3e10, 1);
  EXPECT_NEAR(b.attention_rates[0].backward, 2e10, 1);
  try {
    parse_cluster(R"({"devices_per_node": 8})", "x.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("device_memory_GiB"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_cluster("/nonexistent/cluster.json"), Error);
}

}  // namespace
}  // namespace loom::plan
