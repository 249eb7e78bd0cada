// io/checkpoint_files.h — the HDF5 files of one checkpoint (docs/checkpoint-format.md).
//
// A checkpoint directory holds one shard file per rank that owns unique data and an
// index. A shard file stores *blocks*: rectangles of global tensors (core/param_blocks.h),
// each a dataset /<kind>/<tensor>/<k> with attributes `row` and `col` (where the block
// starts in the global tensor) and, on the tensor's group, `shape` (the global shape as
// JSON). The index, index.h5, presents every tensor as one global, layout-free float32
// dataset /<kind>/<tensor>: an HDF5 virtual dataset over the shards' blocks (source files
// named relative to the index, so the directory can be moved; missing data reads as NaN).
// h5py reads f["params"]["h.0.attn.c_attn.weight"][:] without loom. Readers read through
// the index with hyperslab selections: a rank reads its blocks, never a whole tensor.
// The index also lists every shard file with its size and CRC-32 (zlib's), and carries
// the caller's attributes (step, config, layout, ...).
// Not thread-safe: HDF5 is not. ShardWriter holds h5::library_lock() while it calls HDF5,
// so it can run on a background thread while the main thread reads token datasets.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/param_blocks.h"

namespace loom {

inline constexpr const char* kCheckpointMagic = "loom-checkpoint";
inline constexpr std::int64_t kCheckpointFormatVersion = 1;
inline constexpr const char* kCheckpointIndex = "index.h5";

struct ShardInfo {
  std::string file;  // name inside the checkpoint directory
  std::int64_t bytes = 0;
  std::uint32_t crc32 = 0;
};

// Writes one shard file (truncating it): add() every block, then close().
class ShardWriter {
public:
  explicit ShardWriter(const std::string& path);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // `data`: the block's b.numel() values, row-major (rows, cols). `shape`: the tensor's
  // global (stored) shape, 1-D or 2-D.
  void add(const std::string& kind, const std::string& tensor, const std::vector<std::int64_t>& shape,
           const GlobalBlock& b, const float* data);
  // Flushes and closes the file, then reads it back for its size and CRC-32.
  ShardInfo close();

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Size and CRC-32 of a whole file (read in blocks).
ShardInfo file_checksum(const std::string& path);

// Writes dir/index.h5 (under a temporary name, renamed when complete): a virtual dataset
// for every tensor of every shard, the shard list, and `attrs` (strings) and `ints` as
// root attributes. Throws, naming the tensor, when the shards' blocks do not cover a
// tensor exactly (a missing or doubled shard: never committed).
void write_checkpoint_index(const std::string& dir, const std::vector<ShardInfo>& shards,
                            const std::map<std::string, std::string>& attrs,
                            const std::map<std::string, std::int64_t>& ints);

class CheckpointReader {
public:
  // Opens dir/index.h5; throws naming the directory when it is not a checkpoint.
  static CheckpointReader open(const std::string& dir);
  CheckpointReader(CheckpointReader&&) noexcept;
  CheckpointReader& operator=(CheckpointReader&&) noexcept;
  ~CheckpointReader();

  const std::string& dir() const;
  const std::vector<ShardInfo>& shards() const;
  // Root attributes; throws naming the checkpoint when absent.
  std::string attr(const std::string& name) const;
  std::int64_t int_attr(const std::string& name) const;
  bool has_attr(const std::string& name) const;
  // Tensors of one kind ("params", "exp_avg", "exp_avg_sq"), in index order.
  std::vector<std::string> tensors(const std::string& kind) const;
  bool has(const std::string& kind, const std::string& tensor) const;
  std::vector<std::int64_t> shape(const std::string& kind, const std::string& tensor) const;
  // Reads one block (row-major, b.numel() values) with a hyperslab selection.
  void read(const std::string& kind, const std::string& tensor, const GlobalBlock& b, float* out) const;

private:
  struct Impl;
  explicit CheckpointReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Reads local elements [first, first + n) of parameter `spec`'s tensor `kind` into `run`
// (n values; elements in padding rows are left as they are), block by block: the one read
// path of resuming, --model.init and loom-generate. Throws, naming the checkpoint, when the
// tensor is missing or its stored shape is not the spec's.
void read_local_run(const CheckpointReader& r, const std::string& kind, const ParamSpec& spec, std::int64_t first,
                    std::int64_t n, float* run);

// "" when dir/<s.file> exists with s's size and CRC-32; otherwise what is wrong with it.
std::string verify_shard(const std::string& dir, const ShardInfo& s);

}  // namespace loom
