// core/param_spec.h — what a model declares about each of its parameters, for the runtime.
//
// The runtime (optimizer, gradient synchronisation, weights files, checkpoints) works from
// these specs and never from parameter names: the shape this rank holds and the part of the
// global tensor it is (Shard), how it is initialised, its weight-decay group (ParamRole),
// whether it is one copy of a tied group held by several pipeline stages (`tied`), and
// whether every tensor-parallel rank holds an identical copy (`tp_replicated`).
#pragma once

#include <cstdint>
#include <string>

#include "core/shape.h"

namespace loom {

// The weight-decay group: AdamW decays matrices, never biases or norms; embedding
// tables only when optim.decay_embeddings is set.
enum class ParamRole : std::uint8_t { matrix, bias, norm, embedding };

// Which part of the global (unsharded) tensor this rank holds, for tensor
// parallelism: `rows` splits dim 0 into `parts` (inside each of `row_blocks`
// blocks: c_attn's q | k | v, so a rank gets its heads of each), `cols`
// splits the last dim. The default holds the whole tensor. The blocks are equal,
// except that the first is `lead_block_factor` times the others (grouped-query
// attention: q has heads / kv_heads times the rows of k and of v).
struct Shard {
  enum class Split : std::uint8_t { none, rows, cols };
  Split split = Split::none;
  int parts = 1, index = 0;
  int row_blocks = 1;
  int lead_block_factor = 1;
  // Row blocks in units of the smaller blocks: row_blocks - 1 + lead_block_factor.
  int row_units() const { return row_blocks - 1 + lead_block_factor; }
};

enum class TpReplicated : bool { no = false, yes = true };
// A frozen parameter does not train (finetune.freeze_backbone): the optimizer leaves it as
// it is (no update, no weight decay) and the model need not compute its gradient.
enum class Frozen : bool { no = false, yes = true };

struct ParamSpec {
  std::string name;
  Shape shape;              // this rank's (local) shape
  float init_std = 0.0f;    // > 0: normal(0, init_std) from the counter-based RNG
  float init_value = 0.0f;  // used when init_std == 0 (biases 0, layernorm weights 1)
  ParamRole role = ParamRole::matrix;
  Shard shard = {};
  // Identical on every tp rank (norms, row-parallel biases): counted once in the
  // gradient norm (weight 1/tp on each rank).
  TpReplicated tp_replicated = TpReplicated::no;
  // Non-empty: this tensor is one copy of the tied group `tied` (GPT's wte on the
  // first and last stage). Copies are initialised alike, their gradients are summed
  // over the stages holding them, only the first holder's copy counts in the norm
  // and is written to weights files. Copies share the group's name.
  std::string tied;
  // Rows of the global tensor a weights file stores (-1: all). GPT's wte keeps the
  // model.vocab real rows; the padding rows exist only in memory and load as 0.
  std::int64_t stored_rows = -1;
  Frozen frozen = Frozen::no;
};

// The global shape of a (possibly sharded) parameter, and the global row-major
// index of local element `i`: what the RNG is keyed by, so every layout draws
// the same global tensor.
Shape global_shape(const ParamSpec& s);
std::int64_t global_index(const ParamSpec& s, std::int64_t i);
// The global shape as a weights file stores it (stored_rows applied).
Shape stored_shape(const ParamSpec& s);

// FNV-1a of the name: the RNG stream of a parameter (stable across layouts and runs).
std::uint64_t param_stream(const std::string& name);

}  // namespace loom
