// tests/unit/test_plan_predictor.cpp — plan/predictor.h's bookkeeping: the split sums to
// the step, MFU / HFU / tokens/s follow from it, each term appears exactly when its
// parallelism does (tp comm with tp > 1, the bubble with pp > 1, shrinking v-fold with
// interleaving, dp comm with dp > 1, hidden by overlap), recompute costs time, and the
// roofline makes a skinny GEMM memory-bound; Megatron-Core's overlaps (tp, p2p, parameter
// gather) hide exactly what they claim to, and a causal tiled kernel scores half the keys.
// On a calibrated machine, a weight GEMM's backward runs at the rates of its dX and dW
// shapes, and a measured attention rate replaces the core's GEMMs and bytes. On a CPU
// cluster the measured library memory (HDF5's first use, MPI_Iallreduce's temporaries per
// gradient byte) counts exactly where loom-train incurs it.
#include <gtest/gtest.h>

#include <algorithm>
#include <tuple>

#include "plan/loom_memory.h"

#include "plan/collectives.h"
#include "plan/predictor.h"

namespace loom::plan {
namespace {

Cluster a100() { return load_cluster(LOOM_SOURCE_DIR "/plan/clusters/a100-80gb.json"); }

RunConfig gpt(int tp, int pp, int dp, int v = 1) {
  RunConfig c;
  c.model.layers = 24, c.model.channels = 2048, c.model.heads = 16, c.model.vocab = 51200,
  c.model.seq_len = 2048;
  c.train.global_batch = 64 * dp, c.train.micro_batch = 1, c.train.precision = "bf16";
  c.parallel.tp = tp, c.parallel.pp = pp, c.parallel.dp = dp, c.parallel.virtual_stages = v;
  return c;
}

TEST(PlanPredictor, SplitSumsToTheStepAndRatesFollow) {
  const RunConfig c = gpt(2, 2, 2);
  const Prediction p = predict(c, a100());
  EXPECT_DOUBLE_EQ(p.step_time, p.split.total());
  EXPECT_DOUBLE_EQ(p.tokens_per_s, 128.0 * 2048 / p.step_time);
  EXPECT_NEAR(p.mfu, model_flops_per_step(c) / (p.step_time * 8 * 312e12), 1e-12);
  EXPECT_GT(p.split.compute, 0);
  EXPECT_GT(p.split.tp_comm, 0);
  EXPECT_GT(p.split.pp_bubble, 0);
  EXPECT_GT(p.split.pp_p2p, 0);
}

TEST(PlanPredictor, TermsAppearWithTheirParallelism) {
  const Prediction one = predict(gpt(1, 1, 1), a100());
  EXPECT_EQ(one.split.tp_comm, 0);
  EXPECT_EQ(one.split.pp_bubble, 0);
  EXPECT_EQ(one.split.pp_p2p, 0);
  EXPECT_EQ(one.split.dp_comm, 0);
  // The bubble is (p-1)/m of the mean stage's time (the steady state runs at the slowest,
  // the last with the logits); interleaving divides it by v (up to its twice as many p2p).
  const Prediction pp = predict(gpt(1, 4, 1), a100()), pp2 = predict(gpt(1, 4, 1, 2), a100());
  const double steady = pp.split.compute + pp.split.pp_p2p;
  EXPECT_LT(pp.split.pp_bubble, 3.0 / 64 * steady);
  EXPECT_GT(pp.split.pp_bubble, 0.8 * 3.0 / 64 * steady);
  EXPECT_NEAR(pp2.split.pp_bubble, pp.split.pp_bubble / 2, 0.01 * pp.split.pp_bubble);
}

TEST(PlanPredictor, DataParallelReductionOverlapsBackward) {
  const Cluster cl = a100();
  const RunConfig c = gpt(1, 1, 8);
  const Prediction overlapped = predict(c, cl), exposed = predict(c, cl, {.dp_overlap = false});
  const double n = double(stage_parameters(c, 0));
  EXPECT_NEAR(exposed.split.dp_comm, all_reduce_time(4 * n, 8, cl.intra_node), 1e-12);
  EXPECT_LT(overlapped.split.dp_comm, exposed.split.dp_comm);
  // ZeRO-1: a reduce-scatter of the gradients and an all-gather of the bf16 parameters;
  // the optimizer touches an eighth of the state.
  RunConfig z = c;
  z.optim.zero = 1;
  const Prediction zp = predict(z, cl, {.dp_overlap = false});
  EXPECT_NEAR(zp.split.dp_comm,
              reduce_scatter_time(4 * n, 8, cl.intra_node) + all_gather_time(2 * n, 8, cl.intra_node), 1e-12);
  EXPECT_LT(zp.split.optimizer, exposed.split.optimizer);
}

TEST(PlanPredictor, RecomputeCostsTime) {
  RunConfig c = gpt(2, 1, 1);
  const double none = predict(c, a100()).step_time;
  c.train.recompute = "attention";
  const double attention = predict(c, a100()).step_time;
  c.train.recompute = "full";
  const double full = predict(c, a100()).step_time;
  EXPECT_EQ(none, attention) << "the tiled kernel (the default) has no probabilities to recompute";
  EXPECT_LT(attention, full);
  // The dense kernel's selective recompute reruns the attention core.
  c.train.attention = "dense";
  c.train.recompute = "none";
  const double dense_none = predict(c, a100()).step_time;
  c.train.recompute = "attention";
  const double dense_attention = predict(c, a100()).step_time;
  c.train.recompute = "full";
  const double dense_full = predict(c, a100()).step_time;
  EXPECT_LT(dense_none, dense_attention);
  EXPECT_LT(dense_attention, dense_full);
  EXPECT_GT(dense_full / dense_none, 1.25);  // about 4/3 of the compute
}

TEST(PlanPredictor, RooflineGemms) {
  const Cluster cl = a100();
  // Large and square: compute-bound at gemm_efficiency of the peak.
  const double big = 8192;
  EXPECT_NEAR(gemm_time(cl, DType::bf16, big, big, big), 2 * big * big * big / (312e12 * cl.gemm_efficiency),
              1e-6);
  // K = 64: 2 M N K flops over (M N) x 2 bytes of output: memory-bound.
  const double m = 8192, n = 8192, k = 64;
  EXPECT_NEAR(gemm_time(cl, DType::bf16, m, n, k),
              (m * k + k * n + m * n) * 2 / (2039e9 * cl.memory_efficiency), 1e-9);
}

TEST(PlanPredictor, OverlapsHideWhatTheyClaim) {
  const Cluster cl = a100();
  // h = 8192 over tp 4 x dp 2 (one node): a layer's sp collectives are shorter than the
  // GEMMs they feed, and a stage's first forward longer than its parameter all-gather.
  RunConfig c = gpt(4, 4, 2, 2);
  c.model.channels = 8192, c.model.heads = 64;
  c.train.attention = "tiled", c.parallel.sequence_parallel = true, c.optim.zero = 1;
  const SoftwareModel base{.p2p_split_over_tp = true};
  const Prediction plain = predict(c, cl, base);
  // tp: only the last stage's (the slowest: the logits) three loss all-reduces per
  // micro-batch stay; compute does not move.
  SoftwareModel tp = base;
  tp.tp_overlap = true;
  const Prediction t = predict(c, cl, tp);
  EXPECT_GT(plain.split.tp_comm, 0);
  EXPECT_NEAR(t.split.tp_comm, 64 * 3 * all_reduce_time(4 * 2048, 4, cl.intra_node), 1e-12);
  EXPECT_DOUBLE_EQ(t.split.compute, plain.split.compute);
  // p2p: the pipeline messages vanish from the steady state.
  SoftwareModel p2p = base;
  p2p.p2p_overlap = true;
  EXPECT_GT(plain.split.pp_p2p, 0);
  EXPECT_EQ(predict(c, cl, p2p).split.pp_p2p, 0);
  // ZeRO-1's parameter all-gather under the next forward: one layer's share (1/6 of stage
  // 0's 6 layers) stays exposed.
  SoftwareModel gather = base;
  gather.param_gather_overlap = true;
  const Prediction g = predict(c, cl, gather);
  const double ag = all_gather_time(double(stage_parameters(c, 0)) * 2, 2, cl.intra_node);
  EXPECT_NEAR(plain.split.dp_comm - g.split.dp_comm, ag - ag / 6, 1e-12);
}

TEST(PlanPredictor, ChunkGradSyncQueuesThroughTheCooldown) {
  // Megatron-Core's interleaved schedule (SoftwareModel::chunk_grad_sync): chunk k's reduction
  // starts k p chunk-backwards before the end and they run in turn, so stage 0 exposes
  // r_0 + max(0, (v-1)(r - p b)); with ZeRO-1 the parameter all-gathers chain chunk by chunk,
  // chunk 0's exposed, chunk j's under p forwards of chunk j-1. One device a node: dp 2
  // crosses nodes on one NIC. 8 layers, pp 2, v 2: two layers a chunk.
  Cluster cl = a100();
  cl.devices_per_node = 1;
  const auto with = [](int pp, int v) {
    RunConfig c = gpt(1, pp, 2, v);
    c.model.layers = 8, c.train.attention = "dense";  // backward = 2 x forward exactly
    return c;
  };
  const SoftwareModel chunked{.dp_overlap = true, .chunk_grad_sync = true};
  const double h = 2048, layer = 12 * h * h + 13 * h;  // GPT-2 layer: qkv, proj, fc1, fc2, 2 layernorms
  // One layer's backward b, from the unpipelined run, whose reduction hides behind the last
  // micro-batch's backward: exposed = R - 8 b (R far longer than 8 b on 20 GB/s).
  const RunConfig flat = with(1, 1);
  const double R = all_reduce_time(4 * double(stage_parameters(flat, 0)), 2, cl.inter_node);
  const double b = (R - predict(flat, cl, chunked).split.dp_comm) / 8;
  ASSERT_GT(b, 0);
  const RunConfig c = with(2, 2);
  const double n0 = double(stage_parameters(c, 0)) - 2 * layer;  // chunk 0: embedding + 2 layers
  const double r0 = all_reduce_time(4 * n0, 2, cl.inter_node), r = all_reduce_time(4 * 2 * layer, 2, cl.inter_node);
  ASSERT_GT(r, 2 * 2 * b);  // queue-bound: the cooldown's 2 chunk-backwards do not cover chunk 1
  EXPECT_NEAR(predict(c, cl, chunked).split.dp_comm, r0 + (r - 2 * 2 * b), 1e-9);
  // v 4 (16 layers): three chunks queue behind chunk 0's, each 2 x 2 backwards hidden.
  RunConfig c4 = with(2, 4);
  c4.model.layers = 16;
  const double n04 = double(stage_parameters(c4, 0)) - 3 * 2 * layer;
  EXPECT_NEAR(predict(c4, cl, chunked).split.dp_comm,
              all_reduce_time(4 * n04, 2, cl.inter_node) + 3 * (r - 2 * 2 * b), 1e-9);
  // A 10x faster NIC: every chunk but the last hides, chunk 0's reduction stays.
  Cluster fast = cl;
  fast.inter_node.bandwidth *= 10;
  ASSERT_LT(all_reduce_time(4 * 2 * layer, 2, fast.inter_node), 2 * 2 * b);
  EXPECT_NEAR(predict(c, fast, chunked).split.dp_comm, all_reduce_time(4 * n0, 2, fast.inter_node), 1e-9);
  // ZeRO-1: a reduce-scatter, and the bf16 gathers: chunk 0's, then chunk 1's beyond p = 2
  // forwards of chunk 0 (a forward is b / 2).
  RunConfig z = c;
  z.optim.zero = 1;
  SoftwareModel gathered = chunked;
  gathered.param_gather_overlap = true;
  const double rs0 = reduce_scatter_time(4 * n0, 2, cl.inter_node), rs = reduce_scatter_time(4 * 2 * layer, 2, cl.inter_node);
  const double g0 = all_gather_time(2 * n0, 2, cl.inter_node), g = all_gather_time(2 * 2 * layer, 2, cl.inter_node);
  EXPECT_NEAR(predict(z, cl, gathered).split.dp_comm,
              rs0 + std::max(0.0, rs - 2 * 2 * b) + g0 + std::max(0.0, g - 2 * (2 * b / 2)), 1e-9);
  // Off (loom; Megatron's 1F1B): the whole stage's reduction behind the last backward.
  const double stage_r = all_reduce_time(4 * double(stage_parameters(c, 0)), 2, cl.inter_node);
  EXPECT_NEAR(predict(c, cl, {.dp_overlap = true}).split.dp_comm, stage_r - 4 * b, 1e-9);
}

TEST(PlanPredictor, CausalTiledAttentionScoresHalfTheKeys) {
  // The attention core's forward: 2 GEMMs of b a/t heads x (s, keys, h/a) flops each. A
  // causal tiled kernel skips the key tiles above the diagonal: keys = (s + 128) / 2; the
  // dense kernel and a bidirectional (bert) model score all s. Long s so the core matters.
  Cluster cl = a100();
  cl.kernel_overhead = 0;
  RunConfig c = gpt(1, 1, 1);
  c.model.seq_len = 8192, c.model.layers = 1, c.model.heads = 8;  // head size 256: compute-bound core
  c.train.attention = "tiled", c.train.global_batch = 1;
  auto compute = [&](const RunConfig& rc) { return predict(rc, cl).split.compute; };
  RunConfig bert = c;
  bert.model.family = "bert";
  // Forward, backward (2x) and the tiled backward's recomputed scores (one GEMM): 3.5
  // forward core GEMMs, each 2 s keys h flops at peak x gemm_efficiency.
  const double per_key = 3.5 * 2 * 2 * 8192.0 * 2048 / (312e12 * cl.gemm_efficiency);
  EXPECT_NEAR(compute(bert) - compute(c), per_key * (8192 - (8192 + 128) / 2.0), 1e-3 * per_key * 4096);
}

// A calibrated CPU-like cluster: no links needed (one rank), f32 GEMMs at measured rates.
Cluster calibrated(std::vector<GemmRate> gemms, std::vector<AttentionRate> attention = {}) {
  Cluster cl = a100();
  cl.gemm_rates = std::move(gemms), cl.gemm_rates_dtype = "fp32";
  cl.attention_rates = std::move(attention);
  cl.kernel_overhead = 0;
  return cl;
}

RunConfig small_f32() {
  RunConfig c = gpt(1, 1, 1);
  c.model.layers = 1, c.model.channels = 256, c.model.heads = 8, c.model.vocab = 256, c.model.seq_len = 128;
  c.train.global_batch = 4, c.train.micro_batch = 4, c.train.precision = "fp32", c.train.attention = "tiled";
  return c;
}

TEST(PlanPredictor, WeightGradientsRunAtTheirOwnShapes) {
  // Every weight's forward shape (M, N, K) measured at 100 GFLOP/s, every backward shape
  // (dX (M, K, N), dW (N, K, M)) that is no forward shape at a "slow" rate. Changing only
  // the slow rate must move the step by exactly those backward GEMMs' FLOPs over the rate
  // (fc's dX is fc2's forward shape, (M, h, F), so it runs at the fast rate).
  const RunConfig c = small_f32();
  const double M = 4 * 128, h = 256, F = 1024, qkv = 768, V = 256;
  const std::vector<std::pair<double, double>> weights{{qkv, h}, {h, h}, {F, h}, {h, F}, {V, h}};
  using S = std::tuple<double, double, double>;
  std::vector<S> forward;
  for (auto [n, k] : weights) forward.emplace_back(M, n, k);
  auto is_forward = [&](S x) { return std::find(forward.begin(), forward.end(), x) != forward.end(); };
  double slow_flops = 0;
  std::vector<S> slow;
  for (auto [n, k] : weights)
    for (S x : {S{M, k, n}, S{n, k, M}})
      if (!is_forward(x)) {
        slow_flops += 2 * M * n * k;
        if (std::find(slow.begin(), slow.end(), x) == slow.end()) slow.push_back(x);
      }
  auto with = [&](double slow_rate) {
    std::vector<GemmRate> all;
    for (auto [m, n, k] : forward) all.push_back({.m = m, .n = n, .k = k, .flops = 100e9});
    for (auto [m, n, k] : slow) all.push_back({.m = m, .n = n, .k = k, .flops = slow_rate});
    // The attention core from a measured rate, so that no core GEMM takes a weight's shape.
    return predict(c, calibrated(all, {{.s = 128, .d = 32, .causal = true, .forward = 1e10, .backward = 1e10}}))
        .split.compute;
  };
  // m = 1 micro-batch, one layer, the logits on the same stage.
  EXPECT_NEAR(with(25e9) - with(50e9), slow_flops / 25e9 - slow_flops / 50e9, 1e-9);
}

TEST(PlanPredictor, EachPassTakesItsOwnMeasuredRate) {
  // Every weight GEMM measured at the same shapes in all three passes (forward, dx, dw);
  // slowing only the dw rates moves the step by exactly the weight gradients' FLOPs (the
  // five weights incl. the tied head: 2 M n k each) over the changed rate; forward and dx
  // entries at the very same shapes must not be taken instead.
  const RunConfig c = small_f32();
  const double M = 4 * 128, h = 256, F = 1024, qkv = 768, V = 256;
  const std::vector<std::pair<double, double>> weights{{qkv, h}, {h, h}, {F, h}, {h, F}, {V, h}};
  double dw_flops = 0;
  for (auto [n, k] : weights) dw_flops += 2 * M * n * k;
  auto with = [&](double dw_rate) {
    std::vector<GemmRate> all;
    for (auto [n, k] : weights)
      for (auto [m, nn, kk] : {std::tuple{M, n, k}, {M, k, n}, {n, k, M}})
        for (GemmPass p : {GemmPass::forward, GemmPass::data_grad, GemmPass::weight_grad})
          all.push_back(
              {.m = m, .n = nn, .k = kk, .flops = p == GemmPass::weight_grad ? dw_rate : 100e9, .pass = p});
    return predict(c,
                   calibrated(all, {{.s = 128, .d = 32, .causal = true, .forward = 1e10, .backward = 1e10}}))
        .split.compute;
  };
  EXPECT_NEAR(with(25e9) - with(50e9), dw_flops / 25e9 - dw_flops / 50e9, 1e-9);
}

TEST(PlanPredictor, MeasuredAttentionReplacesTheCore) {
  // Forward 4 s k d and backward 8 s k d FLOPs per (sequence, head), k = (s + 128) / 2 keys
  // for the causal tiled kernel (here s = 128: all 128), over the measured rates.
  RunConfig c = small_f32();
  const std::vector<GemmRate> g{{.m = 512, .n = 768, .k = 256, .flops = 100e9}};
  const double base = predict(c, calibrated(g)).split.compute;
  const double flops = 4 * 8 * 4.0 * 128 * 128 * 32;  // 4 sequences x 8 heads
  auto core = [&](double fwd, double bwd) {
    return predict(c, calibrated(g, {{.s = 128, .d = 32, .causal = true, .forward = fwd, .backward = bwd}}))
        .split.compute;
  };
  EXPECT_NEAR(core(10e9, 5e9) - core(20e9, 10e9), flops / 20e9 + 2 * flops / 10e9, 1e-9);
  EXPECT_NE(core(10e9, 5e9), base);
  // A rate of the other mask is not used: bert's bidirectional core falls back to its GEMMs.
  c.model.family = "bert";
  const double bert = predict(c, calibrated(g)).split.compute;
  EXPECT_DOUBLE_EQ(
      predict(c, calibrated(g, {{.s = 128, .d = 32, .causal = true, .forward = 1e9, .backward = 1e9}})).split.compute,
      bert);
  // The dense kernel is not the measured one either.
  c.model.family = "gpt", c.train.attention = "dense";
  const double dense = predict(c, calibrated(g)).split.compute;
  EXPECT_DOUBLE_EQ(
      predict(c, calibrated(g, {{.s = 128, .d = 32, .causal = true, .forward = 1e9, .backward = 1e9}})).split.compute,
      dense);
}

TEST(PlanPredictor, CpuClusterCountsTheMeasuredLibraryMemory) {
  Cluster cpu = parse_cluster(R"({"name": "cpu", "devices_per_node": 2, "device_memory_GiB": 8,
      "peak_bf16_TFLOP_per_s": 0.1, "peak_fp32_TFLOP_per_s": 0.1, "memory_bandwidth_GB_per_s": 10,
      "intra_node": {"bandwidth_GB_per_s": 1, "latency_us": 1}, "inter_node": {"bandwidth_GB_per_s": 1, "latency_us": 1},
      "device": "cpu", "process_resident_MiB": 30, "hdf5_resident_MiB": 2, "iallreduce_temp_per_byte": 0.5})");
  EXPECT_DOUBLE_EQ(cpu.hdf5_resident, 2.0 * (1 << 20));
  EXPECT_DOUBLE_EQ(parse_cluster(to_json(cpu)).iallreduce_temp_per_byte, 0.5);  // round trip
  RunConfig c;
  c.model.layers = 2, c.model.channels = 64, c.model.heads = 4, c.model.vocab = 256, c.model.seq_len = 32;
  c.train.global_batch = 8, c.train.micro_batch = 2, c.parallel.dp = 1;
  auto gradient_bytes = [](const RunConfig& r) {
    for (auto& [n, b] : loom_rank_memory(r, 0).items)
      if (n == "gradients (f32)") return double(b);
    return 0.0;
  };
  Cluster bare = cpu;
  bare.hdf5_resident = 0, bare.iallreduce_temp_per_byte = 0;
  // dp 1: no reduction, HDF5's first use only.
  EXPECT_DOUBLE_EQ(loom_memory(c, 0, cpu).host - loom_memory(c, 0, bare).host, 2.0 * (1 << 20));
  // dp 2: every bucket in flight at once, f32 (and bf16: half the bytes).
  c.parallel.dp = 2;
  EXPECT_DOUBLE_EQ(loom_memory(c, 0, cpu).host - loom_memory(c, 0, bare).host,
                   2.0 * (1 << 20) + 0.5 * gradient_bytes(c));
  c.parallel.grad_reduce_dtype = "bf16", c.train.precision = "bf16";
  EXPECT_DOUBLE_EQ(loom_memory(c, 0, cpu).host - loom_memory(c, 0, bare).host,
                   2.0 * (1 << 20) + 0.5 * gradient_bytes(c) / 2);
  // ZeRO-1 reduce-scatters (not measured, not counted); a GPU cluster counts no host memory.
  c.optim.zero = 1;
  EXPECT_DOUBLE_EQ(loom_memory(c, 0, cpu).host - loom_memory(c, 0, bare).host, 2.0 * (1 << 20));
  EXPECT_DOUBLE_EQ(loom_memory(c, 0, a100()).host, 0.0);
  // The tiled attention kernel's first-use memory (measured for one model): counted for the
  // tiled kernel only.
  Cluster with_attention = cpu;
  with_attention.attention_resident = 3.0 * (1 << 20);
  EXPECT_DOUBLE_EQ(parse_cluster(to_json(with_attention)).attention_resident, 3.0 * (1 << 20));
  c.train.attention = "tiled";
  EXPECT_DOUBLE_EQ(loom_memory(c, 0, with_attention).host - loom_memory(c, 0, cpu).host, 3.0 * (1 << 20));
  c.train.attention = "dense";
  EXPECT_DOUBLE_EQ(loom_memory(c, 0, with_attention).host, loom_memory(c, 0, cpu).host);
  EXPECT_THROW(parse_cluster(
                   R"({"name": "x", "devices_per_node": 1, "device_memory_GiB": 8, "peak_bf16_TFLOP_per_s": 1,
      "peak_fp32_TFLOP_per_s": 1, "memory_bandwidth_GB_per_s": 1, "intra_node": {"bandwidth_GB_per_s": 1, "latency_us": 1},
      "inter_node": {"bandwidth_GB_per_s": 1, "latency_us": 1}, "hdf5_resident_MiB": -1})"),
               Error);
}

}  // namespace
}  // namespace loom::plan
