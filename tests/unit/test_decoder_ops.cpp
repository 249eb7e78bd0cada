// tests/unit/test_decoder_ops.cpp — the modern decoder's backend ops (RMSNorm, ReLU, SwiGLU,
// RoPE, grouped-query / ALiBi attention) and fixed position tables against closed forms,
// naive double references and central finite differences (as test_backend_backward.cpp).
//
// Closed forms: RoPE on a 4-channel head at positions 0..2 against the rotation written
// out by hand; ALiBi's slopes against Press et al.'s formula (8, 6, 12 heads); the
// sinusoidal table against sin/cos. Exact: grouped attention with kv_heads == heads and
// no slopes gives attention_forward / _backward's bits.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <tuple>

#include "backend/registry.h"
#include "core/param_spec.h"
#include "layers/positions.h"
#include "tests/unit/reference.h"

namespace loom {
namespace {

using ref::i64;
using ref::Vec;

constexpr double kTol = 1e-3;
constexpr double kAtol = 1e-6;

::testing::AssertionResult matches_fd(const Vec& got, Vec& x, const std::function<double()>& L) {
  const auto idx = ref::sample(i64(x.size()));
  return ref::near(ref::gather(got, idx), ref::fd_grad(x, L, idx), kTol, kAtol);
}

Vec minus(const Vec& a, const Vec& b) {
  Vec d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return d;
}

// ---- naive references, in double, written from backend.h's comments ----------------------

Vec rmsnorm(const Vec& x, const Vec& w, i64 N, i64 C, double eps) {
  Vec out(x.size());
  for (i64 i = 0; i < N; ++i) {
    double ss = 0;
    for (i64 c = 0; c < C; ++c) ss += x[i * C + c] * x[i * C + c];
    const double r = 1 / std::sqrt(ss / double(C) + eps);
    for (i64 c = 0; c < C; ++c) out[i * C + c] = x[i * C + c] * r * w[c];
  }
  return out;
}

Vec swiglu(const Vec& h, i64 N, i64 F) {
  Vec out(N * F);
  for (i64 i = 0; i < N; ++i)
    for (i64 j = 0; j < F; ++j) {
      const double g = h[i * 2 * F + j], u = h[i * 2 * F + F + j];
      out[i * F + j] = g / (1 + std::exp(-g)) * u;
    }
  return out;
}

// qkv (B,T,(H + 2 Hkv) D); q and k rotated by t * base^(-2i/D) on pairs (i, i + D/2).
Vec rope(const Vec& qkv, i64 B, i64 T, i64 H, i64 Hkv, i64 D, double base) {
  Vec out = qkv;
  const i64 W = (H + 2 * Hkv) * D;
  for (i64 b = 0; b < B; ++b)
    for (i64 t = 0; t < T; ++t)
      for (i64 h = 0; h < H + Hkv; ++h)
        for (i64 i = 0; i < D / 2; ++i) {
          const double a = double(t) * std::pow(base, -2.0 * double(i) / double(D));
          const i64 p = (b * T + t) * W + h * D + i;
          out[p] = qkv[p] * std::cos(a) - qkv[p + D / 2] * std::sin(a);
          out[p + D / 2] = qkv[p + D / 2] * std::cos(a) + qkv[p] * std::sin(a);
        }
  return out;
}

// Causal attention, query head h on kv head h / (H / Hkv), score bias -slope_h (t - s).
Vec grouped_attention(const Vec& qkv, i64 B, i64 T, i64 H, i64 Hkv, i64 D, const std::vector<float>& slopes) {
  const i64 W = (H + 2 * Hkv) * D, G = H / Hkv;
  Vec out(B * T * H * D, 0.0);
  for (i64 b = 0; b < B; ++b)
    for (i64 h = 0; h < H; ++h)
      for (i64 t = 0; t < T; ++t) {
        const i64 kv = h / G;
        auto q = [&](i64 d) { return qkv[(b * T + t) * W + h * D + d]; };
        auto k = [&](i64 s, i64 d) { return qkv[(b * T + s) * W + (H + kv) * D + d]; };
        auto v = [&](i64 s, i64 d) { return qkv[(b * T + s) * W + (H + Hkv + kv) * D + d]; };
        Vec row(t + 1);
        double mx = -INFINITY;
        for (i64 s = 0; s <= t; ++s) {
          double dot = 0;
          for (i64 d = 0; d < D; ++d) dot += q(d) * k(s, d);
          row[s] = dot / std::sqrt(double(D)) - (slopes.empty() ? 0.0 : double(slopes[h]) * double(t - s));
          mx = std::max(mx, row[s]);
        }
        double sum = 0;
        for (auto& r : row) sum += r = std::exp(r - mx);
        for (i64 d = 0; d < D; ++d) {
          double acc = 0;
          for (i64 s = 0; s <= t; ++s) acc += row[s] / sum * v(s, d);
          out[(b * T + t) * H * D + h * D + d] = acc;
        }
      }
  return out;
}

class DecoderOps : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = make_backend(Device::cpu);
};

// ---- RMSNorm ------------------------------------------------------------------------------

TEST_F(DecoderOps, RmsNormMatchesTheFormulaAndFiniteDifferences) {
  for (auto [N, C] : {std::tuple{i64(1), i64(1)}, std::tuple{i64(3), i64(17)}, std::tuple{i64(17), i64(65)}})
    for (Accumulate acc : {Accumulate::no, Accumulate::yes}) {
      const std::string where = "N=" + std::to_string(N) + " C=" + std::to_string(C) + (acc == Accumulate::yes ? " +=" : " =");
      const float eps = 1e-5f;
      Vec x = ref::randn(N * C, N + C, 1.5, 0.3), w = ref::randn(C, C, 0.5, 1.0);
      Vec R = ref::randn(N * C, 99), dx0 = ref::randn(N * C, 98), dw0 = ref::randn(C, 97);
      Buffer bx = ref::make(*be, {N, C}, DType::f32, x), bw = ref::make(*be, {C}, DType::f32, w);
      Buffer out(*be, {N, C}, DType::f32), rstd(*be, {N}, DType::f32);
      be->rmsnorm_forward(out, rstd, bx, bw, eps);
      EXPECT_TRUE(ref::near(ref::read(out), rmsnorm(x, w, N, C, eps), 1e-5)) << "forward " << where;
      Buffer dout = ref::make(*be, {N, C}, DType::f32, R);
      Buffer dx = acc == Accumulate::yes ? ref::make(*be, {N, C}, DType::f32, dx0) : ref::filled(*be, {N, C}, DType::f32, NAN);
      Buffer dw = ref::make(*be, {C}, DType::f32, dw0);
      be->rmsnorm_backward(dx, dw, dout, bx, bw, rstd, acc);
      auto L = [&] { return ref::dot(rmsnorm(x, w, N, C, eps), R); };
      EXPECT_TRUE(matches_fd(acc == Accumulate::yes ? minus(ref::read(dx), dx0) : ref::read(dx), x, L)) << "dx " << where;
      EXPECT_TRUE(matches_fd(minus(ref::read(dw), dw0), w, L)) << "dweight (+=) " << where;
    }
}

// ---- ReLU, SwiGLU -------------------------------------------------------------------------

TEST_F(DecoderOps, ReluForwardAndBackward) {
  Vec x = ref::randn(3 * 17, 4, 2.0), R = ref::randn(3 * 17, 5);
  for (auto& v : x)
    if (std::abs(v) < 1e-2) v = 0.5;  // keep finite differences off the kink
  Buffer bx = ref::make(*be, {3, 17}, DType::f32, x), out(*be, {3, 17}, DType::f32);
  be->relu_forward(out, bx);
  Vec want(x.size());
  for (size_t i = 0; i < x.size(); ++i) want[i] = std::max(x[i], 0.0);
  EXPECT_TRUE(ref::equal(ref::read(out), want));
  Buffer dout = ref::make(*be, {3, 17}, DType::f32, R);
  be->relu_backward(dout, dout, bx);  // in place, as the MLP calls it
  auto L = [&] {
    Vec y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = std::max(x[i], 0.0);
    return ref::dot(y, R);
  };
  EXPECT_TRUE(matches_fd(ref::read(dout), x, L));
}

TEST_F(DecoderOps, SwigluMatchesTheFormulaAndFiniteDifferences) {
  for (auto [N, F] : {std::tuple{i64(1), i64(1)}, std::tuple{i64(5), i64(17)}, std::tuple{i64(33), i64(40)}}) {
    const std::string where = "N=" + std::to_string(N) + " F=" + std::to_string(F);
    Vec h = ref::randn(N * 2 * F, N + F, 2.0), R = ref::randn(N * F, 7);
    Buffer bh = ref::make(*be, {N, 2 * F}, DType::f32, h), out(*be, {N, F}, DType::f32);
    be->swiglu_forward(out, bh);
    EXPECT_TRUE(ref::near(ref::read(out), swiglu(h, N, F), 1e-5)) << "forward " << where;
    Buffer dout = ref::make(*be, {N, F}, DType::f32, R), dh = ref::filled(*be, {N, 2 * F}, DType::f32, NAN);
    be->swiglu_backward(dh, dout, bh);
    auto L = [&] { return ref::dot(swiglu(h, N, F), R); };
    EXPECT_TRUE(matches_fd(ref::read(dh), h, L)) << "dh " << where;
  }
}

// ---- RoPE ---------------------------------------------------------------------------------

// One q, one k, one v head of D = 4 at positions 0, 1, 2, base 100: the frequencies are
// 1 and 100^(-1/2) = 0.1, pairs (0, 2) and (1, 3). Written out by hand.
TEST_F(DecoderOps, RopeRotatesPairsByHand) {
  const i64 T = 3, D = 4, W = 3 * D;
  Vec qkv(T * W);
  for (i64 i = 0; i < T * W; ++i) qkv[i] = double(i % 7) - 2.5;
  Buffer b = ref::make(*be, {1, T, W}, DType::f32, qkv);
  be->rope_forward(b, 1, 1, 100.0f);
  const Vec got = ref::read(b);
  Vec want = qkv;
  for (i64 t = 0; t < T; ++t)
    for (i64 head = 0; head < 2; ++head) {  // q and k; v (head 2) stays
      const i64 o = t * W + head * D;
      const double a0 = double(t) * 1.0, a1 = double(t) * 0.1;
      want[o + 0] = qkv[o + 0] * std::cos(a0) - qkv[o + 2] * std::sin(a0);
      want[o + 2] = qkv[o + 2] * std::cos(a0) + qkv[o + 0] * std::sin(a0);
      want[o + 1] = qkv[o + 1] * std::cos(a1) - qkv[o + 3] * std::sin(a1);
      want[o + 3] = qkv[o + 3] * std::cos(a1) + qkv[o + 1] * std::sin(a1);
    }
  EXPECT_TRUE(ref::near(got, want, 1e-6, 1e-6));
  // Position 0 is not rotated at all, and v never is.
  for (i64 c = 0; c < W; ++c) EXPECT_EQ(got[c], qkv[c]) << c;
  for (i64 t = 0; t < T; ++t)
    for (i64 d = 0; d < D; ++d) EXPECT_EQ(got[t * W + 2 * D + d], qkv[t * W + 2 * D + d]);
}

TEST_F(DecoderOps, RopeBackwardIsTheInverseRotation) {
  const i64 B = 2, T = 9, H = 4, Hkv = 2, D = 6, W = (H + 2 * Hkv) * D;
  Vec x = ref::randn(B * T * W, 3), R = ref::randn(B * T * W, 4);
  Buffer bx = ref::make(*be, {B, T, W}, DType::f32, x);
  be->rope_forward(bx, int(H), int(Hkv), 10000.0f);
  EXPECT_TRUE(ref::near(ref::read(bx), rope(x, B, T, H, Hkv, D, 10000.0), 1e-5, 1e-6)) << "forward";
  be->rope_backward(bx, int(H), int(Hkv), 10000.0f);  // the inverse brings x back
  EXPECT_TRUE(ref::near(ref::read(bx), x, 1e-5, 1e-6)) << "backward(forward(x)) == x";
  Buffer g = ref::make(*be, {B, T, W}, DType::f32, R);
  be->rope_backward(g, int(H), int(Hkv), 10000.0f);
  auto L = [&] { return ref::dot(rope(x, B, T, H, Hkv, D, 10000.0), R); };
  EXPECT_TRUE(matches_fd(ref::read(g), x, L)) << "gradient";
}

// ---- ALiBi slopes and the sinusoidal table --------------------------------------------------

TEST(Positions, AlibiSlopesFollowPressEtAl) {
  // A power of two: 2^(-8 (h + 1) / n).
  const std::vector<float> s8 = alibi_slopes(8);
  ASSERT_EQ(s8.size(), 8u);
  for (int h = 0; h < 8; ++h) EXPECT_FLOAT_EQ(s8[h], std::exp2(-double(h + 1))) << h;
  // 6 heads: the 4 slopes of 4 heads (2^-2, 2^-4, 2^-6, 2^-8), then slopes 0 and 2 of 8 heads (2^-1, 2^-3).
  const std::vector<float> want6 = {0.25f, 0.0625f, 0.015625f, 0.00390625f, 0.5f, 0.125f};
  EXPECT_EQ(alibi_slopes(6), want6);
  // 12 heads: 8 heads' 2^-1 .. 2^-8, then 16 heads' slopes 0, 2, 4, 6: 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5.
  const std::vector<float> s12 = alibi_slopes(12);
  ASSERT_EQ(s12.size(), 12u);
  for (int h = 0; h < 8; ++h) EXPECT_FLOAT_EQ(s12[h], std::exp2(-double(h + 1)));
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(s12[8 + i], std::exp2(-0.5 - double(i))) << i;
  EXPECT_EQ(alibi_slopes(1), std::vector<float>{1.0f / 256});
}

TEST(Positions, SinusoidalTableIsVaswanis) {
  const i64 T = 5, C = 8;
  const std::vector<float> pe = sinusoidal_table(T, C);
  for (i64 t = 0; t < T; ++t)
    for (i64 i = 0; i < C / 2; ++i) {
      const double a = double(t) / std::pow(10000.0, 2.0 * double(i) / double(C));
      EXPECT_FLOAT_EQ(pe[t * C + 2 * i], float(std::sin(a)));
      EXPECT_FLOAT_EQ(pe[t * C + 2 * i + 1], float(std::cos(a)));
    }
}

// ---- grouped-query and ALiBi attention -------------------------------------------------------

TEST_F(DecoderOps, GroupedAttentionMatchesReferenceAndFiniteDifferences) {
  for (auto [B, T, H, Hkv, D, alibi] :
       {std::tuple{i64(1), i64(1), i64(1), i64(1), i64(1), true}, std::tuple{i64(2), i64(5), i64(4), i64(2), i64(3), false},
        std::tuple{i64(1), i64(7), i64(6), i64(3), i64(2), true}, std::tuple{i64(2), i64(9), i64(4), i64(1), i64(4), true},
        std::tuple{i64(1), i64(17), i64(3), i64(3), i64(5), true}}) {
    const std::string where = "B=" + std::to_string(B) + " T=" + std::to_string(T) + " H=" + std::to_string(H) +
                              " Hkv=" + std::to_string(Hkv) + " D=" + std::to_string(D) + (alibi ? " alibi" : "");
    const i64 W = (H + 2 * Hkv) * D;
    const std::vector<float> slopes = alibi ? alibi_slopes(H) : std::vector<float>{};
    Vec sl(slopes.begin(), slopes.end());
    Vec qkv = ref::randn(B * T * W, B + T + H + D, 1.2), R = ref::randn(B * T * H * D, 17);
    Buffer bq = ref::make(*be, {B, T, W}, DType::f32, qkv), out(*be, {B, T, H * D}, DType::f32);
    Buffer probs(*be, {B, H, T, T}, DType::f32);
    Buffer bs = alibi ? ref::make(*be, {H}, DType::f32, sl) : Buffer{};
    const AttentionHeads a{int(H), int(Hkv), alibi ? bs.tensor() : Tensor{}};
    be->grouped_attention_forward(out, probs, bq, a);
    EXPECT_TRUE(ref::near(ref::read(out), grouped_attention(qkv, B, T, H, Hkv, D, slopes), 1e-5, 1e-6))
        << "forward " << where;
    Buffer dout = ref::make(*be, {B, T, H * D}, DType::f32, R);
    Buffer dqkv = ref::filled(*be, {B, T, W}, DType::f32, NAN), scratch = ref::filled(*be, {B, H, T, T}, DType::f32, NAN);
    be->grouped_attention_backward(dqkv, scratch, dout, bq, probs, a);
    auto L = [&] { return ref::dot(grouped_attention(qkv, B, T, H, Hkv, D, slopes), R); };
    EXPECT_TRUE(matches_fd(ref::read(dqkv), qkv, L)) << "dqkv " << where;
  }
}

// kv_heads == heads without slopes is plain multi-head attention, to the bit.
TEST_F(DecoderOps, GroupedAttentionWithAllHeadsIsPlainAttentionExactly) {
  const i64 B = 2, T = 13, H = 3, D = 4, C = H * D;
  Vec qkv = ref::randn(B * T * 3 * C, 8, 1.2), R = ref::randn(B * T * C, 9);
  Buffer bq = ref::make(*be, {B, T, 3 * C}, DType::f32, qkv), dout = ref::make(*be, {B, T, C}, DType::f32, R);
  Buffer o1(*be, {B, T, C}, DType::f32), o2(*be, {B, T, C}, DType::f32);
  Buffer p1(*be, {B, H, T, T}, DType::f32), p2(*be, {B, H, T, T}, DType::f32), s(*be, {B, H, T, T}, DType::f32);
  Buffer d1(*be, {B, T, 3 * C}, DType::f32), d2(*be, {B, T, 3 * C}, DType::f32);
  be->attention_forward(o1, p1, bq, int(H));
  be->attention_backward(d1, s, dout, bq, p1, int(H));
  be->grouped_attention_forward(o2, p2, bq, {int(H), int(H), {}});
  be->grouped_attention_backward(d2, s, dout, bq, p2, {int(H), int(H), {}});
  EXPECT_TRUE(ref::equal(ref::read(o2), ref::read(o1)));
  EXPECT_TRUE(ref::equal(ref::read(p2), ref::read(p1)));
  EXPECT_TRUE(ref::equal(ref::read(d2), ref::read(d1)));
}

// ALiBi's bias in the probabilities: with q = 0 every score is the bias alone, so row t of
// head h is softmax over s <= t of -slope_h (t - s).
TEST_F(DecoderOps, AlibiBiasValuesInTheProbabilities) {
  const i64 T = 6, H = 6, D = 2, W = 3 * H * D;
  const std::vector<float> slopes = alibi_slopes(H);
  Vec sl(slopes.begin(), slopes.end()), qkv(T * W, 0.0);
  for (i64 t = 0; t < T; ++t)
    for (i64 c = H * D; c < W; ++c) qkv[t * W + c] = std::sin(double(t * W + c));  // k, v arbitrary
  Buffer bq = ref::make(*be, {1, T, W}, DType::f32, qkv), bs = ref::make(*be, {H}, DType::f32, sl);
  Buffer out(*be, {1, T, H * D}, DType::f32), probs(*be, {1, H, T, T}, DType::f32);
  be->grouped_attention_forward(out, probs, bq, {int(H), int(H), bs.tensor()});
  const Vec p = ref::read(probs);
  for (i64 h = 0; h < H; ++h)
    for (i64 t = 0; t < T; ++t) {
      double z = 0;
      for (i64 s = 0; s <= t; ++s) z += std::exp(-double(slopes[h]) * double(t - s));
      for (i64 s = 0; s < T; ++s) {
        const double want = s <= t ? std::exp(-double(slopes[h]) * double(t - s)) / z : 0.0;
        EXPECT_NEAR(p[(h * T + t) * T + s], want, 1e-6) << "h=" << h << " t=" << t << " s=" << s;
      }
    }
}

// bf16: the kernel widens slices to f32 tiles, so it equals the f32 backend on the same
// rounded inputs up to the output's rounding (as CausalAttentionHalfPrecisionMatchesF32).
TEST_F(DecoderOps, GroupedAttentionBf16MatchesF32) {
  const i64 B = 2, T = 17, H = 4, Hkv = 2, D = 5, W = (H + 2 * Hkv) * D;
  const std::vector<float> slopes = alibi_slopes(H);
  Vec sl(slopes.begin(), slopes.end());
  Vec qkv = ref::randn(B * T * W, 3, 1.2), R = ref::randn(B * T * H * D, 17);
  const double tol = 1.5 * std::ldexp(1.0, -8);
  Buffer hq = ref::make(*be, {B, T, W}, DType::bf16, qkv), hdout = ref::make(*be, {B, T, H * D}, DType::bf16, R);
  Vec qr = ref::read(hq), rr = ref::read(hdout);  // the rounded inputs
  Buffer fq = ref::make(*be, {B, T, W}, DType::f32, qr), fdout = ref::make(*be, {B, T, H * D}, DType::f32, rr);
  Buffer hout(*be, {B, T, H * D}, DType::bf16), fout(*be, {B, T, H * D}, DType::f32);
  Buffer hp(*be, {B, H, T, T}, DType::f32), fp(*be, {B, H, T, T}, DType::f32), s(*be, {B, H, T, T}, DType::f32);
  Buffer hd(*be, {B, T, W}, DType::bf16), fd(*be, {B, T, W}, DType::f32);
  Buffer bs = ref::make(*be, {H}, DType::f32, sl);
  const AttentionHeads a{int(H), int(Hkv), bs.tensor()};
  be->grouped_attention_forward(hout, hp, hq, a);
  be->grouped_attention_backward(hd, s, hdout, hq, hp, a);
  be->grouped_attention_forward(fout, fp, fq, a);
  be->grouped_attention_backward(fd, s, fdout, fq, fp, a);
  EXPECT_TRUE(ref::near(ref::read(hout), ref::read(fout), tol, kAtol));
  EXPECT_TRUE(ref::near(ref::read(hd), ref::read(fd), tol, kAtol));
}

// ---- the tensor-parallel split of c_attn under GQA ----------------------------------------------

// c_attn rows [q (H D) | k (Hkv D) | v (Hkv D)] split over tp: rank r holds its q heads, then
// its k heads, then its v heads; the ranks' rows together are every global row once.
TEST(DecoderShards, GroupedQkvRowsSplitByHeads) {
  const i64 H = 4, Hkv = 2, D = 3, C = 5, tp = 2;
  const i64 rows = (H + 2 * Hkv) * D;
  std::vector<int> seen(std::size_t(rows * C), 0);
  for (int r = 0; r < tp; ++r) {
    ParamSpec s{.name = "c_attn", .shape = {rows / tp, C}, .shard = {Shard::Split::rows, int(tp), r, 3, int(H / Hkv)}};
    EXPECT_EQ(global_shape(s), (Shape{rows, C}));
    for (i64 j = 0; j < rows / tp * C; ++j) ++seen[std::size_t(global_index(s, j))];
    const i64 q = H / tp * D, k = Hkv / tp * D;  // local q rows, local k (= v) rows
    EXPECT_EQ(global_index(s, 0), r * q * C) << "first q row";
    EXPECT_EQ(global_index(s, q * C), (H * D + r * k) * C) << "first k row";
    EXPECT_EQ(global_index(s, (q + k) * C), ((H + Hkv) * D + r * k) * C) << "first v row";
  }
  for (int n : seen) EXPECT_EQ(n, 1);
}

}  // namespace
}  // namespace loom
