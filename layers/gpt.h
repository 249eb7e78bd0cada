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
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "layers/block.h"
#include "layers/param_store.h"

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

class Gpt {
public:
  Gpt(Backend& be, const ModelConfig& cfg, std::int64_t micro_batch, std::int64_t seq_len);
  Gpt(const Gpt&) = delete;
  Gpt& operator=(const Gpt&) = delete;

  static std::vector<ParamSpec> param_specs(const ModelConfig& cfg);
  static MemoryPlan memory_plan(const ModelConfig& cfg, std::int64_t micro_batch, std::int64_t seq_len);

  ParamStore& params() { return params_; }
  const ModelConfig& config() const { return cfg_; }
  std::int64_t batch() const { return B_; }
  std::int64_t seq_len() const { return T_; }

  // tokens, targets: host (B, T) int32. Returns the sum of the B*T losses.
  double forward(const std::int32_t* tokens, const std::int32_t* targets);
  // Accumulates parameter gradients of dloss * (sum of token losses).
  void backward(float dloss);
  // Forward without a loss; copies the V real logits of row (b, t) to `out`.
  void logits_at(const std::int32_t* tokens, std::int64_t b, std::int64_t t, float* out);

private:
  void embed_and_blocks(const std::int32_t* tokens);
  Tensor alloc(Shape s);

  Backend& be_;
  ModelConfig cfg_;
  std::int64_t B_, T_;
  ParamStore params_;
  std::vector<Buffer> buffers_;  // every activation and scratch tensor, allocated once

  Tensor wte_, wpe_, dwte_, dwpe_;
  std::vector<Block> blocks_;
  LayerNorm ln_f_;

  Buffer tokens_, targets_;  // device copies of the microbatch's token ids
  std::vector<Tensor> resid_;  // L+1 residual-stream tensors (B,T,C)
  std::vector<Block::Saved> saved_;
  Block::Scratch scratch_;
  Tensor ln_f_out_, logits_, losses_, dresid_;
  LayerNorm::Saved ln_f_saved_;
  std::vector<float> host_losses_;
};

}  // namespace loom
