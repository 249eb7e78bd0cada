// io/checkpoint_files.cpp — shard files, the virtual-dataset index, and reading blocks
// through it (see checkpoint_files.h).
#include "io/checkpoint_files.h"

#include <fmt/format.h>

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.h"
#include "io/files.h"
#include "io/h5.h"

namespace loom {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

h5::Handle simple_space(const std::vector<std::int64_t>& shape) {
  const std::vector<hsize_t> dims(shape.begin(), shape.end());
  return h5::Handle(h5::check(H5Screate_simple(int(dims.size()), dims.data(), nullptr), "H5Screate_simple"),
                    H5Sclose);
}

// The block's extent as a dataset of the tensor's rank (a 1-D tensor's blocks are 1-D).
std::vector<std::int64_t> block_dims(const GlobalBlock& b, std::size_t rank) {
  return rank == 1 ? std::vector<std::int64_t>{b.rows} : std::vector<std::int64_t>{b.rows, b.cols};
}

// Selects the block in a dataspace of the tensor's global shape.
void select_block(hid_t space, const GlobalBlock& b, std::size_t rank) {
  const hsize_t start[2] = {hsize_t(b.row), hsize_t(b.col)}, count[2] = {hsize_t(b.rows), hsize_t(b.cols)};
  h5::check_status(H5Sselect_hyperslab(space, H5S_SELECT_SET, start, nullptr, count, nullptr), "H5Sselect_hyperslab");
  (void)rank;  // the first `rank` entries are used: H5Sselect_hyperslab reads the space's rank
}

h5::Handle open_or_create_group(hid_t loc, const std::string& name) {
  if (h5::has_link(loc, name)) return h5::open_group(loc, name, "open group " + name);
  return h5::create_group(loc, name);
}

}  // namespace

// ---- shard writer ---------------------------------------------------------------

namespace {
struct Segment {  // a block's bytes in a shard file
  std::uint64_t offset, bytes;
  std::uint32_t crc;
};
}  // namespace

struct ShardWriter::Impl {
  std::string path;
  h5::Handle file;
  std::map<std::string, int> blocks;  // per "kind/tensor": blocks written so far
  // Where each block's bytes lie in the file and their CRC-32, so close() need not read
  // them back: `exact` false (an address unknown) falls back to reading the whole file.
  std::vector<Segment> segments;
  bool exact = std::endian::native == std::endian::little;  // f32 LE in memory = the file's bytes
};

namespace {

// Size and CRC-32 of the file at `path` whose bytes at each of `segs` (disjoint) have the
// segment's CRC: reads only the bytes between them (HDF5's metadata) and combines
// (zlib's crc32_combine). std::nullopt when the segments do not fit in the file.
std::optional<ShardInfo> checksum_around(const std::string& path, std::vector<Segment> segs) {
  std::sort(segs.begin(), segs.end(), [](const auto& a, const auto& b) { return a.offset < b.offset; });
  std::error_code ec;
  const auto size = std::uint64_t(fs::file_size(path, ec));
  if (ec) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  if (!in.good()) return std::nullopt;
  // Only HDF5's metadata lies between the segments (a few KiB each): a small buffer, so
  // a checkpoint write adds no MiB of its own to the process's peak.
  std::vector<char> buf(std::size_t(64) << 10);
  std::uint32_t crc = 0;
  std::uint64_t pos = 0;
  auto read_to = [&](std::uint64_t end) {  // CRC of the file's bytes [pos, end)
    in.seekg(std::streamoff(pos));
    while (pos < end) {
      const std::uint64_t n = std::min<std::uint64_t>(end - pos, buf.size());
      if (!in.read(buf.data(), std::streamsize(n))) return false;
      crc = crc32_update(crc, buf.data(), std::size_t(n));
      pos += n;
    }
    return true;
  };
  for (const auto& s : segs) {
    if (s.offset < pos || s.offset + s.bytes > size || !read_to(s.offset)) return std::nullopt;
    crc = std::uint32_t(crc32_combine(crc, s.crc, z_off_t(s.bytes)));
    pos += s.bytes;
  }
  if (!read_to(size)) return std::nullopt;
  ShardInfo out;
  out.bytes = std::int64_t(size);
  out.crc32 = crc;
  return out;
}

}  // namespace

ShardWriter::ShardWriter(const std::string& path) : impl_(std::make_unique<Impl>()) {
  const std::lock_guard lock(h5::library_lock());
  impl_->path = path;
  impl_->file = h5::create_file(path);
  h5::write_attr(impl_->file, "magic", "loom-checkpoint-shard");
}

ShardWriter::~ShardWriter() {
  if (!impl_ || !impl_->file.valid()) return;
  const std::lock_guard lock(h5::library_lock());
  impl_->file.reset();
}

void ShardWriter::add(const std::string& kind, const std::string& tensor, const std::vector<std::int64_t>& shape,
                      const GlobalBlock& b, const float* data) {
  Impl& d = *impl_;
  const std::size_t bytes = std::size_t(b.numel()) * sizeof(float);
  const std::uint32_t crc = d.exact ? crc32_update(0, data, bytes) : 0;  // outside HDF5's lock
  const std::lock_guard lock(h5::library_lock());
  h5::Handle k = open_or_create_group(d.file, kind);
  const bool fresh = !h5::has_link(k, tensor);
  h5::Handle t = open_or_create_group(k, tensor);
  if (fresh) h5::write_attr(t, "shape", json(shape).dump());
  const std::string name = std::to_string(d.blocks[kind + "/" + tensor]++);
  h5::Handle space = simple_space(block_dims(b, shape.size()));
  h5::Handle dset(h5::check(H5Dcreate2(t, name.c_str(), H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                            fmt::format("cannot create block {}/{}/{} in '{}'", kind, tensor, name, d.path)),
                  H5Dclose);
  h5::write_attr(dset, "row", b.row);
  h5::write_attr(dset, "col", b.col);
  h5::check_status(H5Dwrite(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data),
                   fmt::format("cannot write block {}/{} to '{}'", kind, tensor, d.path), "check the free disk space");
  if (d.exact && bytes > 0) {
    const haddr_t at = H5Dget_offset(dset);  // contiguous layout: the data's address in the file
    if (at == HADDR_UNDEF) d.exact = false;
    else d.segments.push_back({std::uint64_t(at), std::uint64_t(bytes), crc});
  }
}

ShardInfo ShardWriter::close() {
  {
    const std::lock_guard lock(h5::library_lock());
    h5::check_status(H5Fflush(impl_->file, H5F_SCOPE_GLOBAL), fmt::format("cannot flush '{}'", impl_->path),
                     "check the free disk space");
    impl_->file.reset();
  }
  // The CRC-32 of the file's bytes, as verify_shard computes it: the blocks' CRCs (taken
  // from memory as they were written) combined with the bytes between them read back;
  // the whole file read back only when a block's address was not known.
  std::optional<ShardInfo> fast;
  if (impl_->exact) fast = checksum_around(impl_->path, impl_->segments);
  ShardInfo s = fast ? *fast : file_checksum(impl_->path);
  s.file = fs::path(impl_->path).filename().string();
  return s;
}

ShardInfo file_checksum(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  LOOM_CHECK(in.good(), "", "cannot read '{}'", path);
  std::vector<char> buf(std::size_t(8) << 20);
  ShardInfo s;
  s.file = path;
  while (in) {
    in.read(buf.data(), std::streamsize(buf.size()));
    const std::streamsize n = in.gcount();
    s.crc32 = crc32_update(s.crc32, buf.data(), std::size_t(n));
    s.bytes += n;
  }
  return s;
}

std::string verify_shard(const std::string& dir, const ShardInfo& s) {
  const fs::path p = fs::path(dir) / s.file;
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) return fmt::format("shard '{}' is missing", p.string());
  const auto size = std::int64_t(fs::file_size(p, ec));
  if (size != s.bytes)
    return fmt::format("shard '{}' is {} bytes, the index says {}: it is truncated or was replaced", p.string(), size,
                       s.bytes);
  const ShardInfo now = file_checksum(p.string());
  if (now.crc32 != s.crc32)
    return fmt::format("shard '{}' is corrupt: CRC-32 {:08x}, the index says {:08x}", p.string(), now.crc32,
                       s.crc32);
  return "";
}

// ---- index -----------------------------------------------------------------------

namespace {

struct SourceBlock {
  std::string file, dataset;
  GlobalBlock block;
};
struct IndexTensor {
  std::string kind, name;
  std::vector<std::int64_t> shape;
  std::vector<SourceBlock> blocks;
};

// Every block of every shard, grouped by tensor in order of first appearance.
std::vector<IndexTensor> collect_blocks(const std::string& dir, const std::vector<ShardInfo>& shards) {
  std::vector<IndexTensor> out;
  std::map<std::string, std::size_t> at;
  for (const ShardInfo& s : shards) {
    const std::string path = (fs::path(dir) / s.file).string();
    h5::Handle f = h5::open_file(path, "a checkpoint shard written by this save");
    for (const std::string& kind : h5::children(f)) {
      h5::Handle k = h5::open_group(f, kind, path);
      for (const std::string& name : h5::children(k)) {
        h5::Handle t = h5::open_group(k, name, path);
        const std::string key = kind + "/" + name;
        if (!at.count(key)) {
          at[key] = out.size();
          out.push_back({kind, name, json::parse(*h5::read_string_attr(t, "shape", path)).get<std::vector<std::int64_t>>(), {}});
        }
        IndexTensor& it = out[at[key]];
        for (const std::string& b : h5::children(t)) {
          h5::Handle d = h5::open_dataset(t, b, path);
          const std::vector<std::int64_t> dims = h5::shape_of(d);
          GlobalBlock g;
          g.row = *h5::read_int_attr(d, "row", path);
          g.col = *h5::read_int_attr(d, "col", path);
          g.rows = dims.at(0);
          g.cols = dims.size() == 2 ? dims[1] : 1;
          it.blocks.push_back({s.file, "/" + key + "/" + b, g});
        }
      }
    }
  }
  return out;
}

// The virtual dataset kind/name over its blocks; throws unless they cover it exactly once.
void write_virtual(hid_t file, const IndexTensor& t) {
  std::int64_t numel = 1, covered = 0;
  for (auto d : t.shape) numel *= d;
  for (const SourceBlock& s : t.blocks) covered += s.block.numel();
  LOOM_CHECK(covered == numel, "a shard is missing or was written twice; this checkpoint is not committed",
             "checkpoint tensor {}/{}: the shards hold {} of its {} elements", t.kind, t.name, covered, numel);
  h5::Handle dcpl(h5::check(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate"), H5Pclose);
  const float nan = std::numeric_limits<float>::quiet_NaN();  // a missing source reads as NaN, not as 0
  h5::check_status(H5Pset_fill_value(dcpl, H5T_NATIVE_FLOAT, &nan), "H5Pset_fill_value");
  h5::Handle vspace = simple_space(t.shape);
  for (const SourceBlock& s : t.blocks) {
    select_block(vspace, s.block, t.shape.size());
    h5::Handle src = simple_space(block_dims(s.block, t.shape.size()));
    h5::check_status(H5Pset_virtual(dcpl, vspace, s.file.c_str(), s.dataset.c_str(), src), "H5Pset_virtual");
  }
  h5::Handle k = open_or_create_group(file, t.kind);
  h5::Handle d(h5::check(H5Dcreate2(k, t.name.c_str(), H5T_IEEE_F32LE, vspace, H5P_DEFAULT, dcpl, H5P_DEFAULT),
                         fmt::format("cannot create the virtual dataset {}/{}", t.kind, t.name)),
               H5Dclose);
}

}  // namespace

void write_checkpoint_index(const std::string& dir, const std::vector<ShardInfo>& shards,
                            const std::map<std::string, std::string>& attrs,
                            const std::map<std::string, std::int64_t>& ints) {
  const std::vector<IndexTensor> tensors = collect_blocks(dir, shards);
  AtomicWrite out((fs::path(dir) / kCheckpointIndex).string(), Overwrite::no, "checkpoint index");
  {
    h5::Handle file = h5::create_file(out.tmp_path());
    h5::write_attr(file, "magic", kCheckpointMagic);
    h5::write_attr(file, "format_version", kCheckpointFormatVersion);
    json shard_list = json::array(), tensor_list = json::array();
    for (const ShardInfo& s : shards) shard_list.push_back({{"file", s.file}, {"bytes", s.bytes}, {"crc32", s.crc32}});
    for (const IndexTensor& t : tensors) tensor_list.push_back({{"kind", t.kind}, {"name", t.name}, {"shape", t.shape}});
    h5::write_attr(file, "shards", shard_list.dump());
    h5::write_attr(file, "tensors", tensor_list.dump());
    for (const auto& [k, v] : attrs) h5::write_attr(file, k, v);
    for (const auto& [k, v] : ints) h5::write_attr(file, k, v);
    for (const IndexTensor& t : tensors) write_virtual(file, t);
    h5::check_status(H5Fflush(file, H5F_SCOPE_GLOBAL), fmt::format("cannot flush '{}'", out.tmp_path()));
  }
  out.commit();
}

// ---- reader ----------------------------------------------------------------------

struct CheckpointReader::Impl {
  std::string dir, where;
  h5::Handle file;
  std::vector<ShardInfo> shards;
  std::vector<std::pair<std::string, std::string>> order;                  // (kind, name)
  std::map<std::pair<std::string, std::string>, std::vector<std::int64_t>> shapes;
};

CheckpointReader::CheckpointReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CheckpointReader::CheckpointReader(CheckpointReader&&) noexcept = default;
CheckpointReader& CheckpointReader::operator=(CheckpointReader&&) noexcept = default;
CheckpointReader::~CheckpointReader() = default;

CheckpointReader CheckpointReader::open(const std::string& dir) {
  auto d = std::make_unique<Impl>();
  d->dir = dir;
  d->where = (fs::path(dir) / kCheckpointIndex).string();
  std::error_code ec;
  LOOM_CHECK(fs::is_regular_file(d->where, ec), "an incomplete save leaves no index; use the previous checkpoint",
             "'{}' is not a complete loom checkpoint: it has no {}", dir, kCheckpointIndex);
  d->file = h5::open_file(d->where, "the index of a loom checkpoint");
  const auto magic = h5::read_string_attr(d->file, "magic", d->where);
  LOOM_CHECK(magic == kCheckpointMagic, "", "'{}' is not a loom checkpoint index (magic '{}')", d->where,
             magic.value_or(""));
  const auto version = h5::read_int_attr(d->file, "format_version", d->where).value_or(0);
  LOOM_CHECK(version == kCheckpointFormatVersion, "use the loom version that wrote it",
             "'{}' has checkpoint format {}, this loom reads {}", d->where, version, kCheckpointFormatVersion);
  for (const json& s : json::parse(*h5::read_string_attr(d->file, "shards", d->where)))
    d->shards.push_back({s["file"], s["bytes"], s["crc32"]});
  for (const json& t : json::parse(*h5::read_string_attr(d->file, "tensors", d->where))) {
    std::pair<std::string, std::string> key{t["kind"], t["name"]};
    d->order.push_back(key);
    d->shapes[key] = t["shape"].get<std::vector<std::int64_t>>();
  }
  return CheckpointReader(std::move(d));
}

const std::string& CheckpointReader::dir() const { return impl_->dir; }
const std::vector<ShardInfo>& CheckpointReader::shards() const { return impl_->shards; }
bool CheckpointReader::has_attr(const std::string& name) const { return h5::has_attr(impl_->file, name); }

std::string CheckpointReader::attr(const std::string& name) const {
  auto v = h5::read_string_attr(impl_->file, name, impl_->where);
  LOOM_CHECK(v.has_value(), "", "checkpoint '{}' has no attribute '{}'", impl_->dir, name);
  return *v;
}

std::int64_t CheckpointReader::int_attr(const std::string& name) const {
  auto v = h5::read_int_attr(impl_->file, name, impl_->where);
  LOOM_CHECK(v.has_value(), "", "checkpoint '{}' has no attribute '{}'", impl_->dir, name);
  return *v;
}

std::vector<std::string> CheckpointReader::tensors(const std::string& kind) const {
  std::vector<std::string> out;
  for (const auto& [k, n] : impl_->order)
    if (k == kind) out.push_back(n);
  return out;
}

bool CheckpointReader::has(const std::string& kind, const std::string& tensor) const {
  return impl_->shapes.count({kind, tensor}) > 0;
}

std::vector<std::int64_t> CheckpointReader::shape(const std::string& kind, const std::string& tensor) const {
  auto it = impl_->shapes.find({kind, tensor});
  LOOM_CHECK(it != impl_->shapes.end(), "", "checkpoint '{}' has no tensor {}/{}", impl_->dir, kind, tensor);
  return it->second;
}

void CheckpointReader::read(const std::string& kind, const std::string& tensor, const GlobalBlock& b,
                            float* out) const {
  const std::vector<std::int64_t> shape = this->shape(kind, tensor);
  h5::Handle k = h5::open_group(impl_->file, kind, impl_->where);
  h5::Handle d = h5::open_dataset(k, tensor, fmt::format("{}: {}/{}", impl_->where, kind, tensor));
  h5::Handle fspace(h5::check(H5Dget_space(d), "H5Dget_space"), H5Sclose);
  select_block(fspace, b, shape.size());
  h5::Handle mspace = simple_space(block_dims(b, shape.size()));
  h5::check_status(H5Dread(d, H5T_NATIVE_FLOAT, mspace, fspace, H5P_DEFAULT, out),
                   fmt::format("cannot read {}/{} from checkpoint '{}'", kind, tensor, impl_->dir),
                   "run loom-ckpt verify on it");
}

void read_local_run(const CheckpointReader& r, const std::string& kind, const ParamSpec& spec, std::int64_t first,
                    std::int64_t n, float* run) {
  const std::vector<std::int64_t> want = stored_shape(spec).dims();
  LOOM_CHECK(r.has(kind, spec.name) && r.shape(kind, spec.name) == want,
             "the checkpoint must come from a model with the same architecture and model.* options",
             "checkpoint '{}' has no {} tensor {} of shape [{}]", r.dir(), kind, spec.name, fmt::join(want, ", "));
  std::vector<float> block;
  for (const GlobalBlock& b : global_blocks(spec, first, first + n)) {
    block.resize(std::size_t(b.numel()));
    r.read(kind, spec.name, b, block.data());
    for (std::int64_t row = 0; row < b.rows; ++row)
      std::copy_n(block.data() + row * b.cols, b.cols, run + (b.local - first) + row * b.local_stride);
  }
}

}  // namespace loom
