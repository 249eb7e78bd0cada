// tests/mpi/mlp_lm.h — a second, deliberately different model behind the StageModel
// contract (layers/stage_model.h), to prove the runtime is model-agnostic: an MLP-only
// language model with UNTIED embeddings — no attention, no norms, no positions:
//   x_0 = embed[token]                      vocabulary-parallel embedding (all-reduce over tp)
//   x_{l+1} = x_l + fc2(gelu(fc1(x_l)))     fc1 column-parallel, fc2 row-parallel
//   loss = CE(x_L head^T)                   vocabulary-parallel head (untied), VocabParallelLoss
// Shapes: B micro-batch, T sequence, C channels, F hidden, Vp padded vocabulary.
// Layers are split evenly over stages * chunks virtual stages (chunk v of stage s is
// virtual stage v * stages + s); one gradient bucket per chunk. Test-only code.
#pragma once

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "layers/mlp.h"
#include "layers/stage_model.h"
#include "layers/vocab_parallel_loss.h"

namespace loom::test {

struct MlpLmConfig {
  std::int64_t layers = 4, channels = 32, ffn = 64, vocab = 50;
  std::int64_t padded_vocab() const { return (vocab + 127) / 128 * 128; }
};

class MlpLm final : public StageModel {
public:
  MlpLm(Backend& be, MlpLmConfig cfg, std::int64_t B, std::int64_t T, Communicator& tp, int stages = 1, int stage = 0,
        std::vector<int> slots = {1})
      : be_(be), cfg_(cfg), B_(B), T_(T), tp_(tp), stages_(stages), stage_(stage), V_(int(slots.size())),
        params_(be, specs_of(cfg, tp.size(), tp.rank(), stages, stage, int(slots.size()))), mem_(be),
        loss_{&tp, tp.rank() * (cfg.padded_vocab() / tp.size()), cfg.vocab} {
    const std::int64_t N = B * T, C = cfg.channels, Fl = cfg.ffn / tp.size(), Vl = cfg.padded_vocab() / tp.size();
    const int V = int(slots.size());
    for (int v = 0; v < V; ++v) {
      Chunk c;
      c.virt = v * stages + stage;
      std::tie(c.l0, c.l1) = layers_of(cfg, stages * V, c.virt);
      const std::size_t first = params_.index(c.virt == 0 ? "embed.weight" : layer(c.l0, "fc1.weight"));
      const std::size_t last = c.virt == stages * V - 1 ? params_.index("head.weight") + 1
                                                        : params_.index(layer(c.l1 - 1, "fc2.bias")) + 1;
      c.bucket = {first, last};
      for (std::int64_t l = c.l0; l < c.l1; ++l) {
        auto lin = [&](const char* n) {
          return Linear{params_.param(layer(l, fmt::format("{}.weight", n).c_str())),
                        params_.param(layer(l, fmt::format("{}.bias", n).c_str())),
                        params_.grad(layer(l, fmt::format("{}.weight", n).c_str())),
                        params_.grad(layer(l, fmt::format("{}.bias", n).c_str()))};
        };
        c.mlps.push_back(Mlp{{lin("fc1"), &tp_}, {lin("fc2"), &tp_}});
      }
      for (int k = 0; k < slots[std::size_t(v)]; ++k) {
        Slot s;
        for (std::int64_t l = c.l0; l <= c.l1; ++l) s.x.push_back(mem_.alloc("activations", {N, C}));
        for (std::int64_t l = c.l0; l < c.l1; ++l)
          s.saved.push_back({mem_.alloc("activations", {N, Fl}), mem_.alloc("activations", {N, Fl})});
        s.tokens = mem_.alloc("token ids", {B, T});
        s.targets = mem_.alloc("token ids", {B, T});
        if (has_loss(c)) {
          s.logits = mem_.alloc("activations", {N, Vl});
          s.loss = {mem_.alloc("activations", {N}), mem_.alloc("activations", {2, N}), mem_.alloc("activations", {N})};
        }
        c.slots.push_back(std::move(s));
      }
      c.dinput = mem_.alloc("boundary gradients", {N, C});
      c.doutput = mem_.alloc("boundary gradients", {N, C});
      chunks_.push_back(std::move(c));
    }
    dtmp_ = mem_.alloc("scratch", {N, C});
    dbig_ = mem_.alloc("scratch", {N, Fl});
    loss_rows_ = mem_.alloc("loss accumulator", {N});
    be_.fill(loss_rows_, 0.0f);
  }

  static std::pair<std::int64_t, std::int64_t> layers_of(const MlpLmConfig& c, int virtual_stages, int virt) {
    std::int64_t begin = 0;
    for (int s = 0; s < virt; ++s) begin += c.layers / virtual_stages + (s < c.layers % virtual_stages ? 1 : 0);
    return {begin, begin + c.layers / virtual_stages + (virt < c.layers % virtual_stages ? 1 : 0)};
  }

  static std::vector<ParamSpec> specs_of(const MlpLmConfig& c, int tp, int r, int stages, int stage, int V) {
    using S = Shard::Split;
    const Shard rows{S::rows, tp, r, 1}, cols{S::cols, tp, r, 1};
    const std::int64_t C = c.channels, F = c.ffn;
    std::vector<ParamSpec> s;
    for (int v = 0; v < V; ++v) {
      const int virt = v * stages + stage;
      const auto [l0, l1] = layers_of(c, stages * V, virt);
      if (virt == 0)
        s.push_back({.name = "embed.weight", .shape = {c.padded_vocab() / tp, C}, .init_std = 0.5f,
                     .role = ParamRole::embedding, .shard = rows, .stored_rows = c.vocab});
      for (std::int64_t l = l0; l < l1; ++l) {
        s.push_back({.name = layer(l, "fc1.weight"), .shape = {F / tp, C}, .init_std = 0.1f, .shard = rows});
        s.push_back({.name = layer(l, "fc1.bias"), .shape = {F / tp}, .role = ParamRole::bias, .shard = rows});
        s.push_back({.name = layer(l, "fc2.weight"), .shape = {C, F / tp}, .init_std = 0.1f, .shard = cols});
        s.push_back({.name = layer(l, "fc2.bias"), .shape = {C}, .init_value = 0.01f, .role = ParamRole::bias,
                     .tp_replicated = TpReplicated::yes});
      }
      if (virt == stages * V - 1)
        s.push_back({.name = "head.weight", .shape = {c.padded_vocab() / tp, C}, .init_std = 0.1f, .shard = rows,
                     .stored_rows = c.vocab});
    }
    return s;
  }

  std::string architecture() const override { return "mlp-lm-test"; }
  std::string config_json() const override { return fmt::format("{{\"layers\": {}}}", cfg_.layers); }
  std::int64_t batch() const override { return B_; }
  std::int64_t seq_len() const override { return T_; }
  double flops_per_token() const override {
    return 6.0 * double(cfg_.layers * 2 * cfg_.channels * cfg_.ffn + cfg_.channels * cfg_.padded_vocab());
  }
  ParamStore& params() override { return params_; }
  std::vector<int> tied_stages(const std::string&) const override { return {}; }
  std::vector<ParamSpec> stage_param_specs(int stage, int tp_rank) const override {
    return specs_of(cfg_, tp_.size(), tp_rank, stages_, stage, int(chunks_.size()));
  }
  int chunks() const override { return int(chunks_.size()); }
  int slots(int v) const override { return int(chunks_[std::size_t(v)].slots.size()); }
  std::vector<Tensor> inputs(int v, int k) override {
    const Chunk& c = chunks_[std::size_t(v)];
    return c.virt == 0 ? std::vector<Tensor>{} : std::vector<Tensor>{c.slots[std::size_t(k)].x.front()};
  }
  std::vector<Tensor> outputs(int v, int k) override {
    const Chunk& c = chunks_[std::size_t(v)];
    return has_loss(c) ? std::vector<Tensor>{} : std::vector<Tensor>{c.slots[std::size_t(k)].x.back()};
  }
  std::vector<Tensor> input_grads(int v) override {
    const Chunk& c = chunks_[std::size_t(v)];
    return c.virt == 0 ? std::vector<Tensor>{} : std::vector<Tensor>{c.dinput};
  }
  std::vector<Tensor> output_grads(int v) override {
    const Chunk& c = chunks_[std::size_t(v)];
    return has_loss(c) ? std::vector<Tensor>{} : std::vector<Tensor>{c.doutput};
  }

  void forward(int v, const MicroBatch& mb, int k) override {
    Chunk& c = chunks_[std::size_t(v)];
    Slot& s = c.slots[std::size_t(k)];
    if (c.virt == 0) {
      be_.copy(s.tokens, Tensor{const_cast<std::int32_t*>(mb.tokens), Shape{B_, T_}, DType::f32, Device::cpu});
      be_.embedding_forward(s.x[0].view({B_, T_, cfg_.channels}), ids(s.tokens, {B_, T_}), params_.param("embed.weight"),
                            Tensor{}, loss_.vocab_start);
      tp_.all_reduce(s.x[0]);
    }
    for (std::size_t l = 0; l < c.mlps.size(); ++l) {
      c.mlps[l].forward(be_, s.x[l + 1], s.x[l], s.saved[l]);
      be_.add(s.x[l + 1], s.x[l + 1], s.x[l]);
    }
    if (!has_loss(c)) return;
    be_.copy(s.targets, Tensor{const_cast<std::int32_t*>(mb.targets), Shape{B_, T_}, DType::f32, Device::cpu});
    be_.matmul(s.logits, s.x.back(), params_.param("head.weight"), {}, {.trans_b = Trans::yes});
    loss_.forward(be_, loss_rows_, s.logits, ids(s.targets, {B_ * T_}), s.loss);
  }

  void backward(int v, int k, float dloss) override {
    Chunk& c = chunks_[std::size_t(v)];
    Slot& s = c.slots[std::size_t(k)];
    Tensor d = c.dinput;
    if (has_loss(c)) {
      loss_.backward(be_, s.logits, s.logits, ids(s.targets, {B_ * T_}), s.loss, dloss);
      be_.matmul(d, s.logits, params_.param("head.weight"), {}, {});
      tp_.all_reduce(d);
      be_.matmul(params_.grad("head.weight"), s.logits, s.x.back(), {},
                 {.trans_a = Trans::yes, .accumulate = Accumulate::yes});
    } else {
      be_.copy(d, c.doutput);
    }
    for (std::size_t l = c.mlps.size(); l-- > 0;) {  // x_{l+1} = x_l + mlp(x_l)
      c.mlps[l].backward(be_, dtmp_, d, s.x[l], s.saved[l], dbig_);
      be_.add(d, d, dtmp_);
    }
    if (c.virt == 0)
      be_.embedding_backward(params_.grad("embed.weight"), Tensor{}, d.view({B_, T_, cfg_.channels}),
                             ids(s.tokens, {B_, T_}), loss_.vocab_start);
    if (hook_) hook_(std::size_t(v));
  }

  double take_loss_sum() override {
    const double total = be_.sum(loss_rows_);
    be_.fill(loss_rows_, 0.0f);
    return total;
  }
  std::vector<Tensor> grad_buckets() const override {
    std::vector<Tensor> b;
    for (const Chunk& c : chunks_) b.push_back(params_.grad_span(c.bucket.first, c.bucket.second));
    return b;
  }
  void set_bucket_hook(std::function<void(std::size_t)> hook) override { hook_ = std::move(hook); }
  MemoryPlan memory_plan() const override {
    MemoryPlan p = params_.memory_plan();
    p.add(mem_.plan());
    return p;
  }

private:
  struct Slot {
    std::vector<Tensor> x;  // chunk layers + 1 residual tensors (N, C)
    std::vector<Mlp::Saved> saved;
    Tensor tokens, targets, logits;
    VocabParallelLoss::Saved loss;
  };
  struct Chunk {
    int virt = 0;
    std::int64_t l0 = 0, l1 = 0;
    std::vector<Mlp> mlps;
    std::vector<Slot> slots;
    Tensor dinput, doutput;
    std::pair<std::size_t, std::size_t> bucket;
  };
  static std::string layer(std::int64_t l, const char* rest) { return fmt::format("layers.{}.{}", l, rest); }
  bool has_loss(const Chunk& c) const { return c.virt == stages_ * V_ - 1; }
  static TokenView ids(const Tensor& t, Shape shape) {
    return TokenView{static_cast<const std::int32_t*>(t.ptr), shape, t.device};
  }

  Backend& be_;
  MlpLmConfig cfg_;
  std::int64_t B_, T_;
  Communicator& tp_;
  int stages_, stage_, V_;
  ParamStore params_;
  Allocations mem_;
  VocabParallelLoss loss_;
  std::vector<Chunk> chunks_;
  Tensor dtmp_, dbig_, loss_rows_;
  std::function<void(std::size_t)> hook_;
};

}  // namespace loom::test
