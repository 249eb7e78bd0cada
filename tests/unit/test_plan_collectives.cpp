// tests/unit/test_plan_collectives.cpp — plan/collectives.h (alpha-beta ring costs, the
// link a group crosses) and plan/cluster.h (the shipped cluster files, JSON round trip,
// errors naming the field).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

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
  c.inter_node = {.bandwidth = 10e9, .latency = 2e-5, .efficiency = 0.5};
  EXPECT_EQ(group_link(c, 8, 1).bandwidth, 100e9);  // tp 8: NVLink
  EXPECT_EQ(group_link(c, 2, 4).bandwidth, 100e9);  // dp 2 over tp 4
  // Multi-rail: a group spanning nodes uses the NICs of its ranks on each node.
  EXPECT_EQ(ranks_per_node(c, 2, 8), 1);
  EXPECT_EQ(group_link(c, 2, 8).bandwidth, 10e9);   // dp 2 over tp 8: one rank a node, one NIC
  EXPECT_EQ(ranks_per_node(c, 48, 2), 4);
  EXPECT_EQ(group_link(c, 48, 2).bandwidth, 40e9);  // dp 48 over tp 2: four NICs
  EXPECT_EQ(ranks_per_node(c, 16, 1), 8);
  EXPECT_EQ(group_link(c, 16, 1).bandwidth, 80e9);  // tp 16: eight NICs
  EXPECT_EQ(group_link(c, 16, 1).latency, 2e-5);    // the inter-node latency and efficiency
  EXPECT_EQ(group_link(c, 16, 1).efficiency, 0.5);
  c.inter_node.bandwidth = 25e9;                    // 8 x 25 GB/s > NVLink's 100: capped
  EXPECT_EQ(group_link(c, 16, 1).bandwidth, 100e9);
  // A pipeline message is one connection, one NIC, however many ranks share the node.
  EXPECT_EQ(p2p_link(c, 16, 1).bandwidth, 25e9);
  EXPECT_EQ(p2p_link(c, 4, 2).bandwidth, 100e9);    // pp 4 over 2: one node
  // Time: the 48-rank all-reduce over four NICs takes a quarter of the one-NIC time
  // (beyond the latency), what nccl-tests' busbw on a rail-optimised node shows.
  c.inter_node.bandwidth = 10e9;
  Link one = c.inter_node;
  const double n = 1e9, lat = 2 * 47 * 2e-5;
  EXPECT_NEAR(all_reduce_time(n, 48, group_link(c, 48, 2)) - lat, (all_reduce_time(n, 48, one) - lat) / 4, 1e-12);
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
  a.gemm_rates.push_back({.m = 768, .n = 768, .k = 512, .flops = 4e10, .pass = GemmPass::weight_grad});
  a.attention_rates.push_back({.s = 1024, .d = 64, .causal = false, .forward = 3e10, .backward = 2e10});
  const Cluster b = parse_cluster(to_json(a));
  EXPECT_EQ(b.name, a.name);
  EXPECT_NEAR(b.device_memory, a.device_memory, 1);
  EXPECT_NEAR(b.inter_node.latency, a.inter_node.latency, 1e-12);
  ASSERT_EQ(b.gemm_rates.size(), 2u);
  EXPECT_NEAR(b.gemm_rates[0].flops, 5e10, 1);
  EXPECT_EQ(b.gemm_rates[0].pass, GemmPass::forward);
  EXPECT_EQ(b.gemm_rates[1].pass, GemmPass::weight_grad);
  EXPECT_NEAR(b.gemm_rates[1].flops, 4e10, 1);
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
  // A rate without "pass" (files from before passes were measured apart) is a forward one;
  // a pass loom does not know is an error naming it.
  nlohmann::json j = nlohmann::json::parse(to_json(a));
  j["gemm_rates"][1].erase("pass");
  EXPECT_EQ(parse_cluster(j.dump()).gemm_rates[1].pass, GemmPass::forward);
  j["gemm_rates"][1]["pass"] = "backward";
  try {
    parse_cluster(j.dump(), "x.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'backward'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace loom::plan
