// launch/gemm_peak.cpp — see gemm_peak.h.
#include "launch/gemm_peak.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "backend/cpu/context.h"
#include "core/rng.h"

namespace loom {

std::string blas_core_name() { return openblas_get_corename(); }

double measure_gemm_peak_flops(Backend& be, DType dtype) {
  const bool cpu = be.device() == Device::cpu;
  const std::int64_t M = cpu ? 1024 : 8192, N = cpu ? 3072 : 8192, K = cpu ? 768 : 8192;
  Buffer a(be, Shape{M, K}, dtype), b(be, Shape{N, K}, dtype), c(be, Shape{M, N}, dtype);
  {
    std::vector<float> host(static_cast<std::size_t>(std::max(M, N) * K));
    fill_normal(host.data(), std::int64_t(host.size()), 1, 0, 0, 0.0f, 1.0f);
    Buffer wide(be, Shape{std::max(M, N), K}, DType::f32);
    be.copy(wide, host_tensor(host.data(), Shape{std::max(M, N), K}));
    be.cast(a, wide.tensor().slice_rows(0, M));
    be.cast(b, wide.tensor().slice_rows(0, N));
  }
  // The fastest way this process has to run the GEMM: raw sgemm (f32 on the CPU) and the
  // backend's matmul, which may pick another library (oneDNN for bf16, or for f32 when
  // OpenBLAS runs a fallback kernel set); best of 5 each.
  auto best_of = [&](auto&& run) {
    run();
    be.synchronize();
    double best = 1e30;
    for (int i = 0; i < 5; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      run();
      be.synchronize();
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return 2.0 * double(M) * double(N) * double(K) / best;
  };
  double peak = best_of([&] { be.matmul(c, a, b, {}, {.trans_b = Trans::yes}); });
  if (cpu && dtype == DType::f32 && !cpu::openblas_is_generic())  // generic: the backend is on oneDNN, faster
    peak = std::max(peak, best_of([&] {
                      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(N), int(K), 1.0f,
                                  a.data<float>(), int(K), b.data<float>(), int(K), 0.0f, c.data<float>(), int(N));
                    }));
  return peak;
}

}  // namespace loom
