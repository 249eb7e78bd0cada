// tests/unit/test_span_corruption.cpp — T5's span corruption (io/span_corruption.h): the
// lengths T5's random_spans_helper gives (its published 512 -> 568 / 114), corruption as a
// bijection (encoder input + decoder target restore the original text exactly), the
// decoder input is the target shifted right, the noise density and mean span length within
// tolerance over many sequences, determinism, a dp slice corrupted as the whole batch,
// train and eval keyed apart, and the sentinel ids of each tokenizer kind.
#include <algorithm>
#include <cmath>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/rng.h"
#include "io/span_corruption.h"

using namespace loom;

namespace {

constexpr std::int64_t G = 64, Te = 128;

SpanCorruptor corruptor() {
  const SpanLayout l = span_layout(Te);
  return SpanCorruptor{.tokens = span_tokens(TokenizerInfo{}, l.spans), .layout = l, .seed = 1337};
}

// (G, stride) windows of random bytes (stride > L: the loader's extra column is ignored).
std::vector<std::int32_t> windows(std::int64_t stride) {
  std::vector<std::int32_t> w(std::size_t(G * stride));
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = std::int32_t(rng_u64(7, 0, i) % 256);
  return w;
}

bool is_sentinel(const SpanTokens& t, std::int32_t id) {
  return std::find(t.sentinels.begin(), t.sentinels.end(), id) != t.sentinels.end();
}

// The original text from the encoder input and the decoder target: each sentinel in the
// encoder stands for the tokens after the same sentinel in the target.
std::vector<std::int32_t> restore(const SpanTokens& t, const std::int32_t* enc, std::int64_t Te_,
                                  const std::int32_t* tgt, std::int64_t Td) {
  std::vector<std::int32_t> out;
  std::int64_t e_end = Te_;
  while (e_end > 0 && enc[e_end - 1] == t.eod) --e_end;  // the eod and its fill
  for (std::int64_t e = 0; e < e_end; ++e) {
    if (!is_sentinel(t, enc[e])) {
      out.push_back(enc[e]);
      continue;
    }
    const std::int64_t at = std::find(tgt, tgt + Td, enc[e]) - tgt;
    EXPECT_LT(at, Td) << "sentinel " << enc[e] << " missing from the target";
    for (std::int64_t d = at + 1; d < Td && !is_sentinel(t, tgt[d]) && tgt[d] != t.eod; ++d)
      out.push_back(tgt[d]);
  }
  return out;
}

}  // namespace

TEST(SpanCorruption, LengthsAreT5s) {
  const SpanLayout a = span_layout(512);  // T5's published setting: inputs 512 -> tokens 568, targets 114
  EXPECT_EQ(a.raw, 568);
  EXPECT_EQ(a.dec, 114);
  EXPECT_EQ(a.noise, 85);
  EXPECT_EQ(a.spans, 28);
  const SpanLayout b = span_layout(128);
  EXPECT_EQ(b.raw, 141);
  EXPECT_EQ(b.dec, 29);
  EXPECT_EQ(b.row(), 128 + 29);
  const SpanLayout c = span_layout(64);  // L 70: 10.5 noise tokens round half to even, as Python's round
  EXPECT_EQ(c.raw, 70);
  EXPECT_EQ(c.noise, 10);
  EXPECT_EQ(c.spans, 3);
  EXPECT_EQ(c.dec, 14);
  EXPECT_THROW(span_layout(2), Error);
  EXPECT_THROW(span_layout(128, 1.5), Error);
}

TEST(SpanCorruption, IsABijectionBackToTheText) {
  const SpanCorruptor c = corruptor();
  const SpanLayout& l = c.layout;
  const std::int64_t stride = l.raw + 3, R = l.row();
  const auto w = windows(stride);
  std::vector<std::int32_t> x(std::size_t(G * R)), y(std::size_t(G * R));
  c.train(5, 0, G, w.data(), stride, x.data(), y.data());
  for (std::int64_t g = 0; g < G; ++g) {
    const std::int32_t* xe = &x[std::size_t(g * R)];
    const std::int32_t* ye = &y[std::size_t(g * R)];
    const std::int32_t *xd = xe + l.enc, *yd = ye + l.enc;
    for (std::int64_t t = 0; t < l.enc; ++t) ASSERT_EQ(ye[t], -1) << "no target in the encoder part";
    EXPECT_EQ(xd[0], c.tokens.eod) << "the decoder starts with the start id";
    for (std::int64_t t = 1; t < l.dec; ++t)
      EXPECT_EQ(xd[t], yd[t - 1]) << "decoder input = target shifted right";
    EXPECT_EQ(yd[l.dec - 1], c.tokens.eod);
    EXPECT_EQ(yd[0], c.tokens.sentinels[0]) << "the target starts with sentinel 0";
    const std::vector<std::int32_t> text(w.begin() + g * stride, w.begin() + g * stride + l.raw);
    ASSERT_EQ(restore(c.tokens, xe, l.enc, yd, l.dec), text) << "sequence " << g;
  }
}

TEST(SpanCorruption, DensityAndSpanLengthWithinTolerance) {
  const SpanCorruptor c = corruptor();
  const SpanLayout& l = c.layout;
  // Per sequence the counts are exact (T5's fixed counts); the placement is random: every
  // position is noise with probability noise / L on average over sequences.
  std::vector<std::int64_t> hits(std::size_t(l.raw), 0);
  const std::int64_t n = 2000;
  std::int64_t spans = 0, noise = 0;
  for (std::int64_t g = 0; g < n; ++g) {
    const auto m = c.noise_mask(c.seed ^ kSpanTrainKey, 3, g);
    ASSERT_EQ(m.size(), std::size_t(l.raw));
    EXPECT_EQ(m[0], 0) << "a sequence starts with non-noise";
    EXPECT_EQ(m.back(), 1) << "and ends with noise";
    for (std::size_t t = 0; t < m.size(); ++t) {
      noise += m[t];
      hits[t] += m[t];
      if (m[t] && (t == 0 || !m[t - 1])) ++spans;
    }
  }
  EXPECT_EQ(noise, n * l.noise);
  EXPECT_EQ(spans, n * l.spans);
  EXPECT_NEAR(double(noise) / double(n * l.raw), 0.15, 0.005);
  EXPECT_NEAR(double(noise) / double(spans), 3.0, 0.01);
  // Interior positions (away from the forced first / last) are noise at about the density:
  // within 5 binomial standard deviations.
  const double p = double(l.noise) / double(l.raw), sd = std::sqrt(double(n) * p * (1 - p));
  for (std::int64_t t = 10; t < l.raw - 10; ++t)
    EXPECT_LT(std::abs(double(hits[std::size_t(t)]) - double(n) * p), 5 * sd) << "position " << t;
}

TEST(SpanCorruption, DeterministicAndIndependentOfTheDpSlice) {
  const SpanCorruptor c = corruptor();
  const std::int64_t stride = c.layout.raw, R = c.layout.row();
  const auto w = windows(stride);
  std::vector<std::int32_t> x(std::size_t(G * R)), y(x.size()), x2(x.size()), y2(x.size());
  c.train(9, 0, G, w.data(), stride, x.data(), y.data());
  c.train(9, 0, G, w.data(), stride, x2.data(), y2.data());
  EXPECT_EQ(x, x2);
  EXPECT_EQ(y, y2);
  // Four dp ranks, each corrupting its quarter of the global batch from its own windows.
  const std::int64_t q = G / 4;
  for (int r = 0; r < 4; ++r)
    c.train(9, r * q, q, w.data() + r * q * stride, stride, x2.data() + r * q * R, y2.data() + r * q * R);
  EXPECT_EQ(x, x2);
  EXPECT_EQ(y, y2);
  // Another step, and evaluation, corrupt differently.
  c.train(10, 0, G, w.data(), stride, x2.data(), y2.data());
  EXPECT_NE(x, x2);
  c.eval(9, 0, G, w.data(), stride, x2.data(), y2.data());
  EXPECT_NE(x, x2);
}

TEST(SpanCorruption, SentinelsOfTheByteTokenizer) {
  const SpanTokens t = span_tokens(TokenizerInfo{}, 7);
  EXPECT_EQ(t.sentinels.front(), 257);
  EXPECT_EQ(t.sentinels.back(), 263);
  EXPECT_EQ(t.vocab, 264);
  EXPECT_EQ(t.eod, 256);
}
