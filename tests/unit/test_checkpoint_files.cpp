// Checkpoint building blocks: the global blocks of a run of local elements (against a
// brute-force walk of global_index), shard files and the virtual-dataset index (read back
// block by block after the directory moved; damage found by verify_shard), and the run
// directory's bookkeeping (latest, candidates, pruning, ownership, the lock).
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <numeric>
#include <random>

#include "core/param_blocks.h"
#include "io/checkpoint_files.h"
#include "launch/run_dir.h"
#include "temp_dir.h"

namespace loom {
namespace {

using test::error_of;
using test::TempDir;
namespace fs = std::filesystem;

ParamSpec spec(Shape local, Shard shard = {}, std::int64_t stored_rows = -1) {
  ParamSpec s;
  s.name = "t";
  s.shape = local;
  s.shard = shard;
  s.stored_rows = stored_rows;
  return s;
}

// Every local element in [begin, end) outside padding appears in exactly one block, at
// the global position global_index gives; nothing else appears.
void expect_blocks_cover(const ParamSpec& s, std::int64_t begin, std::int64_t end) {
  const Shape g = global_shape(s);
  const std::int64_t cols = g.rank() == 2 ? g[1] : 1, stored = stored_shape(s)[0];
  std::map<std::int64_t, std::int64_t> want;  // local -> global flat index (stored elements only)
  for (std::int64_t i = begin; i < end; ++i)
    if (global_index(s, i) / cols < stored) want[i] = global_index(s, i);
  std::map<std::int64_t, std::int64_t> got;
  for (const GlobalBlock& b : global_blocks(s, begin, end))
    for (std::int64_t r = 0; r < b.rows; ++r)
      for (std::int64_t c = 0; c < b.cols; ++c) {
        const std::int64_t local = b.local + r * b.local_stride + c;
        EXPECT_TRUE(got.emplace(local, (b.row + r) * cols + b.col + c).second) << "element " << local << " twice";
      }
  EXPECT_EQ(got, want) << s.shape.str() << " split " << int(s.shard.split) << " [" << begin << ", " << end << ")";
}

TEST(ParamBlocks, CoverEveryShardKindAndRangeExactly) {
  std::mt19937 rng(7);
  const std::vector<ParamSpec> specs = {
      spec(Shape{6, 5}),                                                         // whole
      spec(Shape{3, 5}, {Shard::Split::rows, 2, 1, 1}),                          // rows
      spec(Shape{12, 4}, {Shard::Split::rows, 4, 2, 3}),                         // q | k | v heads
      spec(Shape{6, 3}, {Shard::Split::cols, 3, 2, 1}),                          // columns
      spec(Shape{8}, {Shard::Split::rows, 2, 1, 1}),                             // 1-D rows
      spec(Shape{9}, {Shard::Split::rows, 3, 0, 3}),                             // 1-D q | k | v
      spec(Shape{7, 3}, {Shard::Split::rows, 2, 1, 1}, 10),                      // padding rows 10..13
      spec(Shape{7, 3}, {Shard::Split::rows, 2, 0, 1}, 10)};                     // no padding on rank 0
  for (const ParamSpec& s : specs) {
    const std::int64_t n = s.shape.numel();
    expect_blocks_cover(s, 0, n);
    for (int k = 0; k < 20; ++k) {
      std::int64_t a = std::int64_t(rng() % (n + 1)), b = std::int64_t(rng() % (n + 1));
      if (a > b) std::swap(a, b);
      expect_blocks_cover(s, a, b);
    }
  }
}

TEST(ParamBlocks, WholeRowsMergeIntoOneBlock) {
  const auto b = global_blocks(spec(Shape{6, 3}, {Shard::Split::cols, 3, 2, 1}), 0, 18);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].row, 0);
  EXPECT_EQ(b[0].col, 6);
  EXPECT_EQ(b[0].rows, 6);
  EXPECT_EQ(b[0].cols, 3);
  // A run starting and ending mid-row: partial row, whole rows, partial row.
  EXPECT_EQ(global_blocks(spec(Shape{6, 3}), 2, 16).size(), 3u);
  // q | k | v: one block per head group.
  EXPECT_EQ(global_blocks(spec(Shape{12, 4}, {Shard::Split::rows, 4, 2, 3}), 0, 48).size(), 3u);
}

// A (4, 6) tensor written as two tp-like column shards plus a 1-D tensor, by two "ranks".
struct TwoShards {
  TempDir dir{"ckpt"};
  std::vector<float> global = std::vector<float>(24), bias = std::vector<float>(5);
  std::vector<ShardInfo> shards;

  TwoShards() {
    std::iota(global.begin(), global.end(), 0.5f);
    std::iota(bias.begin(), bias.end(), 100.0f);
    for (int r = 0; r < 2; ++r) {
      ShardWriter w(dir.file(fmt::format("rank_{}.h5", r)));
      const ParamSpec s = spec(Shape{4, 3}, {Shard::Split::cols, 2, r, 1});
      std::vector<float> local(12), block;
      for (std::int64_t j = 0; j < 12; ++j) local[std::size_t(j)] = global[std::size_t(global_index(s, j))];
      for (const GlobalBlock& b : global_blocks(s, 0, 12)) {
        for (std::int64_t i = 0; i < b.rows; ++i)
          for (std::int64_t c = 0; c < b.cols; ++c) block.push_back(local[std::size_t(b.local + i * b.local_stride + c)]);
        w.add("params", "w", {4, 6}, b, block.data());
      }
      // The bias: rank 0 writes [0, 2), rank 1 [2, 5) (ZeRO-like runs of a 1-D tensor).
      const std::int64_t a = r == 0 ? 0 : 2, e = r == 0 ? 2 : 5;
      for (const GlobalBlock& b : global_blocks(spec(Shape{5}), a, e)) w.add("params", "b", {5}, b, bias.data() + b.row);
      shards.push_back(w.close());
    }
  }
};

TEST(CheckpointFiles, IndexReadsBlocksAfterTheDirectoryMoved) {
  TwoShards t;
  write_checkpoint_index(t.dir.path.string(), t.shards, {{"note", "hello"}}, {{"step", 7}});
  const fs::path moved = t.dir.path.string() + "-moved";
  fs::rename(t.dir.path, moved);
  const CheckpointReader r = CheckpointReader::open(moved.string());
  EXPECT_EQ(r.int_attr("step"), 7);
  EXPECT_EQ(r.attr("note"), "hello");
  EXPECT_EQ(r.shape("params", "w"), (std::vector<std::int64_t>{4, 6}));
  std::vector<float> all(24);
  r.read("params", "w", GlobalBlock{0, 0, 4, 6, 0, 0}, all.data());
  EXPECT_EQ(all, t.global);
  std::vector<float> part(4);  // rows 1..2, columns 2..3: across both shards
  r.read("params", "w", GlobalBlock{1, 2, 2, 2, 0, 0}, part.data());
  EXPECT_EQ(part, (std::vector<float>{t.global[8], t.global[9], t.global[14], t.global[15]}));
  std::vector<float> b(5);
  r.read("params", "b", GlobalBlock{0, 0, 5, 1, 0, 0}, b.data());
  EXPECT_EQ(b, t.bias);
  for (const ShardInfo& s : r.shards()) EXPECT_EQ(verify_shard(moved.string(), s), "");
  fs::rename(moved, t.dir.path);  // for TempDir's cleanup
}

TEST(CheckpointFiles, AMissingShardIsNeverIndexed) {
  TwoShards t;
  const std::string msg = error_of([&] { write_checkpoint_index(t.dir.path.string(), {t.shards[0]}, {}, {}); });
  EXPECT_NE(msg.find("params/b: the shards hold 2 of its 5 elements"), std::string::npos) << msg;  // name order
  EXPECT_FALSE(fs::exists(t.dir.file(kCheckpointIndex)));
}

TEST(CheckpointFiles, VerifyFindsTruncatedFlippedAndMissingShards) {
  TwoShards t;
  const std::string d = t.dir.path.string();
  const std::string bytes = test::read_file(t.dir.file("rank_0.h5"));
  test::write_file(t.dir.file("rank_0.h5"), bytes.substr(0, bytes.size() - 10));
  EXPECT_NE(verify_shard(d, t.shards[0]).find("truncated"), std::string::npos);
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x10;
  test::write_file(t.dir.file("rank_0.h5"), flipped);
  const std::string msg = verify_shard(d, t.shards[0]);
  EXPECT_NE(msg.find("rank_0.h5' is corrupt: CRC-32"), std::string::npos) << msg;
  fs::remove(t.dir.file("rank_1.h5"));
  EXPECT_NE(verify_shard(d, t.shards[1]).find("rank_1.h5' is missing"), std::string::npos);
}

TEST(CheckpointFiles, OpeningAnIncompleteCheckpointSaysSo) {
  TempDir d("ckpt");
  const std::string msg = error_of([&] { CheckpointReader::open(d.path.string()); });
  EXPECT_NE(msg.find("is not a complete loom checkpoint: it has no index.h5"), std::string::npos) << msg;
}

// A fake complete checkpoint: a step directory holding an (empty) index file.
void fake_checkpoint(const TempDir& d, std::int64_t step) {
  fs::create_directories(d.path / step_dir_name(step));
  test::write_file((d.path / step_dir_name(step) / kCheckpointIndex).string(), "x");
}

TEST(RunDir, CandidatesPutLatestFirstThenNewestAndSkipIncompleteSaves) {
  TempDir d("run");
  for (std::int64_t s : {100, 200, 300}) fake_checkpoint(d, s);
  fs::create_directories(d.path / "step_00000400.tmp");  // interrupted
  fs::create_directories(d.path / "step_00000500");       // no index
  const std::string dir = d.path.string();
  auto names = [](const std::vector<std::string>& v) {
    std::vector<std::string> n;
    for (const auto& p : v) n.push_back(fs::path(p).filename().string());
    return n;
  };
  EXPECT_EQ(names(resume_candidates(dir)), (std::vector<std::string>{"step_00000300", "step_00000200", "step_00000100"}));
  write_latest(dir, "step_00000200");
  EXPECT_EQ(names(resume_candidates(dir)), (std::vector<std::string>{"step_00000200", "step_00000300", "step_00000100"}));
  EXPECT_EQ(fs::path(find_checkpoint(dir)).filename(), "step_00000200");
  EXPECT_EQ(find_checkpoint((d.path / "step_00000100").string()), (d.path / "step_00000100").string());
  EXPECT_EQ(prune_checkpoints(dir, 2), (std::vector<std::string>{"step_00000100"}));
  EXPECT_EQ(names(list_checkpoints(dir)), (std::vector<std::string>{"step_00000200", "step_00000300"}));
  EXPECT_TRUE(prune_checkpoints(dir, 0).empty());  // 0 keeps all
}

TEST(RunDir, AnEarlierRunIsRefusedByNameUnlessOverwritten) {
  TempDir d("run");
  const std::string dir = d.path.string();
  test::write_file(d.file("metrics.jsonl"), "{}\n");  // a run that never saved anything is not protected
  EXPECT_TRUE(claim_run_dir(dir, false).empty());
  fake_checkpoint(d, 100);
  test::write_file(d.file("weights.h5"), "w");
  const std::string msg = error_of([&] { claim_run_dir(dir, false); });
  EXPECT_NE(msg.find("holds an earlier run: step_00000100, weights.h5"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--checkpoint.resume auto"), std::string::npos) << msg;
  EXPECT_TRUE(fs::exists(d.file("weights.h5")));  // untouched
  EXPECT_EQ(claim_run_dir(dir, true).size(), 2u);
  EXPECT_TRUE(earlier_run_files(dir).empty());
}

TEST(RunDir, TheLockRefusesASecondRunAndNamesTheHolder) {
  TempDir d("run");
  {
    RunDirLock first(d.path.string());
    const std::string msg = error_of([&] { RunDirLock second(d.path.string()); });
    EXPECT_NE(msg.find("is in use by another run (pid " + std::to_string(getpid())), std::string::npos) << msg;
  }
  RunDirLock again(d.path.string());  // released with the first
}

TEST(RunDir, AnUnusableDirectoryNamesTheOption) {
  TempDir d("run");
  test::write_file(d.file("plain"), "not a directory");
  const std::string msg = error_of([&] { prepare_run_dir(d.file("plain") + "/run"); });
  EXPECT_NE(msg.find("checkpoint.dir '"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cannot be created"), std::string::npos) << msg;
}

}  // namespace
}  // namespace loom
