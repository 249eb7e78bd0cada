// tests/unit/test_mlm_masker.cpp — BERT's masking (io/mlm_masker.h): the 15% / 80-10-10
// rates within binomial bounds over many positions, targets exactly at the chosen
// positions, special tokens never chosen nor drawn, determinism, independence of the dp
// split, train and eval keyed apart, and the mask token of each tokenizer kind.
#include <algorithm>
#include <cmath>
#include <memory>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/rng.h"
#include "io/hf_tokenizer.h"
#include "io/mlm_masker.h"

using namespace loom;

namespace {

constexpr std::int64_t G = 64, T = 256, N = G * T;  // 16384 positions

MlmMasker bytes_masker() { return MlmMasker{.tokens = mlm_tokens(TokenizerInfo{}), .seed = 1337}; }

// (G, T + 1) windows of random bytes with an eod every 37th position.
std::vector<std::int32_t> windows() {
  std::vector<std::int32_t> w(std::size_t(G * (T + 1)));
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = i % 37 == 5 ? 256 : std::int32_t(rng_u64(7, 0, i) % 256);
  return w;
}

struct Masked {
  std::vector<std::int32_t> x = std::vector<std::int32_t>(N), y = std::vector<std::int32_t>(N);
};

Masked train(const MlmMasker& m, std::int64_t step, const std::vector<std::int32_t>& w) {
  Masked r;
  m.train(step, 0, G, T, w.data(), r.x.data(), r.y.data());
  return r;
}

// |count - n p| within 5 standard deviations of a binomial (n, p).
void expect_binomial(std::int64_t count, std::int64_t n, double p, const char* what) {
  const double sd = std::sqrt(double(n) * p * (1 - p));
  EXPECT_LT(std::abs(double(count) - double(n) * p), 5 * sd)
      << what << ": " << count << " of " << n << ", p " << p;
}

}  // namespace

TEST(MlmMasker, BytesAppendTheMaskAfterEod) {
  const MlmTokens t = mlm_tokens(TokenizerInfo{});
  EXPECT_EQ(t.mask, 257);
  EXPECT_EQ(t.vocab, 258);
  EXPECT_EQ(t.special, (std::vector<std::int32_t>{256, 257}));
}

TEST(MlmMasker, RatesTargetsAndSpecials) {
  const MlmMasker m = bytes_masker();
  const auto w = windows();
  const Masked r = train(m, 3, w);
  std::int64_t candidates = 0, chosen = 0, masked = 0, replaced = 0;
  for (std::int64_t i = 0; i < N; ++i) {
    const std::int32_t tok = w[std::size_t(i / T * (T + 1) + i % T)], x = r.x[std::size_t(i)],
                       y = r.y[std::size_t(i)];
    if (tok == 256) {  // eod: never a target, never changed
      EXPECT_EQ(y, -1);
      EXPECT_EQ(x, 256);
      continue;
    }
    ++candidates;
    if (y < 0) {
      EXPECT_EQ(x, tok) << "an unchosen position changed at " << i;
      continue;
    }
    EXPECT_EQ(y, tok) << "the target is the original token";
    ++chosen;
    if (x == m.tokens.mask)
      ++masked;
    else if (x != tok)
      ++replaced;
    EXPECT_TRUE(x == m.tokens.mask || (0 <= x && x < 256))
        << "replacement " << x << " is special or outside the vocab";
  }
  expect_binomial(chosen, candidates, 0.15, "chosen");
  expect_binomial(masked, chosen, 0.8, "mask token");
  // A random replacement equals the original with probability 1/256 (then it counts as unchanged).
  expect_binomial(replaced, chosen, 0.1 * 255.0 / 256.0, "random token");
  expect_binomial(chosen - masked - replaced, chosen, 0.1 + 0.1 / 256.0, "unchanged");
}

// Any dp split masks the same positions: slices keyed by their global sequence index.
TEST(MlmMasker, DeterministicAndTheSameForAnyDpSplit) {
  const MlmMasker m = bytes_masker();
  const auto w = windows();
  const Masked whole = train(m, 5, w), again = train(m, 5, w);
  EXPECT_EQ(whole.x, again.x);
  EXPECT_EQ(whole.y, again.y);
  for (std::int64_t dp : {2, 4, 8}) {
    Masked parts;
    const std::int64_t per = G / dp;
    for (std::int64_t r = 0; r < dp; ++r)
      m.train(5, r * per, per, T, w.data() + r * per * (T + 1), parts.x.data() + r * per * T,
              parts.y.data() + r * per * T);
    EXPECT_EQ(parts.x, whole.x) << "dp " << dp;
    EXPECT_EQ(parts.y, whole.y) << "dp " << dp;
  }
  // Another step, another seed and the evaluation key give other masks.
  EXPECT_NE(train(m, 6, w).y, whole.y);
  MlmMasker other = m;
  other.seed = 1338;
  EXPECT_NE(train(other, 5, w).y, whole.y);
  Masked ev;
  m.eval(5, 0, G, T, w.data(), ev.x.data(), ev.y.data());
  EXPECT_NE(ev.y, whole.y);
}

// A tokenizer.json names its mask token; without one, bert is refused naming the tokenizer.
TEST(MlmMasker, TokenizerMaskByName) {
  auto json = [](const char* extra) {
    return std::string(R"({"version": "1.0", "added_tokens": [
      {"id": 4, "content": "<|endoftext|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})") +
           extra + R"(],
      "normalizer": null,
      "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
      "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
      "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "Ġ": 3}, "merges": []}})";
  };
  const char* with_mask =
      R"(, {"id": 5, "content": "<mask>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
        {"id": 6, "content": "[CLS]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})";
  TokenizerInfo info;
  info.name = "hf:tok.json";
  info.hf = std::make_shared<const HfTokenizer>(HfTokenizer::from_json(json(with_mask)));
  info.vocab_size = info.hf->vocab_size();
  info.eod = *info.hf->eod();
  const MlmTokens t = mlm_tokens(info);
  EXPECT_EQ(t.mask, 5);
  EXPECT_EQ(t.vocab, 7);
  EXPECT_EQ(t.special, (std::vector<std::int32_t>{4, 5, 6}));
  // Random replacements are drawn from the ordinary ids 0..3 only.
  const MlmMasker m{.tokens = t, .seed = 1};
  std::vector<std::int32_t> w(std::size_t(G * (T + 1)), 2), x(static_cast<std::size_t>(N)), y(x);
  m.train(0, 0, G, T, w.data(), x.data(), y.data());
  EXPECT_TRUE(std::all_of(x.begin(), x.end(), [](std::int32_t v) { return v == 5 || (0 <= v && v < 4); }));
  EXPECT_TRUE(std::any_of(x.begin(), x.end(), [](std::int32_t v) { return v != 5 && v != 2; }))
      << "no replacement";

  info.hf = std::make_shared<const HfTokenizer>(HfTokenizer::from_json(json("")));
  try {
    (void)mlm_tokens(info);
    FAIL() << "a tokenizer without a mask token was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("neither [MASK] nor <mask>"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("hf:tok.json"), std::string::npos) << e.what();
  }
}
