// tests/unit/test_rng.cpp — the counter-based RNG (core/rng.h).
//
// philox4x32 is checked against the Random123 known-answer vectors (kat_vectors,
// Philox-4x32-10). The distributions are checked for what layout invariance
// needs: a value depends only on (seed, stream, index), so a shard [a, b) filled
// on its own equals the same slice of the whole tensor; different seeds/streams
// give different numbers; and sample moments sit within a few standard errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <set>
#include <vector>

#include "core/rng.h"

namespace loom {
namespace {

using Block = std::array<std::uint32_t, 4>;

TEST(Philox, KnownAnswerZero) {
  EXPECT_EQ(philox4x32({0, 0, 0, 0}, {0, 0}), (Block{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
}

TEST(Philox, KnownAnswerAllOnes) {
  const std::uint32_t f = 0xffffffffu;
  EXPECT_EQ(philox4x32({f, f, f, f}, {f, f}), (Block{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
}

TEST(Philox, KnownAnswerPi) {
  EXPECT_EQ(philox4x32({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}),
            (Block{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(Philox, EveryCounterWordAndKeyWordMatters) {
  const Block base = philox4x32({1, 2, 3, 4}, {5, 6});
  for (int w = 0; w < 4; ++w) {
    Block c{1, 2, 3, 4};
    c[w] ^= 1u << 17;
    EXPECT_NE(philox4x32(c, {5, 6}), base) << "counter word " << w;
  }
  EXPECT_NE(philox4x32({1, 2, 3, 4}, {5 ^ 1u, 6}), base);
  EXPECT_NE(philox4x32({1, 2, 3, 4}, {5, 6 ^ 1u}), base);
}

TEST(Rng, SameCoordinatesSameValue) {
  const std::uint64_t idx[] = {0, 1, 7, 1u << 20, (1ull << 32) + 3, ~0ull};
  for (std::uint64_t i : idx) {
    const float u = rng_uniform(42, 3, i), n = rng_normal(42, 3, i);
    const std::uint64_t w = rng_u64(42, 3, i);
    for (int rep = 0; rep < 3; ++rep) {
      EXPECT_EQ(rng_uniform(42, 3, i), u);
      EXPECT_EQ(rng_normal(42, 3, i), n);
      EXPECT_EQ(rng_u64(42, 3, i), w);
    }
  }
}

TEST(Rng, SeedStreamAndHighBitsOfIndexChangeTheValue) {
  // Count collisions over many indices: with 24+ random bits, equal values are rare.
  int same_seed = 0, same_stream = 0, same_hi_index = 0, same_hi_seed = 0, same_hi_stream = 0;
  const int n = 2000;
  for (int i = 0; i < n; ++i) {
    const std::uint64_t w = rng_u64(7, 11, i);
    same_seed += rng_u64(8, 11, i) == w;
    same_stream += rng_u64(7, 12, i) == w;
    same_hi_index += rng_u64(7, 11, i + (1ull << 32)) == w;
    same_hi_seed += rng_u64(7 + (1ull << 32), 11, i) == w;
    same_hi_stream += rng_u64(7, 11 + (1ull << 32), i) == w;
  }
  EXPECT_EQ(same_seed, 0);
  EXPECT_EQ(same_stream, 0);
  EXPECT_EQ(same_hi_index, 0);
  EXPECT_EQ(same_hi_seed, 0);
  EXPECT_EQ(same_hi_stream, 0);
  // Neighbouring indices give distinct values too.
  std::set<std::uint64_t> seen;
  for (int i = 0; i < n; ++i) seen.insert(rng_u64(1, 1, i));
  EXPECT_EQ(int(seen.size()), n);
}

TEST(Rng, ShardsEqualTheSliceOfTheWhole) {
  const std::int64_t n = 10007;
  std::vector<float> whole_n(n), whole_u(n);
  fill_normal(whole_n.data(), n, 99, 5, 0, 0.25f, 0.02f);
  fill_uniform(whole_u.data(), n, 99, 5, 0, -0.5f, 2.0f);
  const std::pair<std::int64_t, std::int64_t> shards[] = {{0, 1},        {1, 17},      {17, 3333},
                                                          {3333, 10007}, {5000, 5001}, {123, 9876}};
  for (auto [a, b] : shards) {
    std::vector<float> part_n(b - a), part_u(b - a);
    fill_normal(part_n.data(), b - a, 99, 5, a, 0.25f, 0.02f);
    fill_uniform(part_u.data(), b - a, 99, 5, a, -0.5f, 2.0f);
    EXPECT_TRUE(std::equal(part_n.begin(), part_n.end(), whole_n.begin() + a)) << a << ".." << b;
    EXPECT_TRUE(std::equal(part_u.begin(), part_u.end(), whole_u.begin() + a)) << a << ".." << b;
  }
  // And fill_* is exactly mean + std * rng_*(index).
  for (std::int64_t i : {0, 1, 5000, 10006}) {
    EXPECT_EQ(whole_n[i], 0.25f + 0.02f * rng_normal(99, 5, i));
    EXPECT_EQ(whole_u[i], -0.5f + 2.5f * rng_uniform(99, 5, i));
  }
}

TEST(Rng, FillsDifferAcrossStreamsAndSeeds) {
  const int n = 1000;
  std::vector<float> a(n), b(n), c(n);
  fill_normal(a.data(), n, 1, 0, 0, 0, 1);
  fill_normal(b.data(), n, 1, 1, 0, 0, 1);
  fill_normal(c.data(), n, 2, 0, 0, 0, 1);
  int ab = 0, ac = 0;
  for (int i = 0; i < n; ++i) {
    ab += a[i] == b[i];
    ac += a[i] == c[i];
  }
  EXPECT_EQ(ab, 0);
  EXPECT_EQ(ac, 0);
}

TEST(Rng, NormalMoments) {
  const std::int64_t n = 100000;
  std::vector<float> x(n);
  fill_normal(x.data(), n, 2024, 17, 1000, 0.0f, 1.0f);
  double s1 = 0, s2 = 0, s3 = 0, s4 = 0;
  std::int64_t beyond2 = 0;
  for (float v : x) {
    ASSERT_TRUE(std::isfinite(v));
    s1 += v;
    s2 += double(v) * v;
    s3 += double(v) * v * v;
    s4 += double(v) * v * v * v;
    beyond2 += std::fabs(v) > 2;
  }
  const double mean = s1 / n, var = s2 / n - mean * mean;
  // standard errors: mean 1/sqrt(n) = 0.0032; var sqrt(2/n) = 0.0045; 5 sigma bounds
  EXPECT_NEAR(mean, 0.0, 0.016);
  EXPECT_NEAR(std::sqrt(var), 1.0, 0.012);
  EXPECT_NEAR(s3 / n, 0.0, 5 * std::sqrt(15.0 / n));  // skewness
  EXPECT_NEAR(s4 / n, 3.0, 5 * std::sqrt(96.0 / n));  // kurtosis
  // P(|z| > 2) = 0.0455
  EXPECT_NEAR(double(beyond2) / n, 0.0455, 5 * std::sqrt(0.0455 * 0.9545 / n));
  // mean/std arguments are applied
  std::vector<float> y(1000);
  fill_normal(y.data(), 1000, 2024, 17, 1000, 3.0f, 0.5f);
  for (int i = 0; i < 1000; ++i) EXPECT_FLOAT_EQ(y[i], 3.0f + 0.5f * x[i]);
}

TEST(Rng, UniformRangeAndMoments) {
  const std::int64_t n = 100000;
  std::vector<float> x(n);
  fill_uniform(x.data(), n, 77, 4, 0, 0.0f, 1.0f);
  double s1 = 0, s2 = 0;
  int bins[10] = {};
  for (float v : x) {
    ASSERT_GE(v, 0.0f);
    ASSERT_LT(v, 1.0f);
    s1 += v;
    s2 += double(v) * v;
    ++bins[std::min(9, int(v * 10))];
  }
  const double mean = s1 / n, var = s2 / n - mean * mean;
  EXPECT_NEAR(mean, 0.5, 5 * std::sqrt(1.0 / 12 / n));
  EXPECT_NEAR(var, 1.0 / 12, 5 * std::sqrt(1.0 / 180 / n));
  for (int b = 0; b < 10; ++b) EXPECT_NEAR(bins[b], n / 10, 5 * std::sqrt(n * 0.1 * 0.9)) << "bin " << b;
  // direct calls stay in [0, 1) too, including extreme indices
  for (std::uint64_t i : {0ull, ~0ull, 1ull << 63}) {
    const float u = rng_uniform(0, 0, i);
    EXPECT_GE(u, 0.0f);
    EXPECT_LT(u, 1.0f);
  }
}

}  // namespace
}  // namespace loom
