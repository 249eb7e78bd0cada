// tests/unit/test_backend_vocab_parallel.cpp — the vocabulary-parallel cross-entropy ops.
//
// One shard (tp = 1) on odd sizes and all dtypes: max, sumexp and loss against the
// fp64 reference (tests/unit/reference.h), padded columns and negative targets
// excluded. Then logits (N, Vp) are split by columns into 1-4 shards, as tensor
// parallelism splits the vocabulary; the per-shard max and sumexp, combined as the
// model combines them over tp (max, then sum: ref::sharded_loss), then
// cross_entropy_loss, must give the fp64 single-shard cross-entropy per row, 0 for
// rows whose target is negative, added (+=) to what losses held. The sharded
// backward with the combined log-sum-exp must give the reference gradient column for
// column, zero rows for ignored targets. (Finite differences of the backward:
// test_backend_backward.cpp.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "backend/registry.h"
#include "tests/unit/reference.h"

namespace loom {
namespace {

using ref::i64;
using ref::Vec;

// vocab 33 of Vp 48: with 4 shards of 12 the last ([36, 48)) is all padding; with
// 3 shards of 16 the last holds one real column (32).
constexpr i64 kN = 17, kVocab = 33, kVp = 48;
constexpr i64 kSizes[] = {1, 3, 17, 65};
const char* name(DType t) { return dtype_name(t).data(); }

// Random logits; padded columns at 30 (they would dominate the softmax if counted),
// row 1 shifted by +80 (overflows a naive exp).
Vec make_logits(std::uint64_t seed) {
  Vec x = ref::randn(kN * kVp, seed, 2.0);
  for (i64 n = 0; n < kN; ++n)
    for (i64 c = kVocab; c < kVp; ++c) x[n * kVp + c] = 30.0;
  for (i64 c = 0; c < kVocab; ++c) x[kVp + c] += 80.0;
  return x;
}

// Targets including the first and last real ids and some -1 (ignored) rows.
std::vector<std::int32_t> make_targets() {
  auto t = ref::rand_tokens(kN, 0, std::int32_t(kVocab), 11);
  t[0] = 0, t[2] = std::int32_t(kVocab - 1), t[3] = -1, t[7] = -1, t[kN - 1] = -1;
  return t;
}

class VocabParallel : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = make_backend(Device::cpu);
};

// One shard holding the whole (padded) vocabulary, i.e. tp = 1: max, sumexp, loss.
TEST_F(VocabParallel, OneShardIgnoresPaddedColumnsAndNegativeTargets) {
  for (DType dt : {DType::f32, DType::bf16, DType::f16})
    for (i64 N : {i64(1), i64(3), i64(17)})
      for (i64 Vp : kSizes)
        for (i64 vocab : {i64(1), Vp / 2 + 1, Vp}) {
          const std::string where = std::string(name(dt)) + " N=" + std::to_string(N) +
                                    " Vp=" + std::to_string(Vp) + " vocab=" + std::to_string(vocab);
          Vec logits = ref::randn(N * Vp, N * 31 + Vp + vocab, 2.0);
          for (i64 n = 0; n < N; ++n)
            for (i64 c = vocab; c < Vp; ++c) logits[n * Vp + c] = 30.0;  // would dominate if counted
          if (N > 1)
            for (i64 c = 0; c < vocab; ++c) logits[Vp + c] += 80.0;  // overflows a naive exp
          auto tgt = ref::rand_tokens(N, 0, std::int32_t(vocab), N + Vp);
          if (N > 2) tgt[2] = -1, tgt[N - 1] = -100;  // not targets
          const TokenView tv = ref::tokens(tgt, {N});
          Buffer bl = ref::make(*be, {N, Vp}, dt, logits);
          Buffer max = ref::filled(*be, {N}, DType::f32, NAN),
                 stats = ref::filled(*be, {2, N}, DType::f32, NAN);
          Buffer lse = ref::filled(*be, {N}, DType::f32, NAN),
                 losses = ref::filled(*be, {N}, DType::f32, -1.5);
          be->cross_entropy_shard_max(max, bl, 0, vocab);
          be->cross_entropy_shard_sumexp(stats, bl, max, tv, 0, vocab);
          be->cross_entropy_loss(lse, losses, max, stats, tv);
          // f32 from exactly-rounded logits: only f32 arithmetic error remains
          Vec want_max(N);
          for (i64 n = 0; n < N; ++n)
            want_max[n] = *std::max_element(logits.begin() + n * Vp, logits.begin() + n * Vp + vocab);
          EXPECT_TRUE(ref::equal(ref::read(max), want_max)) << "max " << where;
          const Vec st = ref::read(stats);
          for (i64 n = 0; n < N; ++n)
            EXPECT_EQ(st[N + n], tgt[n] < 0 ? 0.0 : logits[n * Vp + tgt[n]]) << "target logit " << where;
          EXPECT_TRUE(ref::near(ref::read(lse), ref::log_sum_exp(logits, N, Vp, vocab), 1e-6))
              << "lse " << where;
          Vec want = ref::cross_entropy(logits, tgt, N, Vp, vocab);
          for (double& w : want) w += -1.5;
          // (+ the f32 rounding of the sum with -1.5: 2^-24 * 1.5 absolute)
          EXPECT_TRUE(ref::near(ref::read(losses), want, 1e-5, 2e-7)) << "losses " << where;
        }
}

TEST_F(VocabParallel, ShardsCombineToTheSingleShardLossAndAccumulate) {
  const auto tgt = make_targets();
  const TokenView tv = ref::tokens(tgt, {kN});
  for (DType dt : {DType::f32, DType::bf16, DType::f16})
    for (int parts : {1, 2, 3, 4}) {
      const std::string where = std::string(name(dt)) + " parts=" + std::to_string(parts);
      Vec logits = make_logits(parts);
      const ref::Shards s = ref::split_columns(*be, logits, kN, kVp, parts, dt);
      logits = Vec(kN * kVp);  // the values the ops see, rounded to dt
      for (std::size_t r = 0; r < s.logits.size(); ++r) {
        const Vec part = ref::read(s.logits[r]);
        const i64 Vs = s.logits[r].tensor().shape.last();
        for (i64 n = 0; n < kN; ++n)
          for (i64 j = 0; j < Vs; ++j) logits[n * kVp + s.start[r] + j] = part[n * Vs + j];
      }
      const Vec want = ref::cross_entropy(logits, tgt, kN, kVp, kVocab);
      const Vec want_lse = ref::log_sum_exp(logits, kN, kVp, kVocab);

      Buffer lse = ref::filled(*be, {kN}, DType::f32, NAN), losses = ref::filled(*be, {kN}, DType::f32, 0.25);
      ref::sharded_loss(*be, s, tv, kVocab, lse, losses);
      EXPECT_TRUE(ref::near(ref::read(lse), want_lse, 1e-6)) << "lse " << where;
      Vec acc(kN);
      for (i64 n = 0; n < kN; ++n) acc[n] = 0.25 + want[n];
      // logits are exact in every dtype (read back above): only f32 arithmetic error remains
      EXPECT_TRUE(ref::near(ref::read(losses), acc, 1e-5)) << "losses " << where;
      for (i64 n : {3, 7, int(kN - 1)}) EXPECT_EQ(ref::read(losses)[n], 0.25) << "ignored row " << n << where;

      ref::sharded_loss(*be, s, tv, kVocab, lse, losses);  // a second micro-batch adds on top
      for (i64 n = 0; n < kN; ++n) acc[n] += want[n];
      EXPECT_TRUE(ref::near(ref::read(losses), acc, 1e-5)) << "accumulated losses " << where;
    }
}

TEST_F(VocabParallel, PaddingOnlyShardHasNoMassAndNoTarget) {
  const auto tgt = make_targets();
  Vec logits = make_logits(5);
  const ref::Shards s = ref::split_columns(*be, logits, kN, kVp, 4, DType::f32);
  ASSERT_EQ(s.start[3], 36);  // >= vocab: padding only
  Buffer max = ref::filled(*be, {kN}, DType::f32, 0), stats = ref::filled(*be, {2, kN}, DType::f32, NAN);
  be->cross_entropy_shard_max(max, s.logits[3], s.start[3], kVocab);
  EXPECT_TRUE(ref::equal(ref::read(max), Vec(kN, -INFINITY)));
  Buffer global = ref::filled(*be, {kN}, DType::f32, 1.0);
  be->cross_entropy_shard_sumexp(stats, s.logits[3], global, ref::tokens(tgt, {kN}), s.start[3], kVocab);
  EXPECT_TRUE(ref::equal(ref::read(stats), Vec(2 * kN, 0.0)));
}

TEST_F(VocabParallel, ShardedBackwardMatchesTheReferenceGradient) {
  const auto tgt = make_targets();
  const TokenView tv = ref::tokens(tgt, {kN});
  const double dloss = 0.3;
  for (int parts : {1, 2, 3, 4})
    for (bool in_place : {false, true}) {
      const std::string where = "parts=" + std::to_string(parts) + (in_place ? " in place" : "");
      Vec logits = make_logits(10 + parts);
      const ref::Shards s = ref::split_columns(*be, logits, kN, kVp, parts, DType::f32);
      Buffer lse(*be, {kN}, DType::f32), losses = ref::filled(*be, {kN}, DType::f32, 0);
      ref::sharded_loss(*be, s, tv, kVocab, lse, losses);
      const Vec want = ref::cross_entropy_grad(logits, tgt, kN, kVp, kVocab, dloss);
      for (std::size_t r = 0; r < s.logits.size(); ++r) {
        const Tensor x = s.logits[r];
        const i64 Vs = x.shape.last();
        Buffer d = ref::filled(*be, x.shape, DType::f32, NAN);
        const Tensor dx = in_place ? x : d.tensor();
        be->cross_entropy_shard_backward(dx, x, tv, s.start[r], kVocab, lse, float(dloss));
        const Vec got = ref::read(dx);
        Vec w(kN * Vs);
        for (i64 n = 0; n < kN; ++n)
          for (i64 j = 0; j < Vs; ++j) w[n * Vs + j] = want[n * kVp + s.start[r] + j];
        EXPECT_TRUE(ref::near(got, w, 1e-5, 1e-7)) << where << " shard " << r;
        for (i64 n = 0; n < kN; ++n)
          for (i64 j = 0; j < Vs; ++j)
            if (tgt[n] < 0 || s.start[r] + j >= kVocab) {
              ASSERT_EQ(got[n * Vs + j], 0.0) << where << " row " << n << " col " << s.start[r] + j;
            }
      }
    }
}

// bf16/f16 logits, gradient written in place: each softmax term is rounded once
// (1.5 u relative); the target column, p - 1, is rounded twice (p, then p - 1),
// each error at most u/2 of a magnitude <= 1.
TEST_F(VocabParallel, HalfPrecisionBackwardInPlace) {
  const auto tgt = make_targets();
  const TokenView tv = ref::tokens(tgt, {kN});
  const i64 Vs = kVp / 2;
  for (DType dt : {DType::bf16, DType::f16}) {
    Vec logits = make_logits(21);
    const ref::Shards s = ref::split_columns(*be, logits, kN, kVp, 2, dt);
    Buffer lse(*be, {kN}, DType::f32), losses = ref::filled(*be, {kN}, DType::f32, 0);
    ref::sharded_loss(*be, s, tv, kVocab, lse, losses);
    for (std::size_t r = 0; r < 2; ++r) {  // the rounded values the ops saw
      const Vec part = ref::read(s.logits[r]);
      for (i64 n = 0; n < kN; ++n)
        for (i64 j = 0; j < Vs; ++j) logits[n * kVp + s.start[r] + j] = part[n * Vs + j];
    }
    const Vec want = ref::cross_entropy_grad(logits, tgt, kN, kVp, kVocab, 1.0);
    Vec got(kN * kVp);
    for (std::size_t r = 0; r < 2; ++r) {
      be->cross_entropy_shard_backward(s.logits[r], s.logits[r], tv, s.start[r], kVocab, lse, 1.0f);
      const Vec g = ref::read(s.logits[r]);
      for (i64 n = 0; n < kN; ++n)
        for (i64 j = 0; j < Vs; ++j) got[n * kVp + s.start[r] + j] = g[n * Vs + j];
    }
    const double u = dt == DType::bf16 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -11);
    Vec got_soft, want_soft;
    for (i64 n = 0; n < kN; ++n)
      for (i64 c = 0; c < kVp; ++c) {
        const i64 k = n * kVp + c;
        if (c == tgt[n])
          EXPECT_NEAR(got[k], want[k], 0.75 * u) << name(dt) << " target column of row " << n;
        else
          got_soft.push_back(got[k]), want_soft.push_back(want[k]);
      }
    EXPECT_TRUE(ref::near(got_soft, want_soft, 1.5 * u, 1e-9)) << name(dt);
  }
}


}  // namespace
}  // namespace loom
