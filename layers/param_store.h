// layers/param_store.h — every parameter of a model in one flat buffer, gradients in another.
//
// ParamSpecs (core/param_spec.h) name the parameters and say how to initialise
// and shard them. ParamStore allocates the two flat
// buffers once (params, grads; the optimizer adds its own state alongside)
// and hands out Tensor views. The parameters are in the working dtype the model
// computes with (f32, or bf16/f16 under mixed precision, where the optimizer keeps the
// f32 master copy); the gradients are always f32 (Megatron's main_grad: 16-bit
// backward ops accumulate into them in f32, across micro-batches). Flat buffers make the whole-model operations
// one call each: zero the grads, the grad norm, later the data-parallel
// all-reduce buckets and ZeRO shards.
#pragma once

#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/memory_plan.h"
#include "core/param_spec.h"

namespace loom {

class ParamStore {
public:
  ParamStore(Backend& be, std::vector<ParamSpec> specs, DType dtype = DType::f32);

  std::size_t size() const { return specs_.size(); }
  const ParamSpec& spec(std::size_t i) const { return specs_[i]; }
  Tensor param(std::size_t i) const { return view(params_, i); }
  Tensor grad(std::size_t i) const { return view(grads_, i); }
  std::size_t index(const std::string& name) const;  // throws if unknown
  Tensor param(const std::string& name) const { return param(index(name)); }
  Tensor grad(const std::string& name) const { return grad(index(name)); }

  // The gradients of parameters [first, last) as one flat view (they are adjacent).
  Tensor grad_span(std::size_t first, std::size_t last) const;
  const std::vector<ParamSpec>& specs() const { return specs_; }
  std::int64_t offset(std::size_t i) const { return offsets_[i]; }  // of parameter i in the flat buffers
  MemoryPlan memory_plan() const;  // the two flat buffers
  Tensor flat_params() const { return params_.tensor(); }
  Tensor flat_grads() const { return grads_.tensor(); }
  std::int64_t numel() const { return total_; }
  DType dtype() const { return dtype_; }  // of the parameters (the gradients are f32)

  // Layout-invariant init: local element j of parameter `name` is
  // f(seed, stream = hash(name), index = global_index(spec, j)), whatever else
  // the model holds and however it is sharded.
  void init(std::uint64_t seed);
  void zero_grads();

  // Host copies in f32 (16-bit parameters widen exactly; writing rounds to the working
  // dtype), for the weights file and tests.
  std::vector<float> read(std::size_t i) const;
  void write(std::size_t i, const std::vector<float>& host);

private:
  Tensor view(const Buffer& b, std::size_t i) const;

  Backend& be_;
  std::vector<ParamSpec> specs_;
  std::vector<std::int64_t> offsets_;
  std::int64_t total_ = 0;
  DType dtype_;
  Buffer params_, grads_;
};

}  // namespace loom
