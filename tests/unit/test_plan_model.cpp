// tests/unit/test_plan_model.cpp — plan/model_cost.h against loom and the closed forms.
//
// FLOPs per step equal Gpt::flops_per_token x tokens, and Narayanan et al.'s 72 / 96 b s l
// h^2 (...) forms; activation bytes per layer are Korthikanti et al.'s formulas in every
// recompute mode, with and without sequence parallelism; parameters, gradients and
// optimizer state equal the memory plan loom-train prints (Gpt::memory_plan + AdamW's) for a
// small model, in fp32 and bf16; ZeRO-1 divides the optimizer state by dp.
#include <gtest/gtest.h>

#include "backend/registry.h"
#include "layers/gpt.h"
#include "optimizer/adamw.h"
#include "parallel/local_communicator.h"
#include "plan/model_cost.h"

namespace loom::plan {
namespace {

RunConfig small(const std::string& precision = "fp32") {
  RunConfig c;
  c.model.layers = 2, c.model.channels = 64, c.model.heads = 4, c.model.vocab = 100, c.model.seq_len = 16;
  c.train.global_batch = 4, c.train.micro_batch = 2, c.train.precision = precision;
  c.parallel.dp = 1;
  return c;
}

RunConfig gpt3() {  // 175B, Korthikanti et al. Table 3
  RunConfig c;
  c.model.layers = 96, c.model.channels = 12288, c.model.heads = 96, c.model.vocab = 51200,
  c.model.seq_len = 2048;
  c.train.global_batch = 64, c.train.micro_batch = 1, c.train.precision = "bf16";
  c.parallel.tp = 8, c.parallel.pp = 8, c.parallel.dp = 1;
  return c;
}

std::size_t plan_bytes(const MemoryPlan& p, const std::string& prefix) {
  std::size_t n = 0;
  for (auto& [name, bytes] : p.items)
    if (name.rfind(prefix, 0) == 0) n += bytes;
  return n;
}

TEST(PlanModel, FlopsEqualGptFlopsPerToken) {
  auto be = make_backend(Device::cpu);
  const RunConfig c = small();
  Gpt model(*be, c.model, c.train.micro_batch, c.model.seq_len);
  const double tokens = double(c.train.global_batch * c.model.seq_len);
  EXPECT_NEAR(model_flops_per_step(c), model.flops_per_token() * tokens, 1e-9 * model_flops_per_step(c));
  // A Llama-style decoder: SwiGLU's three matrices and grouped-query attention's smaller qkv.
  RunConfig l = small();
  l.model.mlp = "swiglu", l.model.kv_heads = 1, l.model.norm = "rmsnorm", l.model.positions = "rope";
  Gpt llama(*be, l.model, l.train.micro_batch, l.model.seq_len);
  EXPECT_NEAR(model_flops_per_step(l), llama.flops_per_token() * tokens, 1e-9 * model_flops_per_step(l));
  EXPECT_NE(model_flops_per_step(l), model_flops_per_step(c));  // (kv_heads 2 would tie: -4096 in qkv, +4096 in the MLP)
}

TEST(PlanModel, FlopsAreNarayanansClosedForms) {
  RunConfig c = gpt3();
  c.train.attention = "dense";  // the papers' attention
  const double B = 64, s = 2048, l = 96, h = 12288, V = 51200;
  EXPECT_NEAR(model_flops_per_step(c), 72 * B * s * l * h * h * (1 + s / (6 * h) + V / (12 * l * h)), 1e3);
  c.train.recompute = "full";
  EXPECT_NEAR(hardware_flops_per_step(c), 96 * B * s * l * h * h * (1 + s / (6 * h) + V / (16 * l * h)), 1e3);
  c.train.recompute = "attention";  // + the attention core's forward, 4 b s^2 h per layer
  EXPECT_NEAR(hardware_flops_per_step(c) - model_flops_per_step(c), 4 * B * s * s * h * l, 1e3);
}

TEST(PlanModel, ActivationsAreKorthikantisFormulas) {
  RunConfig c = gpt3();
  c.train.attention = "dense";  // the paper's attention, which stores the s x s tensors
  const double s = 2048, b = 1, h = 12288, a = 96, t = 8, sbh = s * b * h;
  auto bytes = [&](const char* rc, bool sp) {
    c.train.recompute = rc, c.parallel.sequence_parallel = sp;
    return layer_activation_bytes(c);
  };
  EXPECT_DOUBLE_EQ(bytes("none", false), sbh * (10 + 24 / t + 5 * a * s / (h * t)));
  EXPECT_DOUBLE_EQ(bytes("none", true), sbh / t * (34 + 5 * a * s / h));
  EXPECT_DOUBLE_EQ(bytes("attention", false), sbh * (10 + 24 / t));
  EXPECT_DOUBLE_EQ(bytes("attention", true), 34 * sbh / t);
  EXPECT_DOUBLE_EQ(bytes("full", false), 2 * sbh);
  EXPECT_DOUBLE_EQ(bytes("full", true), 2 * sbh / t);
  // tp = 1 without sp is the unsplit sbh (34 + 5as/h); fp32 doubles every term.
  c.parallel.tp = 1, c.train.recompute = "none", c.parallel.sequence_parallel = false;
  EXPECT_DOUBLE_EQ(layer_activation_bytes(c), sbh * (34 + 5 * a * s / h));
  c.train.precision = "fp32";
  EXPECT_DOUBLE_EQ(layer_activation_bytes(c), 2 * sbh * (34 + 5 * a * s / h));
}

TEST(PlanModel, TiledAttentionReplacesTheQuadraticTermWithLse) {
  // train.attention tiled (the default): Korthikanti's s^2 term 5as/(ht) sbh is replaced by
  // lse, a s b / t f32 values; recompute attention is none (nothing quadratic to drop).
  RunConfig c = gpt3();
  const double b = 1, h = 12288, a = 96, t = 8;
  for (double s : {1024.0, 2048.0, 8192.0}) {
    c.model.seq_len = std::int64_t(s), c.train.seq_len = 0;
    const double sbh = s * b * h, lse = 4 * a * s * b / t;
    auto bytes = [&](const char* attention, const char* rc, bool sp) {
      c.train.attention = attention, c.train.recompute = rc, c.parallel.sequence_parallel = sp;
      return layer_activation_bytes(c);
    };
    EXPECT_DOUBLE_EQ(bytes("tiled", "none", false), sbh * (10 + 24 / t) + lse);
    EXPECT_DOUBLE_EQ(bytes("tiled", "none", true), 34 * sbh / t + lse);
    EXPECT_DOUBLE_EQ(bytes("tiled", "attention", false), bytes("tiled", "none", false));
    EXPECT_DOUBLE_EQ(bytes("tiled", "full", true), 2 * sbh / t);
    EXPECT_DOUBLE_EQ(bytes("dense", "none", false) - bytes("tiled", "none", false),
                     5 * a * s * s * b / t - lse);
  }
  // FLOPs: the same model FLOPs; the tiled backward recomputes Q K^T (2 b s^2 h per layer),
  // and recompute attention adds nothing more.
  c.model.seq_len = 2048, c.parallel.sequence_parallel = false;
  const double B = 64, s = 2048, l = 96;
  c.train.attention = "tiled", c.train.recompute = "none";
  const double model = model_flops_per_step(c);
  EXPECT_NEAR(hardware_flops_per_step(c) - model, 2 * B * s * s * h * l, 1e3);
  c.train.recompute = "attention";
  EXPECT_NEAR(hardware_flops_per_step(c) - model, 2 * B * s * s * h * l, 1e3);
  // A window w scores s x w: the attention term shrinks by w / s.
  c.train.recompute = "none";
  RunConfig w = c;
  w.model.window = 512;
  EXPECT_NEAR(model - model_flops_per_step(w), 3 * B * l * 4 * s * (s - 512) * h, 1e3);
}

TEST(PlanModel, StageActivationsHoldTheMicroBatchesInFlight) {
  // 1F1B, m >= p: stage 0 holds p micro-batches of its L/p layers, i.e. L layers' worth
  // (Korthikanti et al. section 4.2.3), plus the embedding output.
  RunConfig c = gpt3();
  c.train.recompute = "attention", c.parallel.sequence_parallel = true;
  const double per_layer = layer_activation_bytes(c), sbh_t = 2048.0 * 12288 / 8;
  EXPECT_NEAR(stage_memory(c, 0).activations, 96 * per_layer + 3 * sbh_t * 8, 1);
  // Interleaved: x (1 + (p-1)/(p v)).
  c.parallel.virtual_stages = 3;
  EXPECT_NEAR(stage_memory(c, 0).activations - 3 * sbh_t * 8 * (1 + 7.0 / 24),
              96 * per_layer * (1 + 7.0 / 24), 1);
}

TEST(PlanModel, ParametersGradientsOptimizerMatchLoomsMemoryPlan) {
  auto be = make_backend(Device::cpu);
  for (const char* precision : {"fp32", "bf16"}) {
    const RunConfig c = small(precision);
    LocalCommunicator one;
    Gpt model(*be, c.model, c.train.micro_batch, c.model.seq_len, one, {}, {},
              {.dtype = parse_dtype(c.train.precision)});
    AdamW opt(*be, model.params().specs(), model.params().flat_params(), model.params().flat_grads(),
              c.optim);
    const MemoryPlan mp = model.memory_plan(), op = opt.memory_plan();
    const MemoryEstimate e = memory_per_device(c);
    EXPECT_EQ(e.parameters, double(plan_bytes(mp, "parameters"))) << precision;
    EXPECT_EQ(e.gradients, double(plan_bytes(mp, "gradients"))) << precision;
    EXPECT_EQ(e.optimizer, double(op.total())) << precision;
  }
}

TEST(PlanModel, ZeroShardsTheOptimizerStateOverDp) {
  RunConfig c = small("bf16");
  c.parallel.dp = 4;
  c.train.global_batch = 8, c.train.micro_batch = 2;
  const double whole = stage_memory(c, 0).optimizer;
  c.optim.zero = 1;
  EXPECT_DOUBLE_EQ(stage_memory(c, 0).optimizer, whole / 4);
  EXPECT_DOUBLE_EQ(whole, double(stage_parameters(c, 0)) * 12);  // f32 master + m + v
}

TEST(PlanModel, PipelineStagesSplitTheParameters) {
  // The stages together hold every parameter once, plus the tied wte's second copy.
  RunConfig c = gpt3();
  c.parallel.pp = 1;
  const std::int64_t whole = stage_parameters(c, 0);
  c.parallel.pp = 8;
  std::int64_t sum = 0;
  for (int s = 0; s < 8; ++s) sum += stage_parameters(c, s);
  EXPECT_EQ(sum, whole + 51200 / 8 * 12288);
}

}  // namespace
}  // namespace loom::plan
