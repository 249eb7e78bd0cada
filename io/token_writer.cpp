// io/token_writer.cpp — writing HDF5 token datasets (see token_dataset.h): from spans in
// memory (write_token_dataset) or from a stream of any length (TokenStreamWriter).
//
// Both validate first, then write PATH.tmp (root attributes, then each split's tokens in
// chunk-aligned blocks, its doc_offsets and its checksum), close it and rename it into
// place. One write_split serves both: it pulls the tokens through a reader function, so
// a split never has to be in memory, and both writers produce the same bytes.
#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "io/h5.h"
#include "io/token_dataset.h"

namespace loom {

namespace {

// out[i] = token[offset + i] of the split, i < count.
using ReadTokens = std::function<void(std::uint64_t offset, std::size_t count, std::int32_t* out)>;

void check_meta(const DatasetMeta& meta, const TokenWriteOptions& options) {
  LOOM_CHECK(meta.vocab_size >= 1 && meta.vocab_size <= (std::int64_t(1) << 31), "",
             "write_token_dataset: vocab_size {} outside [1, 2^31]", meta.vocab_size);
  LOOM_CHECK(meta.eod_token >= 0 && meta.eod_token < meta.vocab_size, "",
             "write_token_dataset: eod_token {} outside [0, {})", meta.eod_token, meta.vocab_size);
  LOOM_CHECK(!meta.tokenizer.empty(), "", "write_token_dataset: empty tokenizer name");
  LOOM_CHECK(!meta.embedded.known() || meta.embedded.name == meta.tokenizer, "",
             "write_token_dataset: the embedded tokenizer '{}' is not the named one '{}'", meta.embedded.name,
             meta.tokenizer);
  LOOM_CHECK(nlohmann::json::accept(meta.source_files), "", "write_token_dataset: source_files is not valid JSON");
  LOOM_CHECK(options.chunk_tokens >= 1 && options.deflate_level >= 0 && options.deflate_level <= 9, "",
             "write_token_dataset: chunk_tokens {} must be >= 1 and deflate_level {} in [0, 9]",
             options.chunk_tokens, options.deflate_level);
}

void check_tokens(const char* what, std::span<const std::int32_t> tokens, std::uint64_t first, std::int64_t vocab) {
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    LOOM_CHECK(tokens[i] >= 0 && tokens[i] < vocab, "", "write_token_dataset: {} token {} at position {} is outside [0, {})",
               what, tokens[i], first + i, vocab);
  }
}

void check_offsets(const char* split, std::uint64_t tokens, std::span<const std::uint64_t> offsets) {
  if (tokens == 0) {
    LOOM_CHECK(offsets.empty(), "", "write_token_dataset: {} has no tokens but {} doc_offsets", split, offsets.size());
    return;
  }
  LOOM_CHECK(!offsets.empty() && offsets[0] == 0, "", "write_token_dataset: {} doc_offsets must start at 0", split);
  for (std::size_t i = 0; i < offsets.size(); ++i) {
    LOOM_CHECK(offsets[i] < tokens && (i == 0 || offsets[i] > offsets[i - 1]), "",
               "write_token_dataset: {} doc_offsets[{}] = {} is not increasing within [0, {})", split, i, offsets[i],
               tokens);
  }
}

void write_root(hid_t file, const DatasetMeta& meta) {
  h5::write_attr(file, "magic", kTokensMagic);
  h5::write_attr(file, "format_version", kTokensFormatVersion);
  h5::write_attr(file, "tokenizer", meta.tokenizer);
  h5::write_attr(file, "vocab_size", meta.vocab_size);
  h5::write_attr(file, "eod_token", std::int64_t(meta.eod_token));
  h5::write_attr(file, "source_files", meta.source_files);
  h5::write_attr(file, "created_by", meta.created_by);
  for (const auto& [name, value] : tokenizer_attrs(meta.embedded)) h5::write_attr(file, name, value);
}

// The split's tokens (n of them, pulled through `read` in blocks of whole chunks), its
// doc_offsets, and the checksum of its tokens.
void write_split(hid_t file, const char* split, std::uint64_t n, const ReadTokens& read,
                 std::span<const std::uint64_t> offsets, std::int64_t vocab, const TokenWriteOptions& opt) {
  h5::Handle group = h5::create_group(file, split);
  const hsize_t dims = n;
  h5::Handle space(h5::check(H5Screate_simple(1, &dims, nullptr), "H5Screate_simple"), H5Sclose);
  h5::Handle dcpl(h5::check(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate"), H5Pclose);
  // No modification times in the object headers: the same tokens give the same file bytes.
  h5::check_status(H5Pset_obj_track_times(dcpl, false), "H5Pset_obj_track_times");
  const hsize_t chunk = std::max<hsize_t>(1, std::min<hsize_t>(n, static_cast<hsize_t>(opt.chunk_tokens)));
  if (n > 0) {
    h5::check_status(H5Pset_chunk(dcpl, 1, &chunk), "H5Pset_chunk");
    if (opt.deflate_level > 0) {
      h5::check_status(H5Pset_shuffle(dcpl), "H5Pset_shuffle");
      h5::check_status(H5Pset_deflate(dcpl, static_cast<unsigned>(opt.deflate_level)), "H5Pset_deflate");
    }
  }
  const hid_t file_type = vocab <= 65536 ? H5T_STD_U16LE : H5T_STD_U32LE;
  h5::Handle dset(h5::check(H5Dcreate2(group, "tokens", file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
                            fmt::format("cannot create /{}/tokens", split)),
                  H5Dclose);
  // Whole chunks per write, so each chunk is compressed once and the bytes do not depend
  // on the block size.
  std::vector<std::int32_t> block(std::size_t(std::min<hsize_t>(n, 16 * chunk)));
  std::uint32_t crc = 0;
  for (std::uint64_t at = 0; at < n;) {
    const std::size_t count = std::size_t(std::min<std::uint64_t>(n - at, block.size()));
    read(at, count, block.data());
    crc = tokens_crc32(crc, std::span<const std::int32_t>(block.data(), count));
    const hsize_t start = at, len = count;
    h5::Handle mem(h5::check(H5Screate_simple(1, &len, nullptr), "H5Screate_simple"), H5Sclose);
    h5::check_status(H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, nullptr, &len, nullptr), "H5Sselect_hyperslab");
    h5::check_status(H5Dwrite(dset, H5T_NATIVE_INT32, mem, space, H5P_DEFAULT, block.data()),
                     fmt::format("cannot write /{}/tokens", split), "check the free disk space");
    at += count;
  }
  const hsize_t m = offsets.size();
  h5::Handle ospace(h5::check(H5Screate_simple(1, &m, nullptr), "H5Screate_simple"), H5Sclose);
  h5::Handle ocpl(h5::check(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate"), H5Pclose);
  h5::check_status(H5Pset_obj_track_times(ocpl, false), "H5Pset_obj_track_times");
  h5::Handle odset(h5::check(H5Dcreate2(group, "doc_offsets", H5T_STD_U64LE, ospace, H5P_DEFAULT, ocpl, H5P_DEFAULT),
                             fmt::format("cannot create /{}/doc_offsets", split)),
                   H5Dclose);
  if (m > 0) {
    h5::check_status(H5Dwrite(odset, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, offsets.data()),
                     fmt::format("cannot write /{}/doc_offsets", split));
  }
  h5::write_attr(group, "tokens_checksum", static_cast<std::int64_t>(crc));
}

ReadTokens span_reader(std::span<const std::int32_t> tokens) {
  return [tokens](std::uint64_t offset, std::size_t count, std::int32_t* out) {
    std::copy_n(tokens.begin() + std::ptrdiff_t(offset), count, out);
  };
}

void flush(hid_t file, const std::string& path) {
  h5::check_status(H5Fflush(file, H5F_SCOPE_GLOBAL), fmt::format("cannot flush '{}'", path));
}

}  // namespace

void write_token_dataset(const std::string& path, std::span<const std::int32_t> train_tokens,
                         std::span<const std::uint64_t> train_doc_offsets,
                         std::span<const std::int32_t> val_tokens, std::span<const std::uint64_t> val_doc_offsets,
                         const DatasetMeta& meta, const TokenWriteOptions& options) {
  check_meta(meta, options);
  check_tokens("train", train_tokens, 0, meta.vocab_size);
  check_tokens("val", val_tokens, 0, meta.vocab_size);
  check_offsets("train", train_tokens.size(), train_doc_offsets);
  check_offsets("val", val_tokens.size(), val_doc_offsets);

  AtomicWrite out(path, options.overwrite, "write_token_dataset");
  {
    h5::Handle file = h5::create_file(out.tmp_path());
    write_root(file, meta);
    write_split(file, "train", train_tokens.size(), span_reader(train_tokens), train_doc_offsets, meta.vocab_size,
                options);
    write_split(file, "val", val_tokens.size(), span_reader(val_tokens), val_doc_offsets, meta.vocab_size, options);
    flush(file, out.tmp_path());
  }  // closed before the rename
  out.commit();
}

// ---- TokenStreamWriter ----------------------------------------------------------------

namespace {

// An anonymous file next to `near` (same file system as the output, not /tmp, which may
// be small or in RAM): created with mkstemp and unlinked at once, so it disappears when
// closed, however the process ends.
class SpoolFile {
public:
  explicit SpoolFile(const std::string& near) {
    std::string name = near + ".spool-XXXXXX";
    fd_ = ::mkstemp(name.data());
    LOOM_CHECK(fd_ >= 0, "check that the output directory is writable", "cannot create a temporary file next to '{}': {}",
               near, std::strerror(errno));
    ::unlink(name.c_str());
  }
  ~SpoolFile() { ::close(fd_); }
  SpoolFile(const SpoolFile&) = delete;
  SpoolFile& operator=(const SpoolFile&) = delete;

  void append(const void* data, std::size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0 && errno == EINTR) continue;
      LOOM_CHECK(w > 0, "check the free disk space next to the output (the stream needs 2 or 4 bytes a token there)",
                 "cannot write the token spool: {}", std::strerror(errno));
      p += w;
      n -= std::size_t(w);
    }
  }
  void read_at(std::uint64_t offset, void* data, std::size_t n) const {
    char* p = static_cast<char*>(data);
    while (n > 0) {
      const ssize_t r = ::pread(fd_, p, n, off_t(offset));
      if (r < 0 && errno == EINTR) continue;
      LOOM_CHECK(r > 0, "", "cannot read the token spool back: {}", r == 0 ? "unexpected end" : std::strerror(errno));
      p += r;
      n -= std::size_t(r);
      offset += std::uint64_t(r);
    }
  }

private:
  int fd_ = -1;
};

}  // namespace

struct TokenStreamWriter::Impl {
  std::string path;
  DatasetMeta meta;
  TokenWriteOptions options;
  AtomicWrite out;  // refuses an existing output now, not after hours of tokenising
  SpoolFile spool;
  std::size_t width;  // bytes a token in the spool: 2 or 4, as on disk
  std::vector<std::uint8_t> pending;  // encoded tokens not yet written to the spool
  std::int64_t tokens = 0;
  std::vector<std::uint64_t> doc_starts;
  bool finished = false;

  Impl(const std::string& p, const DatasetMeta& m, const TokenWriteOptions& o)
      : path(p), meta(m), options(o), out(p, o.overwrite, "loom-data"), spool(p),
        width(m.vocab_size <= 65536 ? 2 : 4) {
    pending.reserve(std::size_t(4) << 20);
  }

  void flush_pending() {
    spool.append(pending.data(), pending.size());
    pending.clear();
  }

  void read(std::uint64_t offset, std::size_t count, std::int32_t* dst) const {
    std::vector<std::uint8_t> raw(count * width);
    spool.read_at(offset * width, raw.data(), raw.size());
    for (std::size_t i = 0; i < count; ++i) {
      std::uint32_t v = 0;
      for (std::size_t b = 0; b < width; ++b) v |= std::uint32_t(raw[i * width + b]) << (8 * b);
      dst[i] = std::int32_t(v);
    }
  }
};

TokenStreamWriter::TokenStreamWriter(const std::string& path, const DatasetMeta& meta, const TokenWriteOptions& options) {
  check_meta(meta, options);
  impl_ = std::make_unique<Impl>(path, meta, options);
}

TokenStreamWriter::~TokenStreamWriter() = default;

void TokenStreamWriter::append(std::span<const std::int32_t> tokens, std::span<const std::uint64_t> doc_starts) {
  Impl& s = *impl_;
  LOOM_CHECK(!s.finished, "", "TokenStreamWriter::append after finish");
  const auto first = std::uint64_t(s.tokens);
  check_tokens("stream", tokens, first, s.meta.vocab_size);
  for (std::uint64_t d : doc_starts) {
    LOOM_CHECK(d >= first && d < first + tokens.size() && (s.doc_starts.empty() || d > s.doc_starts.back()), "",
               "TokenStreamWriter: document start {} is not increasing within this piece [{}, {})", d, first,
               first + tokens.size());
  }
  LOOM_CHECK(tokens.empty() || first > 0 || (!doc_starts.empty() && doc_starts[0] == 0), "",
             "TokenStreamWriter: the stream must start with a document");
  s.doc_starts.insert(s.doc_starts.end(), doc_starts.begin(), doc_starts.end());
  for (std::int32_t t : tokens) {
    const auto v = static_cast<std::uint32_t>(t);
    for (std::size_t b = 0; b < s.width; ++b) s.pending.push_back(std::uint8_t(v >> (8 * b)));
    if (s.pending.size() >= s.pending.capacity() - 4) s.flush_pending();
  }
  s.tokens += std::int64_t(tokens.size());
}

std::int64_t TokenStreamWriter::tokens() const { return impl_->tokens; }
std::int64_t TokenStreamWriter::documents() const { return std::int64_t(impl_->doc_starts.size()); }

void TokenStreamWriter::set_source_files(const std::string& json) {
  LOOM_CHECK(nlohmann::json::accept(json), "", "TokenStreamWriter: source_files is not valid JSON");
  impl_->meta.source_files = json;
}

TrainValSplit TokenStreamWriter::finish(double val_fraction) {
  Impl& s = *impl_;
  LOOM_CHECK(!s.finished, "", "TokenStreamWriter::finish called twice");
  s.flush_pending();
  TrainValSplit split = split_train_val(s.tokens, s.doc_starts, val_fraction);
  std::vector<std::uint64_t>().swap(s.doc_starts);  // the split holds them now
  const auto cut = std::uint64_t(split.train_tokens);
  {
    h5::Handle file = h5::create_file(s.out.tmp_path());
    write_root(file, s.meta);
    write_split(file, "train", cut, [&](std::uint64_t o, std::size_t n, std::int32_t* d) { s.read(o, n, d); },
                split.train_doc_offsets, s.meta.vocab_size, s.options);
    write_split(file, "val", std::uint64_t(split.val_tokens),
                [&](std::uint64_t o, std::size_t n, std::int32_t* d) { s.read(cut + o, n, d); }, split.val_doc_offsets,
                s.meta.vocab_size, s.options);
    flush(file, s.out.tmp_path());
  }  // closed before the rename
  s.out.commit();
  s.finished = true;
  return split;
}

}  // namespace loom
