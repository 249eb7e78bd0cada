// tests/unit/test_plan_loom_memory.cpp — plan/loom_memory.h against the real allocations.
//
// For each config and layout the test builds what loom-train builds on tp rank 0, dp rank 0
// of a pipeline stage — the Gpt shard with the trainer's slot counts, the tied-gradient
// buffers, the data-parallel reduction staging and AdamW or ZeRO-1 — on ranks that only know
// their rank and size (FakeComm), and checks the closed form category by category, to the
// byte. Every part that changes an allocation is covered: recompute modes, 16-bit, sequence
// parallelism, pipeline stages (1F1B, GPipe, interleaved), tp, ZeRO-1, a 16-bit gradient
// reduction, and the decoder parts (RMSNorm, SwiGLU, sinusoidal, ALiBi, grouped-query).
#include <map>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "backend/registry.h"
#include "launch/model_io.h"
#include "launch/trainer.h"
#include "layers/gpt.h"
#include "optimizer/adamw.h"
#include "optimizer/grad_sync.h"
#include "optimizer/zero_adamw.h"
#include "plan/loom_memory.h"
#include "schedule/pipeline_plan.h"
#include "tests/unit/fake_comm.h"

namespace loom::plan {
namespace {

using loom::testing::FakeComm;

RunConfig base() {
  RunConfig c;
  c.model.layers = 4, c.model.channels = 32, c.model.heads = 4, c.model.vocab = 300, c.model.seq_len = 16;
  c.train.global_batch = 8, c.train.micro_batch = 2;
  c.parallel.dp = 1;
  return c;
}

// What loom-train allocates on tp rank 0, dp rank 0 of `stage` (launch/train_main.cpp,
// launch/trainer.cpp), less the checkpoint snapshot, by category.
std::map<std::string, std::size_t> allocated(const RunConfig& c, int stage) {
  auto be = make_backend(Device::cpu);
  const int p = c.parallel.pp, V = c.parallel.virtual_stages, dp = c.parallel.dp;
  FakeComm tp(0, c.parallel.tp), pp(stage, p), dpc(0, dp);
  const int m = int(c.train.global_batch / dp / c.train.micro_batch);
  const std::vector<int> slots =
      Trainer::slots_for(make_pipeline_plan(pipe_schedule(c.parallel.schedule, V), p, stage, m, V), V);
  const DType dtype = parse_dtype(c.train.precision), reduce = parse_dtype(c.parallel.grad_reduce_dtype);
  Gpt gpt(*be, c.model, c.train.micro_batch, c.train.sequence(c.model), tp,
          make_gpt_stage(c.model, p, stage, V, c.parallel.stages), slots,
          {.recompute = parse_recompute(c.train.recompute), .dtype = dtype,
           .sequence_parallel = c.parallel.sequence_parallel,
           .attention = parse_attention_kernel(c.train.attention_kernel())});
  MemoryPlan got = gpt.memory_plan();
  ParamStore& ps = gpt.params();
  if (p > 1) {
    std::vector<TiedGrads::Group> groups;
    for (std::size_t i = 0; i < ps.size(); ++i)
      if (!ps.spec(i).tied.empty()) groups.push_back({ps.grad(i), gpt.tied_stages(ps.spec(i).tied)});
    got.add(TiedGrads(*be, pp, groups).memory_plan());
  }
  if (c.optim.zero == 1) {
    got.add(ZeroAdamW(*be, ps.specs(), ps.flat_params(), ps.flat_grads(), gpt.grad_buckets(), c.optim, dpc, {&tp},
                      std::vector<float>(ps.size(), 1.0f), reduce)
                .memory_plan());
  } else {
    got.add(DataParallelGrads(*be, dpc, gpt.grad_buckets(), reduce).memory_plan());
    got.add(AdamW(*be, ps.specs(), ps.flat_params(), ps.flat_grads(), c.optim).memory_plan());
  }
  std::map<std::string, std::size_t> out(got.items.begin(), got.items.end());
  return out;
}

void expect_equal(const RunConfig& c, int stage, const std::string& what) {
  SCOPED_TRACE(fmt::format("{} (stage {})", what, stage));
  std::map<std::string, std::size_t> predicted;
  for (auto& [name, bytes] : loom_rank_memory(c, stage).items)
    if (name.find("(host") == std::string::npos) predicted[name] = bytes;  // not the backend's
  const std::map<std::string, std::size_t> real = allocated(c, stage);
  for (auto& [name, bytes] : real) {
    if (bytes == 0) continue;
    EXPECT_EQ(predicted.count(name) ? predicted.at(name) : 0, bytes) << name;
  }
  for (auto& [name, bytes] : predicted) {
    if (bytes > 0) {
      EXPECT_TRUE(real.count(name)) << "predicted but not allocated: " << name;
    }
  }
}

TEST(PlanLoomMemory, EqualsWhatLoomAllocatesToTheByte) {
  RunConfig c = base();
  expect_equal(c, 0, "fp32, one rank");
  for (const char* mode : {"attention", "full"}) {
    RunConfig r = base();
    r.train.recompute = mode;
    expect_equal(r, 0, std::string("recompute ") + mode);
  }
  // The dense attention kernel: probabilities per block and a dprobs scratch (train.attention).
  for (const char* mode : {"none", "attention", "full"}) {
    RunConfig r = base();
    r.train.attention = "dense", r.train.recompute = mode;
    expect_equal(r, 0, std::string("dense attention, recompute ") + mode);
  }
  RunConfig bf = base();
  bf.train.precision = "bf16";
  expect_equal(bf, 0, "bf16");

  RunConfig llama = base();
  llama.model.norm = "rmsnorm", llama.model.mlp = "swiglu", llama.model.positions = "rope", llama.model.kv_heads = 2;
  expect_equal(llama, 0, "rmsnorm swiglu rope gqa");
  RunConfig alibi = base();
  alibi.model.positions = "alibi", alibi.parallel.tp = 2;
  expect_equal(alibi, 0, "alibi tp 2");
  RunConfig sinus = base();
  sinus.model.positions = "sinusoidal", sinus.parallel.pp = 2;
  expect_equal(sinus, 0, "sinusoidal pp 2");
  RunConfig t5 = base();  // the shared relative bias table: tied over the stages, split over tp
  t5.model.positions = "t5_relative", t5.parallel.tp = 2, t5.parallel.pp = 2, t5.train.precision = "bf16";
  for (int s : {0, 1}) expect_equal(t5, s, "t5_relative tp 2 pp 2 bf16");
  t5.optim.zero = 1, t5.parallel.dp = 2;
  for (int s : {0, 1}) expect_equal(t5, s, "t5_relative tp 2 pp 2 dp 2 zero 1");

  RunConfig sp = base();
  sp.parallel.tp = 2, sp.parallel.sequence_parallel = true, sp.train.precision = "bf16";
  expect_equal(sp, 0, "tp 2 sequence parallel bf16");
}

TEST(PlanLoomMemory, PipelineStagesSchedulesAndDataParallelBuffers) {
  for (const char* schedule : {"1f1b", "gpipe"}) {
    RunConfig c = base();
    c.parallel.pp = 2, c.parallel.schedule = schedule;
    for (int s : {0, 1}) expect_equal(c, s, std::string("pp 2 ") + schedule);
  }
  RunConfig v = base();
  v.parallel.pp = 2, v.parallel.virtual_stages = 2, v.parallel.tp = 2;
  for (int s : {0, 1}) expect_equal(v, s, "pp 2 interleaved tp 2");

  RunConfig z = base();
  z.parallel.dp = 2, z.parallel.pp = 2, z.optim.zero = 1, z.train.precision = "bf16";
  for (int s : {0, 1}) expect_equal(z, s, "dp 2 pp 2 zero-1 bf16");
  RunConfig r = base();
  r.parallel.dp = 2, r.train.precision = "bf16", r.parallel.grad_reduce_dtype = "bf16";
  expect_equal(r, 0, "dp 2 bf16 reduction");
}

TEST(PlanLoomMemory, SnapshotHoldsTheStateThisRankWrites) {
  RunConfig c = base();
  auto bytes = [](const MemoryPlan& p, const std::string& name) {
    for (auto& [n, b] : p.items)
      if (n == name) return b;
    return std::size_t(0);
  };
  const std::string snap = "checkpoint snapshot (host: master, m, v)";
  const std::size_t n = bytes(loom_rank_memory(c, 0), "gradients (f32)") / 4;
  EXPECT_EQ(bytes(loom_rank_memory(c, 0), snap), 3 * n * 4);
  // The last stage's copy of the tied wte is written by stage 0.
  c.parallel.pp = 2;
  const std::size_t last = bytes(loom_rank_memory(c, 1), "gradients (f32)") / 4;
  EXPECT_EQ(bytes(loom_rank_memory(c, 1), snap), 3 * (last - 384 * 32) * 4);  // padded vocab 384 x C
  // ZeRO-1: rank 0's shard of each bucket.
  c.parallel.dp = 2, c.optim.zero = 1;
  EXPECT_LT(bytes(loom_rank_memory(c, 0), snap), 3 * bytes(loom_rank_memory(c, 0), "gradients (f32)"));
}

TEST(PlanLoomMemory, WeightsFileCopyIsWhatSaveWeightsGathers) {
  auto be = make_backend(Device::cpu);
  auto bytes = [](const MemoryPlan& p, const std::string& name) {
    for (auto& [n, b] : p.items)
      if (n == name) return b;
    return std::size_t(0);
  };
  for (int pp : {1, 2}) {
    for (int zero : {0, 1}) {
      RunConfig c = base();
      c.parallel.pp = pp, c.parallel.tp = 2;
      if (zero) c.parallel.dp = 4, c.optim.zero = 1;  // a small snapshot: the weights file exceeds it
      for (int s = 0; s < pp; ++s) {
        SCOPED_TRACE(fmt::format("pp {} zero {} stage {}", pp, zero, s));
        FakeComm tp(0, 2);
        Gpt gpt(*be, c.model, 2, 16, tp, make_gpt_stage(c.model, pp, s), {1});
        const std::size_t gathered = save_weights_host_bytes(gpt, pp, s, true);
        EXPECT_EQ(loom_weights_file_bytes(c, s), gathered);
        // The plan counts it beyond the snapshot, which launch/train_main.cpp frees first.
        const MemoryPlan plan = loom_rank_memory(c, s);
        const std::size_t snapshot = bytes(plan, "checkpoint snapshot (host: master, m, v)");
        EXPECT_EQ(bytes(plan, kWeightsFilePlanName), gathered > snapshot ? gathered - snapshot : 0);
        if (zero) {
          EXPECT_GT(bytes(plan, kWeightsFilePlanName), 0u);
        }
      }
    }
  }
  // Stage 0 of a pipeline gathers the whole model (the padded vocabulary rows are not stored).
  RunConfig whole = base();
  whole.parallel.pp = 2;
  EXPECT_EQ(loom_weights_file_bytes(whole, 0), loom_weights_file_bytes(base(), 0));
  EXPECT_LT(loom_weights_file_bytes(whole, 1), loom_weights_file_bytes(base(), 0));
}

}  // namespace
}  // namespace loom::plan
