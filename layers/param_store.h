// layers/param_store.h — every parameter of a model in one flat f32 buffer, gradients in another.
//
// A ParamSpec names a parameter (GPT-2 style: "h.3.attn.c_attn.weight"), gives
// its shape and how to initialise it. ParamStore allocates the two flat
// buffers once (params, grads; the optimizer adds its own state alongside)
// and hands out Tensor views. Flat buffers make the whole-model operations
// one call each: zero the grads, the grad norm, later the data-parallel
// all-reduce buckets and ZeRO shards.
#pragma once

#include <string>
#include <vector>

#include "backend/backend.h"

namespace loom {

enum class Decay : bool { no = false, yes = true };  // AdamW weight decay applies?

// Which part of the global (unsharded) tensor this rank holds, for tensor
// parallelism: `rows` splits dim 0 into `parts` (inside each of `row_blocks`
// equal blocks: c_attn's q | k | v, so a rank gets its heads of each), `cols`
// splits the last dim. The default holds the whole tensor.
struct Shard {
  enum class Split : std::uint8_t { none, rows, cols };
  Split split = Split::none;
  int parts = 1, index = 0;
  int row_blocks = 1;
};

struct ParamSpec {
  std::string name;
  Shape shape;              // this rank's (local) shape
  float init_std = 0.0f;    // > 0: normal(0, init_std) from the counter-based RNG
  float init_value = 0.0f;  // used when init_std == 0 (biases 0, layernorm weights 1)
  Decay decay = Decay::yes;
  Shard shard = {};
};

// The global shape of a (possibly sharded) parameter, and the global row-major
// index of local element `i`: what the RNG is keyed by, so every layout draws
// the same global tensor.
Shape global_shape(const ParamSpec& s);
std::int64_t global_index(const ParamSpec& s, std::int64_t i);

class ParamStore {
public:
  ParamStore(Backend& be, std::vector<ParamSpec> specs);

  std::size_t size() const { return specs_.size(); }
  const ParamSpec& spec(std::size_t i) const { return specs_[i]; }
  Tensor param(std::size_t i) const { return view(params_, i); }
  Tensor grad(std::size_t i) const { return view(grads_, i); }
  std::size_t index(const std::string& name) const;  // throws if unknown
  Tensor param(const std::string& name) const { return param(index(name)); }
  Tensor grad(const std::string& name) const { return grad(index(name)); }

  // The gradients of parameters [first, last) as one flat view (they are adjacent).
  Tensor grad_span(std::size_t first, std::size_t last) const;
  Tensor flat_params() const { return params_.tensor(); }
  Tensor flat_grads() const { return grads_.tensor(); }
  std::int64_t numel() const { return total_; }

  // Layout-invariant init: local element j of parameter `name` is
  // f(seed, stream = hash(name), index = global_index(spec, j)), whatever else
  // the model holds and however it is sharded.
  void init(std::uint64_t seed);
  void zero_grads();

  // Host copies, for the weights file and tests.
  std::vector<float> read(std::size_t i) const;
  void write(std::size_t i, const std::vector<float>& host);

private:
  Tensor view(const Buffer& b, std::size_t i) const;

  Backend& be_;
  std::vector<ParamSpec> specs_;
  std::vector<std::int64_t> offsets_;
  std::int64_t total_ = 0;
  Buffer params_, grads_;
};

// FNV-1a of the name: the RNG stream of a parameter (stable across layouts and runs).
std::uint64_t param_stream(const std::string& name);

}  // namespace loom
