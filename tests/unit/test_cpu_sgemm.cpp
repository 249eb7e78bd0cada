// tests/unit/test_cpu_sgemm.cpp — the CPU backend's plain f32 GEMM call (backend/cpu/sgemm.h),
// on both of its libraries whichever this machine picks (Context::f32_on_dnnl set by hand).
//
// Against the double-precision textbook product (tests/unit/reference.h): every transpose
// pair, the attention kernels' tile shapes and odd ones, alpha != 1, beta 0 over a C full of
// NaN (must be overwritten), beta 1 and 0.5, strided operands whose padding is NaN (never
// read) and a C whose padding must stay untouched; K == 0 (C = beta C); and many tiles at
// once from inside an OpenMP parallel region, one per thread, as the attention kernels call it.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "backend/cpu/sgemm.h"
#include "tests/unit/reference.h"

namespace loom {
namespace {

using ref::i64;
using ref::Vec;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kPad = 12345.0f;  // C's padding: must survive

// A (rows, cols) row-major f32 matrix with row stride cols + pad, padding filled with `fill`.
std::vector<float> padded(const Vec& v, i64 rows, i64 cols, i64 pad, float fill) {
  std::vector<float> m(std::size_t(rows * (cols + pad)), fill);
  for (i64 r = 0; r < rows; ++r)
    for (i64 c = 0; c < cols; ++c) m[r * (cols + pad) + c] = float(v[r * cols + c]);
  return m;
}

// Runs one GEMM through the wrapper and compares it with the double reference; "" if it
// matches, else what went wrong.
std::string check_one(const cpu::Context& ctx, bool ta, bool tb, i64 M, i64 N, i64 K, float alpha, float beta,
                      std::uint64_t seed) {
  const i64 pad = 3;
  // exactly representable inputs in f32, so the reference sees what the library sees
  Vec a = ref::randn(M * K, seed), b = ref::randn(K * N, seed + 1), c0 = ref::randn(M * N, seed + 2);
  for (Vec* v : {&a, &b, &c0})
    for (double& x : *v) x = double(float(x));
  const i64 ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
  std::vector<float> A = padded(a, ar, ac, pad, kNaN), B = padded(b, br, bc, pad, kNaN);
  std::vector<float> C = padded(c0, M, N, pad, kPad);
  if (beta == 0.0f)
    for (i64 i = 0; i < M; ++i)
      for (i64 j = 0; j < N; ++j) C[i * (N + pad) + j] = kNaN;
  cpu::sgemm(ctx, Trans(ta), Trans(tb), M, N, K, alpha, A.data(), ac + pad, B.data(), bc + pad, beta,
             C.data(), N + pad);
  Vec want = ref::matmul(a, b, M, N, K, ta, tb), got(M * N);
  for (i64 i = 0; i < M * N; ++i) want[i] = alpha * want[i] + (beta == 0.0f ? 0.0 : beta * c0[i]);
  for (i64 i = 0; i < M; ++i) {
    for (i64 j = 0; j < N; ++j) got[i * N + j] = C[i * (N + pad) + j];
    for (i64 j = N; j < N + pad; ++j)
      if (C[i * (N + pad) + j] != kPad) return "C's padding was written";
  }
  const ::testing::AssertionResult r = ref::near(got, want, 2e-6 * double(std::max<i64>(K, 8)) / 8 + 1e-6);
  return r ? std::string() : std::string(r.message());
}

const char* lib_name(bool dnnl) { return dnnl ? "oneDNN dnnl_sgemm" : "OpenBLAS cblas_sgemm"; }

TEST(CpuSgemm, EveryLayoutMatchesTheDoubleReferenceOnBothLibraries) {
  cpu::Context ctx;
  int cases = 0;
  for (bool dnnl : {false, true}) {
    ctx.f32_on_dnnl = dnnl;
    for (auto [M, N, K] : {std::tuple{i64(1), i64(1), i64(1)}, std::tuple{i64(3), i64(17), i64(5)},
                           std::tuple{i64(17), i64(3), i64(65)}, std::tuple{i64(64), i64(128), i64(32)},
                           std::tuple{i64(64), i64(32), i64(128)}, std::tuple{i64(128), i64(32), i64(64)},
                           std::tuple{i64(37), i64(128), i64(24)}})
      for (int flags = 0; flags < 4; ++flags)
        for (auto [alpha, beta] : {std::pair{1.0f, 0.0f}, std::pair{-0.75f, 1.0f}, std::pair{0.125f, 0.5f}}) {
          const bool ta = flags & 1, tb = flags & 2;
          const std::string err =
              check_one(ctx, ta, tb, M, N, K, alpha, beta, std::uint64_t(M * 7 + N + K + flags));
          ASSERT_EQ(err, "") << lib_name(dnnl) << " M=" << M << " N=" << N << " K=" << K << " trans_a=" << ta
                             << " trans_b=" << tb << " alpha=" << alpha << " beta=" << beta;
          ++cases;
        }
  }
  EXPECT_EQ(cases, 2 * 7 * 4 * 3);
}

TEST(CpuSgemm, KZeroGivesBetaTimesC) {
  cpu::Context ctx;
  for (bool dnnl : {false, true}) {
    ctx.f32_on_dnnl = dnnl;
    const float A[1] = {kNaN}, B[1] = {kNaN};
    std::vector<float> C = {kNaN, kNaN, kNaN, kNaN};
    cpu::sgemm(ctx, Trans::no, Trans::no, 2, 2, 0, 1.0f, A, 1, B, 2, 0.0f, C.data(), 2);
    EXPECT_EQ(C, (std::vector<float>{0, 0, 0, 0})) << lib_name(dnnl);
    C = {2, 4, 6, 8};
    cpu::sgemm(ctx, Trans::no, Trans::no, 2, 2, 0, 1.0f, A, 1, B, 2, 0.5f, C.data(), 2);
    EXPECT_EQ(C, (std::vector<float>{1, 2, 3, 4})) << lib_name(dnnl);
  }
}

// The attention kernels' pattern: many independent tile GEMMs in an OpenMP loop, each
// single-threaded on its own memory, concurrently.
TEST(CpuSgemm, ConcurrentTilesInsideAParallelRegion) {
  cpu::Context ctx;
  for (bool dnnl : {false, true}) {
    ctx.f32_on_dnnl = dnnl;
    const int items = 24;
    std::vector<std::string> errs(items);
#pragma omp parallel for schedule(dynamic) num_threads(std::max(2, omp_get_max_threads()))
    for (int i = 0; i < items; ++i)
      errs[std::size_t(i)] = check_one(ctx, i % 2, (i / 2) % 2, 64, i % 3 ? 128 : 32, i % 3 ? 32 : 128,
                                       i % 4 ? 1.0f : 0.25f, i % 5 ? 0.0f : 1.0f, std::uint64_t(100 + i));
    for (int i = 0; i < items; ++i) EXPECT_EQ(errs[std::size_t(i)], "") << lib_name(dnnl) << " item " << i;
  }
}

}  // namespace
}  // namespace loom
