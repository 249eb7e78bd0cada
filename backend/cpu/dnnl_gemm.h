// backend/cpu/dnnl_gemm.h — oneDNN matmul for the half-precision GEMMs of the CPU backend.
//
// One object per CpuBackend (no global state): it owns the oneDNN engine and stream
// and a cache of matmul primitives keyed by everything a primitive is compiled for
// (dtypes, sizes, strides, transposes, alpha, beta, bias). Creating a primitive costs
// about a millisecond and a training step reuses the same few dozen shapes, so
// each is built once. oneDNN (Debian's libdnnl) runs on the same OpenMP runtime
// (libgomp) as our loops and OpenBLAS: one thread pool.
#pragma once

#include <cstdint>
#include <memory>

#include "backend/backend.h"

namespace loom::cpu {

// Row-major operands; ld* are row strides (as in kernels.h's gemm).
struct DnnlGemmArgs {
  Trans ta, tb;
  std::int64_t M, N, K;
  float alpha;
  DType a_dtype, b_dtype, c_dtype, bias_dtype;  // bias_dtype ignored when bias == nullptr
  const void* a; std::int64_t lda;
  const void* b; std::int64_t ldb;
  const void* bias;  // (N) or nullptr; only with alpha == 1 (no ambiguity about scaling the bias)
  float beta;
  void* c; std::int64_t ldc;
};

class DnnlGemm {
public:
  DnnlGemm();
  ~DnnlGemm();
  DnnlGemm(const DnnlGemm&) = delete;
  DnnlGemm& operator=(const DnnlGemm&) = delete;

  // Whether oneDNN runs this dtype combination (a, b -> c): bf16 x bf16 -> bf16 | f32, f32 x f32 -> f32.
  // (f16 matmul is not implemented for this CPU in oneDNN 2.6: primitive creation fails.)
  static bool supports(DType a, DType b, DType c);
  // C = alpha * op(A) op(B) (+ bias) + beta * C. Must not be called inside an OpenMP
  // parallel region (the primitive would run on one thread, with a partitioning made for all).
  // Returns false, computing nothing, when oneDNN has no implementation for it on this CPU
  // (bf16 on a CPU without AVX-512, say); the caller then takes another path. The answer
  // is cached like a primitive.
  bool run(const DnnlGemmArgs& args);
  std::size_t cached_primitives() const;

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace loom::cpu
