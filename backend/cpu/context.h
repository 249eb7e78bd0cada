// backend/cpu/context.h — what the CPU kernels keep between calls, owned by one CpuBackend:
// the oneDNN primitive cache and per-thread f32 scratch (widened half-precision
// GEMM operands, attention tiles). Host scratch grows to the largest request and
// is then reused, so a training step allocates nothing after its first iteration.
#pragma once

#include <omp.h>

#include <cstddef>
#include <vector>

#include "backend/cpu/dnnl_gemm.h"
#include "core/error.h"

namespace loom::cpu {

// Per-thread float buffers in a few independent slots (a caller using slot s never
// overwrites another caller's slot s' != s on the same thread).
class ThreadScratch {
public:
  enum Slot : int { gemm_a, gemm_b, gemm_c, attention, kSlots };

  // Outside any parallel region: make room for omp_get_max_threads() threads.
  void prepare() {
    const std::size_t n = std::size_t(omp_get_max_threads()) * kSlots;
    if (buffers_.size() < n) buffers_.resize(n);
  }
  // The calling thread's buffer in `slot`, at least `floats` long. prepare() must
  // have run since the thread count last grew.
  float* get(Slot slot, std::size_t floats) {
    const std::size_t i = std::size_t(omp_get_thread_num()) * kSlots + slot;
    LOOM_CHECK(i < buffers_.size(), "", "ThreadScratch: thread {} has no buffer (prepare() not called)",
               omp_get_thread_num());
    std::vector<float>& b = buffers_[i];
    if (b.size() < floats) b.resize(floats);
    return b.data();
  }

private:
  std::vector<std::vector<float>> buffers_;
};

// True where OpenBLAS runs its generic "Prescott" kernels (it does not know this CPU): the
// rule for Context::f32_on_dnnl, and for launch/gemm_peak.cpp, which then skips timing raw
// cblas_sgemm (known slower; ~1 s of every loom-train start-up at one thread here).
bool openblas_is_generic();

struct Context {
  Context();
  DnnlGemm dnnl;
  ThreadScratch scratch;
  // f32 GEMMs on oneDNN instead of OpenBLAS: chosen when OpenBLAS runs its generic
  // "Prescott" kernels (Debian's 0.3.21 does on this Xeon unless OPENBLAS_CORETYPE is
  // set), where oneDNN f32 measured 2-6x faster; with fitting kernels OpenBLAS is
  // as fast or faster and keeps f32 (docs/performance.md, "bf16 on the CPU backend").
  bool f32_on_dnnl = false;
};

}  // namespace loom::cpu
