// tests/unit/test_flash_attention.cpp — the tiled (flash) attention ops of the CPU backend.
//
// Every case is compared with a naive double-precision dense softmax written here from
// the comments in backend/backend.h (the T x T scores in double, masked entries left
// out): forward out and lse, backward dq, dk, dv. Cases cover causal, bidirectional with
// a padding mask (one sequence of length 0), sliding windows (causal and not), GQA with
// Hkv = 1 and Hkv = Hq / 2, ALiBi, a custom scale, T below, at and across the tile sizes
// (64 query rows, 128 keys), head sizes that are not a multiple of the vector width, and
// cross-attention (Tq != Tk), and a learned relative bias (spec.rel_bias, T5: causal and
// bidirectional, Tq != Tk, GQA) whose gradient drel_bias is checked too. The backward is also checked against central finite
// differences of the reference forward, and against today's dense attention op
// (causal MHA). f32 is held to ~1e-5 relative; bf16/f16 to a few units of their last
// place (inputs are rounded first, so the reference sees what the kernel sees).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "backend/registry.h"
#include "core/error.h"
#include "tests/unit/reference.h"

namespace loom {
namespace {

using ref::i64;
using ref::Vec;

struct Case {
  i64 B, T, Hq, Hkv, D;
  bool causal = true;
  i64 window = 0;
  std::vector<std::int32_t> len;  // empty: no padding mask
  bool alibi = false;
  float scale = 0.0f;
  i64 Tk = 0;  // cross-attention (separate q and k/v tensors) when nonzero
  bool rel = false;  // a random relative bias (Tq + Tk - 1, Hq) and its gradient
  std::string str() const {
    std::string s = "B=" + std::to_string(B) + " T=" + std::to_string(T) + " Hq=" + std::to_string(Hq) +
                    " Hkv=" + std::to_string(Hkv) + " D=" + std::to_string(D) +
                    (causal ? " causal" : " bidir");
    if (window) s += " window=" + std::to_string(window);
    if (!len.empty()) s += " padded";
    if (alibi) s += " alibi";
    if (scale != 0.0f) s += " scale=" + std::to_string(scale);
    if (Tk) s += " Tk=" + std::to_string(Tk);
    if (rel) s += " rel";
    return s;
  }
  i64 keys() const { return Tk ? Tk : T; }
};

// ALiBi slopes of Press et al. for Hq heads: 2^(-8 (h + 1) / Hq).
Vec slopes_for(i64 H) {
  Vec s(H);
  for (i64 h = 0; h < H; ++h)
    s[h] = double(float(std::pow(2.0, -8.0 * double(h + 1) / double(H))));  // as stored (f32)
  return s;
}

// The dense reference in double. q (B,T,Hq,D), k and v (B,Tk,Hkv,D), dout (B,T,Hq,D),
// all contiguous. Returns out, lse and (with dout) dq, dk, dv. With stored_out (the op's
// out as stored, (B,T,Hq,D)), the softmax backward's rowsum(P * dP) = dO . O is taken from
// it, as the op's contract says (FlashAttention-2's D_i); else from the exact out.
struct Dense {
  Vec out, lse, dq, dk, dv;
  Vec drel;  // (B, T + Tk - 1, Hq): d L / d rel_bias per sequence
};
// rel (T + Tk - 1, Hq) when c.rel: score(t, s) += rel[s - t + T - 1][h].
Dense dense(const Case& c, const Vec& q, const Vec& k, const Vec& v, const Vec* dout, const Vec& slopes,
            const Vec& rel, const Vec* stored_out = nullptr) {
  const i64 B = c.B, T = c.T, Tk = c.keys(), Hq = c.Hq, Hkv = c.Hkv, D = c.D, G = Hq / Hkv, Toff = T + Tk - 1;
  const double scale = c.scale != 0.0f ? double(c.scale) : 1.0 / std::sqrt(double(D));
  Dense r{Vec(B * T * Hq * D, 0.0), Vec(B * Hq * T, -INFINITY), Vec(B * T * Hq * D, 0.0),
          Vec(B * Tk * Hkv * D, 0.0), Vec(B * Tk * Hkv * D, 0.0), Vec(B * Toff * Hq, 0.0)};
  auto Q = [&](i64 b, i64 t, i64 h) { return &q[((b * T + t) * Hq + h) * D]; };
  auto K = [&](i64 b, i64 s, i64 h) { return &k[((b * Tk + s) * Hkv + h) * D]; };
  auto V = [&](i64 b, i64 s, i64 h) { return &v[((b * Tk + s) * Hkv + h) * D]; };
  for (i64 b = 0; b < B; ++b)
    for (i64 h = 0; h < Hq; ++h)
      for (i64 t = 0; t < T; ++t) {
        const i64 hk = h / G;
        std::vector<i64> keys;
        for (i64 s = 0; s < Tk; ++s) {
          if (c.causal && s > t) continue;
          if (c.window && s <= t - c.window) continue;
          if (c.window && !c.causal && s >= t + c.window) continue;
          if (!c.len.empty() && s >= c.len[b]) continue;
          keys.push_back(s);
        }
        if (keys.empty()) continue;
        Vec sc(keys.size());
        double mx = -INFINITY;
        for (size_t i = 0; i < keys.size(); ++i) {
          const i64 s = keys[i];
          double dot = 0;
          for (i64 d = 0; d < D; ++d) dot += Q(b, t, h)[d] * K(b, s, hk)[d];
          sc[i] = scale * dot - (c.alibi ? slopes[h] * std::fabs(double(t - s)) : 0.0) +
                  (c.rel ? rel[(s - t + T - 1) * Hq + h] : 0.0);
          mx = std::max(mx, sc[i]);
        }
        double sum = 0;
        for (double x : sc) sum += std::exp(x - mx);
        r.lse[(b * Hq + h) * T + t] = mx + std::log(sum);
        Vec p(keys.size());
        for (size_t i = 0; i < keys.size(); ++i) p[i] = std::exp(sc[i] - mx) / sum;
        double* o = &r.out[((b * T + t) * Hq + h) * D];
        for (size_t i = 0; i < keys.size(); ++i)
          for (i64 d = 0; d < D; ++d) o[d] += p[i] * V(b, keys[i], hk)[d];
        if (!dout) continue;
        const double* go = &(*dout)[((b * T + t) * Hq + h) * D];
        Vec dp(keys.size());
        double pdp = 0;
        for (size_t i = 0; i < keys.size(); ++i) {
          dp[i] = 0;
          for (i64 d = 0; d < D; ++d) dp[i] += go[d] * V(b, keys[i], hk)[d];
          pdp += p[i] * dp[i];
        }
        if (stored_out) {
          pdp = 0;
          for (i64 d = 0; d < D; ++d) pdp += go[d] * (*stored_out)[((b * T + t) * Hq + h) * D + d];
        }
        for (size_t i = 0; i < keys.size(); ++i) {
          const i64 s = keys[i];
          const double ds = p[i] * (dp[i] - pdp) * scale;
          r.drel[(b * Toff + s - t + T - 1) * Hq + h] += p[i] * (dp[i] - pdp);
          for (i64 d = 0; d < D; ++d) {
            r.dq[((b * T + t) * Hq + h) * D + d] += ds * K(b, s, hk)[d];
            r.dk[((b * Tk + s) * Hkv + hk) * D + d] += ds * Q(b, t, h)[d];
            r.dv[((b * Tk + s) * Hkv + hk) * D + d] += p[i] * go[d];
          }
        }
      }
  return r;
}

// Self-attention through one fused qkv (B,T,(Hq+2Hkv)*D) = [q heads | k heads | v heads]
// as the layer stores it, or (c.Tk) cross-attention through separate (B,T,H,D) tensors.
struct Result {
  Vec q, k, v, dout;  // the inputs as stored (rounded to the dtype), contiguous (B,T,H,D)
  Vec rel;            // c.rel: the relative bias (T + Tk - 1, Hq), f32
  Vec out, lse, dq, dk, dv;
  Vec drel;           // c.rel: what backward added to drel_bias (B, T + Tk - 1, Hq)
};
constexpr double kDrelStart = 0.25;  // drel_bias starts here: the op adds (+=)
Result run_tiled(Backend& be, DType dt, const Case& c, std::uint64_t seed, double amp = 1.5) {
  const i64 B = c.B, T = c.T, Tk = c.keys(), Hq = c.Hq, Hkv = c.Hkv, D = c.D;
  Result r;
  std::vector<std::int32_t> len = c.len;
  Vec slopes = slopes_for(Hq);
  Buffer bslopes = ref::make(be, {Hq}, DType::f32, slopes);
  AttentionSpec spec{.causal = c.causal, .window = c.window, .scale = c.scale};
  if (!len.empty()) spec.key_lengths = ref::tokens(len, Shape{B});
  if (c.alibi) spec.alibi_slopes = bslopes;
  const i64 Toff = T + Tk - 1;
  Buffer brel = ref::make(be, {Toff, Hq}, DType::f32, ref::randn(Toff * Hq, seed + 11));
  Buffer bdrel = ref::filled(be, {B, Toff, Hq}, DType::f32, kDrelStart);
  if (c.rel) {
    spec.rel_bias = brel, spec.drel_bias = bdrel;
    r.rel = ref::read(brel);
  }
  Vec go = ref::randn(B * T * Hq * D, seed + 7);
  Buffer bdout = ref::make(be, {B, T, Hq * D}, dt, go);
  r.dout = go;
  Buffer out = ref::filled(be, {B, T, Hq * D}, dt, NAN), lse = ref::filled(be, {B, Hq, T}, DType::f32, NAN);
  if (!c.Tk) {
    const i64 W = (Hq + 2 * Hkv) * D;
    Vec qkv = ref::randn(B * T * W, seed, amp);
    Buffer bqkv = ref::make(be, {B, T, W}, dt, qkv);
    Buffer dqkv = ref::filled(be, {B, T, W}, dt, NAN);
    auto part = [&](Tensor x, i64 off, i64 n) { return HeadsView::in(x, off, n, D); };
    be.flash_attention_forward(out, lse, part(bqkv, 0, Hq), part(bqkv, Hq * D, Hkv),
                               part(bqkv, (Hq + Hkv) * D, Hkv), spec);
    be.flash_attention_backward(part(dqkv, 0, Hq), part(dqkv, Hq * D, Hkv), part(dqkv, (Hq + Hkv) * D, Hkv),
                                bdout, part(bqkv, 0, Hq), part(bqkv, Hq * D, Hkv),
                                part(bqkv, (Hq + Hkv) * D, Hkv), out, lse, spec);
    const Vec g = ref::read(dqkv);
    auto split = [&](const Vec& x, Vec& a, Vec& b2, Vec& c2) {
      a.clear(), b2.clear(), c2.clear();
      for (i64 n = 0; n < B * T; ++n) {
        a.insert(a.end(), x.begin() + n * W, x.begin() + n * W + Hq * D);
        b2.insert(b2.end(), x.begin() + n * W + Hq * D, x.begin() + n * W + (Hq + Hkv) * D);
        c2.insert(c2.end(), x.begin() + n * W + (Hq + Hkv) * D, x.begin() + (n + 1) * W);
      }
    };
    split(qkv, r.q, r.k, r.v);
    split(g, r.dq, r.dk, r.dv);
  } else {
    r.q = ref::randn(B * T * Hq * D, seed, amp), r.k = ref::randn(B * Tk * Hkv * D, seed + 1, amp);
    r.v = ref::randn(B * Tk * Hkv * D, seed + 2, amp);
    Buffer bq = ref::make(be, {B, T, Hq, D}, dt, r.q), bk = ref::make(be, {B, Tk, Hkv, D}, dt, r.k),
           bv = ref::make(be, {B, Tk, Hkv, D}, dt, r.v);
    Buffer dq = ref::filled(be, {B, T, Hq, D}, dt, NAN), dk = ref::filled(be, {B, Tk, Hkv, D}, dt, NAN),
           dv = ref::filled(be, {B, Tk, Hkv, D}, dt, NAN);
    auto of = [](Tensor x, i64 h) { return HeadsView::of(x, h); };
    be.flash_attention_forward(out, lse, of(bq, Hq), of(bk, Hkv), of(bv, Hkv), spec);
    be.flash_attention_backward(of(dq, Hq), of(dk, Hkv), of(dv, Hkv), bdout, of(bq, Hq), of(bk, Hkv),
                                of(bv, Hkv), out, lse, spec);
    r.dq = ref::read(dq), r.dk = ref::read(dk), r.dv = ref::read(dv);
  }
  r.out = ref::read(out), r.lse = ref::read(lse);
  if (c.rel) {
    r.drel = ref::read(bdrel);
    for (double& x : r.drel) x -= kDrelStart;
  }
  return r;
}

// lse compared where finite; rows that see no key must be exactly -inf in both.
::testing::AssertionResult lse_near(Vec got, Vec want, double tol) {
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isinf(want[i]) || std::isinf(got[i])) {
      if (got[i] != want[i])
        return ::testing::AssertionFailure() << "lse[" << i << "] got " << got[i] << " want " << want[i];
      got[i] = want[i] = 0;
    }
  }
  return ref::near(got, want, tol);
}

const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
      {.B = 1, .T = 1, .Hq = 1, .Hkv = 1, .D = 1},
      {.B = 2, .T = 5, .Hq = 3, .Hkv = 3, .D = 7},    // T < tile, odd D
      {.B = 2, .T = 77, .Hq = 4, .Hkv = 4, .D = 16},  // across one query tile
      {.B = 1, .T = 150, .Hq = 2, .Hkv = 2, .D = 8},  // across key tiles
      {.B = 1, .T = 64, .Hq = 2, .Hkv = 2, .D = 17},  // exactly one query tile
      {.B = 3, .T = 70, .Hq = 2, .Hkv = 2, .D = 9, .causal = false, .len = {70, 33, 0}},
      {.B = 2, .T = 131, .Hq = 2, .Hkv = 1, .D = 5, .causal = false, .len = {1, 130}},
      {.B = 1, .T = 150, .Hq = 2, .Hkv = 2, .D = 5, .window = 16},  // sliding window
      {.B = 2, .T = 100, .Hq = 2, .Hkv = 2, .D = 6, .causal = false, .window = 10},
      {.B = 2, .T = 70, .Hq = 4, .Hkv = 1, .D = 8},    // multi-query (Hkv = 1)
      {.B = 1, .T = 133, .Hq = 6, .Hkv = 3, .D = 12},  // GQA, Hkv = Hq / 2
      {.B = 2, .T = 90, .Hq = 4, .Hkv = 4, .D = 8, .alibi = true},
      {.B = 2, .T = 45, .Hq = 2, .Hkv = 2, .D = 4, .causal = false, .len = {45, 20}, .alibi = true},
      {.B = 2, .T = 140, .Hq = 4, .Hkv = 2, .D = 10, .window = 33, .len = {140, 99}, .alibi = true},
      {.B = 1, .T = 30, .Hq = 2, .Hkv = 2, .D = 8, .scale = 0.7f},
      {.B = 2, .T = 37, .Hq = 4, .Hkv = 2, .D = 6, .causal = false, .len = {150, 61}, .Tk = 150},  // cross
      // relative bias (T5): decoder (causal), encoder (bidirectional, padded), across tiles, GQA,
      // cross-attention (Tq != Tk), with ALiBi and a window on top
      {.B = 2, .T = 9, .Hq = 3, .Hkv = 3, .D = 5, .rel = true},
      {.B = 2, .T = 150, .Hq = 4, .Hkv = 2, .D = 8, .rel = true},
      {.B = 3, .T = 70, .Hq = 2, .Hkv = 1, .D = 9, .causal = false, .len = {70, 33, 0}, .rel = true},
      {.B = 2, .T = 37, .Hq = 4, .Hkv = 2, .D = 6, .causal = false, .len = {150, 61}, .Tk = 150, .rel = true},
      {.B = 1, .T = 140, .Hq = 4, .Hkv = 2, .D = 10, .window = 33, .alibi = true, .rel = true},
  };
  return all;
}

class FlashAttention : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = make_backend(Device::cpu);
};

TEST_F(FlashAttention, F32MatchesDenseDoubleReference) {
  std::uint64_t seed = 1;
  for (const Case& c : cases()) {
    const Result r = run_tiled(*be, DType::f32, c, seed++);
    const Dense want = dense(c, r.q, r.k, r.v, &r.dout, slopes_for(c.Hq), r.rel);
    EXPECT_TRUE(ref::near(r.out, want.out, 1e-5)) << "out " << c.str();
    EXPECT_TRUE(lse_near(r.lse, want.lse, 1e-5)) << "lse " << c.str();
    // gradients: sums of up to Tk products with cancellation in dP - rowsum(dO O): 2e-5
    EXPECT_TRUE(ref::near(r.dq, want.dq, 2e-5)) << "dq " << c.str();
    EXPECT_TRUE(ref::near(r.dk, want.dk, 2e-5)) << "dk " << c.str();
    EXPECT_TRUE(ref::near(r.dv, want.dv, 2e-5)) << "dv " << c.str();
    if (c.rel) {
      EXPECT_TRUE(ref::near(r.drel, want.drel, 2e-5, 1e-6)) << "drel " << c.str();
    }
  }
}

// bf16/f16: inputs are rounded first; the kernel works in f32 and rounds each output once,
// so out is within the output's rounding (1.5 u) of the exact reference. The gradients
// depend on the stored (rounded) out through rowsum(dO O), so they are held to the
// reference given that out, at 2 u (the final rounding plus f32 arithmetic).
TEST_F(FlashAttention, HalfPrecisionMatchesDenseDoubleReference) {
  for (auto [dt, u] :
       {std::pair{DType::bf16, std::ldexp(1.0, -8)}, std::pair{DType::f16, std::ldexp(1.0, -11)}}) {
    std::uint64_t seed = 100;
    for (const Case& c : cases()) {
      const Result r = run_tiled(*be, dt, c, seed++);
      const Dense want = dense(c, r.q, r.k, r.v, &r.dout, slopes_for(c.Hq), r.rel),
                  grads = dense(c, r.q, r.k, r.v, &r.dout, slopes_for(c.Hq), r.rel, &r.out);
      const char* n = dtype_name(dt).data();
      EXPECT_TRUE(ref::near(r.out, want.out, 1.5 * u)) << n << " out " << c.str();
      EXPECT_TRUE(lse_near(r.lse, want.lse, 1e-5)) << n << " lse " << c.str();
      EXPECT_TRUE(ref::near(r.dq, grads.dq, 2 * u)) << n << " dq " << c.str();
      EXPECT_TRUE(ref::near(r.dk, grads.dk, 2 * u)) << n << " dk " << c.str();
      EXPECT_TRUE(ref::near(r.dv, grads.dv, 2 * u)) << n << " dv " << c.str();
      if (c.rel) {
        EXPECT_TRUE(ref::near(r.drel, grads.drel, 2 * u, 1e-6)) << n << " drel " << c.str();
      }
    }
  }
}

// The gradient is the derivative of the forward: central differences of the double
// reference forward, L = sum(out * R), against the kernel's dq, dk, dv (f32), and
// d rel_bias (the kernel's per-sequence drel_bias summed over b) with a relative bias.
TEST_F(FlashAttention, BackwardMatchesFiniteDifferences) {
  for (const Case& c :
       {Case{.B = 1, .T = 5, .Hq = 2, .Hkv = 1, .D = 3, .window = 3, .alibi = true},
        Case{.B = 2, .T = 4, .Hq = 2, .Hkv = 2, .D = 2, .causal = false, .len = {4, 2}},
        Case{.B = 2, .T = 5, .Hq = 2, .Hkv = 1, .D = 3, .rel = true},
        Case{.B = 2, .T = 3, .Hq = 2, .Hkv = 2, .D = 2, .causal = false, .len = {6, 4}, .Tk = 6, .rel = true}}) {
    Result r = run_tiled(*be, DType::f32, c, 42, 1.0);
    const Vec slopes = slopes_for(c.Hq);
    auto L = [&] { return ref::dot(dense(c, r.q, r.k, r.v, nullptr, slopes, r.rel).out, r.dout); };
    Vec drel_total(r.rel.size(), 0.0);  // summed over the batch, as the model does
    for (size_t i = 0; i < r.drel.size(); ++i) drel_total[i % r.rel.size()] += r.drel[i];
    for (auto [name, x, g] : {std::tuple{"dq", &r.q, &r.dq}, std::tuple{"dk", &r.k, &r.dk},
                              std::tuple{"dv", &r.v, &r.dv}, std::tuple{"drel", &r.rel, &drel_total}}) {
      if (x->empty()) continue;
      const auto idx = ref::sample(i64(x->size()));
      EXPECT_TRUE(ref::near(ref::gather(*g, idx), ref::fd_grad(*x, L, idx, 1e-5), 1e-4, 1e-6))
          << name << " " << c.str();
    }
  }
}

// Today's dense attention op (causal MHA, probs (B,H,T,T)) and the tiled one agree to
// float error on the same qkv: forward out and backward dqkv.
TEST_F(FlashAttention, EqualsDenseAttentionOp) {
  for (auto [B, T, H, D] :
       {std::tuple{i64(2), i64(77), i64(3), i64(16)}, std::tuple{i64(1), i64(200), i64(2), i64(64)},
        std::tuple{i64(3), i64(9), i64(4), i64(5)}}) {
    const i64 C = H * D;
    Vec qkv = ref::randn(B * T * 3 * C, T + D, 1.5), R = ref::randn(B * T * C, 3);
    Buffer bqkv = ref::make(*be, {B, T, 3 * C}, DType::f32, qkv),
           dout = ref::make(*be, {B, T, C}, DType::f32, R);
    Buffer out(*be, {B, T, C}, DType::f32), probs(*be, {B, H, T, T}, DType::f32),
        scratch(*be, {B, H, T, T}, DType::f32), dqkv(*be, {B, T, 3 * C}, DType::f32);
    be->attention_forward(out, probs, bqkv, int(H));
    be->attention_backward(dqkv, scratch, dout, bqkv, probs, int(H));
    Buffer fout(*be, {B, T, C}, DType::f32), lse(*be, {B, H, T}, DType::f32),
        fd(*be, {B, T, 3 * C}, DType::f32);
    auto part = [&](Tensor x, i64 i) { return HeadsView::in(x, i * C, H, D); };
    be->flash_attention_forward(fout, lse, part(bqkv, 0), part(bqkv, 1), part(bqkv, 2), {});
    be->flash_attention_backward(part(fd, 0), part(fd, 1), part(fd, 2), dout, part(bqkv, 0), part(bqkv, 1),
                                 part(bqkv, 2), fout, lse, {});
    const std::string where = "B=" + std::to_string(B) + " T=" + std::to_string(T);
    EXPECT_TRUE(ref::near(ref::read(fout), ref::read(out), 1e-5)) << "out " << where;
    EXPECT_TRUE(ref::near(ref::read(fd), ref::read(dqkv), 1e-5)) << "dqkv " << where;
  }
}

// Work is split so that no two threads write the same element and every sum runs in a
// fixed order: the same bits with 1 and 3 threads (a racy dQ/dK accumulation would not be).
TEST_F(FlashAttention, SameBitsForAnyThreadCount) {
  const int saved = omp_get_max_threads();
  for (const Case& c :
       {Case{.B = 2, .T = 150, .Hq = 4, .Hkv = 2, .D = 8, .alibi = true},
        Case{.B = 3, .T = 70, .Hq = 2, .Hkv = 1, .D = 9, .causal = false, .len = {70, 33, 5}},
        Case{.B = 3, .T = 150, .Hq = 4, .Hkv = 2, .D = 8, .causal = false, .rel = true}})
    for (DType dt : {DType::f32, DType::bf16}) {
      omp_set_num_threads(1);
      const Result one = run_tiled(*be, dt, c, 9);
      omp_set_num_threads(3);
      const Result three = run_tiled(*be, dt, c, 9);
      const std::string w = std::string(dtype_name(dt)) + " " + c.str();
      EXPECT_TRUE(ref::equal(one.out, three.out)) << "out " << w;
      EXPECT_TRUE(ref::equal(one.lse, three.lse)) << "lse " << w;
      EXPECT_TRUE(ref::equal(one.dq, three.dq)) << "dq " << w;
      EXPECT_TRUE(ref::equal(one.dk, three.dk)) << "dk " << w;
      EXPECT_TRUE(ref::equal(one.dv, three.dv)) << "dv " << w;
      EXPECT_TRUE(ref::equal(one.drel, three.drel)) << "drel " << w;
    }
  omp_set_num_threads(saved);
}

TEST_F(FlashAttention, RejectsBadShapes) {
  Buffer qkv(*be, {1, 4, 5 * 2}, DType::f32), out(*be, {1, 4, 3 * 2}, DType::f32),
      lse(*be, {1, 3, 4}, DType::f32);
  auto h = [&](i64 off, i64 n) { return HeadsView::in(qkv, off, n, 2); };
  // 3 query heads over 2 kv heads: not a multiple
  EXPECT_THROW(be->flash_attention_forward(out, lse, h(0, 3), h(4, 2), h(6, 2), {}), Error);
  // v runs past the row
  Buffer out2(*be, {1, 4, 2}, DType::f32), lse2(*be, {1, 1, 4}, DType::f32);
  EXPECT_THROW(be->flash_attention_forward(out2, lse2, h(0, 1), h(2, 1), h(9, 1), {}), Error);
  // lse of the wrong shape
  EXPECT_THROW(be->flash_attention_forward(out2, lse, h(0, 1), h(2, 1), h(4, 1), {}), Error);
  // a key length beyond T
  std::vector<std::int32_t> len = {5};
  EXPECT_THROW(be->flash_attention_forward(out2, lse2, h(0, 1), h(2, 1), h(4, 1),
                                           {.key_lengths = ref::tokens(len, Shape{1})}),
               Error);
  EXPECT_NO_THROW(be->flash_attention_forward(out2, lse2, h(0, 1), h(2, 1), h(4, 1), {}));
  // rel_bias must be (Tq + Tk - 1, Hq) f32; drel_bias (B, Tq + Tk - 1, Hq) and only with rel_bias
  Buffer rel_bad(*be, {4, 1}, DType::f32), rel(*be, {7, 1}, DType::f32), drel_bad(*be, {7, 1}, DType::f32);
  EXPECT_THROW(be->flash_attention_forward(out2, lse2, h(0, 1), h(2, 1), h(4, 1), {.rel_bias = rel_bad}), Error);
  EXPECT_NO_THROW(be->flash_attention_forward(out2, lse2, h(0, 1), h(2, 1), h(4, 1), {.rel_bias = rel}));
  Buffer dqkv(*be, {1, 4, 5 * 2}, DType::f32);
  auto dh = [&](i64 off, i64 n) { return HeadsView::in(dqkv, off, n, 2); };
  EXPECT_THROW(be->flash_attention_backward(dh(0, 1), dh(2, 1), dh(4, 1), out2, h(0, 1), h(2, 1), h(4, 1), out2,
                                            lse2, {.rel_bias = rel, .drel_bias = drel_bad}),
               Error);
  EXPECT_THROW(be->flash_attention_backward(dh(0, 1), dh(2, 1), dh(4, 1), out2, h(0, 1), h(2, 1), h(4, 1), out2,
                                            lse2, {.drel_bias = drel_bad}),
               Error);
}

}  // namespace
}  // namespace loom
