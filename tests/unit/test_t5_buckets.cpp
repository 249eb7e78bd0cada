// tests/unit/test_t5_buckets.cpp — T5's relative position buckets (layers/positions.h).
//
// Checked three ways: cases worked out by hand from the formula (Raffel et al. 2020; HF
// T5Attention._relative_position_bucket); every offset in [-300, 300] for four
// configurations against the table printed by tests/unit/t5_buckets_reference.py, an
// independent numpy re-implementation in f32 as PyTorch computes it (held here as the
// offsets where the bucket changes: the boundaries at |n| = 16, 32, 64 with 32 buckets are
// exact in f32 and land on the upper bucket); and the per-offset rows of an attention's
// rel_bias (Tq != Tk).
#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "core/error.h"
#include "layers/positions.h"

namespace loom {
namespace {

using Changes = std::vector<std::pair<int, int>>;  // (first offset, bucket from there on)

struct Reference {
  RelBuckets kind;
  int num_buckets, max_distance, lo, hi;
  Changes changes;
};

// python3 tests/unit/t5_buckets_reference.py
const std::vector<Reference>& references() {
  static const std::vector<Reference> all = {
      {RelBuckets::causal, 32, 128, -300, 300,
       {{-300, 31}, {-112, 30}, {-98, 29}, {-86, 28}, {-76, 27}, {-66, 26}, {-58, 25}, {-51, 24},
        {-45, 23},  {-39, 22},  {-34, 21}, {-30, 20}, {-26, 19}, {-23, 18}, {-20, 17}, {-18, 16},
        {-15, 15},  {-14, 14},  {-13, 13}, {-12, 12}, {-11, 11}, {-10, 10}, {-9, 9},   {-8, 8},
        {-7, 7},    {-6, 6},    {-5, 5},   {-4, 4},   {-3, 3},   {-2, 2},   {-1, 1},   {0, 0}}},
      {RelBuckets::bidirectional, 32, 128, -300, 300,
       {{-300, 15}, {-90, 14}, {-63, 13}, {-45, 12}, {-31, 11}, {-22, 10}, {-15, 9}, {-11, 8},
        {-7, 7},    {-6, 6},   {-5, 5},   {-4, 4},   {-3, 3},   {-2, 2},   {-1, 1}, {0, 0},
        {1, 17},    {2, 18},   {3, 19},   {4, 20},   {5, 21},   {6, 22},   {7, 23}, {8, 24},
        {12, 25},   {16, 26},  {23, 27},  {32, 28},  {46, 29},  {64, 30},  {91, 31}}},
      {RelBuckets::bidirectional, 8, 20, -40, 40, {{-40, 3}, {-6, 2}, {-1, 1}, {0, 0}, {1, 5}, {2, 6}, {7, 7}}},
      {RelBuckets::causal, 10, 50, -80, 80,
       {{-80, 9}, {-31, 8}, {-19, 7}, {-12, 6}, {-7, 5}, {-4, 4}, {-3, 3}, {-2, 2}, {-1, 1}, {0, 0}}},
  };
  return all;
}

TEST(T5Buckets, HandComputedCases) {
  // causal, 32 buckets, max distance 128: exact below 16; d = 16 starts the log part at 16;
  // d = 32: 16 + floor(log 2 / log 8 * 16) = 16 + 5; beyond 128 the last bucket; keys after
  // the query (n > 0) are bucket 0.
  EXPECT_EQ(t5_bucket(0, RelBuckets::causal, 32, 128), 0);
  EXPECT_EQ(t5_bucket(-15, RelBuckets::causal, 32, 128), 15);
  EXPECT_EQ(t5_bucket(-16, RelBuckets::causal, 32, 128), 16);
  EXPECT_EQ(t5_bucket(-32, RelBuckets::causal, 32, 128), 21);
  EXPECT_EQ(t5_bucket(-1000, RelBuckets::causal, 32, 128), 31);
  EXPECT_EQ(t5_bucket(5, RelBuckets::causal, 32, 128), 0);
  // bidirectional: 16 buckets a side, exact below 8; n > 0 adds 16. d = 16: 8 + log 2 / log 16 * 8 = 10.
  EXPECT_EQ(t5_bucket(-7, RelBuckets::bidirectional, 32, 128), 7);
  EXPECT_EQ(t5_bucket(7, RelBuckets::bidirectional, 32, 128), 23);
  EXPECT_EQ(t5_bucket(-16, RelBuckets::bidirectional, 32, 128), 10);
  EXPECT_EQ(t5_bucket(16, RelBuckets::bidirectional, 32, 128), 26);
  EXPECT_EQ(t5_bucket(-128, RelBuckets::bidirectional, 32, 128), 15);
  EXPECT_EQ(t5_bucket(500, RelBuckets::bidirectional, 32, 128), 31);
}

TEST(T5Buckets, MatchReference) {
  for (const Reference& r : references()) {
    std::size_t next = 0;
    int want = -1;
    for (int n = r.lo; n <= r.hi; ++n) {
      if (next < r.changes.size() && r.changes[next].first == n) want = r.changes[next++].second;
      ASSERT_EQ(t5_bucket(n, r.kind, r.num_buckets, r.max_distance), want)
          << "offset " << n << (r.kind == RelBuckets::causal ? " causal " : " bidirectional ") << r.num_buckets
          << " buckets, max distance " << r.max_distance;
    }
  }
}

TEST(T5Buckets, OffsetRowsOfAnAttention) {
  // Tq = 3 queries, Tk = 5 keys: rows o = 0..6 are offsets s - t = -2..4.
  const std::vector<std::int32_t> b = t5_offset_buckets(3, 5, RelBuckets::bidirectional, 8, 20);
  const std::vector<std::int32_t> want = {2, 1, 0, 5, 6, 6, 6};
  EXPECT_EQ(b, want);
  EXPECT_EQ(t5_offset_buckets(4, 4, RelBuckets::causal, 32, 128), (std::vector<std::int32_t>{3, 2, 1, 0, 0, 0, 0}));
}

TEST(T5Buckets, RejectsTooFewBuckets) {
  EXPECT_THROW(t5_bucket(1, RelBuckets::bidirectional, 2, 128), Error);  // one bucket a side: no exact part
  EXPECT_THROW(t5_bucket(1, RelBuckets::causal, 32, 16), Error);         // max_distance within the exact part
  EXPECT_NO_THROW(t5_bucket(1, RelBuckets::bidirectional, 4, 8));
}

}  // namespace
}  // namespace loom
