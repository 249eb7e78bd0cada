// tests/unit/test_io_loader.cpp — DataLoader (io/data_loader.h): deterministic windows.
//
// The dataset's tokens are their own positions (token[i] = i, vocab large enough),
// so a row's first token is its window start and every row must read
// start, start+1, ..., start+T. Checked: the same (seed, step) gives the same batch
// from independent loaders and repeated calls; steps and seeds differ; a dp slice
// [first_seq, first_seq + count) equals that slice of the full batch; windows stay
// in range; eval windows are consecutive; a split shorter than T + 1 is an error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <numeric>
#include <set>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "temp_dir.h"
#include "io/data_loader.h"
#include "io/token_dataset.h"

namespace loom {
namespace {

namespace fs = std::filesystem;

using test::TempDir;

// train: tokens 0..n_train-1, val: tokens 0..n_val-1 (token = position).
std::string write_positions(const TempDir& dir, std::int64_t n_train, std::int64_t n_val) {
  const std::string path = dir.file(fmt::format("pos-{}-{}.h5", n_train, n_val));
  std::vector<std::int32_t> train(n_train), val(n_val);
  std::iota(train.begin(), train.end(), 0);
  std::iota(val.begin(), val.end(), 0);
  DatasetMeta meta;
  meta.tokenizer = "positions";
  meta.vocab_size = std::max<std::int64_t>({n_train, n_val, 2});
  meta.eod_token = 0;
  write_token_dataset(path, train, std::vector<std::uint64_t>{0}, val, std::vector<std::uint64_t>{0}, meta);
  return path;
}

constexpr std::int64_t kT = 16;

std::vector<std::int32_t> train_batch(const DataLoader& l, std::int64_t step, std::int64_t first, std::int64_t n) {
  std::vector<std::int32_t> out(n * l.row_len(), -1);
  l.train_batch(step, first, n, out.data());
  return out;
}

void expect_rows_are_windows(const std::vector<std::int32_t>& rows, std::int64_t size) {
  for (std::size_t r = 0; r < rows.size() / (kT + 1); ++r) {
    const std::int32_t start = rows[r * (kT + 1)];
    ASSERT_GE(start, 0);
    ASSERT_LT(start, size - kT);  // the last window ends exactly at the split's end
    for (std::int64_t t = 0; t <= kT; ++t) ASSERT_EQ(rows[r * (kT + 1) + t], start + t);
  }
}

TEST(DataLoader, SameSeedAndStepGiveTheSameBatch) {
  TempDir dir;
  const std::string path = write_positions(dir, 1000, 200);
  const TokenDataset a = TokenDataset::open(path, "train");
  const TokenDataset b = TokenDataset::open(path, "train", TokenReadOptions{.max_resident_bytes = 0});
  const DataLoader la(a, kT, 1234), lb(b, kT, 1234);
  for (std::int64_t step : {0, 1, 7, 100000}) {
    const auto x = train_batch(la, step, 0, 32);
    EXPECT_EQ(x, train_batch(lb, step, 0, 32)) << "independent loaders (resident vs streamed), step " << step;
    EXPECT_EQ(x, train_batch(la, step, 0, 32)) << "repeated call, step " << step;
    expect_rows_are_windows(x, a.size());
  }
  EXPECT_NE(train_batch(la, 0, 0, 32), train_batch(la, 1, 0, 32));
  const DataLoader other_seed(a, kT, 1235);
  EXPECT_NE(train_batch(la, 0, 0, 32), train_batch(other_seed, 0, 0, 32));
}

TEST(DataLoader, WindowIsTheCounterBasedFormula) {
  TempDir dir;
  const std::string path = write_positions(dir, 1000, 200);
  const TokenDataset d = TokenDataset::open(path, "train");
  const DataLoader l(d, kT, 42);
  const auto rows = train_batch(l, 5, 3, 4);
  for (std::int64_t i = 0; i < 4; ++i) {
    const auto expect = std::int64_t(rng_u64(42, 5, std::uint64_t(3 + i)) % std::uint64_t(d.size() - kT));
    EXPECT_EQ(rows[i * (kT + 1)], expect);
    EXPECT_EQ(l.train_window(5, 3 + i), expect);
  }
}

TEST(DataLoader, DataParallelSlicesEqualTheFullBatch) {
  TempDir dir;
  const std::string path = write_positions(dir, 1000, 200);
  const TokenDataset d = TokenDataset::open(path, "train");
  const DataLoader l(d, kT, 7);
  constexpr std::int64_t G = 24;
  for (std::int64_t step : {0, 3}) {
    const auto full = train_batch(l, step, 0, G);
    for (std::int64_t dp : {1, 2, 3, 4, 8}) {
      std::vector<std::int32_t> joined;
      for (std::int64_t r = 0; r < dp; ++r) {
        const auto part = train_batch(l, step, r * G / dp, (r + 1) * G / dp - r * G / dp);
        joined.insert(joined.end(), part.begin(), part.end());
      }
      EXPECT_EQ(joined, full) << "dp = " << dp << ", step " << step;
    }
  }
}

TEST(DataLoader, WindowsCoverTheWholeRangeIncludingTheEnd) {
  TempDir dir;
  const std::string path = write_positions(dir, kT + 4, 200);  // 4 possible windows: starts 0..3
  const TokenDataset d = TokenDataset::open(path, "train");
  const DataLoader l(d, kT, 99);
  const auto rows = train_batch(l, 0, 0, 200);
  expect_rows_are_windows(rows, d.size());
  std::set<std::int32_t> starts;
  for (std::size_t r = 0; r < 200; ++r) starts.insert(rows[r * (kT + 1)]);
  EXPECT_EQ(starts, (std::set<std::int32_t>{0, 1, 2, 3}));
}

TEST(DataLoader, EvalWindowsAreConsecutiveAndSliceable) {
  TempDir dir;
  const std::string path = write_positions(dir, 1000, 200);
  const TokenDataset val = TokenDataset::open(path, "val");
  const DataLoader l(val, kT, 1);
  EXPECT_EQ(l.eval_windows(), (200 - 1) / kT);
  constexpr std::int64_t S = 4;
  std::vector<std::int32_t> full(S * (kT + 1)), part(2 * (kT + 1));
  for (std::int64_t e = 0; e < 3; ++e) {
    l.eval_batch(e, 0, S, S, full.data());
    for (std::int64_t i = 0; i < S; ++i) {
      EXPECT_EQ(full[i * (kT + 1)], ((e * S + i) * kT) % (200 - kT)) << "eval batch " << e << " row " << i;
    }
    expect_rows_are_windows(full, val.size());
    l.eval_batch(e, 2, 2, S, part.data());
    EXPECT_TRUE(std::equal(part.begin(), part.end(), full.begin() + 2 * (kT + 1)));
  }
  EXPECT_THROW(l.eval_batch(0, 3, 2, S, part.data()), Error);
}

TEST(DataLoader, SplitTooSmallForTheSequenceLength) {
  TempDir dir;
  const std::string path = write_positions(dir, 1000, kT);
  const TokenDataset val = TokenDataset::open(path, "val");
  try {
    DataLoader l(val, kT, 1);
    FAIL() << "expected loom::Error";
  } catch (const Error& e) {
    const std::string msg = e.full_message();
    EXPECT_NE(msg.find("too small for sequence length 16"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'val'"), std::string::npos) << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
  }
  EXPECT_NO_THROW(DataLoader(val, kT - 1, 1));  // exactly T + 1 tokens: one window
  const DataLoader one(val, kT - 1, 1);
  std::vector<std::int32_t> row(kT);
  one.train_batch(12, 5, 1, row.data());
  EXPECT_EQ(row[0], 0);
}

}  // namespace
}  // namespace loom
