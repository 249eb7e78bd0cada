// tests/unit/test_stage_model.cpp — the stage-model contract and the pipeline executor,
// without MPI.
//
// Plan equals allocation: GPT's memory plan (made from its allocation list) equals the
// bytes the backend really allocated for it, to the byte, for several models, tp ranks,
// pipeline stages, interleaved chunks and slot counts. The executor against a fake stage
// model and a recording communicator: the forward/backward calls per stage come in the
// plan's order with slot mb % slots, no two in-flight micro-batches of a chunk share a
// slot, each group of communication steps is one exchange naming the right tensors and
// peers — for GPipe, 1F1B, interleaved and the forward-only evaluation plan, which the
// simulator also runs deadlock-free.
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "backend/registry.h"
#include "layers/gpt.h"
#include "optimizer/zero_adamw.h"
#include "parallel/local_communicator.h"
#include "schedule/pipeline_executor.h"
#include "schedule/pipeline_sim.h"
#include "tests/unit/fake_comm.h"

using namespace loom;
using loom::testing::FakeComm;

namespace {

ModelConfig model(std::int64_t layers, std::int64_t C, std::int64_t heads, std::int64_t vocab) {
  ModelConfig m;
  m.layers = layers, m.channels = C, m.heads = heads, m.vocab = vocab, m.seq_len = 16;
  return m;
}

}  // namespace

TEST(StageModel, GptPlanEqualsAllocationToTheByte) {
  auto be = make_backend(Device::cpu);
  struct Case {
    ModelConfig m;
    std::int64_t B, T;
    int tp, tp_rank, stages, stage, chunks;
    std::vector<int> slots;
    bool sequence_parallel = false;
    DType dtype = DType::f32;
  };
  const std::vector<Case> cases = {
      {model(2, 16, 2, 37), 2, 5, 1, 0, 1, 0, 1, {1}},
      {model(4, 32, 4, 300), 3, 16, 2, 1, 1, 0, 1, {1}},
      {model(4, 32, 4, 300), 1, 8, 4, 3, 1, 0, 1, {1}},
      {model(6, 24, 3, 50), 2, 7, 1, 0, 3, 0, 1, {3}},
      {model(6, 24, 3, 50), 2, 7, 1, 0, 3, 1, 1, {2}},
      {model(6, 24, 3, 300), 2, 7, 3, 2, 3, 2, 1, {1}},
      {model(8, 16, 2, 129), 1, 4, 2, 0, 2, 0, 2, {3, 2}},
      {model(8, 16, 2, 129), 1, 4, 2, 1, 2, 1, 2, {1, 4}},
      {model(8, 16, 2, 129), 2, 4, 1, 0, 4, 3, 2, {2, 2}},
      {model(4, 32, 4, 300), 3, 16, 2, 1, 1, 0, 1, {1}, true},
      {model(8, 16, 2, 129), 1, 4, 2, 0, 2, 0, 2, {3, 2}, true},
      {model(6, 24, 3, 300), 2, 6, 3, 2, 3, 2, 1, {2}, true},
      {model(4, 32, 4, 300), 3, 16, 2, 1, 1, 0, 1, {1}, false, DType::bf16},
      {model(8, 16, 2, 129), 1, 4, 2, 0, 2, 0, 2, {3, 2}, true, DType::f16},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(fmt::format("L {} C {} tp {}/{} stage {}/{} chunks {} slots {} sp {} {}", c.m.layers, c.m.channels,
                             c.tp_rank, c.tp, c.stage, c.stages, c.chunks, fmt::join(c.slots, ","), c.sequence_parallel,
                             dtype_name(c.dtype)));
    FakeComm tp(c.tp_rank, c.tp);
    const std::size_t before = be->live_bytes();
    Gpt gpt(*be, c.m, c.B, c.T, tp, make_gpt_stage(c.m, c.stages, c.stage, c.chunks), c.slots,
            {.dtype = c.dtype, .sequence_parallel = c.sequence_parallel});
    EXPECT_EQ(gpt.memory_plan().total(), be->live_bytes() - before);
    // The categories add up to the total, and parameters + gradients are the flat buffers.
    std::size_t sum = 0;
    for (auto& [name, bytes] : gpt.memory_plan().items) sum += bytes;
    EXPECT_EQ(sum, gpt.memory_plan().total());
    EXPECT_EQ(gpt.memory_plan().items[0].second, std::size_t(gpt.params().numel()) * dtype_size(c.dtype));
    EXPECT_EQ(gpt.memory_plan().items[1].second, std::size_t(gpt.params().numel()) * sizeof(float));  // f32 grads
    // Every parameter is in exactly one gradient bucket.
    std::int64_t in_buckets = 0;
    for (const Tensor& b : gpt.grad_buckets()) in_buckets += b.numel();
    EXPECT_EQ(in_buckets, gpt.params().numel());
  }
}

namespace {

// Distinct little tensors per (chunk, slot) and per chunk, so the test can tell which one
// an exchange names; records the compute calls.
class FakeStage final : public PipelineStage {
public:
  FakeStage(std::vector<int> slots, bool forward_only) : slots_(std::move(slots)), forward_only_(forward_only) {
    for (int v = 0; v < int(slots_.size()); ++v) {
      for (int k = 0; k < slots_[std::size_t(v)]; ++k) act_[{v, k}] = {std::vector<float>(1), std::vector<float>(1)};
      grad_[v] = {std::vector<float>(1), std::vector<float>(1)};
    }
  }
  int slots(int v) const override { return slots_[std::size_t(v)]; }
  std::vector<Tensor> inputs(int v, int k) override { return {t(act_.at({v, k}).first)}; }
  std::vector<Tensor> outputs(int v, int k) override { return {t(act_.at({v, k}).second)}; }
  std::vector<Tensor> input_grads(int v) override { return {t(grad_.at(v).first)}; }
  std::vector<Tensor> output_grads(int v) override { return {t(grad_.at(v).second)}; }
  void forward(int v, int mb, int slot) override {
    calls.push_back({PipeOp::forward, mb, v});
    EXPECT_EQ(slot, mb % slots(v));
    if (forward_only_) return;  // nothing stays in flight
    std::set<int>& held = in_flight[std::pair{v, slot}];
    EXPECT_TRUE(held.insert(mb).second);
    EXPECT_EQ(held.size(), 1u) << "slot " << slot << " of chunk " << v << " holds two micro-batches";
  }
  void backward(int v, int mb, int slot) override {
    calls.push_back({PipeOp::backward, mb, v});
    EXPECT_EQ(slot, mb % slots(v));
    const std::pair<int, int> key{v, slot};
    EXPECT_EQ(in_flight[key].erase(mb), 1u) << "backward of micro-batch " << mb << " not in its slot";
  }
  std::vector<PipeStep> calls;
  std::map<std::pair<int, int>, std::set<int>> in_flight;

private:
  static Tensor t(std::vector<float>& v) { return host_tensor(v.data(), Shape{1}); }
  std::vector<int> slots_;
  bool forward_only_;
  std::map<std::pair<int, int>, std::pair<std::vector<float>, std::vector<float>>> act_;
  std::map<int, std::pair<std::vector<float>, std::vector<float>>> grad_;
};

void check_execution(const PipePlan& plan, int stage, int stages, int chunks, bool forward_only) {
  std::vector<int> slots;
  for (int v = 0; v < chunks; ++v) slots.push_back(forward_only ? 1 : slots_needed(plan, v));
  FakeStage fake(slots, forward_only);
  FakeComm pp(stage, stages);
  run_pipeline_plan(plan, stage, stages, pp, fake);
  // Compute calls: exactly the plan's compute steps, in order.
  std::vector<PipeStep> want;
  for (const PipeStep& s : plan)
    if (!is_communication(s.op)) want.push_back(s);
  EXPECT_EQ(fake.calls, want);
  if (!forward_only) {
    for (auto& [key, mbs] : fake.in_flight) EXPECT_TRUE(mbs.empty()) << "micro-batches left in flight";
  }
  // Communication: one exchange per group, naming each step's tensor and peer.
  std::size_t g = 0;
  for (std::size_t i = 0; i < plan.size();) {
    if (!is_communication(plan[i].op)) { ++i; continue; }
    const std::size_t end = comm_group_end(plan, i);
    ASSERT_LT(g, pp.exchanges.size());
    const std::vector<P2P>& ops = pp.exchanges[g++];
    ASSERT_EQ(ops.size(), end - i);
    for (std::size_t k = 0; i < end; ++i, ++k) {
      const PipeStep& s = plan[i];
      const int slot = s.microbatch % slots[std::size_t(s.chunk)];
      Tensor want_t;
      switch (s.op) {
        case PipeOp::send_activation: want_t = fake.outputs(s.chunk, slot)[0]; break;
        case PipeOp::recv_activation: want_t = fake.inputs(s.chunk, slot)[0]; break;
        case PipeOp::send_grad: want_t = fake.input_grads(s.chunk)[0]; break;
        default: want_t = fake.output_grads(s.chunk)[0]; break;
      }
      EXPECT_EQ(ops[k].tensor.ptr, want_t.ptr) << to_string(s);
      EXPECT_EQ(ops[k].peer, peer_stage(s.op, stage, stages)) << to_string(s);
      EXPECT_EQ(ops[k].kind == P2P::Kind::send, is_send(s.op)) << to_string(s);
    }
  }
  EXPECT_EQ(g, pp.exchanges.size());
}

}  // namespace

TEST(PipelineExecutor, RunsEveryPlanInOrderWithTheRightSlotsTensorsAndPeers) {
  for (int p = 1; p <= 4; ++p)
    for (int m = 1; m <= 8; ++m)
      for (int s = 0; s < p; ++s) {
        SCOPED_TRACE(fmt::format("p {} m {} stage {}", p, m, s));
        check_execution(make_pipeline_plan(PipeSchedule::gpipe, p, s, m), s, p, 1, false);
        check_execution(make_pipeline_plan(PipeSchedule::one_f_one_b, p, s, m), s, p, 1, false);
        for (int V = 2; V <= 3 && p >= 2; ++V)
          if (m % p == 0) check_execution(make_pipeline_plan(PipeSchedule::interleaved, p, s, m, V), s, p, V, false);
        for (int V = 1; V <= (p >= 2 ? 3 : 1); ++V) check_execution(make_forward_only_plan(p, s, m, V), s, p, V, true);
      }
}

TEST(PipelineExecutor, ForwardOnlyPlansRunDeadlockFree) {
  for (int p = 1; p <= 6; ++p)
    for (int V = 1; V <= 3; ++V)
      for (int m = 1; m <= 6; ++m) {
        if (p == 1 && V > 1) {
          EXPECT_THROW(make_forward_only_plan(p, 0, m, V), Error);
          continue;
        }
        std::vector<PipePlan> plans;
        for (int s = 0; s < p; ++s) plans.push_back(make_forward_only_plan(p, s, m, V));
        EXPECT_NO_THROW(simulate(plans, {.comm = CommModel::grouped})) << "p " << p << " V " << V << " m " << m;
      }
}

TEST(StageModel, RecomputeGivesBitIdenticalLossesAndGradientsWithLessMemory) {
  // Two micro-batches in flight (forward, forward, backward, backward, as 1F1B's warmup
  // does), so the shared recompute buffers are overwritten between a micro-batch's
  // forward and its backward: recompute must restore exactly what was there.
  auto be = make_backend(Device::cpu);
  const ModelConfig m = model(3, 32, 4, 70);
  const std::int64_t B = 2, T = 8, N = B * T;
  std::vector<std::int32_t> x(2 * N), y(2 * N);
  for (std::int64_t i = 0; i < 2 * N; ++i) x[std::size_t(i)] = std::int32_t((i * 7 + 3) % 70), y[std::size_t(i)] = std::int32_t((i * 5 + 1) % 70);
  struct Out {
    double loss;
    std::vector<float> grads;
    std::size_t bytes;
  };
  auto run = [&](Recompute mode, AttentionKernel kernel = AttentionKernel::dense) {
    LocalCommunicator tp;
    Gpt gpt(*be, m, B, T, tp, {}, {2}, {.recompute = mode, .attention = kernel});
    gpt.params().init(11);
    gpt.params().zero_grads();
    gpt.forward(0, {x.data(), y.data()}, 0);
    gpt.forward(0, {x.data() + N, y.data() + N}, 1);
    const double loss = gpt.take_loss_sum();
    gpt.backward(0, 0, 0.01f);
    gpt.backward(0, 1, 0.01f);
    std::vector<float> g(std::size_t(gpt.params().numel()));
    be->copy(host_tensor(g.data(), Shape{gpt.params().numel()}), gpt.params().flat_grads());
    return Out{loss, g, gpt.memory_plan().total()};
  };
  const Out none = run(Recompute::none), attention = run(Recompute::attention), full = run(Recompute::full);
  EXPECT_EQ(attention.loss, none.loss);
  EXPECT_EQ(full.loss, none.loss);
  EXPECT_EQ(attention.grads, none.grads);  // bit for bit
  EXPECT_EQ(full.grads, none.grads);
  EXPECT_LT(attention.bytes, none.bytes);
  EXPECT_LT(full.bytes, attention.bytes);
  // attention saves (slots x layers - 1) probability tensors of B x H x T x T floats.
  EXPECT_EQ(none.bytes - attention.bytes, std::size_t((2 * 3 - 1) * B * 4 * T * T) * sizeof(float));
  EXPECT_THROW(parse_recompute("some"), Error);
  // The tiled kernel keeps no probabilities: recompute attention is none (same bits, same plan).
  const Out tiled = run(Recompute::none, AttentionKernel::tiled);
  const Out tiled_attention = run(Recompute::attention, AttentionKernel::tiled);
  const Out tiled_full = run(Recompute::full, AttentionKernel::tiled);
  EXPECT_EQ(tiled_attention.loss, tiled.loss);
  EXPECT_EQ(tiled_attention.grads, tiled.grads);
  EXPECT_EQ(tiled_attention.bytes, tiled.bytes);
  EXPECT_EQ(tiled_full.loss, tiled.loss);
  EXPECT_EQ(tiled_full.grads, tiled.grads);
  EXPECT_LT(tiled_full.bytes, tiled.bytes);
}

TEST(StageModel, SequenceParallelSplitsTheResidualStreamsActivationsOverTp) {
  // The memory plan (= the allocations) with and without sequence parallelism, tp 2 and 4:
  // per slot the L + 1 residual-stream tensors (N, C) and per block ln_1_out, ln_2_out, x1
  // (N, C) and the two layernorms' mean and rstd (N) shrink to N / tp rows; attention and
  // the MLP (qkv, lse, att, h, g) keep all N rows.
  auto be = make_backend(Device::cpu);
  const ModelConfig m = model(4, 32, 4, 300);
  const std::int64_t B = 2, T = 16, N = B * T, C = 32, L = 4;
  for (int p : {2, 4}) {
    auto blocks = [&](bool sp) {
      FakeComm tp(p - 1, p);
      Gpt gpt(*be, m, B, T, tp, {}, {2}, {.sequence_parallel = sp});
      EXPECT_EQ(gpt.sequence_parallel(), sp);
      for (auto& [name, bytes] : gpt.memory_plan().items)
        if (name == "activations: blocks") return bytes;
      ADD_FAILURE() << "no 'activations: blocks' in the plan";
      return std::size_t(0);
    };
    const std::size_t without = blocks(false), with = blocks(true);
    const std::int64_t split_per_slot = (L + 1) * N * C + L * (3 * N * C + 4 * N);  // floats, N rows
    EXPECT_EQ(without - with, std::size_t(2 * split_per_slot * (p - 1) / p) * sizeof(float)) << "tp " << p;
    EXPECT_LT(with, without);
  }
  // Sequence parallelism needs tp > 1 and N rows that split over tp.
  LocalCommunicator one;
  EXPECT_THROW(Gpt(*be, m, B, T, one, {}, {}, {.sequence_parallel = true}), Error);
  FakeComm four(0, 4);
  EXPECT_THROW(Gpt(*be, m, 1, 6, four, {}, {}, {.sequence_parallel = true}), Error);
}

TEST(ZeroAdamW, EachDpRankOwnsOneShareOfEveryBucketAndItsState) {
  // GPT's real buckets; 4 dp ranks (the constructor needs only rank and size).
  auto be = make_backend(Device::cpu);
  const ModelConfig m = model(2, 16, 2, 37);
  LocalCommunicator one;
  Gpt gpt(*be, m, 1, 4, one);
  const std::int64_t total = gpt.params().numel();
  std::int64_t owned = 0;
  for (int r = 0; r < 4; ++r) {
    FakeComm dp(r, 4);
    const std::size_t before = be->live_bytes();
    ZeroAdamW z(*be, gpt.params().specs(), gpt.params().flat_params(), gpt.params().flat_grads(), gpt.grad_buckets(),
                OptimConfig{}, dp, {}, std::vector<float>(gpt.params().size(), 1.0f));
    EXPECT_EQ(z.memory_plan().total(), be->live_bytes() - before);  // plan = allocation
    EXPECT_EQ(z.memory_plan().total(), 2 * std::size_t(z.owned()) * sizeof(float));  // m, v of the owned shard
    EXPECT_NEAR(double(z.owned()), double(total) / 4, double(gpt.grad_buckets().size()));
    owned += z.owned();
  }
  EXPECT_EQ(owned, total);  // every element has exactly one owner
}

TEST(StageModel, InterleavedLayerSplitFollowsVirtualStageOrder) {
  const ModelConfig m = model(8, 16, 2, 37);
  // Virtual stage v * pp + s: with pp 2 and 2 chunks, stage 1 holds virtual stages 1 and 3.
  const GptStage even = make_gpt_stage(m, 2, 1, 2);
  EXPECT_EQ(even.chunks, (std::vector<std::pair<std::int64_t, std::int64_t>>{{2, 4}, {6, 8}}));
  const GptStage given = make_gpt_stage(m, 2, 1, 2, "1,3,2,2");
  EXPECT_EQ(given.chunks, (std::vector<std::pair<std::int64_t, std::int64_t>>{{1, 4}, {6, 8}}));
  EXPECT_TRUE(given.has_loss(1));
  EXPECT_FALSE(given.embeds(0));
  EXPECT_TRUE(make_gpt_stage(m, 2, 0, 2, "1,3,2,2").embeds(0));
  EXPECT_THROW(make_gpt_stage(m, 2, 1, 2, "4,4"), Error);        // one count per virtual stage
  EXPECT_THROW(make_gpt_stage(m, 2, 1, 2, "1,3,2,1"), Error);    // must add up to the layers
  EXPECT_THROW(make_gpt_stage(model(3, 16, 2, 37), 2, 0, 2), Error);  // fewer layers than virtual stages
}
