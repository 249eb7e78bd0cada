// layers/gpt.cpp — parameter specs, memory plan, buffer wiring, and the forward /
// backward of the whole stage (llm.c's gpt2_forward / gpt2_backward, in Backend ops).
#include "layers/gpt.h"

#include <cmath>
#include <numeric>

#include "parallel/local_communicator.h"

namespace loom {

namespace {
std::string layer_name(std::int64_t l, const char* rest) { return fmt::format("h.{}.{}", l, rest); }
// Token ids travel in 4-byte tensors: a view the backend can copy byte for byte.
Tensor id_bytes(const std::int32_t* p, Shape s) {
  return Tensor{const_cast<std::int32_t*>(p), s, DType::f32, Device::cpu};
}
}  // namespace

void Gpt::check_tp(const ModelConfig& m, int tp) {
  LOOM_CHECK(tp >= 1, "", "parallel.tp must be >= 1, got {}", tp);
  LOOM_CHECK(m.heads % tp == 0, "pick parallel.tp dividing model.heads",
             "model.heads ({}) is not divisible by parallel.tp ({})", m.heads, tp);
  LOOM_CHECK(m.ffn_size() % tp == 0, "pick parallel.tp dividing model.ffn",
             "model.ffn ({}) is not divisible by parallel.tp ({})", m.ffn_size(), tp);
  LOOM_CHECK(m.padded_vocab() % tp == 0, "pick parallel.tp dividing the padded vocabulary",
             "the padded vocabulary ({}, model.vocab {} rounded up to a multiple of 128) is not divisible by "
             "parallel.tp ({})",
             m.padded_vocab(), m.vocab, tp);
}

std::vector<ParamSpec> Gpt::param_specs(const ModelConfig& m, int tp, int r) {
  check_tp(m, tp);
  const std::int64_t C = m.channels, F = m.ffn_size();
  const float std = 0.02f;
  // GPT-2 scales the init of the projections that write into the residual
  // stream by 1/sqrt(2 L) (two per block), keeping the stream's variance flat.
  const float proj_std = std / std::sqrt(2.0f * float(m.layers));
  using S = Shard::Split;
  const Shard rows{S::rows, tp, r, 1}, qkv_rows{S::rows, tp, r, 3}, cols{S::cols, tp, r, 1};
  std::vector<ParamSpec> s;
  s.push_back({"wte", {m.padded_vocab() / tp, C}, std, 0, Decay::yes, rows});
  s.push_back({"wpe", {m.seq_len, C}, std, 0, Decay::yes});
  for (std::int64_t l = 0; l < m.layers; ++l) {
    s.push_back({layer_name(l, "ln_1.weight"), {C}, 0, 1, Decay::no});
    s.push_back({layer_name(l, "ln_1.bias"), {C}, 0, 0, Decay::no});
    s.push_back({layer_name(l, "attn.c_attn.weight"), {3 * C / tp, C}, std, 0, Decay::yes, qkv_rows});
    s.push_back({layer_name(l, "attn.c_attn.bias"), {3 * C / tp}, 0, 0, Decay::no, qkv_rows});
    s.push_back({layer_name(l, "attn.c_proj.weight"), {C, C / tp}, proj_std, 0, Decay::yes, cols});
    s.push_back({layer_name(l, "attn.c_proj.bias"), {C}, 0, 0, Decay::no});
    s.push_back({layer_name(l, "ln_2.weight"), {C}, 0, 1, Decay::no});
    s.push_back({layer_name(l, "ln_2.bias"), {C}, 0, 0, Decay::no});
    s.push_back({layer_name(l, "mlp.c_fc.weight"), {F / tp, C}, std, 0, Decay::yes, rows});
    s.push_back({layer_name(l, "mlp.c_fc.bias"), {F / tp}, 0, 0, Decay::no, rows});
    s.push_back({layer_name(l, "mlp.c_proj.weight"), {C, F / tp}, proj_std, 0, Decay::yes, cols});
    s.push_back({layer_name(l, "mlp.c_proj.bias"), {C}, 0, 0, Decay::no});
  }
  s.push_back({"ln_f.weight", {C}, 0, 1, Decay::no});
  s.push_back({"ln_f.bias", {C}, 0, 0, Decay::no});
  return s;
}

MemoryPlan Gpt::memory_plan(const ModelConfig& m, std::int64_t B, std::int64_t T, int tp) {
  const std::size_t f = sizeof(float), p = std::size_t(tp);
  const std::size_t C = m.channels, F = m.ffn_size(), L = m.layers, H = m.heads, Vp = m.padded_vocab();
  const std::size_t N = B * T, Cl = C / p, Fl = F / p, Hl = H / p, Vl = Vp / p;  // *l: this tp rank's share
  const std::size_t params =
      Vl * C + m.seq_len * C + L * (4 * C + 3 * Cl * C + 3 * Cl + C * Cl + C + 2 * Fl * C + Fl + C) + 2 * C;
  MemoryPlan plan;
  plan.items.push_back({"parameters (f32)", params * f});
  plan.items.push_back({"gradients (f32)", params * f});
  // per block: ln_1_out, ln_2_out, x1 (C each), att (C/tp), qkv (3C/tp), h, g (F/tp each),
  // probs (H/tp heads), 4 layernorm statistics
  const std::size_t per_block = N * (3 * C + Cl + 3 * Cl + 2 * Fl) + B * Hl * T * T + 4 * N;
  plan.items.push_back({"activations: blocks", (L * per_block + (L + 1) * N * C) * f});
  // final norm out + stats, logits (Vp/tp), loss stats (N, 3) and lse
  plan.items.push_back({"activations: final norm, logits, loss", (N * C + 2 * N + N * Vl + 3 * N + N) * f});
  // scratch: dqkv 3C/tp, datt C/tp, dln C, dbig F/tp, dprobs, dresid C; token ids 2N
  plan.items.push_back({"backward scratch + token ids", (N * (3 * Cl + Cl + C + Fl + C) + B * Hl * T * T + 2 * N) * f});
  return plan;
}

Tensor Gpt::alloc(Shape s) {
  buffers_.emplace_back(be_, s, DType::f32);
  return buffers_.back().tensor();
}

Gpt::Gpt(Backend& be, const ModelConfig& cfg, std::int64_t B, std::int64_t T)
    : Gpt(be, cfg, B, T, std::make_unique<LocalCommunicator>(), nullptr) {}

Gpt::Gpt(Backend& be, const ModelConfig& cfg, std::int64_t B, std::int64_t T, Communicator& tp)
    : Gpt(be, cfg, B, T, nullptr, &tp) {}

Gpt::Gpt(Backend& be, const ModelConfig& cfg, std::int64_t B, std::int64_t T, std::unique_ptr<Communicator> own,
         Communicator* tp)
    : be_(be),
      cfg_(cfg),
      B_(B),
      T_(T),
      own_tp_(std::move(own)),
      tp_(own_tp_ ? *own_tp_ : *tp),
      vocab_start_(tp_.rank() * (cfg.padded_vocab() / tp_.size())),
      params_(be, param_specs(cfg, tp_.size(), tp_.rank())) {
  validate(cfg);
  LOOM_CHECK(B > 0 && T > 0, "", "model: batch ({}) and sequence length ({}) must be positive", B, T);
  LOOM_CHECK(T <= cfg.seq_len, "lower train sequence length or raise model.seq_len",
             "sequence length {} exceeds the model's maximum model.seq_len = {}", T, cfg.seq_len);
  // Sizes on this tp rank: channels of attention (Cl), ffn (Fl), heads (Hl), vocabulary rows (Vl).
  const std::int64_t p = tp_.size(), C = cfg.channels, L = cfg.layers, N = B * T;
  const std::int64_t Cl = C / p, Fl = cfg.ffn_size() / p, Hl = cfg.heads / p, Vl = cfg.padded_vocab() / p;
  buffers_.reserve(std::size_t(16 * L + 32));

  wte_ = params_.param("wte"), dwte_ = params_.grad("wte");
  wpe_ = params_.param("wpe"), dwpe_ = params_.grad("wpe");
  auto lin = [&](std::int64_t l, const std::string& name) {
    const std::string w = layer_name(l, (name + ".weight").c_str()), b = layer_name(l, (name + ".bias").c_str());
    return Linear{params_.param(w), params_.param(b), params_.grad(w), params_.grad(b)};
  };
  auto norm = [&](const std::string& prefix) {
    return LayerNorm{params_.param(prefix + ".weight"), params_.param(prefix + ".bias"),
                     params_.grad(prefix + ".weight"), params_.grad(prefix + ".bias")};
  };
  for (std::int64_t l = 0; l < L; ++l) {
    Block b;
    b.ln_1 = norm(layer_name(l, "ln_1"));
    b.attn = Attention{{lin(l, "attn.c_attn"), &tp_}, {lin(l, "attn.c_proj"), &tp_}, int(Hl)};
    b.ln_2 = norm(layer_name(l, "ln_2"));
    b.mlp = Mlp{{lin(l, "mlp.c_fc"), &tp_}, {lin(l, "mlp.c_proj"), &tp_}};
    blocks_.push_back(b);
  }
  ln_f_ = norm("ln_f");

  // ---- activations (the memory plan above counts exactly these) ----
  for (std::int64_t l = 0; l <= L; ++l) resid_.push_back(alloc({B, T, C}));
  for (std::int64_t l = 0; l < L; ++l) {
    Block::Saved s;
    s.ln_1_out = alloc({B, T, C});
    s.ln_2_out = alloc({B, T, C});
    s.x1 = alloc({B, T, C});
    s.attn.att = alloc({B, T, Cl});
    s.attn.qkv = alloc({B, T, 3 * Cl});
    s.mlp.h = alloc({N, Fl});
    s.mlp.g = alloc({N, Fl});
    s.attn.probs = alloc({B, Hl, T, T});
    s.ln_1 = {alloc({N}), alloc({N})};
    s.ln_2 = {alloc({N}), alloc({N})};
    saved_.push_back(s);
  }
  ln_f_out_ = alloc({N, C});
  ln_f_saved_ = {alloc({N}), alloc({N})};
  logits_ = alloc({N, Vl});
  ce_stats_ = alloc({N, 3});
  lse_ = alloc({N});
  scratch_.attn = {alloc({B, T, 3 * Cl}), alloc({B, T, Cl}), alloc({B, Hl, T, T})};
  scratch_.dln = alloc({B, T, C});
  scratch_.dbig = alloc({N, Fl});
  dresid_ = alloc({B, T, C});
  tokens_ = Buffer(be_, Shape{B, T}, DType::f32);
  targets_ = Buffer(be_, Shape{B, T}, DType::f32);
  for (auto* v : {&host_max_, &host_sum_, &host_target_, &host_lse_}) v->resize(std::size_t(N));
  host_stats_.resize(std::size_t(3 * N));
}

void Gpt::embed_and_blocks(const std::int32_t* tokens) {
  be_.copy(tokens_, id_bytes(tokens, Shape{B_, T_}));
  const TokenView tok{static_cast<const std::int32_t*>(tokens_.tensor().ptr), Shape{B_, T_}, be_.device()};
  // Vocabulary-parallel embedding: each tp rank adds the rows it holds (zeros for
  // other tokens) and rank 0 the positions; the all-reduce completes the sum.
  be_.embedding_forward(resid_[0], tok, wte_, tp_.rank() == 0 ? wpe_.slice_rows(0, T_) : Tensor{}, vocab_start_);
  tp_.all_reduce(resid_[0]);
  for (std::size_t l = 0; l < blocks_.size(); ++l) blocks_[l].forward(be_, resid_[l + 1], resid_[l], saved_[l]);
  ln_f_.forward(be_, ln_f_out_, resid_.back().view({B_ * T_, cfg_.channels}), ln_f_saved_);
  be_.matmul(logits_, ln_f_out_, wte_, {}, {.trans_b = Trans::yes});  // tied head: this rank's vocabulary columns
}

double Gpt::forward(const std::int32_t* tokens, const std::int32_t* targets) {
  embed_and_blocks(tokens);
  be_.copy(targets_, id_bytes(targets, Shape{B_, T_}));
  const TokenView tgt{static_cast<const std::int32_t*>(targets_.tensor().ptr), Shape{B_ * T_}, be_.device()};
  // Vocabulary-parallel loss: per-row (max, sum of exp, target logit) of this
  // shard, combined over tp into log-sum-exp and the target logit; the logits
  // themselves never leave the rank.
  be_.cross_entropy_shard_stats(ce_stats_, logits_, tgt, vocab_start_, cfg_.vocab);
  const std::int64_t N = B_ * T_;
  be_.copy(host_tensor(host_stats_.data(), Shape{N, 3}), ce_stats_);
  for (std::int64_t i = 0; i < N; ++i) {
    host_max_[std::size_t(i)] = host_stats_[std::size_t(3 * i)];
    host_target_[std::size_t(i)] = host_stats_[std::size_t(3 * i + 2)];
  }
  tp_.all_reduce(host_tensor(host_max_.data(), Shape{N}), ReduceOp::max);
  for (std::int64_t i = 0; i < N; ++i) {  // rescale this shard's sum to the global max
    const float s = host_stats_[std::size_t(3 * i + 1)];
    host_sum_[std::size_t(i)] = s > 0 ? s * std::exp(host_stats_[std::size_t(3 * i)] - host_max_[std::size_t(i)]) : 0.0f;
  }
  tp_.all_reduce(host_tensor(host_sum_.data(), Shape{N}));
  tp_.all_reduce(host_tensor(host_target_.data(), Shape{N}));
  double total = 0;
  for (std::int64_t i = 0; i < N; ++i) {
    host_lse_[std::size_t(i)] = host_max_[std::size_t(i)] + std::log(host_sum_[std::size_t(i)]);
    total += double(host_lse_[std::size_t(i)]) - double(host_target_[std::size_t(i)]);
  }
  be_.copy(lse_, host_tensor(host_lse_.data(), Shape{N}));
  return total;
}

void Gpt::backward(float dloss) {
  const std::int64_t N = B_ * T_, C = cfg_.channels;
  const TokenView tok{static_cast<const std::int32_t*>(tokens_.tensor().ptr), Shape{B_, T_}, be_.device()};
  const TokenView tgt{static_cast<const std::int32_t*>(targets_.tensor().ptr), Shape{N}, be_.device()};
  // Loss and tied head: the logits buffer becomes dlogits in place.
  be_.cross_entropy_shard_backward(logits_, logits_, tgt, vocab_start_, cfg_.vocab, lse_, dloss);
  Tensor dln = scratch_.dln.view({N, C});
  be_.matmul(dln, logits_, wte_, {}, {});
  tp_.all_reduce(dln);  // each shard's head contributes to the gradient of ln_f's output
  be_.matmul(dwte_, logits_, ln_f_out_, {}, {.trans_a = Trans::yes, .accumulate = Accumulate::yes});
  be_.fill(dresid_, 0.0f);
  ln_f_.backward(be_, dresid_.view({N, C}), dln, resid_.back().view({N, C}), ln_f_saved_);
  for (std::size_t l = blocks_.size(); l-- > 0;) blocks_[l].backward(be_, dresid_, resid_[l], saved_[l], scratch_);
  be_.embedding_backward(dwte_, dwpe_.slice_rows(0, T_), dresid_, tok, vocab_start_);
}

void Gpt::logits_at(const std::int32_t* tokens, std::int64_t b, std::int64_t t, float* out) {
  LOOM_CHECK(0 <= b && b < B_ && 0 <= t && t < T_, "", "logits_at: ({}, {}) outside ({}, {})", b, t, B_, T_);
  LOOM_CHECK(tp_.size() == 1, "", "logits_at: needs the whole vocabulary on one rank (tp = 1)");
  embed_and_blocks(tokens);
  const std::int64_t Vp = cfg_.padded_vocab();
  Tensor row = logits_.slice_rows(b * T_ + t, b * T_ + t + 1);
  std::vector<float> host(static_cast<std::size_t>(Vp));
  be_.copy(host_tensor(host.data(), Shape{1, Vp}), row);
  std::copy(host.begin(), host.begin() + cfg_.vocab, out);
}

}  // namespace loom
