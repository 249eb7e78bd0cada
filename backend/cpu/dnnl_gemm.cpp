// backend/cpu/dnnl_gemm.cpp — see dnnl_gemm.h.
//
// Row-major strided operands map onto oneDNN memory descriptors by strides:
// op(A) (M,K) has strides {lda, 1}, or {1, lda} when A is stored transposed;
// likewise op(B) (K,N). alpha is an output scale, beta a sum post-op
// (dst = alpha * A B + bias + beta * dst, the sum read in f32 from dst's dtype).
#include "backend/cpu/dnnl_gemm.h"

#include <cblas.h>

#include <dnnl.hpp>

#include <map>
#include <optional>
#include <mutex>
#include <string_view>
#include <tuple>
#include <unordered_map>

#include "backend/cpu/context.h"
#include "core/error.h"

namespace loom::cpu {

namespace {

using dt = dnnl::memory::data_type;

dt to_dnnl(DType t) {
  switch (t) {
    case DType::f32: return dt::f32;
    case DType::bf16: return dt::bf16;
    case DType::f16: return dt::f16;
  }
  return dt::undef;
}

struct Key {
  bool ta, tb;
  std::int64_t M, N, K, lda, ldb, ldc;
  float alpha, beta;
  DType a, b, c;
  int bias;  // -1: none, else the DType's value
  auto operator<=>(const Key&) const = default;
};

}  // namespace

struct DnnlGemm::Impl {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  mutable std::mutex mutex;
  std::map<Key, std::optional<dnnl::matmul>> cache;  // nullopt: no implementation here
};

DnnlGemm::DnnlGemm() : impl_(std::make_unique<Impl>()) {}
DnnlGemm::~DnnlGemm() = default;

bool DnnlGemm::supports(DType a, DType b, DType c) {
  if (a == DType::f32 && b == DType::f32 && c == DType::f32) return true;
  return a == DType::bf16 && b == DType::bf16 && (c == DType::bf16 || c == DType::f32);
}

std::size_t DnnlGemm::cached_primitives() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->cache.size();
}

bool DnnlGemm::run(const DnnlGemmArgs& g) {
  using dims = dnnl::memory::dims;
  LOOM_CHECK(g.bias == nullptr || g.alpha == 1.0f, "", "DnnlGemm: a bias needs alpha == 1 (got {})", g.alpha);
  const dnnl::memory::desc a_md({g.M, g.K}, to_dnnl(g.a_dtype), g.ta == Trans::yes ? dims{1, g.lda} : dims{g.lda, 1});
  const dnnl::memory::desc b_md({g.K, g.N}, to_dnnl(g.b_dtype), g.tb == Trans::yes ? dims{1, g.ldb} : dims{g.ldb, 1});
  const dnnl::memory::desc c_md({g.M, g.N}, to_dnnl(g.c_dtype), dims{g.ldc, 1});
  const dnnl::memory::desc bias_md =
      g.bias ? dnnl::memory::desc({1, g.N}, to_dnnl(g.bias_dtype), dims{g.N, 1}) : dnnl::memory::desc();
  const Key key{g.ta == Trans::yes, g.tb == Trans::yes, g.M, g.N, g.K, g.lda, g.ldb, g.ldc, g.alpha, g.beta,
                g.a_dtype, g.b_dtype, g.c_dtype, g.bias ? int(g.bias_dtype) : -1};
  dnnl::matmul prim;
  {
    std::lock_guard lock(impl_->mutex);
    auto it = impl_->cache.find(key);
    if (it == impl_->cache.end()) {
      dnnl::primitive_attr attr;
      if (g.alpha != 1.0f) attr.set_output_scales(0, {g.alpha});
      if (g.beta != 0.0f) {
        dnnl::post_ops po;
        po.append_sum(g.beta);
        attr.set_post_ops(po);
      }
      std::optional<dnnl::matmul> made;
      try {
        const dnnl::matmul::desc desc = g.bias ? dnnl::matmul::desc(a_md, b_md, bias_md, c_md)
                                               : dnnl::matmul::desc(a_md, b_md, c_md);
        made = dnnl::matmul(dnnl::matmul::primitive_desc(desc, attr, impl_->engine));
      } catch (const dnnl::error& e) {
        if (e.status != dnnl_unimplemented)
          throw Error(fmt::format("oneDNN matmul {}x{}x{} ({} x {} -> {}): {}", g.M, g.N, g.K,
                                  dtype_name(g.a_dtype), dtype_name(g.b_dtype), dtype_name(g.c_dtype), e.what()));
      }
      it = impl_->cache.emplace(key, made).first;
    }
    if (!it->second) return false;
    prim = *it->second;
  }
  const dnnl::engine& eng = impl_->engine;
  dnnl::memory a_mem(a_md, eng, const_cast<void*>(g.a)), b_mem(b_md, eng, const_cast<void*>(g.b)),
      c_mem(c_md, eng, g.c);
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem}};
  if (g.bias) args.emplace(DNNL_ARG_BIAS, dnnl::memory(bias_md, eng, const_cast<void*>(g.bias)));
  // The stream is in-order and (CPU, OpenMP runtime) executes synchronously; one
  // stream shared by callers is fine since callers never overlap GEMMs.
  prim.execute(impl_->stream, args);
  impl_->stream.wait();
  return true;
}

bool openblas_is_generic() {
  const char* core = openblas_get_corename();
  return core != nullptr && std::string_view(core) == "Prescott";
}

Context::Context() : f32_on_dnnl(openblas_is_generic()) {}

}  // namespace loom::cpu
