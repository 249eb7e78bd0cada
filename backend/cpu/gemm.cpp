// backend/cpu/gemm.cpp — GEMM and the matmul / bias-gradient ops built on it.
//
// f32 x f32 -> f32 goes straight to OpenBLAS cblas_sgemm (row-major), so the
// matmul op costs sgemm plus, with a bias, one pass to broadcast the bias into
// the output first (then sgemm runs with beta = 1). Any bf16/f16 operand takes
// a blocked kernel that converts on the fly and accumulates in f32: correct,
// not fast (the CPU backend is the fp32 reference; fast half GEMMs are the GPU's).
#include <cblas.h>

#include <algorithm>

#include "backend/checks.h"
#include "backend/cpu/kernels.h"

namespace loom::cpu {

namespace {

// C (M,N) = alpha * op(A) op(B) + beta * C with f32 accumulation, any storage types.
template <class TA, class TB, class TC>
void gemm_generic(Trans ta, Trans tb, std::int64_t M, std::int64_t N, std::int64_t K, float alpha,
                  const TA* A, std::int64_t lda, const TB* B, std::int64_t ldb, float beta, TC* C,
                  std::int64_t ldc) {
  constexpr std::int64_t kBlock = 256;  // columns of C accumulated at once, on the stack
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < M; ++i) {
    float acc[kBlock];
    for (std::int64_t j0 = 0; j0 < N; j0 += kBlock) {
      const std::int64_t nj = std::min(kBlock, N - j0);
      std::fill(acc, acc + nj, 0.0f);
      for (std::int64_t k = 0; k < K; ++k) {
        const float a = to_float(ta == Trans::no ? A[i * lda + k] : A[k * lda + i]);
        if (tb == Trans::no) {
          const TB* brow = B + k * ldb + j0;
          for (std::int64_t j = 0; j < nj; ++j) acc[j] += a * to_float(brow[j]);
        } else {
          for (std::int64_t j = 0; j < nj; ++j) acc[j] += a * to_float(B[(j0 + j) * ldb + k]);
        }
      }
      TC* crow = C + i * ldc + j0;
      for (std::int64_t j = 0; j < nj; ++j)
        crow[j] = from_float<TC>(alpha * acc[j] + (beta == 0.0f ? 0.0f : beta * to_float(crow[j])));
    }
  }
}

}  // namespace

void gemm(Trans ta, Trans tb, std::int64_t M, std::int64_t N, std::int64_t K, float alpha, ConstMat a,
          ConstMat b, float beta, Mat c) {
  if (M == 0 || N == 0) return;
  if (a.dtype == DType::f32 && b.dtype == DType::f32 && c.dtype == DType::f32) {
    if (K == 0) {  // sgemm with K == 0 is legal but some builds skip the beta scaling
      float* C = static_cast<float*>(c.ptr);
      for (std::int64_t i = 0; i < M; ++i)
        for (std::int64_t j = 0; j < N; ++j) C[i * c.ld + j] = beta == 0.0f ? 0.0f : beta * C[i * c.ld + j];
      return;
    }
    cblas_sgemm(CblasRowMajor, ta == Trans::yes ? CblasTrans : CblasNoTrans,
                tb == Trans::yes ? CblasTrans : CblasNoTrans, int(M), int(N), int(K), alpha,
                static_cast<const float*>(a.ptr), int(a.ld), static_cast<const float*>(b.ptr), int(b.ld), beta,
                static_cast<float*>(c.ptr), int(c.ld));
    return;
  }
  visit_dtype(a.dtype, [&](auto ta_) {
    visit_dtype(b.dtype, [&](auto tb_) {
      visit_dtype(c.dtype, [&](auto tc_) {
        using TA = decltype(ta_);
        using TB = decltype(tb_);
        using TC = decltype(tc_);
        gemm_generic<TA, TB, TC>(ta, tb, M, N, K, alpha, static_cast<const TA*>(a.ptr), a.ld,
                                 static_cast<const TB*>(b.ptr), b.ld, beta, static_cast<TC*>(c.ptr), c.ld);
      });
    });
  });
}

void matmul(Tensor out, Tensor a, Tensor b, Tensor bias, MatmulOpts opts) {
  const auto [M, N, K] = check::matmul_dims(out, a, b, bias, opts);

  float beta = opts.accumulate == Accumulate::yes ? 1.0f : 0.0f;
  if (!bias.empty()) {
    // Broadcast the bias into out (or add it), then let GEMM accumulate on top.
    visit_dtype(out.dtype, [&](auto t) {
      using T = decltype(t);
      visit_dtype(bias.dtype, [&](auto tb) {
        using TB = decltype(tb);
        T* o = static_cast<T*>(out.ptr);
        const TB* bp = static_cast<const TB*>(bias.ptr);
        const bool acc = opts.accumulate == Accumulate::yes;
#pragma omp parallel for schedule(static)
        for (std::int64_t i = 0; i < M; ++i)
          for (std::int64_t j = 0; j < N; ++j)
            o[i * N + j] = from_float<T>(to_float(bp[j]) + (acc ? to_float(o[i * N + j]) : 0.0f));
      });
    });
    beta = 1.0f;
  }
  gemm(opts.trans_a, opts.trans_b, M, N, K, opts.alpha, {a.dtype, a.ptr, a.shape.last()},
       {b.dtype, b.ptr, b.shape.last()}, beta, {out.dtype, out.ptr, N});
}

void bias_backward(Tensor dbias, Tensor dout) {
  const std::int64_t N = dout.shape.last(), rows = dout.shape.rows();
  check::numel("bias_backward", "dbias", dbias, N);
  visit_dtype(dout.dtype, [&](auto t) {
    using T = decltype(t);
    visit_dtype(dbias.dtype, [&](auto tb) {
      using TB = decltype(tb);
      const T* d = static_cast<const T*>(dout.ptr);
      TB* db = static_cast<TB*>(dbias.ptr);
      // Columns split across threads; each sums its columns over all rows in f32.
#pragma omp parallel for schedule(static)
      for (std::int64_t j0 = 0; j0 < N; j0 += 64) {
        const std::int64_t nj = std::min<std::int64_t>(64, N - j0);
        float acc[64] = {};
        for (std::int64_t i = 0; i < rows; ++i)
          for (std::int64_t j = 0; j < nj; ++j) acc[j] += to_float(d[i * N + j0 + j]);
        for (std::int64_t j = 0; j < nj; ++j) db[j0 + j] = from_float<TB>(to_float(db[j0 + j]) + acc[j]);
      }
    });
  });
}

}  // namespace loom::cpu
