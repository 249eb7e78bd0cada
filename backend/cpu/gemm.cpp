// backend/cpu/gemm.cpp — GEMM and the matmul / bias-gradient ops built on it.
//
// Which library runs a GEMM depends on the storage dtypes only (measured on this
// machine, docs/performance.md "bf16 on the CPU backend"):
//   f32  x f32  -> f32        OpenBLAS cblas_sgemm (row-major), or a oneDNN matmul
//                             primitive when OpenBLAS runs its generic kernels
//                             (Context::f32_on_dnnl)
//   bf16 x bf16 -> bf16 | f32 oneDNN matmul (AMX / AVX-512 BF16), 2-3x sgemm
//   anything else (f16, mixed) widened to f32 in per-thread scratch, then sgemm.h's
//                             sgemm (dnnl_sgemm or cblas_sgemm, by the same rule):
//                             the conversions are O(MK + KN + MN) next to O(MNK)
// A bf16 GEMM called from inside an OpenMP parallel region (none today) is also
// widened: a oneDNN primitive there would run on one thread with a
// partitioning made for all of them.
// The matmul op adds its bias in the GEMM where it can (oneDNN bias, alpha = 1),
// else broadcasts the bias into out first and runs the GEMM with beta = 1.
#include <omp.h>

#include <algorithm>

#include "backend/checks.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/sgemm.h"

namespace loom::cpu {

namespace {

// dst (rows, cols) dense f32 = src; in parallel over rows unless already inside a parallel region.
void to_f32(float* dst, DType dt, const void* src, std::int64_t ld, std::int64_t rows, std::int64_t cols) {
  visit_dtype(dt, [&](auto t) {
    using T = decltype(t);
    const T* s = static_cast<const T*>(src);
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && rows * cols > 16384)
    for (std::int64_t r = 0; r < rows; ++r) convert_rows(dst, cols, s, ld, r, r + 1, cols);
  });
}
void from_f32(DType dt, void* dst, std::int64_t ld, const float* src, std::int64_t rows, std::int64_t cols) {
  visit_dtype(dt, [&](auto t) {
    using T = decltype(t);
    T* d = static_cast<T*>(dst);
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && rows * cols > 16384)
    for (std::int64_t r = 0; r < rows; ++r) convert_rows(d, ld, src, cols, r, r + 1, cols);
  });
}

// out (M, N; row stride ldo) (+)= bias broadcast over rows.
void broadcast_bias(Mat out, ConstMat bias, std::int64_t M, std::int64_t N, bool accumulate) {
  visit_dtype(out.dtype, [&](auto t) {
    using T = decltype(t);
    visit_dtype(bias.dtype, [&](auto tb) {
      using TB = decltype(tb);
      T* o = static_cast<T*>(out.ptr);
      const TB* bp = static_cast<const TB*>(bias.ptr);
#pragma omp parallel for schedule(static) if (!omp_in_parallel())
      for (std::int64_t i = 0; i < M; ++i) {
        T* row = o + i * out.ld;
        if (accumulate) {
#pragma omp simd
          for (std::int64_t j = 0; j < N; ++j) st(row, j, ld(bp, j) + ld(row, j));
        } else {
#pragma omp simd
          for (std::int64_t j = 0; j < N; ++j) st(row, j, ld(bp, j));
        }
      }
    });
  });
}

// C (f32) *= beta; beta == 0 writes zeros (NaN in C does not survive).
void scale_f32(Mat c, std::int64_t M, std::int64_t N, float beta) {
  float* p = static_cast<float*>(c.ptr);
  for (std::int64_t i = 0; i < M; ++i)
    for (std::int64_t j = 0; j < N; ++j) p[i * c.ld + j] = beta == 0.0f ? 0.0f : beta * p[i * c.ld + j];
}

// Any dtypes: widen what is not f32 into scratch, sgemm, round C back (once: a bias
// and the old C are added in f32 too). bias.ptr == nullptr: no bias.
void gemm_widened(Context& ctx, Trans ta, Trans tb, std::int64_t M, std::int64_t N, std::int64_t K, float alpha,
                  ConstMat a, ConstMat b, float beta, Mat c, ConstMat bias) {
  if (!omp_in_parallel()) ctx.scratch.prepare();
  const float* A = static_cast<const float*>(a.ptr);
  std::int64_t lda = a.ld;
  if (a.dtype != DType::f32) {
    const std::int64_t rows = ta == Trans::yes ? K : M, cols = ta == Trans::yes ? M : K;
    float* s = ctx.scratch.get(ThreadScratch::gemm_a, std::size_t(rows * cols));
    to_f32(s, a.dtype, a.ptr, a.ld, rows, cols);
    A = s, lda = cols;
  }
  const float* B = static_cast<const float*>(b.ptr);
  std::int64_t ldb = b.ld;
  if (b.dtype != DType::f32) {
    const std::int64_t rows = tb == Trans::yes ? N : K, cols = tb == Trans::yes ? K : N;
    float* s = ctx.scratch.get(ThreadScratch::gemm_b, std::size_t(rows * cols));
    to_f32(s, b.dtype, b.ptr, b.ld, rows, cols);
    B = s, ldb = cols;
  }
  Mat C = c;
  if (c.dtype != DType::f32) {
    C = {DType::f32, ctx.scratch.get(ThreadScratch::gemm_c, std::size_t(M * N)), N};
    if (beta != 0.0f) to_f32(static_cast<float*>(C.ptr), c.dtype, c.ptr, c.ld, M, N);
  }
  if (bias.ptr) {
    if (beta != 0.0f && beta != 1.0f) scale_f32(C, M, N, beta);  // (rare) the old C first, then the bias on top
    broadcast_bias(C, bias, M, N, beta != 0.0f);
    beta = 1.0f;
  }
  sgemm(ctx, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, static_cast<float*>(C.ptr), C.ld);
  if (c.dtype != DType::f32) from_f32(c.dtype, c.ptr, c.ld, static_cast<const float*>(C.ptr), M, N);
}

bool use_dnnl(const Context& ctx, DType a, DType b, DType c) {
  if (a == DType::f32 && b == DType::f32 && c == DType::f32 && !ctx.f32_on_dnnl) return false;
  return DnnlGemm::supports(a, b, c) && !omp_in_parallel();
}

}  // namespace

void gemm(Context& ctx, Trans ta, Trans tb, std::int64_t M, std::int64_t N, std::int64_t K, float alpha,
          ConstMat a, ConstMat b, float beta, Mat c) {
  if (M == 0 || N == 0) return;
  // oneDNN first where it is the faster library; it declines (false) where this CPU has no
  // implementation, and the GEMM takes the OpenBLAS path below.
  if (K > 0 && use_dnnl(ctx, a.dtype, b.dtype, c.dtype) &&
      ctx.dnnl.run({ta, tb, M, N, K, alpha, a.dtype, b.dtype, c.dtype, DType::f32, a.ptr, a.ld, b.ptr, b.ld, nullptr,
                    beta, c.ptr, c.ld})) {
    return;
  }
  if (a.dtype == DType::f32 && b.dtype == DType::f32 && c.dtype == DType::f32) {
    sgemm(ctx, ta, tb, M, N, K, alpha, static_cast<const float*>(a.ptr), a.ld, static_cast<const float*>(b.ptr), b.ld,
          beta, static_cast<float*>(c.ptr), c.ld);
  } else {
    gemm_widened(ctx, ta, tb, M, N, K, alpha, a, b, beta, c, {});
  }
}

void matmul(Context& ctx, Tensor out, Tensor a, Tensor b, Tensor bias, MatmulOpts opts) {
  const auto [M, N, K] = check::matmul_dims(out, a, b, bias, opts);
  if (M == 0 || N == 0) return;
  const float beta = opts.accumulate == Accumulate::yes ? 1.0f : 0.0f;
  const ConstMat A{a.dtype, a.ptr, a.shape.last()}, B{b.dtype, b.ptr, b.shape.last()};
  const Mat C{out.dtype, out.ptr, N};
  if (bias.empty()) return gemm(ctx, opts.trans_a, opts.trans_b, M, N, K, opts.alpha, A, B, beta, C);
  const ConstMat bias_m{bias.dtype, bias.ptr, N};
  const bool all_f32 = a.dtype == DType::f32 && b.dtype == DType::f32 && out.dtype == DType::f32;
  // oneDNN adds the bias in its epilogue: dst = A B + bias + beta dst, rounded once.
  if (K > 0 && opts.alpha == 1.0f && use_dnnl(ctx, a.dtype, b.dtype, out.dtype) &&
      (bias.dtype == DType::f32 || (bias.dtype == DType::bf16 && a.dtype == DType::bf16)) &&
      ctx.dnnl.run({opts.trans_a, opts.trans_b, M, N, K, 1.0f, a.dtype, b.dtype, out.dtype, bias.dtype, a.ptr, A.ld,
                    b.ptr, B.ld, bias.ptr, beta, out.ptr, N})) {
    return;
  }
  if (all_f32) {  // broadcast the bias into out (or add it), then sgemm accumulates on top
    broadcast_bias(C, bias_m, M, N, beta != 0.0f);
    gemm(ctx, opts.trans_a, opts.trans_b, M, N, K, opts.alpha, A, B, 1.0f, C);
  } else {  // the same in f32 scratch, so that a half-precision out is rounded once
    gemm_widened(ctx, opts.trans_a, opts.trans_b, M, N, K, opts.alpha, A, B, beta, C, bias_m);
  }
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
        for (std::int64_t i = 0; i < rows; ++i) {
          const T* row = d + i * N + j0;
#pragma omp simd
          for (std::int64_t j = 0; j < nj; ++j) acc[j] += ld(row, j);
        }
        for (std::int64_t j = 0; j < nj; ++j) st(db, j0 + j, ld(db, j0 + j) + acc[j]);
      }
    });
  });
}

}  // namespace loom::cpu
