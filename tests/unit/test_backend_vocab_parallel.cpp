// tests/unit/test_backend_vocab_parallel.cpp — the vocabulary-parallel cross-entropy
// ops: stats of every shard, combined as the model combines them across tensor-
// parallel ranks, give the single-shard loss; the sharded backward with the combined
// log-sum-exp gives the single-shard gradient, column for column. The reference is
// a naive double-precision cross-entropy over the real (unpadded) vocabulary.
#include <cmath>

#include <gtest/gtest.h>

#include "backend/registry.h"
#include "core/rng.h"

using namespace loom;

TEST(VocabParallelCrossEntropy, ShardsCombineToTheWholeLossAndGradient) {
  auto be = make_backend(Device::cpu);
  const std::int64_t N = 5, vocab = 37, Vp = 48;
  std::vector<float> logits(std::size_t(N * Vp));
  fill_normal(logits.data(), N * Vp, 3, 0, 0, 0.0f, 2.0f);
  std::vector<std::int32_t> targets = {0, 36, 11, 24, 5};
  const TokenView tv{targets.data(), Shape{N}, Device::cpu};
  const float dloss = 0.3f;

  // Reference in double.
  std::vector<double> loss(N), lse(N);
  for (std::int64_t i = 0; i < N; ++i) {
    double m = -1e300, s = 0;
    for (std::int64_t j = 0; j < vocab; ++j) m = std::max(m, double(logits[i * Vp + j]));
    for (std::int64_t j = 0; j < vocab; ++j) s += std::exp(double(logits[i * Vp + j]) - m);
    lse[i] = m + std::log(s);
    loss[i] = lse[i] - logits[i * Vp + targets[i]];
  }

  for (int parts : {1, 2, 3, 4}) {  // 4 shards of 12: the last holds only padding
    const std::int64_t Vs = Vp / parts;
    std::vector<double> M(N, -INFINITY), S(N, 0), T(N, 0);
    std::vector<std::vector<float>> stats(parts, std::vector<float>(std::size_t(N * 3)));
    std::vector<std::vector<float>> shard(parts, std::vector<float>(std::size_t(N * Vs)));
    for (int r = 0; r < parts; ++r) {
      for (std::int64_t i = 0; i < N; ++i)
        for (std::int64_t j = 0; j < Vs; ++j) shard[r][i * Vs + j] = logits[i * Vp + r * Vs + j];
      be->cross_entropy_shard_stats(host_tensor(stats[r].data(), Shape{N, 3}), host_tensor(shard[r].data(), Shape{N, Vs}),
                                    tv, r * Vs, vocab);
      for (std::int64_t i = 0; i < N; ++i) M[i] = std::max(M[i], double(stats[r][i * 3]));
    }
    for (int r = 0; r < parts; ++r)
      for (std::int64_t i = 0; i < N; ++i) {
        if (stats[r][i * 3 + 1] > 0) S[i] += stats[r][i * 3 + 1] * std::exp(stats[r][i * 3] - M[i]);
        T[i] += stats[r][i * 3 + 2];
      }
    std::vector<float> lse_f(N);
    for (std::int64_t i = 0; i < N; ++i) {
      lse_f[i] = float(M[i] + std::log(S[i]));
      EXPECT_NEAR(M[i] + std::log(S[i]) - T[i], loss[i], 1e-5 * std::max(1.0, loss[i])) << "parts " << parts;
    }
    for (int r = 0; r < parts; ++r) {
      std::vector<float> d(std::size_t(N * Vs), NAN);
      be->cross_entropy_shard_backward(host_tensor(d.data(), Shape{N, Vs}), host_tensor(shard[r].data(), Shape{N, Vs}),
                                       tv, r * Vs, vocab, host_tensor(lse_f.data(), Shape{N}), dloss);
      for (std::int64_t i = 0; i < N; ++i)
        for (std::int64_t j = 0; j < Vs; ++j) {
          const std::int64_t g = r * Vs + j;
          const double want = g < vocab ? dloss * (std::exp(logits[i * Vp + g] - lse[i]) - (g == targets[i])) : 0.0;
          ASSERT_NEAR(d[i * Vs + j], want, 1e-6) << "parts " << parts << " row " << i << " col " << g;
        }
    }
  }
}
