// layers/gpt.cpp — buffer wiring and the forward / backward of each chunk
// (llm.c's gpt2_forward / gpt2_backward, in Backend ops). Layout: gpt_layout.cpp.
#include "layers/gpt.h"

#include <algorithm>

#include "layers/positions.h"
#include "parallel/local_communicator.h"

namespace loom {

namespace {
std::string layer_name(std::int64_t l, const char* rest) { return fmt::format("h.{}.{}", l, rest); }
// Token ids travel in 4-byte tensors: a view the backend can copy byte for byte.
Tensor id_bytes(const std::int32_t* p, Shape s) {
  return Tensor{const_cast<std::int32_t*>(p), s, DType::f32, Device::cpu};
}
TokenView ids(const Tensor& t, Shape s) { return TokenView{static_cast<const std::int32_t*>(t.ptr), s, t.device}; }
constexpr std::size_t kNone = std::size_t(-1);
// finetune.freeze_backbone: every parameter but the classification head's is frozen.
std::vector<ParamSpec> freeze_backbone(std::vector<ParamSpec> specs, bool freeze) {
  for (ParamSpec& p : specs)
    if (freeze && !p.name.starts_with("cls.")) p.frozen = Frozen::yes;
  return specs;
}
}  // namespace

Gpt::Gpt(Backend& be, const ModelConfig& cfg, std::int64_t B, std::int64_t T)
    : Gpt(be, cfg, B, T, nullptr, GptStage{}, {}, GptOptions{}) {}

Gpt::Gpt(Backend& be, const ModelConfig& cfg, std::int64_t B, std::int64_t T, Communicator& tp, const GptStage& stage,
         std::vector<int> slots, const GptOptions& options)
    : Gpt(be, cfg, B, T, &tp, stage, std::move(slots), options) {}

Recompute parse_recompute(const std::string& mode) {
  if (mode == "none") return Recompute::none;
  if (mode == "attention") return Recompute::attention;
  LOOM_CHECK(mode == "full", "use none, attention or full", "train.recompute must be none, attention or full, got '{}'",
             mode);
  return Recompute::full;
}

AttentionKernel parse_attention_kernel(const std::string& name) {
  if (name == "tiled") return AttentionKernel::tiled;
  LOOM_CHECK(name == "dense", "use tiled or dense (TrainConfig::attention_kernel() resolves auto)",
             "train.attention must be tiled or dense, got '{}'", name);
  return AttentionKernel::dense;
}

Gpt::Gpt(Backend& be, const ModelConfig& cfg, std::int64_t B, std::int64_t T, Communicator* tp, const GptStage& stage,
         std::vector<int> slots, const GptOptions& options)
    : be_(be),
      cfg_(cfg),
      B_(B),
      T_(T),
      dtype_(options.dtype),
      own_tp_(tp ? nullptr : std::make_unique<LocalCommunicator>()),
      tp_(own_tp_ ? *own_tp_ : *tp),
      vocab_start_(tp_.rank() * (cfg.padded_vocab() / tp_.size())),
      stage_(stage.chunks.empty() ? make_gpt_stage(cfg, stage.stages, stage.stage, 1, stage.split) : stage),
      params_(be, freeze_backbone(param_specs(cfg, tp_.size(), tp_.rank(), stage_), options.freeze_backbone),
              options.dtype),
      mem_(be),
      recompute_(options.recompute),
      attention_(options.attention),
      norm_(cfg.norm == "rmsnorm" ? NormKind::rmsnorm : NormKind::layernorm),
      mlp_(cfg.mlp == "swiglu" ? MlpKind::swiglu : cfg.mlp == "relu" ? MlpKind::relu : MlpKind::gelu),
      positions_(parse_positions(cfg.positions)),
      loss_{&tp_, vocab_start_, cfg.vocab},
      classify_(cfg.head == "classify"),
      freeze_(options.freeze_backbone),
      head_group_(std::make_unique<LocalCommunicator>()) {
  validate(cfg);
  LOOM_CHECK(!freeze_ || classify_, "add model.head classify", "freeze_backbone needs the classification head");
  LOOM_CHECK(B > 0 && T > 0, "", "model: batch ({}) and sequence length ({}) must be positive", B, T);
  LOOM_CHECK(T <= cfg.seq_len, "lower train sequence length or raise model.seq_len",
             "sequence length {} exceeds the model's maximum model.seq_len = {}", T, cfg.seq_len);
  if (slots.empty()) slots.assign(stage_.chunks.size(), 1);
  LOOM_CHECK(slots.size() == stage_.chunks.size() &&
                 std::all_of(slots.begin(), slots.end(), [](int k) { return k >= 1; }),
             "", "model: give one slot count >= 1 per chunk ({} chunks, {} counts)", stage_.chunks.size(), slots.size());
  const std::int64_t p = tp_.size(), C = cfg.channels, N = B * T;
  const std::int64_t Cl = C / p, Fl = cfg.ffn_size() / p, Hl = cfg.heads / p;  // this tp rank's share
  const std::int64_t QKVl = cfg.qkv_size() / p;
  if (options.sequence_parallel) {
    LOOM_CHECK(p > 1, "set parallel.tp > 1 or turn parallel.sequence_parallel off",
               "sequence parallelism splits over tp; it needs parallel.tp > 1");
    LOOM_CHECK(N % p == 0, "pick train.micro_batch * train.seq_len divisible by parallel.tp",
               "sequence parallelism splits the micro_batch * seq_len = {} * {} = {} token rows over parallel.tp = {} "
               "ranks; they do not divide evenly",
               B, T, N, p);
    const std::string gathered = "sequence parallel: gathered tensors (shared)";
    sp_ = {&tp_, act(gathered, {B, T, C}), act(gathered, {B, T, C}), f32(gathered, {2, C})};  // norm grads: f32 like dw
  }
  // Recomputed activations live once, shared by every block and slot. Tiled attention
  // keeps no probabilities: `attention` recomputes nothing there (the same as none).
  const bool dense = attention_ == AttentionKernel::dense;
  if (recompute_ == Recompute::attention && !dense) recompute_ = Recompute::none;
  const std::string recomputed = "activations: recomputed in backward (shared)";
  if (recompute_ == Recompute::full) shared_saved_ = alloc_block_saved(recomputed, true);
  if (recompute_ == Recompute::attention) shared_saved_.attn.probs = f32(recomputed, {B, Hl, T, T});
  chunks_.resize(stage_.chunks.size());
  for (std::size_t v = 0; v < chunks_.size(); ++v) {
    Chunk& c = chunks_[v];
    std::tie(c.layer_begin, c.layer_end) = stage_.chunks[v];
    c.embeds = stage_.embeds(int(v));
    c.has_loss = stage_.has_loss(int(v));
  }
  // Fixed position information, uploaded once: the sinusoidal table (added by the embedding,
  // like wpe) and ALiBi's slopes of this tp rank's global heads [rank * Hl, (rank + 1) * Hl).
  const std::string constants = "position constants";
  const bool embeds = std::any_of(chunks_.begin(), chunks_.end(), [](const Chunk& c) { return c.embeds; });
  if (positions_ == Positions::sinusoidal && embeds) {
    std::vector<float> table = sinusoidal_table(T, C);
    Buffer wide(be_, Shape{T, C}, DType::f32);  // construction only, freed before step 1
    be_.copy(wide, host_tensor(table.data(), Shape{T, C}));
    pos_table_ = act(constants, {T, C});
    be_.cast(pos_table_, wide);
  }
  if (positions_ == Positions::alibi) {
    const std::vector<float> all = alibi_slopes(cfg.heads);
    alibi_ = f32(constants, {Hl});
    be_.copy(alibi_, host_tensor(const_cast<float*>(all.data()) + tp_.rank() * Hl, Shape{Hl}));
  }
  // T5's relative bias: the bucket of every offset, uploaded once; the gathered (Toff, Hl)
  // bias is shared by all blocks, and so is the per-sequence gradient accumulator.
  if (positions_ == Positions::t5_relative) {
    const std::int64_t Toff = 2 * T - 1;
    const std::string cat = "relative position bias (shared)";
    rel_.table = params_.param("rel_bias");
    rel_.dtable = params_.grad("rel_bias");
    rel_.ids = f32("token ids", {B, Toff});
    if (dtype_ != DType::f32) rel_.gathered = act(cat, {1, Toff, Hl});
    rel_.bias = f32(cat, {Toff, Hl});
    if (!freeze_) rel_.dbias = f32(cat, {B, Toff, Hl});
    RelativeBias::upload_ids(be_, rel_.ids, T, T, cfg.bert() ? RelBuckets::bidirectional : RelBuckets::causal,
                             cfg.rel_buckets, cfg.rel_max_distance);
  }
  // Buckets in the order backward completes them: chunks last to first.
  for (std::size_t v = chunks_.size(); v-- > 0;) build_chunk(chunks_[v], slots[v]);
  const std::string scratch = "backward scratch (shared by all layers)";
  scratch_.attn = {act(scratch, {B, T, QKVl}), act(scratch, {B, T, Cl}), dense ? f32(scratch, {B, Hl, T, T}) : Tensor{}};
  scratch_.dln = act(scratch, stream_shape());
  scratch_.dbig = act(scratch, {N, Fl});
  if (mlp_ == MlpKind::swiglu) scratch_.dh = act(scratch, {N, 2 * Fl});
  if (std::any_of(chunks_.begin(), chunks_.end(), [](const Chunk& c) { return c.has_loss; }))
    loss_rows_ = f32("loss accumulator", {N});
  if (!loss_rows_.empty()) be_.fill(loss_rows_, 0.0f);
}

void Gpt::build_chunk(Chunk& c, int slots) {
  const std::int64_t p = tp_.size(), C = cfg_.channels, N = B_ * T_, L = c.layer_end - c.layer_begin;
  const std::int64_t Hl = cfg_.heads / p, Vl = cfg_.padded_vocab() / p, Nl = stream_rows();
  const std::int64_t KVl = cfg_.kv_head_count() / p;
  const bool rms = norm_ == NormKind::rmsnorm, learned = positions_ == Positions::learned;
  auto bucket = [&](std::size_t first, std::size_t last) {
    buckets_.push_back({first, last});
    return buckets_.size() - 1;
  };
  auto lin = [&](std::int64_t l, const std::string& name) {
    const std::string w = layer_name(l, (name + ".weight").c_str()), b = layer_name(l, (name + ".bias").c_str());
    return Linear{params_.param(w), params_.param(b), params_.grad(w), params_.grad(b)};
  };
  auto norm = [&](const std::string& prefix) {  // rmsnorm: weight only
    const std::string w = prefix + ".weight", b = prefix + ".bias";
    return LayerNorm{params_.param(w), rms ? Tensor{} : params_.param(b), params_.grad(w),
                     rms ? Tensor{} : params_.grad(b), sp(), norm_, float(cfg_.norm_eps)};
  };
  // The last parameter of a norm (its bias, or its weight for rmsnorm).
  auto norm_last = [&](const std::string& prefix) { return params_.index(prefix + (rms ? ".weight" : ".bias")); };
  if (c.embeds || (c.has_loss && !classify_)) c.wte = params_.param("wte"), c.dwte = params_.grad("wte");
  if (c.embeds && learned) c.wpe = params_.param("wpe"), c.dwpe = params_.grad("wpe");
  if (c.has_loss) {
    if (!cfg_.post_ln()) c.ln_f = norm("ln_f");  // post-LN has no final norm (gpt_layout.cpp)
    if (classify_) {  // the head's gradient is complete first, then ln_f's (pre-LN)
      head_.proj = Linear{params_.param("cls.weight"), params_.param("cls.bias"), params_.grad("cls.weight"),
                          params_.grad("cls.bias")};
      head_.loss = VocabParallelLoss{head_group_.get(), 0, cfg_.classes};
      c.b_cls = bucket(params_.index("cls.weight"), params_.index("cls.bias") + 1);
    }
    if (!cfg_.post_ln()) c.b_ln_f = bucket(params_.index("ln_f.weight"), norm_last("ln_f") + 1);
    if (!c.embeds && !classify_) c.b_head = bucket(params_.index("wte"), params_.index("wte") + 1);
  }
  c.b_blocks.assign(std::size_t(L), kNone);
  for (std::int64_t l = c.layer_begin; l < c.layer_end; ++l) {
    Block b;
    b.ln_1 = norm(layer_name(l, "ln_1"));
    b.attn = Attention{{lin(l, "attn.c_attn"), &tp_, sp()},
                       {lin(l, "attn.c_proj"), &tp_, sp()},
                       int(Hl),
                       int(KVl),
                       positions_ == Positions::rope ? float(cfg_.rope_base) : 0.0f,
                       alibi_,
                       /*causal=*/!cfg_.bert(),  // bert: an encoder, every position sees every key
                       cfg_.window,
                       attention_};
    b.attn.rel_bias = rel_.bias, b.attn.drel_bias = rel_.dbias;
    b.attn.check();
    b.ln_2 = norm(layer_name(l, "ln_2"));
    b.mlp = Mlp{{lin(l, "mlp.c_fc"), &tp_, sp()}, {lin(l, "mlp.c_proj"), &tp_, sp()}, mlp_};
    b.post_ln = cfg_.post_ln();
    c.blocks.push_back(b);
  }
  for (std::int64_t l = c.layer_end; l-- > c.layer_begin;)
    c.b_blocks[std::size_t(l - c.layer_begin)] =
        bucket(params_.index(layer_name(l, "ln_1.weight")), params_.index(layer_name(l, "mlp.c_proj.bias")) + 1);
  if (&c == &chunks_.front() && positions_ == Positions::t5_relative)  // after the blocks' backward
    c.b_rel = bucket(params_.index("rel_bias"), params_.index("rel_bias") + 1);
  if (c.embeds) {
    if (cfg_.post_ln()) c.ln_emb = norm("ln_emb");
    const std::size_t last = cfg_.post_ln() ? norm_last("ln_emb") : params_.index(learned ? "wpe" : "wte");
    c.b_embed = bucket(params_.index("wte"), last + 1);
  }

  // ---- activations: exactly what forward saves for backward, per slot
  const std::string blocks = "activations: blocks", head = "activations: final norm, logits, loss";
  for (int k = 0; k < slots; ++k) {
    Slot s;
    for (std::int64_t l = 0; l <= L; ++l) s.resid.push_back(act(blocks, stream_shape()));
    for (std::int64_t l = 0; l < L; ++l) {
      switch (recompute_) {
        case Recompute::none: s.saved.push_back(alloc_block_saved(blocks, true)); break;
        case Recompute::attention:
          s.saved.push_back(alloc_block_saved(blocks, false));
          s.saved.back().attn.probs = shared_saved_.attn.probs;
          break;
        case Recompute::full: s.saved.push_back(shared_saved_); break;
      }
    }
    if (c.embeds) s.tokens = f32("token ids", {B_, T_});  // int32 ids in 4-byte elements
    if (cfg_.bert()) s.lengths = f32("token ids", {B_});  // every chunk's attention masks the padding
    if (c.embeds && cfg_.post_ln()) {
      s.emb = act(blocks, stream_shape());
      s.emb_saved = {rms ? Tensor{} : f32(blocks, {Nl}), f32(blocks, {Nl})};
    }
    if (c.has_loss) {
      s.targets = f32("token ids", {B_, T_});
      if (!cfg_.post_ln()) {  // post-LN: the head reads the last residual stream tensor
        s.ln_f_out = act(head, {Nl, C});  // SP: gathered again for the head's backward
        s.ln_f_saved = {rms ? Tensor{} : f32(head, {Nl}), f32(head, {Nl})};  // rmsnorm keeps no mean
      }
      if (classify_) {
        s.cls = {act(head, {N, cfg_.classes}), {f32(head, {N}), f32(head, {2, N}), f32(head, {N})}};
      } else {
        s.logits = act(head, {N, Vl});  // 16-bit logits; the loss is computed in f32 from them
        s.loss = {f32(head, {N}), f32(head, {2, N}), f32(head, {N})};
      }
    }
    c.slots.push_back(std::move(s));
  }
  if (c.has_loss && classify_) {
    head_wide_ = f32("classification head: logits read back for accuracy", {N, cfg_.classes});
    head_host_.assign(std::size_t(N * cfg_.classes), 0.0f);
  }
  // d loss / d input: backward's working buffer, sent back; d loss / d output: received.
  c.dinput = act("pipeline boundary gradients", stream_shape());
  if (!c.has_loss) c.doutput = act("pipeline boundary gradients", stream_shape());
}

Block::Saved Gpt::alloc_block_saved(const std::string& category, bool with_probs) {
  const std::int64_t p = tp_.size(), C = cfg_.channels, N = B_ * T_;
  const std::int64_t Cl = C / p, Fl = cfg_.ffn_size() / p, Hl = cfg_.heads / p, Nl = stream_rows();
  const std::int64_t QKVl = cfg_.qkv_size() / p, Hdl = mlp_ == MlpKind::swiglu ? 2 * Fl : Fl;  // h: [gate | up]
  const bool rms = norm_ == NormKind::rmsnorm;
  Block::Saved b;
  b.ln_1_out = act(category, stream_shape());
  b.ln_2_out = act(category, stream_shape());
  b.x1 = act(category, stream_shape());
  b.attn.att = act(category, {B_, T_, Cl});
  b.attn.qkv = act(category, {B_, T_, QKVl});
  b.mlp.h = act(category, {N, Hdl});
  b.mlp.g = act(category, {N, Fl});
  // Softmax statistics stay f32: tiled keeps lse, dense the probabilities (unless recomputed).
  if (attention_ == AttentionKernel::tiled)
    b.attn.lse = f32(category, {B_, Hl, T_});
  else if (with_probs)
    b.attn.probs = f32(category, {B_, Hl, T_, T_});
  b.ln_1 = {rms ? Tensor{} : f32(category, {Nl}), f32(category, {Nl})};  // rmsnorm keeps no mean
  b.ln_2 = {rms ? Tensor{} : f32(category, {Nl}), f32(category, {Nl})};
  return b;
}

// What the tied head multiplies, (Nl, C): ln_f's output, or under post-LN (no final norm)
// the last residual stream tensor.
Tensor Gpt::head_input(const Slot& s) const {
  return cfg_.post_ln() ? s.resid.back().view({stream_rows(), cfg_.channels}) : s.ln_f_out;
}

Shape Gpt::stream_shape() const {
  return sequence_parallel() ? Shape{stream_rows(), cfg_.channels} : Shape{B_, T_, cfg_.channels};
}

std::vector<Tensor> Gpt::inputs(int chunk, int slot) {
  const Chunk& c = chunks_.at(std::size_t(chunk));
  if (c.embeds) return {};
  return {c.slots.at(std::size_t(slot)).resid.front()};
}

std::vector<Tensor> Gpt::outputs(int chunk, int slot) {
  const Chunk& c = chunks_.at(std::size_t(chunk));
  if (c.has_loss) return {};
  return {c.slots.at(std::size_t(slot)).resid.back()};
}

std::vector<Tensor> Gpt::input_grads(int chunk) {
  const Chunk& c = chunks_.at(std::size_t(chunk));
  return c.embeds ? std::vector<Tensor>{} : std::vector<Tensor>{c.dinput};
}

std::vector<Tensor> Gpt::output_grads(int chunk) {
  const Chunk& c = chunks_.at(std::size_t(chunk));
  return c.has_loss ? std::vector<Tensor>{} : std::vector<Tensor>{c.doutput};
}

std::vector<Tensor> Gpt::grad_buckets() const {
  std::vector<Tensor> out;
  for (auto [first, last] : buckets_) out.push_back(params_.grad_span(first, last));
  return out;
}

MemoryPlan Gpt::memory_plan() const {
  MemoryPlan plan = params_.memory_plan();
  plan.add(mem_.plan());
  return plan;
}

void Gpt::ready(std::size_t bucket) const {
  if (hook_) hook_(bucket);
}

double Gpt::take_correct() { return double(std::exchange(correct_, 0)); }

double Gpt::take_loss_sum() {
  if (loss_rows_.empty()) return 0.0;
  const double total = be_.sum(loss_rows_);
  be_.fill(loss_rows_, 0.0f);
  return total;
}

void Gpt::embed_and_blocks(Chunk& c, const std::int32_t* tokens, Slot& s) {
  if (c.embeds) {
    be_.upload_async(s.tokens, id_bytes(tokens, Shape{B_, T_}));  // the caller keeps tokens until it synchronises
    // Vocabulary-parallel embedding: each tp rank adds the rows it holds (zeros for
    // other tokens) and rank 0 the positions; the all-reduce completes the sum (SP: a
    // reduce-scatter, leaving this rank's rows of the stream).
    // The position term: learned wpe, the fixed sinusoidal table, or none (rope and alibi
    // put positions inside attention).
    // Post-LN: the sum goes to s.emb and its norm ln_emb(s.emb) is the stream.
    const Tensor pos = positions_ == Positions::learned ? c.wpe.slice_rows(0, T_) : pos_table_;
    const Tensor sum = cfg_.post_ln() ? s.emb : s.resid[0];
    be_.embedding_forward(sp() ? sp_.full : sum, ids(s.tokens, {B_, T_}), c.wte, tp_.rank() == 0 ? pos : Tensor{},
                          vocab_start_);
    if (sp())
      tp_.reduce_scatter(sum, sp_.full);
    else
      tp_.all_reduce(sum);
    const Shape rows{stream_rows(), cfg_.channels};
    if (cfg_.post_ln()) c.ln_emb.forward(be_, s.resid[0].view(rows), s.emb.view(rows), s.emb_saved);
  }  // else: the previous virtual stage's output was received into s.resid[0]
  if (!rel_.table.empty()) rel_.forward(be_);  // the shared table's current values, for every block
  for (std::size_t l = 0; l < c.blocks.size(); ++l) c.blocks[l].forward(be_, s.resid[l + 1], s.resid[l], s.saved[l]);
  if (!c.has_loss) return;
  const Tensor head_in = head_input(s);
  if (!cfg_.post_ln()) c.ln_f.forward(be_, head_in, s.resid.back().view({stream_rows(), cfg_.channels}), s.ln_f_saved);
  const Tensor ln_f_all = sp() ? sp_.gathered.view({B_ * T_, cfg_.channels}) : head_in;  // SP: all N rows
  if (sp()) tp_.all_gather(ln_f_all, head_in);
  if (classify_) return;  // forward() runs the classification head on ln_f_all
  be_.matmul(s.logits, ln_f_all, c.wte, {}, {.trans_b = Trans::yes});  // tied head: this rank's vocabulary columns
}

// A bidirectional encoder on padded sequences (labelled data): every block's attention
// masks the keys past each sequence's length, so no real position sees the padding and
// the padding's content and amount change nothing. A causal decoder needs no mask (the
// padding follows every real token), and a token stream has no padding (lengths null).
void Gpt::set_key_lengths(Slot& s, const std::int32_t* lengths) {
  TokenView view;
  if (lengths && cfg_.bert()) {
    be_.upload_async(s.lengths, id_bytes(lengths, Shape{B_}));  // kept by the caller, as tokens
    view = ids(s.lengths, {B_});
  }
  for (Block::Saved& b : s.saved) b.attn.key_lengths = view;
}

void Gpt::forward(int chunk, const MicroBatch& mb, int slot) {
  Chunk& c = chunks_.at(std::size_t(chunk));
  Slot& s = c.slots.at(std::size_t(slot));
  set_key_lengths(s, mb.lengths);
  embed_and_blocks(c, mb.tokens, s);
  if (!c.has_loss) return;
  be_.upload_async(s.targets, id_bytes(mb.targets, Shape{B_, T_}));
  if (!classify_) {
    loss_.forward(be_, loss_rows_, s.logits, ids(s.targets, {B_ * T_}), s.loss);
    return;
  }
  // Every tp rank runs the whole head on all N rows (SP: gathered by embed_and_blocks) of
  // ln_f's output, or under post-LN of the last block's (already normalised) output.
  const Tensor ln_f_all = sp() ? sp_.gathered.view({B_ * T_, cfg_.channels}) : head_input(s);
  head_.forward(be_, loss_rows_, ln_f_all, ids(s.targets, {B_ * T_}), s.cls);
  correct_ += ClassHead::correct(be_, s.cls, mb.targets, head_wide_, head_host_);
}

// finetune.freeze_backbone: no gradient below the head. The chunk's buckets are reported
// done (their gradients stay zero) so the dp synchronisation completes; the gradient sent
// to the previous stage is zero.
void Gpt::skip_frozen(Chunk& c) {
  if (!c.embeds) be_.fill(c.dinput, 0.0f);
  if (c.b_ln_f != kNone) ready(c.b_ln_f);
  for (std::size_t l = c.blocks.size(); l-- > 0;) ready(c.b_blocks[l]);
  if (c.b_rel != kNone) ready(c.b_rel);
  if (c.embeds) ready(c.b_embed);
}

// d(head input) -> d(residual stream): through ln_f (pre-LN), or as is where the head read
// the stream itself (post-LN).
void Gpt::head_grad_to_stream(Chunk& c, Slot& s, Tensor dresid, Tensor dln) {
  const std::int64_t Nl = stream_rows(), C = cfg_.channels;
  if (cfg_.post_ln()) {
    be_.copy(dresid.view({Nl, C}), dln);
    return;
  }
  be_.fill(dresid, 0.0f);
  c.ln_f.backward(be_, dresid.view({Nl, C}), dln, s.resid.back().view({Nl, C}), s.ln_f_saved);
  ready(c.b_ln_f);
}

void Gpt::backward(int chunk, int slot, float dloss) {
  Chunk& c = chunks_.at(std::size_t(chunk));
  Slot& s = c.slots.at(std::size_t(slot));
  const std::int64_t N = B_ * T_, C = cfg_.channels, Nl = stream_rows();
  Tensor dresid = c.dinput;
  if (c.has_loss && classify_) {
    // The head is whole on every tp rank: its d ln_f output is complete without a tp
    // reduction (SP: this rank keeps its own rows of it).
    const Tensor dln = scratch_.dln.view({Nl, C});
    const Tensor head_in = head_input(s);
    const Tensor dln_all = sp() ? sp_.full.view({N, C}) : dln, ln_f_all = sp() ? sp_.gathered.view({N, C}) : head_in;
    if (sp()) tp_.all_gather(ln_f_all, head_in);  // the gathered buffer is shared by the slots
    head_.backward(be_, freeze_ ? Tensor{} : dln_all, ln_f_all, ids(s.targets, {N}), s.cls, dloss);
    ready(c.b_cls);
    if (freeze_) return skip_frozen(c);
    if (sp()) be_.copy(dln, dln_all.slice_rows(tp_.rank() * Nl, (tp_.rank() + 1) * Nl));
    head_grad_to_stream(c, s, dresid, dln);
  } else if (freeze_) {
    return skip_frozen(c);
  } else if (c.has_loss) {
    // Loss and tied head: the logits buffer becomes dlogits in place.
    loss_.backward(be_, s.logits, s.logits, ids(s.targets, {N}), s.loss, dloss);
    Tensor dln = scratch_.dln.view({Nl, C});
    // Each shard's head contributes to the gradient of ln_f's output: all-reduced over tp
    // (SP: reduce-scattered to this rank's rows, and ln_f's output gathered again for dwte).
    const Tensor head_in = head_input(s);
    const Tensor dln_all = sp() ? sp_.full.view({N, C}) : dln, ln_f_all = sp() ? sp_.gathered.view({N, C}) : head_in;
    be_.matmul(dln_all, s.logits, c.wte, {}, {});
    if (sp()) {
      tp_.reduce_scatter(dln, dln_all);
      tp_.all_gather(ln_f_all, head_in);
    } else {
      tp_.all_reduce(dln);
    }
    be_.matmul(c.dwte, s.logits, ln_f_all, {}, {.trans_a = Trans::yes, .accumulate = Accumulate::yes});
    if (c.b_head != kNone) ready(c.b_head);
    head_grad_to_stream(c, s, dresid, dln);
  } else {
    be_.copy(dresid, c.doutput);  // received from the next virtual stage
  }
  // t5_relative: the blocks add their d rel_bias into one accumulator, scattered into the
  // table's gradient once per chunk and micro-batch. The table's bucket is the first chunk's:
  // its backward of the last micro-batch is the last to touch the table on this rank.
  if (!rel_.table.empty()) rel_.begin_backward(be_);
  for (std::size_t l = c.blocks.size(); l-- > 0;) {
    // Recompute what was not kept, with the very ops of forward (bit-identical values). The
    // full recompute rewrites the block's output resid[l + 1] with the same values; nothing
    // reads it any more (block l + 1's backward is done, the stage output was sent).
    if (recompute_ == Recompute::full) c.blocks[l].forward(be_, s.resid[l + 1], s.resid[l], s.saved[l]);
    if (recompute_ == Recompute::attention) c.blocks[l].attn.recompute(be_, s.saved[l].attn);
    c.blocks[l].backward(be_, dresid, s.resid[l], s.saved[l], scratch_);
    ready(c.b_blocks[l]);
  }
  if (!rel_.table.empty()) rel_.end_backward(be_);
  if (c.b_rel != kNone) ready(c.b_rel);
  if (!c.embeds) return;  // dinput = d loss / d input, for the previous virtual stage
  Tensor demb = dresid;  // d loss / d (embedding sum)
  if (cfg_.post_ln()) {  // through ln_emb, which accumulates: into the zeroed scratch
    demb = scratch_.dln.view(stream_shape());
    be_.fill(demb, 0.0f);
    c.ln_emb.backward(be_, demb.view({Nl, C}), dresid.view({Nl, C}), s.emb.view({Nl, C}), s.emb_saved);
  }
  if (sp()) tp_.all_gather(sp_.full, demb);  // every rank's embedding rows need all N rows' gradient
  be_.embedding_backward(c.dwte, c.dwpe.empty() ? Tensor{} : c.dwpe.slice_rows(0, T_), sp() ? sp_.full : demb,
                         ids(s.tokens, {B_, T_}), vocab_start_);
  ready(c.b_embed);
}

void Gpt::logits_at(const std::int32_t* tokens, std::int64_t b, std::int64_t t, float* out) {
  LOOM_CHECK(0 <= b && b < B_ && 0 <= t && t < T_, "", "logits_at: ({}, {}) outside ({}, {})", b, t, B_, T_);
  LOOM_CHECK(tp_.size() == 1 && chunks_.size() == 1 && chunks_[0].embeds && chunks_[0].has_loss, "",
             "logits_at: needs the whole model on one rank");
  LOOM_CHECK(!classify_, "generate with a language model (model.head lm)",
             "logits_at: this model has a classification head, not next-token logits");
  Slot& s = chunks_[0].slots[0];
  set_key_lengths(s, nullptr);  // generation: no padding
  embed_and_blocks(chunks_[0], tokens, s);
  const std::int64_t Vp = cfg_.padded_vocab();
  Tensor row = s.logits.slice_rows(b * T_ + t, b * T_ + t + 1);
  std::vector<float> host(static_cast<std::size_t>(Vp));
  Buffer wide(be_, Shape{1, Vp}, DType::f32);  // generation only: not part of the plan
  be_.cast(wide, row);
  be_.copy(host_tensor(host.data(), Shape{1, Vp}), wide);
  std::copy(host.begin(), host.begin() + cfg_.vocab, out);
}

}  // namespace loom
