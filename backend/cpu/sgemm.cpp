// backend/cpu/sgemm.cpp — see sgemm.h.
#include "backend/cpu/sgemm.h"

#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>

#include "core/error.h"

namespace loom::cpu {

void sgemm(const Context& ctx, Trans ta, Trans tb, std::int64_t M, std::int64_t N, std::int64_t K,
           float alpha, const float* A, std::int64_t lda, const float* B, std::int64_t ldb, float beta,
           float* C, std::int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // C = beta C, which dnnl_sgemm (2.6) skips
    for (std::int64_t i = 0; i < M; ++i)
      for (std::int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    return;
  }
  if (ctx.f32_on_dnnl) {
    const dnnl_status_t st = dnnl_sgemm(ta == Trans::yes ? 'T' : 'N', tb == Trans::yes ? 'T' : 'N', M, N, K,
                                        alpha, A, lda, B, ldb, beta, C, ldc);
    // Only invalid arguments fail (a caller's bug: lda < op(A)'s row length, say).
    LOOM_CHECK(st == dnnl_success, "", "dnnl_sgemm {}x{}x{} (trans {}{}, ld {} {} {}) failed: status {}", M,
               N, K, ta == Trans::yes ? 'T' : 'N', tb == Trans::yes ? 'T' : 'N', lda, ldb, ldc, int(st));
    return;
  }
  cblas_sgemm(CblasRowMajor, ta == Trans::yes ? CblasTrans : CblasNoTrans,
              tb == Trans::yes ? CblasTrans : CblasNoTrans, int(M), int(N), int(K), alpha, A, int(lda), B,
              int(ldb), beta, C, int(ldc));
}

}  // namespace loom::cpu
