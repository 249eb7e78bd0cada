// layers/param_store.cpp — flat parameter/gradient buffers and their initialisation.
#include "layers/param_store.h"

#include "core/rng.h"

namespace loom {

std::uint64_t param_stream(const std::string& name) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

ParamStore::ParamStore(Backend& be, std::vector<ParamSpec> specs) : be_(be), specs_(std::move(specs)) {
  for (const ParamSpec& s : specs_) {
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

std::size_t ParamStore::index(const std::string& name) const {
  for (std::size_t i = 0; i < specs_.size(); ++i)
    if (specs_[i].name == name) return i;
  throw Error(fmt::format("no parameter named '{}'", name));
}

void ParamStore::init(std::uint64_t seed) {
  for (std::size_t i = 0; i < specs_.size(); ++i) {
    const ParamSpec& s = specs_[i];
    std::vector<float> host(std::size_t(s.shape.numel()), s.init_value);
    if (s.init_std > 0) fill_normal(host.data(), s.shape.numel(), seed, param_stream(s.name), 0, 0.0f, s.init_std);
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
