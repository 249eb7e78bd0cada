// layers/gpt.h — the GPT-2 model as one pipeline stage: embedding, L blocks, final
// layernorm, LM head tied to the token embedding, mean cross-entropy.
//
// Shapes: B micro-batch, T sequence (<= model.seq_len), C channels, H heads,
// F ffn, V vocab, Vp padded vocab. All parameters live in one ParamStore
// (GPT-2 names, nn.Linear (out, in) layout); every activation and scratch
// buffer is allocated in the constructor from (config, B, T): forward and
// backward allocate nothing. forward() returns the SUM of the B*T token
// losses; backward(dloss) uses dloss as d(total loss)/d(token loss), so the
// caller picks the normalisation (1 / tokens of the global batch).
// Tensor parallel (tp > 1, given a tp Communicator): wte is split by vocabulary
// rows (the embedding and the tied head are vocabulary-parallel; the loss combines
// per-shard statistics and never gathers the logits), attention by heads, the MLP
// by F columns; layernorms, wpe and the row-parallel biases are replicated.
// Pipeline parallel (a Stage other than the whole model): this rank holds blocks
// [layer_begin, layer_end); the first stage also the embedding, the last ln_f,
// the head and the loss, each with its own copy of the tied wte. Activations of
// up to `slots` micro-batches in flight are kept, one slot each; stage input and
// output are the slot's first and last residual tensors, and the gradient that
// crosses stages lives in grad().
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "layers/block.h"
#include "layers/param_store.h"
#include "parallel/communicator.h"

namespace loom {

// Planned bytes by category, computed from the config alone (not from the
// allocations), so it can be checked against what was really allocated.
struct MemoryPlan {
  std::vector<std::pair<std::string, std::size_t>> items;
  std::size_t total() const {
    std::size_t t = 0;
    for (auto& [name, bytes] : items) t += bytes;
    return t;
  }
};

// The part of the model one pipeline stage holds.
struct Stage {
  int stages = 1, stage = 0;
  std::int64_t layer_begin = 0, layer_end = -1;  // -1: all layers
  bool first() const { return stage == 0; }
  bool last() const { return stage == stages - 1; }
};

// Layers of each stage: `split` (comma-separated counts, e.g. "3,3,2") or an even
// split with the remainder on the first stages. Throws naming the constraint.
Stage make_stage(const ModelConfig& cfg, int stages, int stage, const std::string& split = "");

class Gpt {
public:
  // One tp rank (no tensor parallelism).
  Gpt(Backend& be, const ModelConfig& cfg, std::int64_t micro_batch, std::int64_t seq_len);
  // This rank's shard of the model in the tp group `tp`.
  Gpt(Backend& be, const ModelConfig& cfg, std::int64_t micro_batch, std::int64_t seq_len, Communicator& tp);
  // A pipeline stage of it, keeping `slots` micro-batches in flight.
  Gpt(Backend& be, const ModelConfig& cfg, std::int64_t micro_batch, std::int64_t seq_len, Communicator& tp,
      const Stage& stage, int slots);
  Gpt(const Gpt&) = delete;
  Gpt& operator=(const Gpt&) = delete;

  // The parameters tp rank `tp_rank` of `tp_size` holds (all of them for tp_size 1).
  static std::vector<ParamSpec> param_specs(const ModelConfig& cfg, int tp_size = 1, int tp_rank = 0,
                                           const Stage& stage = {});
  // Throws, naming the constraint, when heads, ffn or the padded vocabulary do not split over tp.
  static void check_tp(const ModelConfig& cfg, int tp_size);
  static MemoryPlan memory_plan(const ModelConfig& cfg, std::int64_t micro_batch, std::int64_t seq_len,
                                int tp_size = 1, const Stage& stage = {}, int slots = 1);

  ParamStore& params() { return params_; }
  Communicator& tp() { return tp_; }
  const ModelConfig& config() const { return cfg_; }
  std::int64_t batch() const { return B_; }
  std::int64_t seq_len() const { return T_; }

  const Stage& stage() const { return stage_; }

  // tokens, targets: host (B, T) int32. Returns the sum of the B*T losses (0 on a
  // stage without the loss). A stage after the first reads input(slot) instead of tokens.
  double forward(const std::int32_t* tokens, const std::int32_t* targets, int slot = 0);
  // Accumulates parameter gradients of dloss * (sum of token losses). A stage before
  // the last starts from grad() (d loss / d output); a stage after the first leaves
  // d loss / d input in grad().
  void backward(float dloss, int slot = 0);
  Tensor input(int slot) const { return slots_[std::size_t(slot)].resid.front(); }
  Tensor output(int slot) const { return slots_[std::size_t(slot)].resid.back(); }
  Tensor grad() const { return dresid_; }
  // The tied embedding's gradient on this stage (empty when the stage has no wte).
  Tensor wte_grad() const { return dwte_; }
  // Called by backward() right after block b (0 = this stage's first) has added its
  // gradients, so a caller can start reducing them while backward goes on.
  void set_block_backward_hook(std::function<void(std::size_t block)> hook) { block_hook_ = std::move(hook); }
  std::size_t blocks() const { return blocks_.size(); }
  // The gradients of block b's parameters, and of everything outside the blocks
  // (embeddings before them, ln_f after), as flat views.
  Tensor block_grads(std::size_t b) const;
  Tensor grads_before_blocks() const;
  Tensor grads_after_blocks() const;
  // Weight of each parameter's squared gradient in the model's norm: 1/tp for
  // tensors replicated over tp, 0 for the last stage's copy of the tied wte.
  float norm_weight(std::size_t i) const;
  // Forward without a loss; copies the V real logits of row (b, t) to `out` (tp 1 only).
  void logits_at(const std::int32_t* tokens, std::int64_t b, std::int64_t t, float* out);

private:
  // Everything one micro-batch in flight keeps between its forward and backward.
  struct Slot {
    Buffer tokens, targets;      // device copies of the micro-batch's token ids
    std::vector<Tensor> resid;   // this stage's layers + 1 residual-stream tensors (B,T,C)
    std::vector<Block::Saved> saved;
    Tensor ln_f_out, logits, ce_stats, lse;  // last stage only
    LayerNorm::Saved ln_f_saved;
  };
  void embed_and_blocks(const std::int32_t* tokens, Slot& s);
  Tensor alloc(Shape s);

  Gpt(Backend& be, const ModelConfig& cfg, std::int64_t B, std::int64_t T, std::unique_ptr<Communicator> own,
      Communicator* tp, const Stage& stage, int slots);

  Backend& be_;
  ModelConfig cfg_;
  std::int64_t B_, T_;
  std::unique_ptr<Communicator> own_tp_;  // the one-rank group when none is given
  Communicator& tp_;
  std::int64_t vocab_start_;  // first vocabulary row of this rank's wte shard
  Stage stage_;
  ParamStore params_;
  std::vector<Buffer> buffers_;  // every activation and scratch tensor, allocated once

  Tensor wte_, wpe_, dwte_, dwpe_;
  std::vector<Block> blocks_;
  LayerNorm ln_f_;

  std::vector<Slot> slots_;
  std::vector<std::pair<std::size_t, std::size_t>> block_params_;  // [first, last) ParamStore index per block
  std::function<void(std::size_t)> block_hook_;
  Block::Scratch scratch_;
  Tensor dresid_;
  // Host side of the vocabulary-parallel loss: per-row stats and their tp reductions.
  std::vector<float> host_stats_, host_max_, host_sum_, host_target_, host_lse_;
};

}  // namespace loom
