// layers/gpt.h — the GPT-2 model as a StageModel (layers/stage_model.h): embedding,
// L blocks, final layernorm, LM head tied to the token embedding, vocabulary-parallel
// cross-entropy. Its parts are options (model.norm, mlp, positions, kv_heads; GPT-2's by
// default), so the same class is also a Llama-style decoder (docs/models.md).
//
// Shapes: B micro-batch, T sequence (<= model.seq_len), C channels, H heads,
// F ffn, V vocab, Vp padded vocab. All parameters live in one ParamStore
// (GPT-2 names, nn.Linear (out, in) layout); every activation and scratch
// buffer is allocated in the constructor through one Allocations list, which is
// also the memory plan: forward and backward allocate nothing.
// Tensor parallel (a tp Communicator of size > 1): wte is split by vocabulary
// rows (the embedding and the tied head are vocabulary-parallel; the loss combines
// per-shard statistics over tp and never gathers the logits), attention by heads, the
// MLP by F columns; layernorms, wpe and the row-parallel biases are replicated.
// Pipeline parallel (a GptStage other than the whole model): this rank holds one
// run of blocks per chunk (several with interleaved 1F1B: chunk v is virtual stage
// v * stages + stage); virtual stage 0 also holds the embedding, the last one ln_f,
// the head and the loss. Post-LN (model.ln_placement post, BERT) has no ln_f and instead
// normalises the embedding sum (ln_emb, on virtual stage 0), as BERT does. Both hold a copy of the tied wte (tied group "wte").
// Relative positions (model.positions t5_relative): one (rel_buckets, H) table "rel_bias"
// used by every block (layers/relative_bias.h), split by heads over tp; every pipeline stage
// holds a copy (tied group "rel_bias"), whose gradients the trainer sums over the stages.
// Sequence parallel (sequence_parallel, needs tp > 1; layers/sequence_parallel.h): the
// residual stream, the layernorms and the pipeline boundary tensors hold this tp rank's
// N/tp of the N = B*T token rows; attention and the MLP gather them and reduce-scatter back.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "layers/block.h"
#include "layers/class_head.h"
#include "layers/positions.h"
#include "layers/relative_bias.h"
#include "layers/stage_model.h"
#include "layers/vocab_parallel_loss.h"
#include "parallel/communicator.h"

namespace loom {

// What backward recomputes instead of keeping (train.recompute). Same ops in the same
// order, so losses and gradients are bit-identical to `none`.
//   none       every block's activations are kept, per micro-batch slot
//   attention  the attention probabilities (B, H, T, T) are recomputed from qkv: one
//              shared buffer instead of one per block and slot (dense attention only:
//              tiled attention keeps no probabilities, so this is the same as none)
//   full       only each block's input (the residual stream) is kept; the block's forward
//              is rerun in backward into one shared set of activations
enum class Recompute : std::uint8_t { none, attention, full };
Recompute parse_recompute(const std::string& mode);

// How this rank runs the model: options that change its buffers and communication, not
// what it computes (up to rounding in 16 bits).
struct GptOptions {
  Recompute recompute = Recompute::none;
  // Working precision of parameters, activations and activation gradients (train.precision);
  // statistics, the loss and the parameter gradients stay f32 whatever it is.
  DType dtype = DType::f32;
  bool sequence_parallel = false;  // parallel.sequence_parallel (layers/sequence_parallel.h)
  // finetune.freeze_backbone (model.head classify): only the head trains; backward computes
  // the head's gradients and skips the rest (the backbone's buckets are reported done, zero).
  bool freeze_backbone = false;
  // The attention core's kernel (train.attention; layers/attention.h): tiled keeps lse
  // (B,H,T) per block, dense the probabilities (B,H,T,T) and a (B,H,T,T) dprobs scratch.
  AttentionKernel attention = AttentionKernel::tiled;
};

// The layers one pipeline rank holds: [begin, end) per chunk.
struct GptStage {
  int stages = 1, stage = 0;
  std::vector<std::pair<std::int64_t, std::int64_t>> chunks;  // empty: the whole model, one chunk
  std::string split;  // parallel.stages, as given (to lay out the other stages alike)
  int virtual_stages() const { return stages * int(std::max<std::size_t>(chunks.size(), 1)); }
  int virtual_stage(int chunk) const { return chunk * stages + stage; }
  bool embeds(int chunk) const { return virtual_stage(chunk) == 0; }
  bool has_loss(int chunk) const { return virtual_stage(chunk) == virtual_stages() - 1; }
};

// Layers of each of stages * chunks virtual stages: `split` (comma-separated counts in
// virtual-stage order, e.g. "3,3,2") or an even split with the remainder on the first
// ones. Throws naming the constraint.
GptStage make_gpt_stage(const ModelConfig& cfg, int stages, int stage, int chunks = 1, const std::string& split = "");

class Gpt final : public StageModel {
public:
  // The whole model on one rank (one tp rank, one stage, one slot).
  Gpt(Backend& be, const ModelConfig& cfg, std::int64_t micro_batch, std::int64_t seq_len);
  // This rank's shard of `stage` in the tp group `tp`, keeping slots[chunk] micro-batches
  // in flight per chunk.
  Gpt(Backend& be, const ModelConfig& cfg, std::int64_t micro_batch, std::int64_t seq_len, Communicator& tp,
      const GptStage& stage = {}, std::vector<int> slots = {}, const GptOptions& options = {});
  Gpt(const Gpt&) = delete;
  Gpt& operator=(const Gpt&) = delete;

  // The parameters tp rank `tp_rank` of `tp_size` holds on `stage`, chunk by chunk.
  static std::vector<ParamSpec> param_specs(const ModelConfig& cfg, int tp_size = 1, int tp_rank = 0,
                                           const GptStage& stage = {});
  // Throws, naming the constraint, when heads, ffn or the padded vocabulary do not split over tp.
  static void check_tp(const ModelConfig& cfg, int tp_size);
  // The model config stored in a weights file (architecture "gpt2"), and back.
  static std::string to_json(const ModelConfig& cfg);
  static ModelConfig from_json(const std::string& json);

  const ModelConfig& config() const { return cfg_; }
  const GptStage& stage() const { return stage_; }
  Communicator& tp() { return tp_; }
  bool sequence_parallel() const { return sp_.tp != nullptr; }

  // ---- StageModel
  std::string architecture() const override { return "gpt2"; }
  std::string config_json() const override { return to_json(cfg_); }
  std::string canonical_config_json(const std::string& stored) const override { return to_json(from_json(stored)); }
  std::int64_t batch() const override { return B_; }
  std::int64_t seq_len() const override { return T_; }
  double flops_per_token() const override;
  ParamStore& params() override { return params_; }
  std::vector<int> tied_stages(const std::string& group) const override;
  std::vector<ParamSpec> stage_param_specs(int stage, int tp_rank) const override;
  int chunks() const override { return int(chunks_.size()); }
  int slots(int chunk) const override { return int(chunks_.at(std::size_t(chunk)).slots.size()); }
  std::vector<Tensor> inputs(int chunk, int slot) override;
  std::vector<Tensor> outputs(int chunk, int slot) override;
  std::vector<Tensor> input_grads(int chunk) override;
  std::vector<Tensor> output_grads(int chunk) override;
  void forward(int chunk, const MicroBatch& mb, int slot) override;
  void backward(int chunk, int slot, float dloss) override;
  double take_loss_sum() override;
  double take_correct() override;
  std::vector<Tensor> grad_buckets() const override;
  void set_bucket_hook(std::function<void(std::size_t)> hook) override { hook_ = std::move(hook); }
  MemoryPlan memory_plan() const override;

  // Forward without a loss; copies the V real logits of row (b, t) to `out` (whole model only).
  void logits_at(const std::int32_t* tokens, std::int64_t b, std::int64_t t, float* out);

private:
  // Everything one micro-batch in flight keeps between its forward and backward.
  struct Slot {
    Tensor tokens, targets;      // device copies of the micro-batch's token ids (as 4-byte values)
    Tensor lengths;              // encoder (bert): (B) real tokens per sequence, int32 as 4-byte values
    std::vector<Tensor> resid;   // the chunk's layers + 1 residual-stream tensors (B,T,C); SP: (N/tp, C)
    std::vector<Block::Saved> saved;
    Tensor ln_f_out, logits;     // loss chunk only
    LayerNorm::Saved ln_f_saved;
    Tensor emb;                  // post-LN, embedding chunk: the embedding sum before ln_emb (stream shape)
    LayerNorm::Saved emb_saved;
    VocabParallelLoss::Saved loss;
    ClassHead::Saved cls;        // classify: the head's logits (N, K) and statistics
  };
  struct Chunk {
    std::int64_t layer_begin = 0, layer_end = 0;
    bool embeds = false, has_loss = false;
    std::vector<Block> blocks;
    std::vector<Slot> slots;
    Tensor wte, dwte, wpe, dwpe;  // embedding / head chunk: this chunk's copy of wte
    LayerNorm ln_f;               // loss chunk (pre-LN)
    LayerNorm ln_emb;             // embedding chunk (post-LN): BERT's norm of the embedding sum
    Tensor dinput, doutput;       // d loss / d input (sent back; backward's working buffer), d loss / d output
    // Indices into buckets_ (kNone: absent): ln_f, the head's wte copy, each block, the embeddings.
    std::size_t b_ln_f = std::size_t(-1), b_head = std::size_t(-1), b_embed = std::size_t(-1);
    std::size_t b_cls = std::size_t(-1);  // classify: the head's bucket
    std::size_t b_rel = std::size_t(-1);  // t5_relative, first chunk only: the shared table's bucket
    std::vector<std::size_t> b_blocks;
  };

  void build_chunk(Chunk& c, int slots);
  void embed_and_blocks(Chunk& c, const std::int32_t* tokens, Slot& s);
  void set_key_lengths(Slot& s, const std::int32_t* lengths);
  void ready(std::size_t bucket) const;
  void skip_frozen(Chunk& c);
  void head_grad_to_stream(Chunk& c, Slot& s, Tensor dresid, Tensor dln);
  Gpt(Backend& be, const ModelConfig& cfg, std::int64_t B, std::int64_t T, Communicator* tp, const GptStage& stage,
      std::vector<int> slots, const GptOptions& options);
  Tensor act(const std::string& category, Shape shape) { return mem_.alloc(category, shape, dtype_); }  // working dtype
  Tensor f32(const std::string& category, Shape shape) { return mem_.alloc(category, shape, DType::f32); }
  // This rank's residual-stream rows and their shape: (B,T,C), or (N/tp, C) with SP.
  std::int64_t stream_rows() const { return sequence_parallel() ? B_ * T_ / tp_.size() : B_ * T_; }
  Shape stream_shape() const;
  Tensor head_input(const Slot& s) const;
  const SequenceParallel* sp() const { return sequence_parallel() ? &sp_ : nullptr; }
  Block::Saved alloc_block_saved(const std::string& category, bool with_probs);

  Backend& be_;
  ModelConfig cfg_;
  std::int64_t B_, T_;
  DType dtype_;  // parameters, activations, activation gradients
  std::unique_ptr<Communicator> own_tp_;  // the one-rank group when none is given
  Communicator& tp_;
  std::int64_t vocab_start_;  // first vocabulary row of this rank's wte shard
  GptStage stage_;
  ParamStore params_;
  Allocations mem_;  // every activation and scratch tensor, allocated once
  std::vector<Chunk> chunks_;
  std::vector<std::pair<std::size_t, std::size_t>> buckets_;  // [first, last) ParamStore indices
  std::function<void(std::size_t)> hook_;
  Block::Scratch scratch_;
  Recompute recompute_;
  AttentionKernel attention_;
  NormKind norm_;
  MlpKind mlp_;
  Positions positions_;
  Tensor pos_table_;  // sinusoidal: (T, C), added by the embedding on tp rank 0
  Tensor alibi_;      // alibi: (H / tp) slopes of this rank's heads
  RelativeBias rel_;  // t5_relative: the shared table, its bucket ids and the gathered bias
  SequenceParallel sp_;  // tp == nullptr: off
  Block::Saved shared_saved_;  // full: the one set every block recomputes into; attention (dense): its probs
  VocabParallelLoss loss_;
  Tensor loss_rows_;  // (B*T) summed token losses since take_loss_sum(), on the device
  // classify: the head (over a one-rank group of its own), and the accuracy count
  bool classify_ = false, freeze_ = false;
  std::unique_ptr<Communicator> head_group_;
  ClassHead head_;
  Tensor head_wide_;              // (N, K) f32: the logits read back for the accuracy count
  std::vector<float> head_host_;  // (N * K)
  std::int64_t correct_ = 0;      // since take_correct()
};

}  // namespace loom
