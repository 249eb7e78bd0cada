// layers/t5.cpp — the encoder-decoder's buffers, forward and backward (layers/t5.h); what
// goes where (stages, specs, config JSON): t5_layout.cpp.
#include "layers/t5.h"

#include <algorithm>

#include "parallel/local_communicator.h"

namespace loom {

namespace {
// Token ids travel in 4-byte tensors: a view the backend can copy byte for byte.
Tensor id_bytes(const std::int32_t* p, Shape s) {
  return Tensor{const_cast<std::int32_t*>(p), s, DType::f32, Device::cpu};
}
TokenView ids(const Tensor& t, Shape s) {
  return TokenView{static_cast<const std::int32_t*>(t.ptr), s, t.device};
}
std::string enc_name(std::int64_t l, const char* rest) { return fmt::format("enc.h.{}.{}", l, rest); }
std::string dec_name(std::int64_t l, const char* rest) { return fmt::format("dec.h.{}.{}", l, rest); }
}  // namespace

T5::T5(Backend& be, const ModelConfig& cfg, std::int64_t B, std::int64_t Te, std::int64_t Td,
       Communicator* tp, const T5Options& options, const T5Stage& stage)
    : be_(be),
      cfg_(cfg),
      Le_(cfg.layers),
      Ld_(cfg.decoder_layer_count()),
      stage_(stage.end == 0 ? make_t5_stage(cfg, stage.stages, stage.stage, stage.split) : stage),
      B_(B),
      Te_(Te),
      Td_(Td),
      dtype_(options.dtype),
      own_tp_(tp ? nullptr : std::make_unique<LocalCommunicator>()),
      tp_(own_tp_ ? *own_tp_ : *tp),
      vocab_start_(tp_.rank() * (cfg.padded_vocab() / tp_.size())),
      params_(be, param_specs(cfg, tp_.size(), tp_.rank(), stage_), options.dtype),
      mem_(be),
      positions_(parse_positions(cfg.positions)),
      loss_{&tp_, vocab_start_, cfg.vocab} {
  validate(cfg);
  LOOM_CHECK(cfg.t5(), "", "T5 needs model.family t5, got '{}'", cfg.family);
  LOOM_CHECK(B > 0 && Te > 0 && Td > 0, "",
             "T5: batch ({}), encoder ({}) and decoder ({}) lengths must be positive", B, Te, Td);
  LOOM_CHECK(Te <= cfg.seq_len && Td <= cfg.seq_len, "raise model.seq_len",
             "T5: encoder length {} or decoder length {} exceeds model.seq_len = {}", Te, Td, cfg.seq_len);
  LOOM_CHECK(options.slots >= 1, "", "T5: slots must be >= 1, got {}", options.slots);
  const std::int64_t p = tp_.size(), C = cfg.channels, Cl = C / p, Hl = cfg.heads / p,
                     Fl = cfg.ffn_size() / p;
  const std::int64_t Vl = cfg.padded_vocab() / p, Ne = B * Te, Nd = B * Td;
  const std::int64_t Lel = enc_end() - enc_begin(), Ldl = dec_end() - dec_begin();  // this stage's
  const bool rms = cfg.norm == "rmsnorm", swiglu = cfg.mlp == "swiglu";
  const MlpKind mlp = swiglu ? MlpKind::swiglu : cfg.mlp == "relu" ? MlpKind::relu : MlpKind::gelu;
  const NormKind nk = rms ? NormKind::rmsnorm : NormKind::layernorm;
  const std::int64_t Hdl = swiglu ? 2 * Fl : Fl;

  auto lin = [&](const std::string& n) {  // no bias (param_specs)
    return Linear{params_.param(n + ".weight"), Tensor{}, params_.grad(n + ".weight"), Tensor{}};
  };
  auto norm = [&](const std::string& n) {
    return LayerNorm{params_.param(n + ".weight"),
                     rms ? Tensor{} : params_.param(n + ".bias"),
                     params_.grad(n + ".weight"),
                     rms ? Tensor{} : params_.grad(n + ".bias"),
                     nullptr,
                     nk,
                     float(cfg.norm_eps)};
  };
  auto attention = [&](const std::string& prefix, bool causal) {
    return Attention{{lin(prefix + ".c_attn"), &tp_, nullptr},
                     {lin(prefix + ".c_proj"), &tp_, nullptr},
                     int(Hl),
                     int(Hl),
                     0.0f,
                     Tensor{},
                     causal,
                     0,
                     AttentionKernel::tiled};
  };
  auto last_of_norm = [&](const std::string& n) { return params_.index(n + (rms ? ".weight" : ".bias")); };
  auto bucket = [&](std::size_t first, std::size_t last) {
    buckets_.push_back({first, last});
    return buckets_.size() - 1;
  };

  const bool learned = positions_ == Positions::learned,
             wte_here = embeds_enc() || embeds_dec() || has_loss();
  if (wte_here) wte_ = params_.param("wte"), dwte_ = params_.grad("wte");
  if (learned && embeds_enc()) enc_wpe_ = params_.param("enc.wpe"), denc_wpe_ = params_.grad("enc.wpe");
  if (learned && embeds_dec()) dec_wpe_ = params_.param("dec.wpe"), ddec_wpe_ = params_.grad("dec.wpe");
  // T5's relative bias: per stack, the bucket of every offset (uploaded once), the gathered
  // (2T - 1, Hl) f32 bias every self-attention of the stack reads, and the per-sequence
  // gradient they all add into; allocated only where the stack has blocks.
  auto relative = [&](RelativeBias& r, const std::string& name, std::int64_t T, RelBuckets kind) {
    const std::int64_t Toff = 2 * T - 1;
    const std::string cat = "relative position bias (shared)";
    r.table = params_.param(name), r.dtable = params_.grad(name);
    r.ids = f32("token ids", {B, Toff});
    if (dtype_ != DType::f32) r.gathered = act(cat, {1, Toff, Hl});
    r.bias = f32(cat, {Toff, Hl});
    r.dbias = f32(cat, {B, Toff, Hl});  // t5 refuses a frozen backbone: always computed
    RelativeBias::upload_ids(be_, r.ids, T, T, kind, cfg.rel_buckets, cfg.rel_max_distance);
  };
  if (positions_ == Positions::t5_relative && Lel > 0)
    relative(enc_rel_, "enc.rel_bias", Te, RelBuckets::bidirectional);
  if (positions_ == Positions::t5_relative && Ldl > 0)
    relative(dec_rel_, "dec.rel_bias", Td, RelBuckets::causal);
  for (std::int64_t l = enc_begin(); l < enc_end(); ++l) {
    Block b;
    b.ln_1 = norm(enc_name(l, "ln_1"));
    b.attn = attention(enc_name(l, "attn"), /*causal=*/false);           // the encoder sees every position
    b.attn.rel_bias = enc_rel_.bias, b.attn.drel_bias = enc_rel_.dbias;  // empty unless t5_relative
    b.ln_2 = norm(enc_name(l, "ln_2"));
    b.mlp = Mlp{
        {lin(enc_name(l, "mlp.c_fc")), &tp_, nullptr}, {lin(enc_name(l, "mlp.c_proj")), &tp_, nullptr}, mlp};
    enc_blocks_.push_back(b);
  }
  if (has_enc_ln()) enc_ln_ = norm("enc.ln_f");
  for (std::int64_t l = dec_begin(); l < dec_end(); ++l) {
    DecoderBlock b;
    b.ln_1 = norm(dec_name(l, "ln_1"));
    b.attn = attention(dec_name(l, "attn"), /*causal=*/true);
    b.attn.rel_bias = dec_rel_.bias, b.attn.drel_bias = dec_rel_.dbias;  // the cross-attention has none
    b.ln_2 = norm(dec_name(l, "ln_2"));
    b.cross = CrossAttention{{lin(dec_name(l, "cross.c_q")), &tp_, nullptr},
                             {lin(dec_name(l, "cross.c_kv")), &tp_, nullptr},
                             {lin(dec_name(l, "cross.c_proj")), &tp_, nullptr},
                             int(Hl)};
    b.ln_3 = norm(dec_name(l, "ln_3"));
    b.mlp = Mlp{
        {lin(dec_name(l, "mlp.c_fc")), &tp_, nullptr}, {lin(dec_name(l, "mlp.c_proj")), &tp_, nullptr}, mlp};
    dec_blocks_.push_back(b);
  }
  if (has_loss()) dec_ln_ = norm("dec.ln_f");

  // Buckets in the order backward completes them.
  if (has_loss()) b_dec_ln_ = bucket(params_.index("dec.ln_f.weight"), last_of_norm("dec.ln_f") + 1);
  b_dec_.assign(std::size_t(Ldl), kNone);
  for (std::int64_t l = dec_end(); l-- > dec_begin();)
    b_dec_[std::size_t(l - dec_begin())] = bucket(params_.index(dec_name(l, "ln_1.weight")),
                                                  params_.index(dec_name(l, "mlp.c_proj.weight")) + 1);
  if (!dec_rel_.table.empty())  // after the decoder blocks' backward
    b_dec_rel_ = bucket(params_.index("dec.rel_bias"), params_.index("dec.rel_bias") + 1);
  if (has_enc_ln()) b_enc_ln_ = bucket(params_.index("enc.ln_f.weight"), last_of_norm("enc.ln_f") + 1);
  b_enc_.assign(std::size_t(Lel), kNone);
  for (std::int64_t l = enc_end(); l-- > enc_begin();)
    b_enc_[std::size_t(l - enc_begin())] = bucket(params_.index(enc_name(l, "ln_1.weight")),
                                                  params_.index(enc_name(l, "mlp.c_proj.weight")) + 1);
  if (!enc_rel_.table.empty())  // after the encoder blocks' backward
    b_enc_rel_ = bucket(params_.index("enc.rel_bias"), params_.index("enc.rel_bias") + 1);
  if (wte_here) {
    const std::size_t last = learned && embeds_dec()   ? params_.index("dec.wpe")
                             : learned && embeds_enc() ? params_.index("enc.wpe")
                                                       : params_.index("wte");
    b_embed_ = bucket(params_.index("wte"), last + 1);
  }

  if (positions_ == Positions::sinusoidal &&
      (embeds_enc() || embeds_dec())) {  // each stack adds its first T rows
    const std::int64_t T = std::max(Te, Td);
    std::vector<float> table = sinusoidal_table(T, C);
    Buffer wide(be_, Shape{T, C}, DType::f32);  // construction only
    be_.copy(wide, host_tensor(table.data(), Shape{T, C}));
    pos_table_ = act("position constants", {T, C});
    be_.cast(pos_table_, wide);
  }

  // ---- activations, per slot: exactly what forward saves for backward (this stage's layers)
  const std::string enc = "activations: encoder", dec = "activations: decoder",
                    head = "activations: final norm, logits, loss";
  auto norm_saved = [&](const std::string& cat, std::int64_t n) {
    return LayerNorm::Saved{rms ? Tensor{} : f32(cat, {n}), f32(cat, {n})};
  };
  const bool enc_here = Lel > 0, dec_here = Ldl > 0;
  for (int k = 0; k < options.slots; ++k) {
    Slot s;
    if (embeds_enc()) s.enc_host.assign(std::size_t(Ne), 0), s.enc_tok = f32("token ids", {B, Te});
    if (embeds_dec()) s.dec_host.assign(std::size_t(Nd), 0), s.dec_tok = f32("token ids", {B, Td});
    if (has_loss()) s.tgt_host.assign(std::size_t(Nd), 0), s.targets = f32("token ids", {B, Td});
    if (enc_here)
      for (std::int64_t l = 0; l <= Lel; ++l) s.enc_resid.push_back(act(enc, {B, Te, C}));
    if (dec_here)
      for (std::int64_t l = 0; l <= Ldl; ++l) s.dec_resid.push_back(act(dec, {B, Td, C}));
    for (std::int64_t l = 0; l < Lel; ++l) {
      Block::Saved b;
      b.ln_1_out = act(enc, {B, Te, C}), b.ln_2_out = act(enc, {B, Te, C}), b.x1 = act(enc, {B, Te, C});
      b.attn.qkv = act(enc, {B, Te, 3 * Cl}), b.attn.att = act(enc, {B, Te, Cl}),
      b.attn.lse = f32(enc, {B, Hl, Te});
      b.mlp.h = act(enc, {Ne, Hdl}), b.mlp.g = act(enc, {Ne, Fl});
      b.ln_1 = norm_saved(enc, Ne), b.ln_2 = norm_saved(enc, Ne);
      s.enc_saved.push_back(b);
    }
    for (std::int64_t l = 0; l < Ldl; ++l) {
      DecoderBlock::Saved b;
      b.ln_1_out = act(dec, {B, Td, C}), b.x1 = act(dec, {B, Td, C}), b.ln_2_out = act(dec, {B, Td, C});
      b.x2 = act(dec, {B, Td, C}), b.ln_3_out = act(dec, {B, Td, C});
      b.attn.qkv = act(dec, {B, Td, 3 * Cl}), b.attn.att = act(dec, {B, Td, Cl}),
      b.attn.lse = f32(dec, {B, Hl, Td});
      b.cross.q = act(dec, {B, Td, Cl}), b.cross.kv = act(dec, {B, Te, 2 * Cl}),
      b.cross.att = act(dec, {B, Td, Cl});
      b.cross.lse = f32(dec, {B, Hl, Td});
      b.mlp.h = act(dec, {Nd, Hdl}), b.mlp.g = act(dec, {Nd, Fl});
      b.ln_1 = norm_saved(dec, Nd), b.ln_2 = norm_saved(dec, Nd), b.ln_3 = norm_saved(dec, Nd);
      s.dec_saved.push_back(b);
    }
    if (has_enc_ln() || dec_here) s.enc_out = act(enc, {B, Te, C});  // made here, or received
    if (has_enc_ln()) s.enc_ln_saved = norm_saved(enc, Ne);
    if (has_loss()) {
      s.ln_f_out = act(head, {Nd, C});
      s.ln_f_saved = norm_saved(head, Nd);
      s.logits = act(head, {Nd, Vl});
      s.loss = {f32(head, {Nd}), f32(head, {2, Nd}), f32(head, {Nd})};
    }
    slots_.push_back(std::move(s));
  }
  const std::string scratch = "backward scratch (shared by all layers)",
                    boundary = "pipeline boundary gradients";
  if (enc_here) {
    enc_scratch_.attn = {act(scratch, {B, Te, 3 * Cl}), act(scratch, {B, Te, Cl}), Tensor{}};
    enc_scratch_.dln = act(scratch, {B, Te, C});
    enc_scratch_.dbig = act(scratch, {Ne, Fl});
    if (swiglu) enc_scratch_.dh = act(scratch, {Ne, 2 * Fl});
    enc_dresid_ = act(boundary, {B, Te, C});
  }
  if (dec_here) {
    dec_scratch_.attn = {act(scratch, {B, Td, 3 * Cl}), act(scratch, {B, Td, Cl}), Tensor{}};
    dec_scratch_.cross = {act(scratch, {B, Td, Cl}), act(scratch, {B, Te, 2 * Cl}), act(scratch, {B, Td, Cl}),
                          act(scratch, {B, Te, C})};
    dec_scratch_.dln = act(scratch, {B, Td, C});
    dec_scratch_.dbig = act(scratch, {Nd, Fl});
    if (swiglu) dec_scratch_.dh = act(scratch, {Nd, 2 * Fl});
    dec_dresid_ = act(boundary, {B, Td, C});
  }
  if (has_enc_ln() || dec_here) denc_ = act(boundary, {B, Te, C});
  // d loss / d outputs, received: the shapes of outputs() (see t5.h).
  if (!has_loss()) {
    if (stage_.end < Le_) {
      doutput_ = {act(boundary, {B, Te, C})};
    } else {
      doutput_ = {act(boundary, {B, Te, C})};
      if (stage_.end > Le_) doutput_.push_back(act(boundary, {B, Td, C}));
    }
  }
  if (has_loss()) {
    loss_rows_ = f32("loss accumulator", {Nd});
    be_.fill(loss_rows_, 0.0f);
  }
}

std::vector<Tensor> T5::inputs(int, int slot) {
  const Slot& s = slots_.at(std::size_t(slot));
  if (stage_.begin == 0) return {};
  if (stage_.begin < Le_) return {s.enc_resid.front()};
  if (stage_.begin == Le_) return {s.enc_out};
  return {s.enc_out, s.dec_resid.front()};
}

std::vector<Tensor> T5::outputs(int, int slot) {
  const Slot& s = slots_.at(std::size_t(slot));
  if (has_loss()) return {};
  if (stage_.end < Le_) return {s.enc_resid.back()};
  if (stage_.end == Le_) return {s.enc_out};
  return {s.enc_out, s.dec_resid.back()};
}

std::vector<Tensor> T5::input_grads(int) {
  if (stage_.begin == 0) return {};
  if (stage_.begin < Le_) return {enc_dresid_};
  if (stage_.begin == Le_) return {denc_};
  return {denc_, dec_dresid_};
}

std::vector<Tensor> T5::output_grads(int) { return doutput_; }

// The single place absolute positions are chosen: learned tables or the sinusoidal one, added
// by the embedding on tp rank 0 (the vocabulary-parallel all-reduce completes the sum).
// t5_relative adds none here: its tables bias the self-attentions (enc_rel_, dec_rel_).
Tensor T5::position_term(bool decoder, std::int64_t T) const {
  if (tp_.rank() != 0) return {};
  switch (positions_) {
    case Positions::learned:
      return (decoder ? dec_wpe_ : enc_wpe_).slice_rows(0, T);
    case Positions::sinusoidal:
      return pos_table_.slice_rows(0, T);
    default:
      return {};  // t5_relative (validate() admits no other for t5)
  }
}

void T5::run_forward(Slot& s, const std::int32_t* tokens) {
  const std::int64_t R = Te_ + Td_, C = cfg_.channels;
  // Encoder: embedding (vocabulary-parallel: each tp rank adds its rows, the all-reduce
  // completes the sum) or the received stream, this stage's blocks, the final norm.
  if (embeds_enc()) {
    for (std::int64_t b = 0; b < B_; ++b)
      std::copy(tokens + b * R, tokens + b * R + Te_, s.enc_host.begin() + b * Te_);
    be_.upload_async(s.enc_tok, id_bytes(s.enc_host.data(), {B_, Te_}));
    be_.embedding_forward(s.enc_resid[0], ids(s.enc_tok, {B_, Te_}), wte_, position_term(false, Te_),
                          vocab_start_);
    tp_.all_reduce(s.enc_resid[0]);
  }
  if (!enc_rel_.table.empty()) enc_rel_.forward(be_);  // the shared table's current values, every block
  for (std::size_t l = 0; l < enc_blocks_.size(); ++l)
    enc_blocks_[l].forward(be_, s.enc_resid[l + 1], s.enc_resid[l], s.enc_saved[l]);
  if (has_enc_ln())
    enc_ln_.forward(be_, s.enc_out.view({B_ * Te_, C}), s.enc_resid.back().view({B_ * Te_, C}),
                    s.enc_ln_saved);
  if (!has_dec()) return;
  // Decoder, reading the encoder output (made above or received) in every block.
  if (embeds_dec()) {
    for (std::int64_t b = 0; b < B_; ++b)
      std::copy(tokens + b * R + Te_, tokens + (b + 1) * R, s.dec_host.begin() + b * Td_);
    be_.upload_async(s.dec_tok, id_bytes(s.dec_host.data(), {B_, Td_}));
    be_.embedding_forward(s.dec_resid[0], ids(s.dec_tok, {B_, Td_}), wte_, position_term(true, Td_),
                          vocab_start_);
    tp_.all_reduce(s.dec_resid[0]);
  }
  if (!dec_rel_.table.empty()) dec_rel_.forward(be_);
  for (std::size_t l = 0; l < dec_blocks_.size(); ++l)
    dec_blocks_[l].forward(be_, s.dec_resid[l + 1], s.dec_resid[l], s.enc_out, s.dec_saved[l]);
  if (!has_loss()) return;
  dec_ln_.forward(be_, s.ln_f_out, s.dec_resid.back().view({B_ * Td_, C}), s.ln_f_saved);
  be_.matmul(s.logits, s.ln_f_out, wte_, {}, {.trans_b = Trans::yes});  // tied head: this rank's vocabulary
}

void T5::forward(int chunk, const MicroBatch& mb, int slot) {
  LOOM_CHECK(chunk == 0, "", "T5: one chunk, got chunk {}", chunk);
  Slot& s = slots_.at(std::size_t(slot));
  run_forward(s, mb.tokens);
  if (!has_loss()) return;
  const std::int64_t R = Te_ + Td_;
  for (std::int64_t b = 0; b < B_; ++b)
    std::copy(mb.targets + b * R + Te_, mb.targets + (b + 1) * R, s.tgt_host.begin() + b * Td_);
  be_.upload_async(s.targets, id_bytes(s.tgt_host.data(), {B_, Td_}));
  loss_.forward(be_, loss_rows_, s.logits, ids(s.targets, {B_ * Td_}), s.loss);
}

void T5::backward(int chunk, int slot, float dloss) {
  LOOM_CHECK(chunk == 0, "", "T5: one chunk, got chunk {}", chunk);
  Slot& s = slots_.at(std::size_t(slot));
  const std::int64_t C = cfg_.channels, Nd = B_ * Td_, Ne = B_ * Te_;
  if (has_loss()) {
    // Loss and tied head (the logits become dlogits in place); every shard's head adds to
    // d ln_f output: all-reduced over tp.
    loss_.backward(be_, s.logits, s.logits, ids(s.targets, {Nd}), s.loss, dloss);
    const Tensor dln = dec_scratch_.dln.view({Nd, C});
    be_.matmul(dln, s.logits, wte_, {}, {});
    tp_.all_reduce(dln);
    be_.matmul(dwte_, s.logits, s.ln_f_out, {}, {.trans_a = Trans::yes, .accumulate = Accumulate::yes});
    be_.fill(dec_dresid_, 0.0f);
    dec_ln_.backward(be_, dec_dresid_.view({Nd, C}), dln, s.dec_resid.back().view({Nd, C}), s.ln_f_saved);
    ready(b_dec_ln_);
    be_.fill(denc_, 0.0f);
  } else if (stage_.end > Le_) {  // received: d(encoder output), d(decoder stream)
    be_.copy(denc_, doutput_[0]);
    be_.copy(dec_dresid_, doutput_[1]);
  } else if (stage_.end == Le_) {  // received: d(encoder output)
    be_.copy(denc_, doutput_[0]);
  } else {  // received: d(encoder stream)
    be_.copy(enc_dresid_, doutput_[0]);
  }
  // Decoder blocks, adding each cross-attention's d(encoder output) into denc_ (and, under
  // t5_relative, each self-attention's d bias into the stack's accumulator, scattered into
  // the table's gradient once the stack's blocks on this stage are done).
  if (!dec_rel_.table.empty()) dec_rel_.begin_backward(be_);
  for (std::size_t l = dec_blocks_.size(); l-- > 0;) {
    dec_blocks_[l].backward(be_, dec_dresid_, denc_, s.dec_resid[l], s.enc_out, s.dec_saved[l], dec_scratch_);
    ready(b_dec_[l]);
  }
  if (!dec_rel_.table.empty()) dec_rel_.end_backward(be_), ready(b_dec_rel_);
  if (embeds_dec())
    be_.embedding_backward(dwte_, ddec_wpe_.empty() ? Tensor{} : ddec_wpe_.slice_rows(0, Td_), dec_dresid_,
                           ids(s.dec_tok, {B_, Td_}), vocab_start_);
  // Encoder: its final norm takes the summed d(encoder output).
  if (has_enc_ln()) {
    be_.fill(enc_dresid_, 0.0f);
    enc_ln_.backward(be_, enc_dresid_.view({Ne, C}), denc_.view({Ne, C}), s.enc_resid.back().view({Ne, C}),
                     s.enc_ln_saved);
    ready(b_enc_ln_);
  }
  if (!enc_rel_.table.empty()) enc_rel_.begin_backward(be_);
  for (std::size_t l = enc_blocks_.size(); l-- > 0;) {
    enc_blocks_[l].backward(be_, enc_dresid_, s.enc_resid[l], s.enc_saved[l], enc_scratch_);
    ready(b_enc_[l]);
  }
  if (!enc_rel_.table.empty()) enc_rel_.end_backward(be_), ready(b_enc_rel_);
  if (embeds_enc())
    be_.embedding_backward(dwte_, denc_wpe_.empty() ? Tensor{} : denc_wpe_.slice_rows(0, Te_), enc_dresid_,
                           ids(s.enc_tok, {B_, Te_}), vocab_start_);
  if (b_embed_ != kNone) ready(b_embed_);
}

double T5::take_loss_sum() {
  if (loss_rows_.empty()) return 0.0;
  const double total = be_.sum(loss_rows_);
  be_.fill(loss_rows_, 0.0f);
  return total;
}

std::vector<Tensor> T5::grad_buckets() const {
  std::vector<Tensor> out;
  for (auto [first, last] : buckets_) out.push_back(params_.grad_span(first, last));
  return out;
}

MemoryPlan T5::memory_plan() const {
  MemoryPlan plan = params_.memory_plan();
  plan.add(mem_.plan());
  return plan;
}

void T5::logits_at(const std::int32_t* tokens, std::int64_t b, std::int64_t t, float* out) {
  LOOM_CHECK(0 <= b && b < B_ && 0 <= t && t < Td_, "", "logits_at: ({}, {}) outside ({}, {})", b, t, B_,
             Td_);
  LOOM_CHECK(tp_.size() == 1 && stage_.stages == 1, "", "logits_at: needs the whole model on one rank");
  Slot& s = slots_[0];
  run_forward(s, tokens);
  const std::int64_t Vp = cfg_.padded_vocab();
  std::vector<float> host(static_cast<std::size_t>(Vp));
  Buffer wide(be_, Shape{1, Vp}, DType::f32);  // generation only: not part of the plan
  be_.cast(wide, s.logits.slice_rows(b * Td_ + t, b * Td_ + t + 1));
  be_.copy(host_tensor(host.data(), Shape{1, Vp}), wide);
  std::copy(host.begin(), host.begin() + cfg_.vocab, out);
}

}  // namespace loom
