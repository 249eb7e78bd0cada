// layers/gpt.cpp — parameter specs, memory plan, buffer wiring, and the forward /
// backward of the whole stage (llm.c's gpt2_forward / gpt2_backward, in Backend ops).
#include "layers/gpt.h"

#include <algorithm>
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

Stage make_stage(const ModelConfig& m, int stages, int stage, const std::string& split) {
  LOOM_CHECK(stages >= 1 && 0 <= stage && stage < stages, "", "pipeline stage {} of {} is out of range", stage, stages);
  LOOM_CHECK(m.layers >= stages, "use at most as many stages as layers",
             "model.layers ({}) is fewer than the pipeline stages parallel.pp ({})", m.layers, stages);
  std::vector<std::int64_t> counts;
  if (split.empty()) {
    for (int s = 0; s < stages; ++s) counts.push_back(m.layers / stages + (s < m.layers % stages ? 1 : 0));
  } else {
    std::size_t pos = 0;
    while (pos <= split.size()) {
      const std::size_t comma = std::min(split.find(',', pos), split.size());
      const std::string item = split.substr(pos, comma - pos);
      try {
        counts.push_back(std::stoll(item));
      } catch (const std::exception&) {
        throw Error(fmt::format("parallel.stages '{}': '{}' is not a number of layers", split, item),
                    "give one layer count per stage, e.g. parallel.stages = 3,3,2");
      }
      pos = comma + 1;
    }
    std::int64_t total = 0;
    for (auto c : counts) total += c;
    LOOM_CHECK(std::int64_t(counts.size()) == stages && total == m.layers &&
                   std::all_of(counts.begin(), counts.end(), [](auto c) { return c >= 1; }),
               "give parallel.pp positive counts that add up to model.layers",
               "parallel.stages '{}' must list {} layer counts >= 1 adding up to model.layers = {}", split, stages,
               m.layers);
  }
  Stage st{stages, stage, 0, 0};
  for (int s = 0; s < stage; ++s) st.layer_begin += counts[std::size_t(s)];
  st.layer_end = st.layer_begin + counts[std::size_t(stage)];
  return st;
}

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

std::vector<ParamSpec> Gpt::param_specs(const ModelConfig& m, int tp, int r, const Stage& stage) {
  check_tp(m, tp);
  const std::int64_t l0 = stage.layer_begin, l1 = stage.layer_end < 0 ? m.layers : stage.layer_end;
  const std::int64_t C = m.channels, F = m.ffn_size();
  const float std = 0.02f;
  // GPT-2 scales the init of the projections that write into the residual
  // stream by 1/sqrt(2 L) (two per block), keeping the stream's variance flat.
  const float proj_std = std / std::sqrt(2.0f * float(m.layers));
  using S = Shard::Split;
  const Shard rows{S::rows, tp, r, 1}, qkv_rows{S::rows, tp, r, 3}, cols{S::cols, tp, r, 1};
  std::vector<ParamSpec> s;
  // The tied wte lives on the first stage (embedding) and the last (head): one copy each.
  if (stage.first() || stage.last()) s.push_back({"wte", {m.padded_vocab() / tp, C}, std, 0, Decay::yes, rows});
  if (stage.first()) s.push_back({"wpe", {m.seq_len, C}, std, 0, Decay::yes});
  for (std::int64_t l = l0; l < l1; ++l) {
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
  if (stage.last()) {
    s.push_back({"ln_f.weight", {C}, 0, 1, Decay::no});
    s.push_back({"ln_f.bias", {C}, 0, 0, Decay::no});
  }
  return s;
}

MemoryPlan Gpt::memory_plan(const ModelConfig& m, std::int64_t B, std::int64_t T, int tp, const Stage& stage,
                            int slots) {
  const std::size_t f = sizeof(float), p = std::size_t(tp), k = std::size_t(slots);
  const std::size_t C = m.channels, F = m.ffn_size(), H = m.heads, Vp = m.padded_vocab();
  const std::size_t L = std::size_t((stage.layer_end < 0 ? m.layers : stage.layer_end) - stage.layer_begin);
  const std::size_t N = B * T, Cl = C / p, Fl = F / p, Hl = H / p, Vl = Vp / p;  // *l: this tp rank's share
  const bool first = stage.first(), last = stage.last();
  std::size_t params = L * (4 * C + 3 * Cl * C + 3 * Cl + C * Cl + C + 2 * Fl * C + Fl + C);
  if (first || last) params += Vl * C;
  if (first) params += m.seq_len * C;
  if (last) params += 2 * C;
  MemoryPlan plan;
  plan.items.push_back({"parameters (f32)", params * f});
  plan.items.push_back({"gradients (f32)", params * f});
  // per block: ln_1_out, ln_2_out, x1 (C each), att (C/tp), qkv (3C/tp), h, g (F/tp each),
  // probs (H/tp heads), 4 layernorm statistics
  const std::size_t per_block = N * (3 * C + Cl + 3 * Cl + 2 * Fl) + B * Hl * T * T + 4 * N;
  plan.items.push_back({fmt::format("activations: blocks ({} micro-batch slot{})", k, k > 1 ? "s" : ""),
                        k * (L * per_block + (L + 1) * N * C) * f});
  // final norm out + stats, logits (Vp/tp), loss stats (N, 3) and lse
  if (last) plan.items.push_back({"activations: final norm, logits, loss", k * (N * C + 2 * N + N * Vl + 3 * N + N) * f});
  // scratch: dqkv 3C/tp, datt C/tp, dln C, dbig F/tp, dprobs, dresid C; token ids 2N per slot
  plan.items.push_back(
      {"backward scratch + token ids", (N * (3 * Cl + Cl + C + Fl + C) + B * Hl * T * T + k * 2 * N) * f});
  return plan;
}

Tensor Gpt::alloc(Shape s) {
  buffers_.emplace_back(be_, s, DType::f32);
  return buffers_.back().tensor();
}

Gpt::Gpt(Backend& be, const ModelConfig& cfg, std::int64_t B, std::int64_t T)
    : Gpt(be, cfg, B, T, std::make_unique<LocalCommunicator>(), nullptr, Stage{}, 1) {}

Gpt::Gpt(Backend& be, const ModelConfig& cfg, std::int64_t B, std::int64_t T, Communicator& tp)
    : Gpt(be, cfg, B, T, nullptr, &tp, Stage{}, 1) {}

Gpt::Gpt(Backend& be, const ModelConfig& cfg, std::int64_t B, std::int64_t T, Communicator& tp, const Stage& stage,
         int slots)
    : Gpt(be, cfg, B, T, nullptr, &tp, stage, slots) {}

Gpt::Gpt(Backend& be, const ModelConfig& cfg, std::int64_t B, std::int64_t T, std::unique_ptr<Communicator> own,
         Communicator* tp, const Stage& stage, int slots)
    : be_(be),
      cfg_(cfg),
      B_(B),
      T_(T),
      own_tp_(std::move(own)),
      tp_(own_tp_ ? *own_tp_ : *tp),
      vocab_start_(tp_.rank() * (cfg.padded_vocab() / tp_.size())),
      stage_(stage.layer_end < 0 ? Stage{stage.stages, stage.stage, 0, cfg.layers} : stage),
      params_(be, param_specs(cfg, tp_.size(), tp_.rank(), stage_)) {
  validate(cfg);
  LOOM_CHECK(B > 0 && T > 0, "", "model: batch ({}) and sequence length ({}) must be positive", B, T);
  LOOM_CHECK(T <= cfg.seq_len, "lower train sequence length or raise model.seq_len",
             "sequence length {} exceeds the model's maximum model.seq_len = {}", T, cfg.seq_len);
  // Sizes on this tp rank: channels of attention (Cl), ffn (Fl), heads (Hl), vocabulary rows (Vl).
  LOOM_CHECK(slots >= 1, "", "model: slots must be >= 1, got {}", slots);
  const std::int64_t p = tp_.size(), C = cfg.channels, N = B * T;
  const std::int64_t l0 = stage_.layer_begin, L = stage_.layer_end - l0;  // this stage's layers
  const std::int64_t Cl = C / p, Fl = cfg.ffn_size() / p, Hl = cfg.heads / p, Vl = cfg.padded_vocab() / p;
  buffers_.reserve(std::size_t(slots * (16 * L + 16) + 16));

  if (stage_.first() || stage_.last()) wte_ = params_.param("wte"), dwte_ = params_.grad("wte");
  if (stage_.first()) wpe_ = params_.param("wpe"), dwpe_ = params_.grad("wpe");
  auto lin = [&](std::int64_t l, const std::string& name) {
    const std::string w = layer_name(l, (name + ".weight").c_str()), b = layer_name(l, (name + ".bias").c_str());
    return Linear{params_.param(w), params_.param(b), params_.grad(w), params_.grad(b)};
  };
  auto norm = [&](const std::string& prefix) {
    return LayerNorm{params_.param(prefix + ".weight"), params_.param(prefix + ".bias"),
                     params_.grad(prefix + ".weight"), params_.grad(prefix + ".bias")};
  };
  for (std::int64_t l = l0; l < l0 + L; ++l) {
    const std::size_t first = params_.index(layer_name(l, "ln_1.weight"));
    block_params_.push_back({first, params_.index(layer_name(l, "mlp.c_proj.bias")) + 1});
    Block b;
    b.ln_1 = norm(layer_name(l, "ln_1"));
    b.attn = Attention{{lin(l, "attn.c_attn"), &tp_}, {lin(l, "attn.c_proj"), &tp_}, int(Hl)};
    b.ln_2 = norm(layer_name(l, "ln_2"));
    b.mlp = Mlp{{lin(l, "mlp.c_fc"), &tp_}, {lin(l, "mlp.c_proj"), &tp_}};
    blocks_.push_back(b);
  }
  if (stage_.last()) ln_f_ = norm("ln_f");

  // ---- activations (the memory plan above counts exactly these) ----
  for (int k = 0; k < slots; ++k) {
    Slot slot;
    for (std::int64_t l = 0; l <= L; ++l) slot.resid.push_back(alloc({B, T, C}));
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
      slot.saved.push_back(s);
    }
    if (stage_.last()) {
      slot.ln_f_out = alloc({N, C});
      slot.ln_f_saved = {alloc({N}), alloc({N})};
      slot.logits = alloc({N, Vl});
      slot.ce_stats = alloc({N, 3});
      slot.lse = alloc({N});
    }
    slot.tokens = Buffer(be_, Shape{B, T}, DType::f32);
    slot.targets = Buffer(be_, Shape{B, T}, DType::f32);
    slots_.push_back(std::move(slot));
  }
  scratch_.attn = {alloc({B, T, 3 * Cl}), alloc({B, T, Cl}), alloc({B, Hl, T, T})};
  scratch_.dln = alloc({B, T, C});
  scratch_.dbig = alloc({N, Fl});
  dresid_ = alloc({B, T, C});
  for (auto* v : {&host_max_, &host_sum_, &host_target_, &host_lse_}) v->resize(std::size_t(N));
  host_stats_.resize(std::size_t(3 * N));
}

Tensor Gpt::block_grads(std::size_t b) const { return params_.grad_span(block_params_[b].first, block_params_[b].second); }

Tensor Gpt::grads_before_blocks() const {
  return params_.grad_span(0, block_params_.empty() ? params_.size() : block_params_.front().first);
}

Tensor Gpt::grads_after_blocks() const {
  return block_params_.empty() ? params_.grad_span(0, 0) : params_.grad_span(block_params_.back().second, params_.size());
}

float Gpt::norm_weight(std::size_t i) const {
  const ParamSpec& spec = params_.spec(i);
  if (spec.name == "wte" && stage_.last() && !stage_.first()) return 0.0f;  // the first stage counts it
  return spec.shard.split == Shard::Split::none ? 1.0f / float(tp_.size()) : 1.0f;
}

void Gpt::embed_and_blocks(const std::int32_t* tokens, Slot& s) {
  if (stage_.first()) {
    be_.copy(s.tokens, id_bytes(tokens, Shape{B_, T_}));
    const TokenView tok{static_cast<const std::int32_t*>(s.tokens.tensor().ptr), Shape{B_, T_}, be_.device()};
    // Vocabulary-parallel embedding: each tp rank adds the rows it holds (zeros for
    // other tokens) and rank 0 the positions; the all-reduce completes the sum.
    be_.embedding_forward(s.resid[0], tok, wte_, tp_.rank() == 0 ? wpe_.slice_rows(0, T_) : Tensor{}, vocab_start_);
    tp_.all_reduce(s.resid[0]);
  }  // else: the previous stage's output was received into s.resid[0]
  for (std::size_t l = 0; l < blocks_.size(); ++l) blocks_[l].forward(be_, s.resid[l + 1], s.resid[l], s.saved[l]);
  if (!stage_.last()) return;
  ln_f_.forward(be_, s.ln_f_out, s.resid.back().view({B_ * T_, cfg_.channels}), s.ln_f_saved);
  be_.matmul(s.logits, s.ln_f_out, wte_, {}, {.trans_b = Trans::yes});  // tied head: this rank's vocabulary columns
}

double Gpt::forward(const std::int32_t* tokens, const std::int32_t* targets, int slot) {
  Slot& s = slots_.at(std::size_t(slot));
  embed_and_blocks(tokens, s);
  if (!stage_.last()) return 0.0;
  be_.copy(s.targets, id_bytes(targets, Shape{B_, T_}));
  const TokenView tgt{static_cast<const std::int32_t*>(s.targets.tensor().ptr), Shape{B_ * T_}, be_.device()};
  // Vocabulary-parallel loss: per-row (max, sum of exp, target logit) of this
  // shard, combined over tp into log-sum-exp and the target logit; the logits
  // themselves never leave the rank.
  be_.cross_entropy_shard_stats(s.ce_stats, s.logits, tgt, vocab_start_, cfg_.vocab);
  const std::int64_t N = B_ * T_;
  be_.copy(host_tensor(host_stats_.data(), Shape{N, 3}), s.ce_stats);
  for (std::int64_t i = 0; i < N; ++i) {
    host_max_[std::size_t(i)] = host_stats_[std::size_t(3 * i)];
    host_target_[std::size_t(i)] = host_stats_[std::size_t(3 * i + 2)];
  }
  tp_.all_reduce(host_tensor(host_max_.data(), Shape{N}), ReduceOp::max);
  for (std::int64_t i = 0; i < N; ++i) {  // rescale this shard's sum to the global max
    const float v = host_stats_[std::size_t(3 * i + 1)];
    host_sum_[std::size_t(i)] = v > 0 ? v * std::exp(host_stats_[std::size_t(3 * i)] - host_max_[std::size_t(i)]) : 0.0f;
  }
  tp_.all_reduce(host_tensor(host_sum_.data(), Shape{N}));
  tp_.all_reduce(host_tensor(host_target_.data(), Shape{N}));
  double total = 0;
  for (std::int64_t i = 0; i < N; ++i) {
    host_lse_[std::size_t(i)] = host_max_[std::size_t(i)] + std::log(host_sum_[std::size_t(i)]);
    total += double(host_lse_[std::size_t(i)]) - double(host_target_[std::size_t(i)]);
  }
  be_.copy(s.lse, host_tensor(host_lse_.data(), Shape{N}));
  return total;
}

void Gpt::backward(float dloss, int slot) {
  Slot& s = slots_.at(std::size_t(slot));
  const std::int64_t N = B_ * T_, C = cfg_.channels;
  if (stage_.last()) {
    const TokenView tgt{static_cast<const std::int32_t*>(s.targets.tensor().ptr), Shape{N}, be_.device()};
    // Loss and tied head: the logits buffer becomes dlogits in place.
    be_.cross_entropy_shard_backward(s.logits, s.logits, tgt, vocab_start_, cfg_.vocab, s.lse, dloss);
    Tensor dln = scratch_.dln.view({N, C});
    be_.matmul(dln, s.logits, wte_, {}, {});
    tp_.all_reduce(dln);  // each shard's head contributes to the gradient of ln_f's output
    be_.matmul(dwte_, s.logits, s.ln_f_out, {}, {.trans_a = Trans::yes, .accumulate = Accumulate::yes});
    be_.fill(dresid_, 0.0f);
    ln_f_.backward(be_, dresid_.view({N, C}), dln, s.resid.back().view({N, C}), s.ln_f_saved);
  }  // else: dresid_ holds d loss / d output, received from the next stage
  for (std::size_t l = blocks_.size(); l-- > 0;) {
    blocks_[l].backward(be_, dresid_, s.resid[l], s.saved[l], scratch_);
    if (block_hook_) block_hook_(l);
  }
  if (!stage_.first()) return;  // dresid_ = d loss / d input, for the previous stage
  const TokenView tok{static_cast<const std::int32_t*>(s.tokens.tensor().ptr), Shape{B_, T_}, be_.device()};
  be_.embedding_backward(dwte_, dwpe_.slice_rows(0, T_), dresid_, tok, vocab_start_);
}

void Gpt::logits_at(const std::int32_t* tokens, std::int64_t b, std::int64_t t, float* out) {
  LOOM_CHECK(0 <= b && b < B_ && 0 <= t && t < T_, "", "logits_at: ({}, {}) outside ({}, {})", b, t, B_, T_);
  LOOM_CHECK(tp_.size() == 1 && stage_.stages == 1, "", "logits_at: needs the whole model on one rank");
  embed_and_blocks(tokens, slots_[0]);
  const std::int64_t Vp = cfg_.padded_vocab();
  Tensor row = slots_[0].logits.slice_rows(b * T_ + t, b * T_ + t + 1);
  std::vector<float> host(static_cast<std::size_t>(Vp));
  be_.copy(host_tensor(host.data(), Shape{1, Vp}), row);
  std::copy(host.begin(), host.begin() + cfg_.vocab, out);
}

}  // namespace loom
