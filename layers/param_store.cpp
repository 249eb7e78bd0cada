// layers/param_store.cpp — flat parameter/gradient buffers and their initialisation.
#include "layers/param_store.h"

#include "core/rng.h"

namespace loom {

std::uint64_t param_stream(const std::string& name) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

Shape global_shape(const ParamSpec& s) {
  const Shard& h = s.shard;
  if (h.split == Shard::Split::none || h.parts == 1) return s.shape;
  const int dim = h.split == Shard::Split::rows ? 0 : s.shape.rank() - 1;
  LOOM_CHECK(s.shape.rank() >= 1 && s.shape.rank() <= 2, "", "parameter {}: only 1-D and 2-D tensors can be sharded",
             s.name);
  if (s.shape.rank() == 1) return Shape{s.shape[0] * h.parts};
  return dim == 0 ? Shape{s.shape[0] * h.parts, s.shape[1]} : Shape{s.shape[0], s.shape[1] * h.parts};
}

std::int64_t global_index(const ParamSpec& s, std::int64_t i) {
  const Shard& h = s.shard;
  if (h.split == Shard::Split::none || h.parts == 1) return i;
  const std::int64_t cols = s.shape.rank() == 2 ? s.shape[1] : 1;
  const std::int64_t r = i / cols, c = i % cols;
  if (h.split == Shard::Split::cols) return r * cols * h.parts + std::int64_t(h.index) * cols + c;
  // rows, inside row blocks: local block b holds rows [b*lb, (b+1)*lb) of this rank's
  // share of global block b, which starts at b * (lb * parts).
  const std::int64_t lb = s.shape[0] / h.row_blocks;  // local rows per block
  const std::int64_t b = r / lb, within = r % lb;
  return (b * lb * h.parts + std::int64_t(h.index) * lb + within) * cols + c;
}

ParamStore::ParamStore(Backend& be, std::vector<ParamSpec> specs) : be_(be), specs_(std::move(specs)) {
  for (const ParamSpec& s : specs_) {
    const Shard& h = s.shard;
    LOOM_CHECK(h.parts >= 1 && 0 <= h.index && h.index < h.parts && h.row_blocks >= 1 &&
                   (h.split != Shard::Split::rows || s.shape[0] % h.row_blocks == 0),
               "", "parameter {}: invalid shard (part {} of {}, {} row blocks) for shape {}", s.name, h.index, h.parts,
               h.row_blocks, s.shape.str());
    offsets_.push_back(total_);
    total_ += s.shape.numel();
  }
  params_ = Buffer(be_, Shape{total_}, DType::f32);
  grads_ = Buffer(be_, Shape{total_}, DType::f32);
  be_.fill(params_, 0.0f);
  be_.fill(grads_, 0.0f);
}

Tensor ParamStore::view(const Buffer& b, std::size_t i) const {
  Tensor t = b.tensor();
  t.ptr = static_cast<float*>(t.ptr) + offsets_[i];
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

void ParamStore::zero_grads() { be_.fill(grads_, 0.0f); }

std::vector<float> ParamStore::read(std::size_t i) const {
  std::vector<float> host(std::size_t(specs_[i].shape.numel()));
  be_.copy(host_tensor(host.data(), specs_[i].shape), param(i));
  return host;
}

void ParamStore::write(std::size_t i, const std::vector<float>& host) {
  LOOM_CHECK(std::int64_t(host.size()) == specs_[i].shape.numel(), "", "parameter {} is {} but {} values were given",
             specs_[i].name, specs_[i].shape.str(), host.size());
  be_.copy(param(i), host_tensor(const_cast<float*>(host.data()), specs_[i].shape));
}

}  // namespace loom
