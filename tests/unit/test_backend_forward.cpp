// tests/unit/test_backend_forward.cpp — every forward / elementwise / optimizer op of the CPU backend.
//
// Each op runs on random inputs with odd sizes (1, 3, 17, 65) and is compared with
// the naive double-precision loop in tests/unit/reference.h, written from the
// comments in backend/backend.h. f32 is held to ~1e-5 relative; bf16/f16 runs are
// compared with the same f64 reference at a tolerance fitting 8/11-bit mantissas.
// AdamW is also checked on one step whose numbers were worked out by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <tuple>

#include "backend/registry.h"
#include "tests/unit/reference.h"

namespace loom {
namespace {

using ref::i64;
using ref::Vec;

constexpr i64 kSizes[] = {1, 3, 17, 65};
constexpr double kTolF32 = 1e-5;
// Half-precision outputs: inputs are exact (the reference reads the rounded values),
// so only the final rounding remains, at most u = 2^-8 (bf16) / 2^-11 (f16) relative
// to |value|. Allow 1.5 u: one correct rounding passes, a second rounding would not.
double tol_for(DType t) {
  return t == DType::bf16  ? 1.5 * std::ldexp(1.0, -8)
         : t == DType::f16 ? 1.5 * std::ldexp(1.0, -11)
                           : kTolF32;
}
const char* name(DType t) { return dtype_name(t).data(); }

class Forward : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = make_backend(Device::cpu);
};

// ---- elementwise and reductions ----------------------------------------------------------

TEST_F(Forward, FillScaleAxpy) {
  for (DType dt : {DType::f32, DType::bf16, DType::f16})
    for (i64 n : kSizes) {
      Vec x = ref::randn(n, 1 + n), y = ref::randn(n, 2 + n);
      Buffer bx = ref::make(*be, {n}, dt, x), by = ref::make(*be, {n}, dt, y);
      be->scale(bx, -1.75f);
      Vec want(n);
      for (i64 i = 0; i < n; ++i) want[i] = -1.75 * x[i];
      EXPECT_TRUE(ref::near(ref::read(bx), want, tol_for(dt))) << "scale " << name(dt) << " n=" << n;
      be->axpy(by, 0.5f, bx);
      for (i64 i = 0; i < n; ++i) want[i] = y[i] + 0.5 * ref::read(bx)[i];
      EXPECT_TRUE(ref::near(ref::read(by), want, tol_for(dt))) << "axpy " << name(dt) << " n=" << n;
      be->fill(bx, 0.1f);
      const double v = ref::read(ref::make(*be, {1}, dt, Vec{0.1}))[0];
      EXPECT_TRUE(ref::equal(ref::read(bx), Vec(n, v))) << "fill " << name(dt);
    }
}

TEST_F(Forward, AddAndAliasing) {
  for (DType dt : {DType::f32, DType::bf16, DType::f16})
    for (i64 n : kSizes) {
      Vec a = ref::randn(3 * n, 10 + n), b = ref::randn(3 * n, 20 + n, 4.0);
      Buffer ba = ref::make(*be, {3, n}, dt, a), bb = ref::make(*be, {3, n}, dt, b);
      Buffer out(*be, {3, n}, dt);
      Vec want(3 * n);
      for (i64 i = 0; i < 3 * n; ++i) want[i] = a[i] + b[i];
      be->add(out, ba, bb);
      EXPECT_TRUE(ref::near(ref::read(out), want, tol_for(dt))) << "add " << name(dt) << " n=" << n;
      be->add(ba, ba, bb);  // out aliases a
      EXPECT_TRUE(ref::near(ref::read(ba), want, tol_for(dt))) << "add alias a " << name(dt);
      Vec want2(3 * n);
      const Vec a2 = ref::read(ba);
      for (i64 i = 0; i < 3 * n; ++i) want2[i] = a2[i] + b[i];
      be->add(bb, ba, bb);  // out aliases b
      EXPECT_TRUE(ref::near(ref::read(bb), want2, tol_for(dt))) << "add alias b " << name(dt);
    }
}

TEST_F(Forward, CastMatchesFromFloatBitForBit) {
  const i64 n = 4099;
  Vec x = ref::randn(n, 7, 3.0);
  x[0] = 0.0, x[1] = -0.0, x[2] = 1e6, x[3] = -1e-7, x[4] = 70000.0, x[5] = INFINITY, x[6] = 65520.0;
  for (DType from : {DType::f32, DType::bf16, DType::f16})
    for (DType to : {DType::f32, DType::bf16, DType::f16}) {
      Vec v = x;
      Buffer src = ref::make(*be, {n}, from, v), dst(*be, {n}, to);
      be->cast(dst, src);
      Vec want(n);  // a single round to nearest even of the exact source value
      visit_dtype(to, [&](auto z) {
        using T = decltype(z);
        for (i64 i = 0; i < n; ++i) want[i] = double(to_float(from_float<T>(float(v[i]))));
      });
      const Vec got = ref::read(dst);
      EXPECT_TRUE(ref::equal(got, want)) << "cast " << name(from) << " -> " << name(to);
      EXPECT_TRUE(std::signbit(got[1])) << "cast " << name(from) << " -> " << name(to) << " lost -0";
    }
}

TEST_F(Forward, SumAndSumSquares) {
  for (DType dt : {DType::f32, DType::bf16, DType::f16})
    for (i64 n : {i64(1), i64(3), i64(17), i64(65537), i64(100003)}) {
      Vec x = ref::randn(n, 30 + n, 2.0, 0.5);
      Buffer bx = ref::make(*be, {n}, dt, x);
      double want = 0, abs_sum = 0;
      for (double v : x) want += v, abs_sum += std::fabs(v);
      // double accumulation of exactly-representable inputs: error ~ n * 2^-53 * sum|x|
      EXPECT_NEAR(be->sum(bx), want, 1e-12 * abs_sum) << "sum " << name(dt) << " n=" << n;
      const double want2 = ref::dot(x, x);
      EXPECT_NEAR(be->sum_squares(bx), want2, 1e-9 * want2) << "sum_squares " << name(dt) << " n=" << n;
    }
  Buffer empty(*be, {0}, DType::f32);
  EXPECT_EQ(be->sum(empty), 0.0);
  EXPECT_EQ(be->sum_squares(empty), 0.0);
}

// ---- matmul ----------------------------------------------------------------------------------

TEST_F(Forward, MatmulAllTransposesBiasAccumulateAlpha) {
  int cases = 0;
  for (i64 M : kSizes)
    for (i64 N : kSizes)
      for (i64 K : kSizes)
        for (int flags = 0; flags < 16; ++flags) {
          const bool ta = flags & 1, tb = flags & 2, use_bias = flags & 4, acc = flags & 8;
          const float alpha = acc ? 0.75f : (use_bias ? 1.0f : -2.5f);
          const std::uint64_t seed = 1000 * M + 100 * N + 10 * K + flags;
          Vec a = ref::randn(M * K, seed), b = ref::randn(K * N, seed + 1), bias = ref::randn(N, seed + 2);
          Vec out0 = ref::randn(M * N, seed + 3);
          Buffer ba = ref::make(*be, ta ? Shape{K, M} : Shape{M, K}, DType::f32, a);
          Buffer bb = ref::make(*be, tb ? Shape{N, K} : Shape{K, N}, DType::f32, b);
          Buffer bbias = ref::make(*be, {N}, DType::f32, bias);
          Buffer bout = ref::make(*be, {M, N}, DType::f32, out0);
          be->matmul(
              bout, ba, bb, use_bias ? bbias.tensor() : Tensor{},
              MatmulOpts{
                  .trans_a = Trans(ta), .trans_b = Trans(tb), .accumulate = Accumulate(acc), .alpha = alpha});
          Vec want = ref::matmul(a, b, M, N, K, ta, tb);
          for (i64 m = 0; m < M; ++m)
            for (i64 n = 0; n < N; ++n) {
              double& w = want[m * N + n];
              w = alpha * w + (use_bias ? bias[n] : 0.0) + (acc ? out0[m * N + n] : 0.0);
            }
          ASSERT_TRUE(ref::near(ref::read(bout), want, kTolF32))
              << "matmul M=" << M << " N=" << N << " K=" << K << " trans_a=" << ta << " trans_b=" << tb
              << " bias=" << use_bias << " accumulate=" << acc << " alpha=" << alpha;
          ++cases;
        }
  EXPECT_EQ(cases, 4 * 4 * 4 * 16);
}

TEST_F(Forward, MatmulTakesRowsFromLeadingDims) {
  // a linear layer on (B,T,C): out (B,T,F) = x (B,T,C) W^T (F,C) + bias
  const i64 B = 3, T = 5, C = 17, F = 65;
  Vec x = ref::randn(B * T * C, 1), w = ref::randn(F * C, 2), bias = ref::randn(F, 3);
  Buffer bx = ref::make(*be, {B, T, C}, DType::f32, x), bw = ref::make(*be, {F, C}, DType::f32, w);
  Buffer bbias = ref::make(*be, {F}, DType::f32, bias), out(*be, {B, T, F}, DType::f32);
  be->matmul(out, bx, bw, bbias, MatmulOpts{.trans_b = Trans::yes});
  Vec want = ref::matmul(x, w, B * T, F, C, false, true);
  for (i64 r = 0; r < B * T; ++r)
    for (i64 f = 0; f < F; ++f) want[r * F + f] += bias[f];
  EXPECT_TRUE(ref::near(ref::read(out), want, kTolF32));
}

TEST_F(Forward, MatmulHalfPrecision) {
  for (DType dt : {DType::bf16, DType::f16})
    for (auto [M, N, K, ta, tb] : {std::tuple{i64(17), i64(65), i64(3), false, true},
                                   std::tuple{i64(65), i64(17), i64(65), true, false},
                                   std::tuple{i64(3), i64(1), i64(17), true, true}}) {
      Vec a = ref::randn(M * K, M + K), b = ref::randn(K * N, N + K), bias = ref::randn(N, 9);
      Buffer ba = ref::make(*be, ta ? Shape{K, M} : Shape{M, K}, dt, a);
      Buffer bb = ref::make(*be, tb ? Shape{N, K} : Shape{K, N}, dt, b);
      Buffer bbias = ref::make(*be, {N}, dt, bias), out(*be, {M, N}, dt);
      be->matmul(out, ba, bb, bbias, MatmulOpts{.trans_a = Trans(ta), .trans_b = Trans(tb)});
      Vec want = ref::matmul(a, b, M, N, K, ta, tb);
      for (i64 i = 0; i < M * N; ++i) want[i] += bias[i % N];
      EXPECT_TRUE(ref::near(ref::read(out), want, tol_for(dt)))
          << name(dt) << " M=" << M << " N=" << N << " K=" << K;
    }
}

// Half-precision inputs in every layout the model uses: bf16 x bf16 runs on oneDNN
// (AMX / AVX-512 BF16), f16 and mixed dtypes are widened to f32 for sgemm. Products
// of exact half inputs are exact in f32 and accumulate in f32, so a half output is
// off by its final rounding (tol_for) and an f32 output by f32 summation (kTolF32):
// the bias and an accumulated out are added before that one rounding. Sizes not
// multiples of 16, K = 1, and one shape big enough for oneDNN's blocked kernels.
TEST_F(Forward, MatmulHalfInputsAllFlagsAndOutputDtypes) {
  int cases = 0;
  for (DType dt : {DType::bf16, DType::f16})
    for (DType out_dt : {dt, DType::f32})
      for (DType bias_dt : {dt, DType::f32})
        for (auto [M, N, K] : {std::tuple{i64(1), i64(1), i64(1)}, std::tuple{i64(3), i64(17), i64(1)},
                               std::tuple{i64(17), i64(3), i64(65)}, std::tuple{i64(65), i64(33), i64(7)},
                               std::tuple{i64(67), i64(129), i64(259)}})
          for (int flags = 0; flags < 32; ++flags) {
            const bool ta = flags & 1, tb = flags & 2, use_bias = flags & 4, acc = flags & 8;
            const float alpha = flags & 16 ? -0.75f : 1.0f;
            if (!use_bias && bias_dt != dt) continue;  // the same case as bias_dt == dt
            const std::uint64_t seed = 7 * M + 11 * N + 13 * K + flags;
            Vec a = ref::randn(M * K, seed), b = ref::randn(K * N, seed + 1), bias = ref::randn(N, seed + 2);
            Vec out0 = ref::randn(M * N, seed + 3);
            Buffer ba = ref::make(*be, ta ? Shape{K, M} : Shape{M, K}, dt, a);
            Buffer bb = ref::make(*be, tb ? Shape{N, K} : Shape{K, N}, dt, b);
            Buffer bbias = ref::make(*be, {N}, bias_dt, bias);
            Buffer bout = ref::make(*be, {M, N}, out_dt, out0);
            be->matmul(bout, ba, bb, use_bias ? bbias.tensor() : Tensor{},
                       MatmulOpts{.trans_a = Trans(ta), .trans_b = Trans(tb), .accumulate = Accumulate(acc),
                                  .alpha = alpha});
            Vec want = ref::matmul(a, b, M, N, K, ta, tb);
            for (i64 i = 0; i < M * N; ++i)
              want[i] = alpha * want[i] + (use_bias ? bias[i % N] : 0.0) + (acc ? out0[i] : 0.0);
            ASSERT_TRUE(ref::near(ref::read(bout), want, tol_for(out_dt)))
                << name(dt) << " -> " << name(out_dt) << " bias " << name(bias_dt) << " M=" << M << " N=" << N
                << " K=" << K << " trans_a=" << ta << " trans_b=" << tb << " bias=" << use_bias
                << " accumulate=" << acc << " alpha=" << alpha;
            ++cases;
          }
  EXPECT_EQ(cases, 2 * 2 * 5 * (32 + 16));
}

// Mixed operand dtypes (f32 x bf16, f16 x bf16) take the widened path; the same rules apply.
TEST_F(Forward, MatmulMixedOperandDtypes) {
  const i64 M = 19, N = 23, K = 37;
  for (auto [da, db, dout] : {std::tuple{DType::f32, DType::bf16, DType::bf16},
                              std::tuple{DType::bf16, DType::f32, DType::f32},
                              std::tuple{DType::f16, DType::bf16, DType::f16}}) {
    Vec a = ref::randn(M * K, 1), b = ref::randn(N * K, 2), out0 = ref::randn(M * N, 3);
    Buffer ba = ref::make(*be, {K, M}, da, a), bb = ref::make(*be, {N, K}, db, b);
    Buffer bout = ref::make(*be, {M, N}, dout, out0);
    be->matmul(bout, ba, bb, {}, {.trans_a = Trans::yes, .trans_b = Trans::yes, .accumulate = Accumulate::yes});
    Vec want = ref::matmul(a, b, M, N, K, true, true);
    for (i64 i = 0; i < M * N; ++i) want[i] += out0[i];
    EXPECT_TRUE(ref::near(ref::read(bout), want, tol_for(dout)))
        << name(da) << " x " << name(db) << " -> " << name(dout);
  }
}

TEST_F(Forward, BiasBackwardAccumulatesColumnSums) {
  for (i64 rows : kSizes)
    for (i64 N : kSizes) {
      Vec dout = ref::randn(rows * N, rows * 7 + N), db0 = ref::randn(N, 3);
      Buffer bd = ref::make(*be, {rows, N}, DType::f32, dout), bdb = ref::make(*be, {N}, DType::f32, db0);
      be->bias_backward(bdb, bd);
      Vec want = db0;
      for (i64 r = 0; r < rows; ++r)
        for (i64 n = 0; n < N; ++n) want[n] += dout[r * N + n];
      EXPECT_TRUE(ref::near(ref::read(bdb), want, kTolF32)) << "rows=" << rows << " N=" << N;
    }
}

// ---- layernorm, gelu, softmax -------------------------------------------------------------

TEST_F(Forward, LayerNorm) {
  for (DType dt : {DType::f32, DType::bf16, DType::f16})
    for (i64 N : {i64(1), i64(3), i64(17)})
      for (i64 C : kSizes) {
        Vec x = ref::randn(N * C, N * 100 + C, 2.0, 0.7), w = ref::randn(C, C, 1.0, 1.0),
            b = ref::randn(C, C + 1);
        Buffer bx = ref::make(*be, {N, C}, dt, x), bw = ref::make(*be, {C}, dt, w),
               bb = ref::make(*be, {C}, dt, b);
        Buffer out(*be, {N, C}, dt), mean(*be, {N}, DType::f32), rstd(*be, {N}, DType::f32);
        const float eps = 1e-5f;
        be->layernorm_forward(out, mean, rstd, bx, bw, bb, eps);
        Vec wmean, wrstd;
        const Vec want = ref::layernorm(x, w, b, N, C, eps, &wmean, &wrstd);
        const std::string where =
            std::string(name(dt)) + " N=" + std::to_string(N) + " C=" + std::to_string(C);
        EXPECT_TRUE(ref::near(ref::read(out), want, tol_for(dt))) << "out " << where;
        EXPECT_TRUE(ref::near(ref::read(mean), wmean, 1e-5)) << "mean " << where;
        EXPECT_TRUE(ref::near(ref::read(rstd), wrstd, 1e-4)) << "rstd " << where;
      }
}

TEST_F(Forward, LayerNormOn3dInput) {
  const i64 B = 2, T = 3, C = 17;
  Vec x = ref::randn(B * T * C, 4), w = ref::randn(C, 5), b = ref::randn(C, 6);
  Buffer bx = ref::make(*be, {B, T, C}, DType::f32, x), bw = ref::make(*be, {C}, DType::f32, w);
  Buffer bb = ref::make(*be, {C}, DType::f32, b), out(*be, {B, T, C}, DType::f32);
  Buffer mean(*be, {B, T}, DType::f32), rstd(*be, {B, T}, DType::f32);
  be->layernorm_forward(out, mean, rstd, bx, bw, bb, 1e-5f);
  EXPECT_TRUE(ref::near(ref::read(out), ref::layernorm(x, w, b, B * T, C, 1e-5), kTolF32));
}

TEST_F(Forward, Gelu) {
  for (DType dt : {DType::f32, DType::bf16, DType::f16})
    for (i64 n : kSizes) {
      Vec x = ref::randn(n * 7, n, 3.0);
      x[0] = 0;
      Buffer bx = ref::make(*be, {7, n}, dt, x), out(*be, {7, n}, dt);
      be->gelu_forward(out, bx);
      EXPECT_TRUE(ref::near(ref::read(out), ref::gelu(x), tol_for(dt))) << name(dt) << " n=" << n;
    }
  // the tanh form, not the erf form: at x = 1 they differ by 1.6e-4
  Vec one{1.0};
  Buffer bx = ref::make(*be, {1}, DType::f32, one), out(*be, {1}, DType::f32);
  be->gelu_forward(out, bx);
  EXPECT_NEAR(ref::read(out)[0], 0.8411919906082768, 2e-6);
}

TEST_F(Forward, Softmax) {
  for (i64 N : {i64(1), i64(3), i64(17)})
    for (i64 C : kSizes) {
      Vec x = ref::randn(N * C, N + 13 * C, 3.0);
      for (i64 c = 0; c < C; ++c) x[c] += 100.0;  // row 0 would overflow exp() without the max
      Buffer bx = ref::make(*be, {N, C}, DType::f32, x), out(*be, {N, C}, DType::f32);
      be->softmax_forward(out, bx);
      EXPECT_TRUE(ref::near(ref::read(out), ref::softmax(x, N, C), kTolF32)) << "N=" << N << " C=" << C;
    }
}

// ---- attention ------------------------------------------------------------------------------

TEST_F(Forward, CausalAttention) {
  for (auto [B, T, H, D] :
       {std::tuple{i64(1), i64(1), i64(1), i64(1)}, std::tuple{i64(2), i64(3), i64(1), i64(17)},
        std::tuple{i64(1), i64(17), i64(3), i64(3)}, std::tuple{i64(2), i64(5), i64(4), i64(2)},
        std::tuple{i64(1), i64(65), i64(2), i64(3)}}) {
    const i64 C = H * D;
    Vec qkv = ref::randn(B * T * 3 * C, B * 1000 + T * 10 + H, 1.5);
    Buffer bqkv = ref::make(*be, {B, T, 3 * C}, DType::f32, qkv), out(*be, {B, T, C}, DType::f32);
    Buffer probs = ref::filled(*be, {B, H, T, T}, DType::f32, NAN);  // masked entries must be written
    be->attention_forward(out, probs, bqkv, int(H));
    Vec wprobs;
    const Vec want = ref::attention(qkv, B, T, H, D, &wprobs);
    EXPECT_TRUE(ref::near(ref::read(out), want, kTolF32))
        << "out B=" << B << " T=" << T << " H=" << H << " D=" << D;
    EXPECT_TRUE(ref::near(ref::read(probs), wprobs, kTolF32))
        << "probs B=" << B << " T=" << T << " H=" << H << " D=" << D;
  }
}

// bf16/f16 qkv: the kernel widens each (b, h) slice to f32, so only the output's
// rounding separates it from the f64 reference on the same (rounded) inputs; probs are f32.
TEST_F(Forward, CausalAttentionHalfPrecision) {
  for (DType dt : {DType::bf16, DType::f16})
    for (auto [B, T, H, D] : {std::tuple{i64(1), i64(1), i64(1), i64(1)}, std::tuple{i64(2), i64(17), i64(3), i64(5)},
                              std::tuple{i64(1), i64(65), i64(2), i64(16)}}) {
      const i64 C = H * D;
      Vec qkv = ref::randn(B * T * 3 * C, B * 1000 + T * 10 + H, 1.5);
      Buffer bqkv = ref::make(*be, {B, T, 3 * C}, dt, qkv), out = ref::filled(*be, {B, T, C}, dt, NAN);
      Buffer probs = ref::filled(*be, {B, H, T, T}, DType::f32, NAN);
      be->attention_forward(out, probs, bqkv, int(H));
      Vec wprobs;
      const Vec want = ref::attention(qkv, B, T, H, D, &wprobs);
      EXPECT_TRUE(ref::near(ref::read(out), want, tol_for(dt)))
          << name(dt) << " out B=" << B << " T=" << T << " H=" << H << " D=" << D;
      EXPECT_TRUE(ref::near(ref::read(probs), wprobs, kTolF32))
          << name(dt) << " probs B=" << B << " T=" << T << " H=" << H << " D=" << D;
    }
}

// ---- embedding --------------------------------------------------------------------------------

TEST_F(Forward, EmbeddingShardAndPositions) {
  struct Case {
    i64 B, T, C, V, vocab_start, global_vocab;
    bool wpe;
  };
  for (Case k :
       {Case{1, 1, 1, 3, 0, 3, true}, Case{2, 17, 3, 17, 0, 17, true}, Case{3, 5, 65, 17, 17, 65, true},
        Case{2, 17, 3, 17, 34, 65, false}, Case{1, 65, 17, 3, 2, 9, true}}) {
    for (DType dt : {DType::f32, DType::bf16, DType::f16}) {
      auto tok = ref::rand_tokens(k.B * k.T, 0, std::int32_t(k.global_vocab), k.B + k.T + k.C);
      tok[0] = std::int32_t(k.vocab_start);  // first and last rows of the shard always appear
      tok[k.B * k.T - 1] = std::int32_t(k.vocab_start + k.V - 1);
      Vec wte = ref::randn(k.V * k.C, 1), wpe = k.wpe ? ref::randn(k.T * k.C, 2) : Vec{};
      Buffer bwte = ref::make(*be, {k.V, k.C}, dt, wte);
      Buffer bwpe = k.wpe ? ref::make(*be, {k.T, k.C}, dt, wpe) : Buffer{};
      Buffer out = ref::filled(*be, {k.B, k.T, k.C}, dt, NAN);
      be->embedding_forward(out, ref::tokens(tok, {k.B, k.T}), bwte, k.wpe ? bwpe.tensor() : Tensor{},
                            k.vocab_start);
      const Vec want = ref::embedding(tok, wte, k.V, wpe, k.B, k.T, k.C, k.vocab_start);
      EXPECT_TRUE(ref::near(ref::read(out), want, tol_for(dt)))
          << name(dt) << " B=" << k.B << " T=" << k.T << " C=" << k.C << " V=" << k.V
          << " vocab_start=" << k.vocab_start << " wpe=" << k.wpe;
    }
  }
}

TEST_F(Forward, EmbeddingWithLongerPositionTable) {
  // generation feeds T < seq_len positions; wpe keeps all seq_len rows and row t is used
  const i64 B = 2, T = 3, C = 5, V = 7, P = 9;
  auto tok = ref::rand_tokens(B * T, 0, V, 3);
  Vec wte = ref::randn(V * C, 1), wpe = ref::randn(P * C, 2);
  Buffer bwte = ref::make(*be, {V, C}, DType::f32, wte), bwpe = ref::make(*be, {P, C}, DType::f32, wpe);
  Buffer out(*be, {B, T, C}, DType::f32);
  be->embedding_forward(out, ref::tokens(tok, {B, T}), bwte, bwpe, 0);
  EXPECT_TRUE(ref::near(ref::read(out), ref::embedding(tok, wte, V, wpe, B, T, C, 0), kTolF32));
}

// ---- cross-entropy: tests/unit/test_backend_vocab_parallel.cpp (one shard is tp = 1) ----------

// ---- AdamW ---------------------------------------------------------------------------------------

TEST_F(Forward, AdamWMatchesTorchStepInDouble) {
  for (i64 n : kSizes) {
    Vec p = ref::randn(n, n), g = ref::randn(n, n + 1, 0.1), m = ref::randn(n, n + 2, 0.01);
    Vec v = ref::randn(n, n + 3, 1e-3);
    for (auto& x : v) x = x * x;
    Buffer bp = ref::make(*be, {n}, DType::f32, p), bg = ref::make(*be, {n}, DType::f32, g);
    Buffer bm = ref::make(*be, {n}, DType::f32, m), bv = ref::make(*be, {n}, DType::f32, v);
    for (std::int64_t step = 1; step <= 3; ++step) {
      const AdamWArgs args{.lr = 3e-3f,
                           .beta1 = 0.9f,
                           .beta2 = 0.95f,
                           .eps = 1e-8f,
                           .weight_decay = 0.1f,
                           .step = step + 4,
                           .grad_scale = 0.5f};
      be->adamw(bp, bg, bm, bv, args);
      ref::adamw(p, g, m, v, args);
      EXPECT_TRUE(ref::near(ref::read(bp), p, 1e-6)) << "param n=" << n << " step=" << step;
      EXPECT_TRUE(ref::near(ref::read(bm), m, 1e-5)) << "m n=" << n << " step=" << step;
      EXPECT_TRUE(ref::near(ref::read(bv), v, 1e-5)) << "v n=" << n << " step=" << step;
      EXPECT_TRUE(ref::equal(ref::read(bg), g)) << "grad must not change";
    }
  }
}

TEST_F(Forward, AdamWHandComputedSteps) {
  // Step 1, lr 0.1, wd 0.1, betas (0.9, 0.95), p=1, g=0.5, m=v=0:
  //   p = 1*(1 - 0.01) = 0.99; m = 0.05; v = 0.0125; m_hat = 0.5; v_hat = 0.25;
  //   p = 0.99 - 0.1 * 0.5 / (0.5 + 1e-8) = 0.890000002.
  {
    Buffer p = ref::make(*be, {1}, DType::f32, Vec{1.0}), g = ref::make(*be, {1}, DType::f32, Vec{0.5});
    Buffer m = ref::filled(*be, {1}, DType::f32, 0), v = ref::filled(*be, {1}, DType::f32, 0);
    be->adamw(p, g, m, v,
              {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f, .step = 1});
    EXPECT_NEAR(ref::read(p)[0], 0.890000002, 2e-7);
    EXPECT_NEAR(ref::read(m)[0], 0.05, 1e-7);
    EXPECT_NEAR(ref::read(v)[0], 0.0125, 1e-8);
  }
  // Step 2, lr 0.01, wd 0.05, betas (0.9, 0.99), grad_scale 0.5, p=-0.3, g=0.2, m=0.1, v=0.01:
  //   g = 0.1; m = 0.09 + 0.01 = 0.1; v = 0.0099 + 0.0001 = 0.01; p = -0.3 * 0.9995 = -0.29985;
  //   m_hat = 0.1 / 0.19; v_hat = 0.01 / 0.0199; p -= 0.01 * m_hat / sqrt(v_hat) -> -0.3072746.
  {
    Buffer p = ref::make(*be, {1}, DType::f32, Vec{-0.3}), g = ref::make(*be, {1}, DType::f32, Vec{0.2});
    Buffer m = ref::make(*be, {1}, DType::f32, Vec{0.1}), v = ref::make(*be, {1}, DType::f32, Vec{0.01});
    be->adamw(p, g, m, v,
              {.lr = 0.01f,
               .beta1 = 0.9f,
               .beta2 = 0.99f,
               .eps = 1e-8f,
               .weight_decay = 0.05f,
               .step = 2,
               .grad_scale = 0.5f});
    EXPECT_NEAR(ref::read(p)[0], -0.30727459777929783, 3e-7);
    EXPECT_NEAR(ref::read(m)[0], 0.1, 1e-7);
    EXPECT_NEAR(ref::read(v)[0], 0.01, 1e-8);
  }
}

}  // namespace
}  // namespace loom
