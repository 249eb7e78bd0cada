// tests/unit/test_io_blend.cpp — dataset blends (io/data_loader.h, docs/data-format.md "Blends").
//
// Source k holds tokens base_k + position (every source the same vocabulary), so a
// row's first token names its source and its window. Checked: source frequencies
// match the weights (chi-square below the 99.9% critical value; swapped weights fail
// it by far); (seed, step, seq) alone fixes source and window, so a dp slice equals
// that slice of the full batch; a single path reads exactly the old windows; bad
// specs (odd count, bad or non-positive weight, missing file, vocabulary or
// tokenizer mismatch) are errors naming the problem.
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "io/data_loader.h"
#include "io/token_dataset.h"
#include "temp_dir.h"

namespace loom {
namespace {

using test::TempDir;

constexpr std::int64_t kT = 8;
constexpr std::int64_t kBase = 10000;  // source k: tokens k * kBase + position

std::string write_source(const TempDir& dir, int k, std::int64_t n, std::int64_t vocab = 4 * kBase,
                         const std::string& tokenizer = "positions") {
  const std::string path = dir.file(fmt::format("src{}-{}-{}.h5", k, vocab, tokenizer));
  std::vector<std::int32_t> train(n), val(n);
  std::iota(train.begin(), train.end(), std::int32_t(k * kBase));
  std::iota(val.begin(), val.end(), std::int32_t(k * kBase));
  DatasetMeta meta;
  meta.tokenizer = tokenizer;
  meta.vocab_size = vocab;
  meta.eod_token = 0;
  write_token_dataset(path, train, std::vector<std::uint64_t>{0}, val, std::vector<std::uint64_t>{0}, meta);
  return path;
}

std::vector<std::int32_t> batch(const DataLoader& l, std::int64_t step, std::int64_t first, std::int64_t n) {
  std::vector<std::int32_t> out(n * l.row_len(), -1);
  l.train_batch(step, first, n, out.data());
  return out;
}

double chi_square(const std::vector<std::int64_t>& counts, const std::vector<double>& p) {
  std::int64_t n = 0;
  for (auto c : counts) n += c;
  double x2 = 0;
  for (std::size_t k = 0; k < counts.size(); ++k) {
    const double e = double(n) * p[k];
    x2 += (double(counts[k]) - e) * (double(counts[k]) - e) / e;
  }
  return x2;
}

void expect_error(const std::string& spec, const std::vector<std::string>& parts) {
  try {
    const Blend b = open_blend(spec, "train");
    const DataLoader l(b, kT, 1);
    ADD_FAILURE() << "no error for '" << spec << "'";
  } catch (const Error& e) {
    const std::string what = e.what();
    for (const std::string& p : parts)
      EXPECT_NE(what.find(p), std::string::npos) << what << "\n lacks: " << p;
  }
}

TEST(Blend, SourcesAreDrawnAtTheirWeights) {
  TempDir dir;
  const std::int64_t sizes[3] = {500, 900, 300};
  std::string spec;
  const double w[3] = {5, 3, 2};  // unnormalised on purpose
  for (int k = 0; k < 3; ++k) spec += fmt::format("{} {} ", w[k], write_source(dir, k, sizes[k]));
  const Blend b = open_blend(spec, "train");
  ASSERT_EQ(b.sets.size(), 3u);
  EXPECT_DOUBLE_EQ(b.weights[0], 0.5);
  const DataLoader l(b, kT, 1234);
  ASSERT_EQ(l.sources(), 3);
  const std::int64_t steps = 200, G = 64;
  std::vector<std::int64_t> counts(3, 0);
  for (std::int64_t s = 0; s < steps; ++s) {
    const auto rows = batch(l, s, 0, G);
    for (std::int64_t i = 0; i < G; ++i) {
      const std::int32_t first = rows[i * (kT + 1)];
      const std::int64_t k = first / kBase, start = first % kBase;
      ASSERT_EQ(k, l.train_source(s, i));
      ASSERT_EQ(start, l.train_window(s, i));
      ASSERT_LT(start, sizes[k] - kT);
      for (std::int64_t t = 0; t <= kT; ++t) ASSERT_EQ(rows[i * (kT + 1) + t], first + t);
      ++counts[k];
    }
  }
  // 99.9% critical value of chi-square with 2 degrees of freedom: 13.816.
  EXPECT_LT(chi_square(counts, {0.5, 0.3, 0.2}), 13.816);
  EXPECT_GT(chi_square(counts, {0.2, 0.3, 0.5}), 1000.0);  // the test can tell the weights apart
  EXPECT_GT(chi_square(counts, {0.45, 0.35, 0.2}), 13.816);
}

TEST(Blend, SourceAndWindowArePureFunctionsOfSeedStepSequence) {
  TempDir dir;
  const std::string spec =
      fmt::format("0.25 {} 0.75 {}", write_source(dir, 0, 400), write_source(dir, 1, 700));
  const Blend a = open_blend(spec, "train"), b = open_blend(spec, "train");
  const DataLoader la(a, kT, 7), lb(b, kT, 7), other(a, kT, 8);
  const std::int64_t G = 32;
  bool seeds_differ = false;
  for (std::int64_t s : {0, 1, 5, 1000}) {
    const auto full = batch(la, s, 0, G);
    EXPECT_EQ(full, batch(lb, s, 0, G));  // an independent loader
    EXPECT_EQ(full, batch(la, s, 0, G));  // a repeated call (a resumed run)
    seeds_differ |= full != batch(other, s, 0, G);
    for (std::int64_t dp : {2, 4, 8}) {  // every data-parallel slice is that slice of the global batch
      for (std::int64_t r = 0; r < dp; ++r) {
        const std::int64_t n = G / dp;
        const auto part = batch(la, s, r * n, n);
        EXPECT_TRUE(std::equal(part.begin(), part.end(), full.begin() + r * n * (kT + 1)))
            << s << " " << dp << " " << r;
      }
    }
  }
  EXPECT_TRUE(seeds_differ);
  // Both sources occur, and the source draw is independent of the window draw.
  std::int64_t ones = 0;
  for (std::int64_t i = 0; i < 1000; ++i) ones += la.train_source(3, i);
  EXPECT_GT(ones, 650);
  EXPECT_LT(ones, 850);
}

TEST(Blend, SinglePathReadsTheOldWindows) {
  TempDir dir;
  const std::string path = write_source(dir, 1, 600);
  const Blend b = open_blend(path, "train");
  ASSERT_EQ(b.sets.size(), 1u);
  const TokenDataset d = TokenDataset::open(path, "train");
  const DataLoader blend(b, kT, 99), plain(d, kT, 99);
  for (std::int64_t s = 0; s < 20; ++s) {
    EXPECT_EQ(batch(blend, s, 0, 16), batch(plain, s, 0, 16));
    for (std::int64_t i = 0; i < 16; ++i) {
      EXPECT_EQ(blend.train_source(s, i), 0);
      EXPECT_EQ(blend.train_window(s, i),
                std::int64_t(rng_u64(99, std::uint64_t(s), std::uint64_t(i)) % (600 - kT)));
    }
  }
  // A one-source "blend" with a weight reads the same windows too.
  const Blend w = open_blend("3 " + path, "train");
  EXPECT_EQ(batch(DataLoader(w, kT, 99), 4, 0, 16), batch(plain, 4, 0, 16));
}

TEST(Blend, BadSpecsAreErrors) {
  TempDir dir;
  const std::string a = write_source(dir, 0, 300), b = write_source(dir, 1, 300);
  expect_error(fmt::format("0.5 {} {}", a, b), {"3 words", "weight-path pairs"});
  expect_error(fmt::format("0 {} 1 {}", a, b), {"weight of", "must be > 0"});
  expect_error(fmt::format("-1 {} 1 {}", a, b), {"must be > 0"});
  expect_error(fmt::format("x {} 1 {}", a, b), {"weight 'x'", "not a number"});
  expect_error(fmt::format("1 {} 1 {}", a, dir.file("missing.h5")), {"missing.h5"});
  expect_error("", {"data.train is empty"});
  const std::string big = write_source(dir, 2, 300, 5 * kBase);
  expect_error(fmt::format("1 {} 1 {}", a, big), {a, big, "differ"});
  const std::string bpe = write_source(dir, 2, 300, 4 * kBase, "bpe");
  expect_error(fmt::format("1 {} 1 {}", a, bpe), {a, bpe, "tokenizer 'bpe'"});
  const std::string small = write_source(dir, 3, kT);
  expect_error(fmt::format("1 {} 1 {}", a, small), {small, "too small"});
}

}  // namespace
}  // namespace loom
