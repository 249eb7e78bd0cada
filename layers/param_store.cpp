// layers/param_store.cpp — flat parameter/gradient buffers and their initialisation.
#include "layers/param_store.h"

#include <type_traits>

#include "core/rng.h"

namespace loom {

ParamStore::ParamStore(Backend& be, std::vector<ParamSpec> specs, DType dtype)
    : be_(be), specs_(std::move(specs)), dtype_(dtype) {
  for (const ParamSpec& s : specs_) {
    const Shard& h = s.shard;
    LOOM_CHECK(h.parts >= 1 && 0 <= h.index && h.index < h.parts && h.row_blocks >= 1 && h.lead_block_factor >= 1 &&
                   (h.split != Shard::Split::rows || s.shape[0] % h.row_units() == 0),
               "", "parameter {}: invalid shard (part {} of {}, {} row blocks) for shape {}", s.name, h.index, h.parts,
               h.row_blocks, s.shape.str());
    offsets_.push_back(total_);
    total_ += s.shape.numel();
  }
  params_ = Buffer(be_, Shape{total_}, dtype_);
  grads_ = Buffer(be_, Shape{total_}, DType::f32);
  be_.fill(params_, 0.0f);
  be_.fill(grads_, 0.0f);
}

Tensor ParamStore::view(const Buffer& b, std::size_t i) const {
  Tensor t = b.tensor();
  t.ptr = static_cast<char*>(t.ptr) + std::size_t(offsets_[i]) * dtype_size(t.dtype);
  t.shape = specs_[i].shape;
  return t;
}

Tensor ParamStore::grad_span(std::size_t first, std::size_t last) const {
  LOOM_CHECK(first <= last && last <= specs_.size(), "", "grad_span: [{}, {}) outside the {} parameters", first, last,
             specs_.size());
  const std::int64_t begin = first < specs_.size() ? offsets_[first] : total_;
  const std::int64_t end = last < specs_.size() ? offsets_[last] : total_;
  return grads_.tensor().slice_rows(begin, end);
}

std::size_t ParamStore::index(const std::string& name) const {
  for (std::size_t i = 0; i < specs_.size(); ++i)
    if (specs_[i].name == name) return i;
  throw Error(fmt::format("no parameter named '{}'", name));
}

void ParamStore::init(std::uint64_t seed) {
  for (std::size_t i = 0; i < specs_.size(); ++i) {
    const ParamSpec& s = specs_[i];
    std::vector<float> host(std::size_t(s.shape.numel()), s.init_value);
    if (s.init_std > 0) {
      const std::uint64_t stream = param_stream(s.name);
      const std::int64_t n = s.shape.numel();
#pragma omp parallel for schedule(static)
      for (std::int64_t j = 0; j < n; ++j)
        host[std::size_t(j)] = s.init_std * rng_normal(seed, stream, std::uint64_t(global_index(s, j)));
    }
    write(i, host);
  }
}

MemoryPlan ParamStore::memory_plan() const {
  MemoryPlan plan;
  plan.add(fmt::format("parameters ({})", dtype_name(dtype_)), params_.bytes());
  plan.add("gradients (f32)", grads_.bytes());
  return plan;
}

void ParamStore::zero_grads() { be_.fill(grads_, 0.0f); }

std::vector<float> ParamStore::read(std::size_t i) const {
  const Shape shape = specs_[i].shape;
  std::vector<float> host(std::size_t(shape.numel()));
  if (dtype_ == DType::f32) {
    be_.copy(host_tensor(host.data(), shape), param(i));
    return host;
  }
  // 16-bit parameters: their bits to the host, widened there (no device buffer outside the plan).
  std::vector<std::uint16_t> bits(host.size());
  be_.copy(Tensor{bits.data(), shape, dtype_, Device::cpu}, param(i));
  visit_dtype(dtype_, [&](auto t) {
    using T = decltype(t);
    if constexpr (!std::is_same_v<T, float>)
      for (std::size_t j = 0; j < bits.size(); ++j) host[j] = to_float(T{bits[j]});
  });
  return host;
}

void ParamStore::write(std::size_t i, const std::vector<float>& host) {
  const Shape shape = specs_[i].shape;
  LOOM_CHECK(std::int64_t(host.size()) == shape.numel(), "", "parameter {} is {} but {} values were given",
             specs_[i].name, shape.str(), host.size());
  if (dtype_ == DType::f32) return be_.copy(param(i), host_tensor(const_cast<float*>(host.data()), shape));
  std::vector<std::uint16_t> bits(host.size());  // rounded on the host, then copied
  visit_dtype(dtype_, [&](auto t) {
    using T = decltype(t);
    if constexpr (!std::is_same_v<T, float>)
      for (std::size_t j = 0; j < bits.size(); ++j) bits[j] = from_float<T>(host[j]).bits;
  });
  be_.copy(param(i), Tensor{bits.data(), shape, dtype_, Device::cpu});
}

}  // namespace loom
