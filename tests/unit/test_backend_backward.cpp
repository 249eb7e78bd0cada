// tests/unit/test_backend_backward.cpp — every backward op of the CPU backend against finite differences.
//
// For each op the forward is written naively in double (tests/unit/reference.h), the
// objective is L = sum(forward(x) * R) for a fixed random upstream gradient R, and the
// op's gradient (run in f32 with dout = R) is compared with (L(x+h) - L(x-h)) / 2h in
// double, on all elements of small tensors and 400 sampled ones of larger tensors.
// Also checked: `=` vs `+=` (outputs pre-filled with NaN or with values to add to).
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

constexpr double kTol = 1e-3;
constexpr double kAtol = 1e-6;  // gradients here are O(0.1..10); this only matters for exact zeros

// The op's gradient `got` (whole tensor) vs central differences of L over x.
::testing::AssertionResult matches_fd(const Vec& got, Vec& x, const std::function<double()>& L) {
  const auto idx = ref::sample(i64(x.size()));
  return ref::near(ref::gather(got, idx), ref::fd_grad(x, L, idx), kTol, kAtol);
}

Vec minus(const Vec& a, const Vec& b) {
  Vec d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return d;
}

class Backward : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = make_backend(Device::cpu);
};

// ---- linear layer: y = x W^T + b (W stored (out, in)), and y = x W (W stored (in, out)) ----

TEST_F(Backward, LinearThroughMatmulFlagsAndBiasBackward) {
  for (auto [N, Cin, Cout] : {std::tuple{i64(1), i64(3), i64(17)}, std::tuple{i64(17), i64(65), i64(3)},
                              std::tuple{i64(3), i64(1), i64(65)}, std::tuple{i64(65), i64(17), i64(17)}})
    for (bool w_out_in : {true, false}) {
      const std::string where = "N=" + std::to_string(N) + " Cin=" + std::to_string(Cin) +
                                " Cout=" + std::to_string(Cout) + (w_out_in ? " W(out,in)" : " W(in,out)");
      Vec x = ref::randn(N * Cin, N + Cin), w = ref::randn(Cout * Cin, Cout, 0.5), b = ref::randn(Cout, 3);
      Vec R = ref::randn(N * Cout, 4), w0 = ref::randn(Cout * Cin, 5), b0 = ref::randn(Cout, 6);
      const Shape wshape = w_out_in ? Shape{Cout, Cin} : Shape{Cin, Cout};
      // activations as (B,T,C) when N splits, so matmul must take rows from the leading dims
      auto act = [&](i64 c) { return N % 5 == 0 ? Shape{N / 5, 5, c} : Shape{N, c}; };
      Buffer bx = ref::make(*be, act(Cin), DType::f32, x), bw = ref::make(*be, wshape, DType::f32, w);
      Buffer dy = ref::make(*be, act(Cout), DType::f32, R);
      Buffer dx = ref::filled(*be, act(Cin), DType::f32, NAN);
      Buffer dw = ref::make(*be, wshape, DType::f32, w0), db = ref::make(*be, {Cout}, DType::f32, b0);
      if (w_out_in) {
        be->matmul(dx, dy, bw, {}, {});                                                      // dx = dy W
        be->matmul(dw, dy, bx, {}, {.trans_a = Trans::yes, .accumulate = Accumulate::yes});  // dW += dy^T x
      } else {
        be->matmul(dx, dy, bw, {}, {.trans_b = Trans::yes});                                 // dx = dy W^T
        be->matmul(dw, bx, dy, {}, {.trans_a = Trans::yes, .accumulate = Accumulate::yes});  // dW += x^T dy
      }
      be->bias_backward(db, dy);
      auto L = [&] {
        Vec y = ref::matmul(x, w, N, Cout, Cin, false, w_out_in);
        for (i64 i = 0; i < N * Cout; ++i) y[i] += b[i % Cout];
        return ref::dot(y, R);
      };
      EXPECT_TRUE(matches_fd(ref::read(dx), x, L)) << "dx " << where;
      EXPECT_TRUE(matches_fd(minus(ref::read(dw), w0), w, L)) << "dW (+=) " << where;
      EXPECT_TRUE(matches_fd(minus(ref::read(db), b0), b, L)) << "db (+=) " << where;
    }
}

// ---- layernorm ------------------------------------------------------------------------------

TEST_F(Backward, LayerNorm) {
  for (auto [N, C] : {std::tuple{i64(1), i64(1)}, std::tuple{i64(3), i64(17)}, std::tuple{i64(17), i64(65)},
                      std::tuple{i64(1), i64(3)}, std::tuple{i64(65), i64(3)}})
    for (Accumulate acc : {Accumulate::no, Accumulate::yes}) {
      const std::string where =
          "N=" + std::to_string(N) + " C=" + std::to_string(C) + (acc == Accumulate::yes ? " dx+=" : " dx=");
      const float eps = 1e-5f;
      Vec x = ref::randn(N * C, N * 7 + C, 1.5, 0.3), w = ref::randn(C, C, 0.5, 1.0),
          b = ref::randn(C, C + 1);
      Vec R = ref::randn(N * C, 99), dx0 = ref::randn(N * C, 98), dw0 = ref::randn(C, 97),
          db0 = ref::randn(C, 96);
      Buffer bx = ref::make(*be, {N, C}, DType::f32, x), bw = ref::make(*be, {C}, DType::f32, w);
      Buffer bb = ref::make(*be, {C}, DType::f32, b), out(*be, {N, C}, DType::f32);
      Buffer mean(*be, {N}, DType::f32), rstd(*be, {N}, DType::f32);
      be->layernorm_forward(out, mean, rstd, bx, bw, bb, eps);
      Buffer dout = ref::make(*be, {N, C}, DType::f32, R);
      Buffer dx = acc == Accumulate::yes ? ref::make(*be, {N, C}, DType::f32, dx0)
                                         : ref::filled(*be, {N, C}, DType::f32, NAN);
      Buffer dw = ref::make(*be, {C}, DType::f32, dw0), db = ref::make(*be, {C}, DType::f32, db0);
      be->layernorm_backward(dx, dw, db, dout, bx, bw, mean, rstd, acc);
      auto L = [&] { return ref::dot(ref::layernorm(x, w, b, N, C, eps), R); };
      const Vec gx = acc == Accumulate::yes ? minus(ref::read(dx), dx0) : ref::read(dx);
      EXPECT_TRUE(matches_fd(gx, x, L)) << "dx " << where;
      EXPECT_TRUE(matches_fd(minus(ref::read(dw), dw0), w, L)) << "dweight (+=) " << where;
      EXPECT_TRUE(matches_fd(minus(ref::read(db), db0), b, L)) << "dbias (+=) " << where;
    }
}

// ---- gelu, softmax -----------------------------------------------------------------------------

TEST_F(Backward, Gelu) {
  for (i64 n : {i64(1), i64(3), i64(17), i64(65)})
    for (bool alias : {false, true}) {
      Vec x = ref::randn(3 * n, n, 2.0), R = ref::randn(3 * n, n + 1);
      Buffer bx = ref::make(*be, {3, n}, DType::f32, x), dout = ref::make(*be, {3, n}, DType::f32, R);
      Buffer dx = ref::filled(*be, {3, n}, DType::f32, NAN);
      Tensor target = alias ? dout.tensor() : dx.tensor();
      be->gelu_backward(target, dout, bx);
      auto L = [&] { return ref::dot(ref::gelu(x), R); };
      EXPECT_TRUE(matches_fd(ref::read(target), x, L)) << "n=" << n << (alias ? " dx aliases dout" : "");
    }
}

TEST_F(Backward, Softmax) {
  for (i64 C : {i64(1), i64(3), i64(17), i64(65)}) {
    const i64 N = 3;
    Vec x = ref::randn(N * C, C, 2.0), R = ref::randn(N * C, C + 1);
    Buffer bx = ref::make(*be, {N, C}, DType::f32, x), y(*be, {N, C}, DType::f32);
    be->softmax_forward(y, bx);
    Buffer dout = ref::make(*be, {N, C}, DType::f32, R), dx = ref::filled(*be, {N, C}, DType::f32, NAN);
    be->softmax_backward(dx, dout, y);
    auto L = [&] { return ref::dot(ref::softmax(x, N, C), R); };
    EXPECT_TRUE(matches_fd(ref::read(dx), x, L)) << "N=" << N << " C=" << C;
  }
}

// ---- attention ----------------------------------------------------------------------------------

TEST_F(Backward, CausalAttention) {
  for (auto [B, T, H, D] :
       {std::tuple{i64(1), i64(1), i64(1), i64(1)}, std::tuple{i64(2), i64(3), i64(1), i64(17)},
        std::tuple{i64(1), i64(17), i64(3), i64(3)}, std::tuple{i64(2), i64(5), i64(4), i64(2)},
        std::tuple{i64(1), i64(65), i64(1), i64(3)}}) {
    const i64 C = H * D;
    const std::string where = "B=" + std::to_string(B) + " T=" + std::to_string(T) +
                              " H=" + std::to_string(H) + " D=" + std::to_string(D);
    Vec qkv = ref::randn(B * T * 3 * C, B + T + H + D, 1.2), R = ref::randn(B * T * C, 17);
    Buffer bqkv = ref::make(*be, {B, T, 3 * C}, DType::f32, qkv), out(*be, {B, T, C}, DType::f32);
    Buffer probs(*be, {B, H, T, T}, DType::f32);
    be->attention_forward(out, probs, bqkv, int(H));
    Buffer dout = ref::make(*be, {B, T, C}, DType::f32, R);
    Buffer dqkv = ref::filled(*be, {B, T, 3 * C}, DType::f32, NAN);
    Buffer scratch = ref::filled(*be, {B, H, T, T}, DType::f32, NAN);
    be->attention_backward(dqkv, scratch, dout, bqkv, probs, int(H));
    auto L = [&] { return ref::dot(ref::attention(qkv, B, T, H, D), R); };
    EXPECT_TRUE(matches_fd(ref::read(dqkv), qkv, L)) << "dqkv " << where;
  }
}

// bf16/f16: the kernel widens each (b, h) slice to f32 and runs the f32 code, so its
// gradient equals the f32 backend's on the same rounded inputs up to the output's
// rounding (1.5 units of the last place of 8 / 11 mantissa bits).
TEST_F(Backward, CausalAttentionHalfPrecisionMatchesF32) {
  const i64 B = 2, T = 33, H = 3, D = 5, C = H * D;
  for (auto [dt, tol] : {std::tuple{DType::bf16, 1.5 * std::ldexp(1.0, -8)},
                         std::tuple{DType::f16, 1.5 * std::ldexp(1.0, -11)}}) {
    Vec qkv = ref::randn(B * T * 3 * C, 3, 1.2), R = ref::randn(B * T * C, 17);
    Buffer hq = ref::make(*be, {B, T, 3 * C}, dt, qkv), hdout = ref::make(*be, {B, T, C}, dt, R);
    Buffer fq = ref::make(*be, {B, T, 3 * C}, DType::f32, qkv), fdout = ref::make(*be, {B, T, C}, DType::f32, R);
    Buffer hout(*be, {B, T, C}, dt), fout(*be, {B, T, C}, DType::f32);
    Buffer hprobs(*be, {B, H, T, T}, DType::f32), fprobs(*be, {B, H, T, T}, DType::f32);
    Buffer scratch(*be, {B, H, T, T}, DType::f32);
    Buffer hd = ref::filled(*be, {B, T, 3 * C}, dt, NAN), fd = ref::filled(*be, {B, T, 3 * C}, DType::f32, NAN);
    be->attention_forward(hout, hprobs, hq, int(H));
    be->attention_backward(hd, scratch, hdout, hq, hprobs, int(H));
    be->attention_forward(fout, fprobs, fq, int(H));
    be->attention_backward(fd, scratch, fdout, fq, fprobs, int(H));
    EXPECT_TRUE(ref::near(ref::read(hd), ref::read(fd), tol, kAtol)) << dtype_name(dt);
  }
}

// ---- embedding ----------------------------------------------------------------------------------

TEST_F(Backward, EmbeddingAccumulatesRepeatedTokens) {
  struct Case {
    i64 B, T, C, V, vocab_start, global_vocab;
  };
  for (Case k :
       {Case{1, 1, 1, 1, 0, 1}, Case{2, 17, 3, 5, 0, 5}, Case{3, 17, 17, 3, 3, 7}, Case{1, 65, 3, 17, 0, 17}})
    for (bool with_wpe : {true, false}) {
      const std::string where = "B=" + std::to_string(k.B) + " T=" + std::to_string(k.T) +
                                " C=" + std::to_string(k.C) + " V=" + std::to_string(k.V) +
                                " vocab_start=" + std::to_string(k.vocab_start) +
                                (with_wpe ? "" : " no dwpe");
      // few distinct ids over many positions: every id repeats
      auto tok = ref::rand_tokens(k.B * k.T, 0, std::int32_t(k.global_vocab), k.T + k.C);
      Vec wte = ref::randn(k.V * k.C, 1), wpe = ref::randn(k.T * k.C, 2), R = ref::randn(k.B * k.T * k.C, 3);
      Vec dwte0 = ref::randn(k.V * k.C, 4), dwpe0 = ref::randn(k.T * k.C, 5);
      Buffer dwte = ref::make(*be, {k.V, k.C}, DType::f32, dwte0),
             dwpe = ref::make(*be, {k.T, k.C}, DType::f32, dwpe0);
      Buffer dout = ref::make(*be, {k.B, k.T, k.C}, DType::f32, R);
      be->embedding_backward(dwte, with_wpe ? dwpe.tensor() : Tensor{}, dout, ref::tokens(tok, {k.B, k.T}),
                             k.vocab_start);
      auto L = [&] { return ref::dot(ref::embedding(tok, wte, k.V, wpe, k.B, k.T, k.C, k.vocab_start), R); };
      EXPECT_TRUE(matches_fd(minus(ref::read(dwte), dwte0), wte, L)) << "dwte (+=) " << where;
      if (with_wpe)
        EXPECT_TRUE(matches_fd(minus(ref::read(dwpe), dwpe0), wpe, L)) << "dwpe (+=) " << where;
      else
        EXPECT_TRUE(ref::equal(ref::read(dwpe), dwpe0)) << "untouched when skipped " << where;
    }
}

TEST_F(Backward, EmbeddingSkipsEmptyDwte) {
  const i64 B = 2, T = 3, C = 5;
  std::vector<std::int32_t> tok{0, 1, 2, 2, 1, 0};
  Vec R = ref::randn(B * T * C, 1), dwpe0(T * C, 0.0);
  Buffer dwpe = ref::make(*be, {T, C}, DType::f32, dwpe0), dout = ref::make(*be, {B, T, C}, DType::f32, R);
  be->embedding_backward(Tensor{}, dwpe, dout, ref::tokens(tok, {B, T}), 0);
  Vec want(T * C, 0.0);
  for (i64 b = 0; b < B; ++b)
    for (i64 i = 0; i < T * C; ++i) want[i] += R[b * T * C + i];
  EXPECT_TRUE(ref::near(ref::read(dwpe), want, 1e-6));
}

// ---- cross-entropy --------------------------------------------------------------------------------

// L = dloss * sum of the per-row losses (ignored rows add 0), the forward in double;
// the op's gradient comes from cross_entropy_shard_backward on each column shard,
// with the log-sum-exp the forward ops (max, sumexp, loss) combined over shards.
TEST_F(Backward, CrossEntropy) {
  for (auto [N, Vp, vocab] : {std::tuple{i64(1), i64(1), i64(1)}, std::tuple{i64(3), i64(17), i64(17)},
                              std::tuple{i64(17), i64(65), i64(50)}, std::tuple{i64(3), i64(3), i64(2)},
                              std::tuple{i64(65), i64(17), i64(9)}})
    for (int parts : {1, 2, 3})
      for (bool alias : {false, true}) {
        if (parts > Vp) continue;
        const std::string where = "N=" + std::to_string(N) + " Vp=" + std::to_string(Vp) +
                                  " vocab=" + std::to_string(vocab) + " parts=" + std::to_string(parts) +
                                  (alias ? " dlogits aliases logits" : "");
        const double dloss = 0.37;  // e.g. 1 / (tokens in the global batch)
        Vec logits = ref::randn(N * Vp, N + Vp, 2.0);
        for (i64 n = 0; n < N; ++n)
          for (i64 c = vocab; c < Vp; ++c) logits[n * Vp + c] = 25.0;
        auto tgt = ref::rand_tokens(N, 0, std::int32_t(vocab), N * Vp);
        for (i64 n = 1; n < N; n += 3) tgt[n] = -1;  // not targets
        const TokenView tv = ref::tokens(tgt, {N});
        const ref::Shards s = ref::split_columns(*be, logits, N, Vp, parts, DType::f32);
        Buffer lse(*be, {N}, DType::f32), losses = ref::filled(*be, {N}, DType::f32, 0);
        ref::sharded_loss(*be, s, tv, vocab, lse, losses);
        Vec got(N * Vp);
        for (std::size_t r = 0; r < s.logits.size(); ++r) {
          const Tensor x = s.logits[r];
          const i64 Vs = x.shape.last();
          Buffer d = ref::filled(*be, x.shape, DType::f32, NAN);
          const Tensor dx = alias ? x : d.tensor();
          be->cross_entropy_shard_backward(dx, x, tv, s.start[r], vocab, lse, float(dloss));
          const Vec g = ref::read(dx);
          for (i64 n = 0; n < N; ++n)
            for (i64 j = 0; j < Vs; ++j) got[n * Vp + s.start[r] + j] = g[n * Vs + j];
        }
        for (i64 n = 0; n < N; ++n)
          for (i64 c = 0; c < Vp; ++c)
            if (c >= vocab || tgt[n] < 0) {
              ASSERT_EQ(got[n * Vp + c], 0.0)
                  << "padded column or ignored row: row " << n << " column " << c << ", " << where;
            }
        auto L = [&] {
          const Vec l = ref::cross_entropy(logits, tgt, N, Vp, vocab);
          double sum = 0;
          for (double v : l) sum += v;
          return dloss * sum;
        };
        EXPECT_TRUE(matches_fd(got, logits, L)) << "dlogits " << where;
      }
}

}  // namespace
}  // namespace loom
