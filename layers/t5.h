// layers/t5.h — the T5-style encoder-decoder (Raffel et al. 2020; model.family t5) as a
// StageModel (layers/stage_model.h): a shared token embedding, an encoder stack
// (bidirectional pre-LN blocks, layers/block.h) with its final norm, a decoder stack
// (layers/decoder_block.h: causal self-attention, cross-attention to the final encoder
// output, MLP) with its final norm, and the LM head tied to the embedding,
// vocabulary-parallel cross-entropy on the decoder targets (as Gpt). As in T5, no linear
// has a bias (the norms keep theirs under model.norm layernorm; T5 itself uses rmsnorm).
//
// Shapes: B micro-batch, Te encoder length (model.seq_len), Td decoder length (span
// corruption's, io/span_corruption.h), C channels, H heads, F ffn, Vp padded vocab.
// The micro-batch is packed: each row of mb.tokens is [encoder input (Te) | decoder input
// (Td)] and each row of mb.targets is [-1 x Te | decoder targets (Td)], so seq_len() is
// Te + Td and the runtime (batch slicing over dp, target counting, the trainer) handles a
// T5 batch exactly like any other; the model splits the rows on the host.
// Positions: absolute ones are added to both embeddings (learned enc.wpe / dec.wpe of
// model.seq_len rows, or the sinusoidal table), chosen in one place, T5::position_term. T5's
// own (model.positions t5_relative, layers/relative_bias.h) are an attention bias instead, as
// in T5 / HF T5: one learned (rel_buckets, H) table "enc.rel_bias" with bidirectional buckets
// shared by every encoder self-attention, one "dec.rel_bias" with causal buckets shared by
// every decoder self-attention; the cross-attention has none, and no embedding adds a position.
// Tensor parallel (tp > 1): wte split by vocabulary rows, every attention (self and cross)
// by heads, the MLP by F columns, the relative tables by heads (columns); norms, absolute
// positions and row-parallel biases replicated.
// Pipeline parallel (T5Stage): the encoder's then the decoder's layers, Le + Ld in all, are
// split over the stages as GPT's are (parallel.stages counts the combined layers). Layer
// l < Le is encoder layer l, l >= Le decoder layer l - Le. The stage holding encoder layer
// 0 embeds the encoder input, the one holding the last encoder layer applies enc.ln_f, the
// one holding decoder layer 0 embeds the decoder input, the last holds dec.ln_f, the head
// and the loss; wte is tied over those holding an embedding or the head, enc.rel_bias over
// those holding encoder blocks and dec.rel_bias over those holding decoder blocks (the
// tables come last in a stage's parameters, in that order, so that every stage meets its
// tied groups in the same order: wte, enc.rel_bias, dec.rel_bias). Boundary lists
// (what a stage ending at layer e sends, and the next one receives):
//   e < Le   [encoder stream (B,Te,C)]
//   e = Le   [encoder output (B,Te,C)]                    (after enc.ln_f)
//   e > Le   [encoder output (B,Te,C), decoder stream (B,Td,C)]
// so the encoder output reaches every decoder stage; backward sends d(encoder output),
// each stage adding its cross-attentions' part, back to the stage with enc.ln_f.
// Every activation is allocated in the constructor (the memory plan); forward and backward
// allocate nothing. Parameter gradients +=.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "layers/block.h"
#include "layers/decoder_block.h"
#include "layers/positions.h"
#include "layers/relative_bias.h"
#include "layers/stage_model.h"
#include "layers/vocab_parallel_loss.h"
#include "parallel/communicator.h"

namespace loom {

struct T5Options {
  DType dtype = DType::f32;  // working precision (train.precision); the loss and gradients stay f32
  int slots = 1;             // micro-batches in flight
};

// The combined layers [begin, end) pipeline stage `stage` of `stages` holds.
struct T5Stage {
  int stages = 1, stage = 0;
  std::int64_t begin = 0, end = 0;  // of Le + Ld
  std::string split;                // parallel.stages, as given
};
// Throws naming the option when the split does not fit (as make_gpt_stage, over Le + Ld layers).
T5Stage make_t5_stage(const ModelConfig& cfg, int stages = 1, int stage = 0, const std::string& split = "");

class T5 final : public StageModel {
 public:
  // This rank's tp shard of the whole model (tp null: one rank); Te <= model.seq_len,
  // Td <= model.seq_len (the decoder's positions come from the same table length).
  T5(Backend& be, const ModelConfig& cfg, std::int64_t micro_batch, std::int64_t Te, std::int64_t Td,
     Communicator* tp = nullptr, const T5Options& options = {}, const T5Stage& stage = {});
  T5(const T5&) = delete;
  T5& operator=(const T5&) = delete;

  static std::vector<ParamSpec> param_specs(const ModelConfig& cfg, int tp_size = 1, int tp_rank = 0,
                                            const T5Stage& stage = {});
  static void check_tp(const ModelConfig& cfg, int tp_size);
  // The model config a weights file stores (architecture "t5"): Gpt's plus decoder_layers.
  static std::string to_json(const ModelConfig& cfg);
  static ModelConfig from_json(const std::string& json);

  const ModelConfig& config() const { return cfg_; }
  std::int64_t encoder_len() const { return Te_; }
  std::int64_t decoder_len() const { return Td_; }

  // ---- StageModel
  std::string architecture() const override { return "t5"; }
  std::string config_json() const override { return to_json(cfg_); }
  std::string canonical_config_json(const std::string& stored) const override {
    return to_json(from_json(stored));
  }
  std::int64_t batch() const override { return B_; }
  std::int64_t seq_len() const override { return Te_ + Td_; }  // the packed row
  double flops_per_token() const override;
  ParamStore& params() override { return params_; }
  std::vector<int> tied_stages(const std::string& group) const override;
  std::vector<ParamSpec> stage_param_specs(int stage, int tp_rank) const override;
  int chunks() const override { return 1; }
  int slots(int) const override { return int(slots_.size()); }
  std::vector<Tensor> inputs(int chunk, int slot) override;
  std::vector<Tensor> outputs(int chunk, int slot) override;
  std::vector<Tensor> input_grads(int chunk) override;
  std::vector<Tensor> output_grads(int chunk) override;
  void forward(int chunk, const MicroBatch& mb, int slot) override;
  void backward(int chunk, int slot, float dloss) override;
  double take_loss_sum() override;
  std::vector<Tensor> grad_buckets() const override;
  void set_bucket_hook(std::function<void(std::size_t)> hook) override { hook_ = std::move(hook); }
  MemoryPlan memory_plan() const override;

  // Forward without a loss on packed rows `tokens` (B, Te + Td); copies the V real logits of
  // decoder position t of row b to `out` (the whole model on one rank only).
  void logits_at(const std::int32_t* tokens, std::int64_t b, std::int64_t t, float* out);

 private:
  struct Slot {
    std::vector<std::int32_t> enc_host, dec_host, tgt_host;  // the packed rows split: (B,Te), (B,Td), (B,Td)
    Tensor enc_tok, dec_tok, targets;                        // device copies (4-byte ids)
    std::vector<Tensor> enc_resid, dec_resid;                // layers + 1 stream tensors each
    std::vector<Block::Saved> enc_saved;
    std::vector<DecoderBlock::Saved> dec_saved;
    Tensor enc_out;  // (B,Te,C): enc.ln_f's output, what every cross-attention reads
    LayerNorm::Saved enc_ln_saved;
    Tensor ln_f_out, logits;  // (B*Td, C), (B*Td, Vp/tp)
    LayerNorm::Saved ln_f_saved;
    VocabParallelLoss::Saved loss;
  };

  void run_forward(Slot& s, const std::int32_t* tokens);
  // The absolute position term added to a stack's embedding of T rows (empty: none).
  Tensor position_term(bool decoder, std::int64_t T) const;
  void ready(std::size_t bucket) const {
    if (hook_) hook_(bucket);
  }
  Tensor act(const std::string& category, Shape shape) { return mem_.alloc(category, shape, dtype_); }
  Tensor f32(const std::string& category, Shape shape) { return mem_.alloc(category, shape, DType::f32); }

  // What this stage holds, in combined layer indices [begin_, end_).
  std::int64_t enc_begin() const { return std::min(stage_.begin, Le_); }
  std::int64_t enc_end() const { return std::min(stage_.end, Le_); }
  std::int64_t dec_begin() const { return std::max(stage_.begin, Le_) - Le_; }
  std::int64_t dec_end() const { return std::max(stage_.end, Le_) - Le_; }
  bool embeds_enc() const { return stage_.begin == 0; }
  bool has_enc_ln() const { return stage_.begin < Le_ && Le_ <= stage_.end; }
  bool embeds_dec() const { return stage_.begin <= Le_ && Le_ < stage_.end; }
  bool has_dec() const { return stage_.end > Le_; }
  bool has_loss() const { return stage_.end == Le_ + Ld_; }

  Backend& be_;
  ModelConfig cfg_;
  std::int64_t Le_, Ld_;
  T5Stage stage_;
  std::int64_t B_, Te_, Td_;
  DType dtype_;
  std::unique_ptr<Communicator> own_tp_;
  Communicator& tp_;
  std::int64_t vocab_start_;
  ParamStore params_;
  Allocations mem_;
  Positions positions_;
  std::vector<Block> enc_blocks_;
  std::vector<DecoderBlock> dec_blocks_;
  LayerNorm enc_ln_, dec_ln_;
  Tensor wte_, dwte_, enc_wpe_, denc_wpe_, dec_wpe_, ddec_wpe_, pos_table_;
  RelativeBias enc_rel_, dec_rel_;  // t5_relative, on stages with blocks of the stack: else empty
  std::vector<Slot> slots_;
  Block::Scratch enc_scratch_;
  DecoderBlock::Scratch dec_scratch_;
  Tensor dec_dresid_, enc_dresid_, denc_;  // backward's working buffers (sent back as input grads)
  std::vector<Tensor> doutput_;            // d loss / d outputs, received from the next stage
  VocabParallelLoss loss_;
  Tensor loss_rows_;
  // Buckets in backward order: dec.ln_f, decoder blocks last to first, dec.rel_bias, enc.ln_f,
  // encoder blocks last to first, enc.rel_bias, the embeddings (wte, positions: wte's head
  // gradient is added first).
  std::vector<std::pair<std::size_t, std::size_t>> buckets_;
  static constexpr std::size_t kNone = std::size_t(-1);
  std::size_t b_dec_ln_ = kNone, b_enc_ln_ = kNone, b_embed_ = kNone, b_enc_rel_ = kNone, b_dec_rel_ = kNone;
  std::vector<std::size_t> b_dec_, b_enc_;
  std::function<void(std::size_t)> hook_;
};

}  // namespace loom
