// io/token_dataset.cpp — reading HDF5 token datasets, and where loom-data splits a
// stream (see token_dataset.h; the writers are in io/token_writer.cpp).
//
// Reader: check existence, HDF5-ness, magic,
// version, split, dtypes and doc_offsets at open; then either load the split
// (range + checksum verified) or keep the dataset open for hyperslab reads.
#include "io/token_dataset.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "io/h5.h"

namespace loom {

namespace {

constexpr const char* kRecreate = "re-create it with loom-data";

}  // namespace

TrainValSplit split_train_val(std::int64_t total_tokens, std::span<const std::uint64_t> doc_starts,
                              double val_fraction) {
  LOOM_CHECK(total_tokens >= 2, "give more input", "cannot split {} token(s) into train and val", total_tokens);
  LOOM_CHECK(val_fraction > 0.0 && val_fraction < 1.0, "", "val fraction {} is outside (0, 1)", val_fraction);
  LOOM_CHECK(!doc_starts.empty() && doc_starts[0] == 0, "", "split_train_val: doc_starts must start at 0");
  TrainValSplit s;
  s.val_tokens = std::clamp<std::int64_t>(std::llround(double(total_tokens) * val_fraction), 1, total_tokens - 1);
  s.train_tokens = total_tokens - s.val_tokens;
  const auto cut = static_cast<std::uint64_t>(s.train_tokens);
  s.val_doc_offsets.push_back(0);
  for (std::size_t i = 0; i < doc_starts.size(); ++i) {
    LOOM_CHECK(doc_starts[i] < std::uint64_t(total_tokens) && (i == 0 || doc_starts[i] > doc_starts[i - 1]), "",
               "split_train_val: doc_starts[{}] = {} is not increasing within [0, {})", i, doc_starts[i],
               total_tokens);
    if (doc_starts[i] < cut) {
      s.train_doc_offsets.push_back(doc_starts[i]);
    } else if (doc_starts[i] > cut) {
      s.val_doc_offsets.push_back(doc_starts[i] - cut);
    }
  }
  return s;
}

// ---- reader ----------------------------------------------------------------------

struct TokenDataset::Impl {
  std::string path, split;
  DatasetMeta meta;
  std::int64_t size = 0;
  std::vector<std::uint64_t> doc_offsets;
  std::uint32_t checksum = 0;
  std::size_t width = 2;  // bytes per token on disk
  bool resident = false;
  std::vector<std::uint16_t> u16;  // resident tokens when width == 2
  std::vector<std::uint32_t> u32;  // resident tokens when width == 4
  h5::Handle file, tokens;         // kept open when not resident

  std::string where() const { return fmt::format("token dataset '{}' split '{}'", path, split); }

  void check_range(const std::int32_t* t, std::int64_t n, std::int64_t first) const {
    for (std::int64_t i = 0; i < n; ++i) {
      LOOM_CHECK(t[i] >= 0 && t[i] < meta.vocab_size,
                 fmt::format("its vocab_size attribute does not match its tokens; {}", kRecreate),
                 "{}: token {} at position {} is outside the vocabulary [0, {})", where(), t[i], first + i,
                 meta.vocab_size);
    }
  }
  template <class T>
  void check_range(const std::vector<T>& t) const {
    const auto it = std::find_if(t.begin(), t.end(), [&](T v) { return std::int64_t(v) >= meta.vocab_size; });
    LOOM_CHECK(it == t.end(), fmt::format("its vocab_size attribute does not match its tokens; {}", kRecreate),
               "{}: token {} at position {} is outside the vocabulary [0, {})", where(),
               it == t.end() ? 0 : std::int64_t(*it), it - t.begin(), meta.vocab_size);
  }
  void check_checksum(std::uint32_t computed) const {
    LOOM_CHECK(computed == checksum, fmt::format("the file is corrupt; {}", kRecreate),
               "{}: tokens fail their checksum (stored {:08x}, computed {:08x})", where(), checksum, computed);
  }
  // Hyperslab read of [offset, offset + n) converted by HDF5 to `mem_type`.
  void read_slab(std::int64_t offset, std::int64_t n, hid_t mem_type, void* out) const {
    h5::Handle fspace(h5::check(H5Dget_space(tokens), "H5Dget_space"), H5Sclose);
    const hsize_t start = offset, count = n;
    h5::check_status(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, nullptr, &count, nullptr),
                     "H5Sselect_hyperslab");
    h5::Handle mspace(h5::check(H5Screate_simple(1, &count, nullptr), "H5Screate_simple"), H5Sclose);
    h5::check_status(H5Dread(tokens, mem_type, mspace, fspace, H5P_DEFAULT, out),
                     fmt::format("{}: cannot read tokens [{}, {})", where(), offset, offset + n),
                     fmt::format("the file may be corrupt; {}", kRecreate));
  }
};

TokenDataset::TokenDataset(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TokenDataset::TokenDataset(TokenDataset&&) noexcept = default;
TokenDataset& TokenDataset::operator=(TokenDataset&&) noexcept = default;
TokenDataset::~TokenDataset() = default;

TokenDataset TokenDataset::open(const std::string& path, const std::string& split, const TokenReadOptions& options) {
  LOOM_CHECK(split == "train" || split == "val", "", "TokenDataset::open: split must be 'train' or 'val', not '{}'",
             split);
  auto d = std::make_unique<Impl>();
  d->path = path;
  d->split = split;
  std::error_code ec;
  const bool exists = std::filesystem::exists(path, ec);
  LOOM_CHECK(std::filesystem::is_regular_file(path, ec),
             exists ? std::string("pass the path of a .h5 file written by loom-data")
                    : fmt::format("create it with: loom-data --input FILE... --output {}", path),
             "token dataset '{}' {}", path, exists ? "is not a regular file" : "does not exist");
  h5::Handle file = h5::open_file(
      path, fmt::format("the file may be truncated (an interrupted write or copy) or not a token dataset; {}",
                        kRecreate));
  const std::string at = fmt::format("token dataset '{}'", path);
  const auto magic = h5::read_string_attr(file, "magic", at);
  LOOM_CHECK(magic == kTokensMagic,
             magic == "loom-weights" ? std::string("this is a weights file; pass a file written by loom-data")
                                     : fmt::format("{} (or pass the right file)", kRecreate),
             "'{}' is not a loom token dataset (its magic attribute is {}, expected '{}')", path,
             magic ? "'" + *magic + "'" : std::string("missing"), kTokensMagic);
  d->meta.format_version = h5::read_int_attr(file, "format_version", at).value_or(-1);
  LOOM_CHECK(d->meta.format_version == kTokensFormatVersion, fmt::format("{} from this version of loom", kRecreate),
             "'{}' has token format version {}; this build reads version {}", path, d->meta.format_version,
             kTokensFormatVersion);
  const auto vocab = h5::read_int_attr(file, "vocab_size", at);
  const auto eod = h5::read_int_attr(file, "eod_token", at);
  const auto tokenizer = h5::read_string_attr(file, "tokenizer", at);
  LOOM_CHECK(vocab && eod && tokenizer && *vocab >= 1 && *vocab <= (std::int64_t(1) << 31), kRecreate,
             "{} lacks a valid vocab_size, eod_token or tokenizer attribute", at);
  d->meta.vocab_size = *vocab;
  d->meta.eod_token = static_cast<std::int32_t>(*eod);
  d->meta.tokenizer = *tokenizer;
  d->meta.source_files = h5::read_string_attr(file, "source_files", at).value_or("[]");
  d->meta.created_by = h5::read_string_attr(file, "created_by", at).value_or("");
  const auto embedded = tokenizer_from_attrs([&](const std::string& a) { return h5::read_string_attr(file, a, at); }, at);
  d->meta.embedded = embedded.value_or(EmbeddedTokenizer{d->meta.tokenizer == "bytes" ? "bytes" : "", d->meta.tokenizer, ""});

  LOOM_CHECK(h5::has_link(file, split), fmt::format("loom-data always writes 'train' and 'val'; {}", kRecreate),
             "'{}' has no '{}' split", path, split);
  h5::Handle group = h5::open_group(file, split, fmt::format("{}: cannot open group '/{}'", at, split));
  LOOM_CHECK(h5::has_link(group, "tokens") && h5::has_link(group, "doc_offsets"), kRecreate,
             "{}: split '{}' lacks its 'tokens' or 'doc_offsets' dataset", at, split);
  const auto checksum = h5::read_int_attr(group, "tokens_checksum", at);
  LOOM_CHECK(checksum.has_value(), kRecreate, "{}: split '{}' lacks its tokens_checksum attribute", at, split);
  d->checksum = static_cast<std::uint32_t>(*checksum);

  // doc_offsets: always loaded (8 bytes per document).
  h5::Handle offsets = h5::open_dataset(group, "doc_offsets", at + ": cannot open doc_offsets");
  const auto oshape = h5::shape_of(offsets);
  LOOM_CHECK(oshape.size() == 1 && h5::type_name(offsets).find("int") != std::string::npos, kRecreate,
             "{}: /{}/doc_offsets must be a 1-D integer dataset", at, split);
  d->doc_offsets.resize(oshape[0]);
  if (oshape[0] > 0) {
    h5::check_status(H5Dread(offsets, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, d->doc_offsets.data()),
                     at + ": cannot read doc_offsets", kRecreate);
  }

  // tokens: uint16 or uint32, 1-D.
  h5::Handle dapl(h5::check(H5Pcreate(H5P_DATASET_ACCESS), "H5Pcreate"), H5Pclose);
  h5::check_status(H5Pset_chunk_cache(dapl, 12421, std::size_t(64) << 20, 1.0), "H5Pset_chunk_cache");
  h5::Handle tokens = h5::open_dataset(group, "tokens", at + ": cannot open tokens", dapl);
  const auto shape = h5::shape_of(tokens);
  const std::string type = h5::type_name(tokens);
  LOOM_CHECK(shape.size() == 1 && (type == "uint16" || type == "uint32"), kRecreate,
             "{}: /{}/tokens must be a 1-D uint16 or uint32 dataset (it is {}-D {})", at, split, shape.size(), type);
  d->size = shape[0];
  d->width = type == "uint16" ? 2 : 4;
  for (std::size_t i = 0; i < d->doc_offsets.size(); ++i) {
    LOOM_CHECK(std::int64_t(d->doc_offsets[i]) < d->size && (i == 0 || d->doc_offsets[i] > d->doc_offsets[i - 1]),
               kRecreate, "{}: doc_offsets[{}] = {} is not increasing within [0, {})", d->where(), i,
               d->doc_offsets[i], d->size);
  }

  d->resident = std::int64_t(d->width) * d->size <= options.max_resident_bytes;
  if (d->resident) {
    void* buf = nullptr;
    if (d->width == 2) {
      d->u16.resize(d->size);
      buf = d->u16.data();
    } else {
      d->u32.resize(d->size);
      buf = d->u32.data();
    }
    if (d->size > 0) {
      h5::check_status(H5Dread(tokens, d->width == 2 ? H5T_NATIVE_UINT16 : H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL,
                               H5P_DEFAULT, buf),
                       d->where() + ": cannot read tokens", fmt::format("the file may be corrupt; {}", kRecreate));
    }
    if (d->width == 2) {
      d->check_range(d->u16);
      d->check_checksum(tokens_crc32(0, std::span<const std::uint16_t>(d->u16)));
    } else {
      d->check_range(d->u32);
      d->check_checksum(tokens_crc32(0, std::span<const std::uint32_t>(d->u32)));
    }
  } else {
    d->file = std::move(file);
    d->tokens = std::move(tokens);
  }
  return TokenDataset(std::move(d));
}

std::int64_t TokenDataset::size() const { return impl_->size; }
std::int64_t TokenDataset::vocab_size() const { return impl_->meta.vocab_size; }
const DatasetMeta& TokenDataset::meta() const { return impl_->meta; }
const std::string& TokenDataset::path() const { return impl_->path; }
const std::string& TokenDataset::split() const { return impl_->split; }
std::span<const std::uint64_t> TokenDataset::doc_offsets() const { return impl_->doc_offsets; }
std::uint32_t TokenDataset::tokens_checksum() const { return impl_->checksum; }
bool TokenDataset::resident() const { return impl_->resident; }

std::int64_t TokenDataset::resident_bytes() const {
  return impl_->resident ? std::int64_t(impl_->width) * impl_->size : 0;
}

void TokenDataset::read(std::int64_t offset, std::int64_t count, std::int32_t* out) const {
  const Impl& d = *impl_;
  LOOM_CHECK(offset >= 0 && count >= 0 && offset + count <= d.size, "",
             "{}: read of tokens [{}, {}) is outside [0, {})", d.where(), offset, offset + count, d.size);
  if (count == 0) return;
  if (d.resident) {
    if (d.width == 2) {
      std::copy_n(d.u16.data() + offset, count, out);
    } else {
      std::copy_n(d.u32.data() + offset, count, out);
    }
    return;
  }
  {
    const std::lock_guard lock(h5::library_lock());  // a checkpoint may be writing on another thread
    d.read_slab(offset, count, H5T_NATIVE_INT32, out);
  }
  d.check_range(out, count, offset);
}

void TokenDataset::verify() const {
  const Impl& d = *impl_;
  if (d.resident) return;
  constexpr std::int64_t kBlock = 1 << 20;
  std::vector<std::uint32_t> block;
  std::uint32_t crc = 0;
  for (std::int64_t first = 0; first < d.size; first += kBlock) {
    const std::int64_t n = std::min(kBlock, d.size - first);
    block.resize(n);
    d.read_slab(first, n, H5T_NATIVE_UINT32, block.data());
    for (std::int64_t i = 0; i < n; ++i) {
      LOOM_CHECK(std::int64_t(block[i]) < d.meta.vocab_size, kRecreate,
                 "{}: token {} at position {} is outside the vocabulary [0, {})", d.where(), block[i], first + i,
                 d.meta.vocab_size);
    }
    crc = tokens_crc32(crc, std::span<const std::uint32_t>(block));
  }
  d.check_checksum(crc);
}

}  // namespace loom
