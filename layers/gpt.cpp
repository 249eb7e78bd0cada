// layers/gpt.cpp — parameter specs, memory plan, buffer wiring, and the forward /
// backward of the whole stage (llm.c's gpt2_forward / gpt2_backward, in Backend ops).
#include "layers/gpt.h"

#include <cmath>
#include <numeric>

namespace loom {

namespace {
std::string layer_name(std::int64_t l, const char* rest) { return fmt::format("h.{}.{}", l, rest); }
// Token ids travel in 4-byte tensors: a view the backend can copy byte for byte.
Tensor id_bytes(const std::int32_t* p, Shape s) {
  return Tensor{const_cast<std::int32_t*>(p), s, DType::f32, Device::cpu};
}
}  // namespace

std::vector<ParamSpec> Gpt::param_specs(const ModelConfig& m) {
  const std::int64_t C = m.channels, F = m.ffn_size();
  const float std = 0.02f;
  // GPT-2 scales the init of the projections that write into the residual
  // stream by 1/sqrt(2 L) (two per block), keeping the stream's variance flat.
  const float proj_std = std / std::sqrt(2.0f * float(m.layers));
  std::vector<ParamSpec> s;
  s.push_back({"wte", {m.padded_vocab(), C}, std, 0, Decay::yes});
  s.push_back({"wpe", {m.seq_len, C}, std, 0, Decay::yes});
  for (std::int64_t l = 0; l < m.layers; ++l) {
    s.push_back({layer_name(l, "ln_1.weight"), {C}, 0, 1, Decay::no});
    s.push_back({layer_name(l, "ln_1.bias"), {C}, 0, 0, Decay::no});
    s.push_back({layer_name(l, "attn.c_attn.weight"), {3 * C, C}, std, 0, Decay::yes});
    s.push_back({layer_name(l, "attn.c_attn.bias"), {3 * C}, 0, 0, Decay::no});
    s.push_back({layer_name(l, "attn.c_proj.weight"), {C, C}, proj_std, 0, Decay::yes});
    s.push_back({layer_name(l, "attn.c_proj.bias"), {C}, 0, 0, Decay::no});
    s.push_back({layer_name(l, "ln_2.weight"), {C}, 0, 1, Decay::no});
    s.push_back({layer_name(l, "ln_2.bias"), {C}, 0, 0, Decay::no});
    s.push_back({layer_name(l, "mlp.c_fc.weight"), {F, C}, std, 0, Decay::yes});
    s.push_back({layer_name(l, "mlp.c_fc.bias"), {F}, 0, 0, Decay::no});
    s.push_back({layer_name(l, "mlp.c_proj.weight"), {C, F}, proj_std, 0, Decay::yes});
    s.push_back({layer_name(l, "mlp.c_proj.bias"), {C}, 0, 0, Decay::no});
  }
  s.push_back({"ln_f.weight", {C}, 0, 1, Decay::no});
  s.push_back({"ln_f.bias", {C}, 0, 0, Decay::no});
  return s;
}

MemoryPlan Gpt::memory_plan(const ModelConfig& m, std::int64_t B, std::int64_t T) {
  const std::size_t f = sizeof(float);
  const std::size_t C = m.channels, F = m.ffn_size(), L = m.layers, H = m.heads, Vp = m.padded_vocab();
  const std::size_t N = B * T;
  const std::size_t params = Vp * C + m.seq_len * C + L * (4 * C + 3 * C * C + 3 * C + C * C + C + 2 * F * C + F + C) + 2 * C;
  MemoryPlan p;
  p.items.push_back({"parameters (f32)", params * f});
  p.items.push_back({"gradients (f32)", params * f});
  // per block: ln_1_out, ln_2_out, x1, att (C each) + qkv (3C) + h, g (F each) + probs + 4 stats
  const std::size_t per_block = N * (4 * C + 3 * C + 2 * F) + B * H * T * T + 4 * N;
  p.items.push_back({"activations: blocks", (L * per_block + (L + 1) * N * C) * f});
  p.items.push_back({"activations: final norm, logits, losses", (N * C + 2 * N + N * Vp + N) * f});
  // scratch: dqkv 3C, datt C, dln C, dbig F, dprobs, dresid C; token ids 2N
  p.items.push_back({"backward scratch + token ids", (N * (3 * C + C + C + F + C) + B * H * T * T + 2 * N) * f});
  return p;
}

Tensor Gpt::alloc(Shape s) {
  buffers_.emplace_back(be_, s, DType::f32);
  return buffers_.back().tensor();
}

Gpt::Gpt(Backend& be, const ModelConfig& cfg, std::int64_t B, std::int64_t T)
    : be_(be), cfg_(cfg), B_(B), T_(T), params_(be, param_specs(cfg)) {
  validate(cfg);
  LOOM_CHECK(B > 0 && T > 0, "", "model: batch ({}) and sequence length ({}) must be positive", B, T);
  LOOM_CHECK(T <= cfg.seq_len, "lower train sequence length or raise model.seq_len",
             "sequence length {} exceeds the model's maximum model.seq_len = {}", T, cfg.seq_len);
  const std::int64_t C = cfg.channels, F = cfg.ffn_size(), H = cfg.heads, L = cfg.layers;
  const std::int64_t Vp = cfg.padded_vocab(), N = B * T;
  buffers_.reserve(std::size_t(16 * L + 32));

  wte_ = params_.param("wte"), dwte_ = params_.grad("wte");
  wpe_ = params_.param("wpe"), dwpe_ = params_.grad("wpe");
  auto lin = [&](std::int64_t l, const char* name) {
    return Linear{params_.param(layer_name(l, fmt::format("{}.weight", name).c_str())),
                  params_.param(layer_name(l, fmt::format("{}.bias", name).c_str())),
                  params_.grad(layer_name(l, fmt::format("{}.weight", name).c_str())),
                  params_.grad(layer_name(l, fmt::format("{}.bias", name).c_str()))};
  };
  auto norm = [&](const std::string& prefix) {
    return LayerNorm{params_.param(prefix + ".weight"), params_.param(prefix + ".bias"),
                     params_.grad(prefix + ".weight"), params_.grad(prefix + ".bias")};
  };
  for (std::int64_t l = 0; l < L; ++l) {
    Block b;
    b.ln_1 = norm(layer_name(l, "ln_1"));
    b.attn = Attention{lin(l, "attn.c_attn"), lin(l, "attn.c_proj"), int(H)};
    b.ln_2 = norm(layer_name(l, "ln_2"));
    b.mlp = Mlp{lin(l, "mlp.c_fc"), lin(l, "mlp.c_proj")};
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
    s.attn.att = alloc({B, T, C});
    s.attn.qkv = alloc({B, T, 3 * C});
    s.mlp.h = alloc({N, F});
    s.mlp.g = alloc({N, F});
    s.attn.probs = alloc({B, H, T, T});
    s.ln_1 = {alloc({N}), alloc({N})};
    s.ln_2 = {alloc({N}), alloc({N})};
    saved_.push_back(s);
  }
  ln_f_out_ = alloc({N, C});
  ln_f_saved_ = {alloc({N}), alloc({N})};
  logits_ = alloc({N, Vp});
  losses_ = alloc({N});
  scratch_.attn = {alloc({B, T, 3 * C}), alloc({B, T, C}), alloc({B, H, T, T})};
  scratch_.dln = alloc({B, T, C});
  scratch_.dbig = alloc({N, F});
  dresid_ = alloc({B, T, C});
  tokens_ = Buffer(be_, Shape{B, T}, DType::f32);
  targets_ = Buffer(be_, Shape{B, T}, DType::f32);
  host_losses_.resize(std::size_t(N));
}

void Gpt::embed_and_blocks(const std::int32_t* tokens) {
  be_.copy(tokens_, id_bytes(tokens, Shape{B_, T_}));
  const TokenView tok{static_cast<const std::int32_t*>(tokens_.tensor().ptr), Shape{B_, T_}, be_.device()};
  be_.embedding_forward(resid_[0], tok, wte_, wpe_.slice_rows(0, T_), 0);
  for (std::size_t l = 0; l < blocks_.size(); ++l) blocks_[l].forward(be_, resid_[l + 1], resid_[l], saved_[l]);
  ln_f_.forward(be_, ln_f_out_, resid_.back().view({B_ * T_, cfg_.channels}), ln_f_saved_);
  be_.matmul(logits_, ln_f_out_, wte_, {}, {.trans_b = Trans::yes});  // tied LM head
}

double Gpt::forward(const std::int32_t* tokens, const std::int32_t* targets) {
  embed_and_blocks(tokens);
  be_.copy(targets_, id_bytes(targets, Shape{B_, T_}));
  const TokenView tgt{static_cast<const std::int32_t*>(targets_.tensor().ptr), Shape{B_ * T_}, be_.device()};
  be_.cross_entropy_forward(losses_, logits_, tgt, cfg_.vocab);
  be_.copy(host_tensor(host_losses_.data(), Shape{B_ * T_}), losses_);
  return std::accumulate(host_losses_.begin(), host_losses_.end(), 0.0);
}

void Gpt::backward(float dloss) {
  const std::int64_t N = B_ * T_, C = cfg_.channels;
  const TokenView tok{static_cast<const std::int32_t*>(tokens_.tensor().ptr), Shape{B_, T_}, be_.device()};
  const TokenView tgt{static_cast<const std::int32_t*>(targets_.tensor().ptr), Shape{N}, be_.device()};
  // Loss and tied head: the logits buffer becomes dlogits in place.
  be_.cross_entropy_backward(logits_, logits_, tgt, cfg_.vocab, dloss);
  Tensor dln = scratch_.dln.view({N, C});
  be_.matmul(dln, logits_, wte_, {}, {});
  be_.matmul(dwte_, logits_, ln_f_out_, {}, {.trans_a = Trans::yes, .accumulate = Accumulate::yes});
  be_.fill(dresid_, 0.0f);
  ln_f_.backward(be_, dresid_.view({N, C}), dln, resid_.back().view({N, C}), ln_f_saved_);
  for (std::size_t l = blocks_.size(); l-- > 0;) blocks_[l].backward(be_, dresid_, resid_[l], saved_[l], scratch_);
  be_.embedding_backward(dwte_, dwpe_.slice_rows(0, T_), dresid_, tok, 0);
}

void Gpt::logits_at(const std::int32_t* tokens, std::int64_t b, std::int64_t t, float* out) {
  LOOM_CHECK(0 <= b && b < B_ && 0 <= t && t < T_, "", "logits_at: ({}, {}) outside ({}, {})", b, t, B_, T_);
  embed_and_blocks(tokens);
  const std::int64_t Vp = cfg_.padded_vocab();
  Tensor row = logits_.slice_rows(b * T_ + t, b * T_ + t + 1);
  std::vector<float> host(static_cast<std::size_t>(Vp));
  be_.copy(host_tensor(host.data(), Shape{1, Vp}), row);
  std::copy(host.begin(), host.begin() + cfg_.vocab, out);
}

}  // namespace loom
