// io/megatron_dataset.cpp — Megatron-LM indexed datasets (see megatron_dataset.h).
//
// The .idx is little-endian and unaligned after its 34-byte header, so it is read
// into vectors with memcpy (12 bytes per sequence + 8 per document). The .bin is
// mmap'ed read-only; a sequence is memcpy'd out and widened to int32.
#include "io/megatron_dataset.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "core/error.h"

static_assert(std::endian::native == std::endian::little, "the Megatron reader assumes a little-endian host");

namespace loom {

namespace fs = std::filesystem;

namespace {

constexpr const char* kMegatronHint =
    "the pair must be written by Megatron-LM's IndexedDatasetBuilder (tools/preprocess_data.py) or loom-data "
    "to-megatron; check that PREFIX.idx and PREFIX.bin belong together and were copied completely";

std::optional<MegatronDType> dtype_from_code(std::uint8_t code) {
  if (code < 1 || code > 8) return std::nullopt;
  return static_cast<MegatronDType>(code);
}

template <class T>
T load(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Reads n stored tokens, those from `first` on in sequence `seq` (for messages), and
// checks each is a valid id (0 <= id <= INT32_MAX).
template <class T>
void widen(const unsigned char* src, std::int64_t n, std::int32_t* out, const std::string& file, std::int64_t seq,
           std::int64_t first) {
  for (std::int64_t i = 0; i < n; ++i) {
    const T v = load<T>(src + i * std::int64_t(sizeof(T)));
    if constexpr (std::is_signed_v<T>) {
      LOOM_CHECK(v >= 0 && std::int64_t(v) <= std::numeric_limits<std::int32_t>::max(), kMegatronHint,
                 "{}: sequence {} token {} is {}, not a token id in [0, 2^31)", file, seq, first + i, std::int64_t(v));
    } else {
      LOOM_CHECK(std::uint64_t(v) <= std::uint64_t(std::numeric_limits<std::int32_t>::max()), kMegatronHint,
                 "{}: sequence {} token {} is {}, not a token id in [0, 2^31)", file, seq, first + i, std::uint64_t(v));
    }
    out[i] = static_cast<std::int32_t>(v);
  }
}

}  // namespace

const char* megatron_dtype_name(MegatronDType t) {
  switch (t) {
    case MegatronDType::uint8: return "uint8";
    case MegatronDType::int8: return "int8";
    case MegatronDType::int16: return "int16";
    case MegatronDType::int32: return "int32";
    case MegatronDType::int64: return "int64";
    case MegatronDType::float64: return "float64";
    case MegatronDType::float32: return "float32";
    case MegatronDType::uint16: return "uint16";
  }
  return "?";
}

int megatron_dtype_size(MegatronDType t) {
  switch (t) {
    case MegatronDType::uint8:
    case MegatronDType::int8: return 1;
    case MegatronDType::int16:
    case MegatronDType::uint16: return 2;
    case MegatronDType::int32:
    case MegatronDType::float32: return 4;
    case MegatronDType::int64:
    case MegatronDType::float64: return 8;
  }
  return 0;
}

std::string megatron_prefix(const std::string& path) {
  for (const char* ext : {".idx", ".bin"}) {
    if (path.size() > 4 && path.compare(path.size() - 4, 4, ext) == 0) return path.substr(0, path.size() - 4);
  }
  return path;
}

// ---------------------------------------------------------------------------------------------------------------
// Reader

struct MegatronDataset::Impl {
  std::string idx_path, bin_path;
  MegatronDType dtype = MegatronDType::int32;
  bool has_modes = false;
  std::vector<std::int32_t> lengths;
  std::vector<std::int64_t> pointers, doc_indices;
  std::int64_t tokens = 0;
  int fd = -1;
  const unsigned char* map = nullptr;
  std::int64_t bin_bytes = 0;

  ~Impl() {
    if (map) munmap(const_cast<unsigned char*>(map), static_cast<std::size_t>(bin_bytes));
    if (fd >= 0) close(fd);
  }
};

MegatronDataset MegatronDataset::open(const std::string& path_or_prefix) {
  auto d = std::make_unique<Impl>();
  const std::string prefix = megatron_prefix(path_or_prefix);
  d->idx_path = prefix + ".idx";
  d->bin_path = prefix + ".bin";
  const std::string& idx = d->idx_path;
  std::error_code ec;
  for (const std::string* p : {&d->idx_path, &d->bin_path}) {
    LOOM_CHECK(fs::is_regular_file(*p, ec), "a Megatron dataset is a pair PREFIX.idx + PREFIX.bin; give PREFIX",
               "Megatron dataset '{}': '{}' {}", prefix, *p, fs::exists(*p, ec) ? "is not a regular file" : "does not exist");
  }

  // The whole index.
  std::ifstream in(idx, std::ios::binary);
  LOOM_CHECK(in.good(), "check its permissions", "{}: cannot open", idx);
  std::vector<unsigned char> buf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  LOOM_CHECK(!in.bad(), "", "{}: read error", idx);
  const auto size = static_cast<std::int64_t>(buf.size());
  const unsigned char* b = buf.data();

  LOOM_CHECK(size >= 9 && std::memcmp(b, kMegatronIndexMagic, 9) == 0, kMegatronHint,
             "{}: bad magic: not a Megatron index (expected the 9 bytes \"MMIDIDX\\0\\0\")", idx);
  LOOM_CHECK(size >= kMegatronHeaderBytes, kMegatronHint, "{}: truncated index: {} bytes, the header alone is {}",
             idx, size, kMegatronHeaderBytes);
  const auto version = load<std::uint64_t>(b + 9);
  LOOM_CHECK(version == kMegatronIndexVersion, "loom reads version 1, the only one Megatron-LM writes",
             "{}: unsupported index version {}", idx, version);
  const std::uint8_t code = b[17];
  const auto dtype = dtype_from_code(code);
  LOOM_CHECK(dtype.has_value(), kMegatronHint, "{}: unsupported dtype code {} (Megatron's codes are 1..8)", idx,
             int(code));
  LOOM_CHECK(*dtype != MegatronDType::float32 && *dtype != MegatronDType::float64,
             "token datasets hold integer token ids", "{}: unsupported dtype {}: not token ids", idx,
             megatron_dtype_name(*dtype));
  d->dtype = *dtype;
  const auto nseq = load<std::uint64_t>(b + 18);
  const auto ndoc = load<std::uint64_t>(b + 26);
  // 12 bytes per sequence and 8 per document index; guard the products against overflow.
  const std::uint64_t room = std::uint64_t(size - kMegatronHeaderBytes);
  LOOM_CHECK(nseq <= room / 12 && ndoc <= room / 8 && nseq * 12 + ndoc * 8 <= room, kMegatronHint,
             "{}: truncated index: {} bytes, but {} sequences and {} document indices need {}", idx, size, nseq, ndoc,
             double(kMegatronHeaderBytes) + 12.0 * double(nseq) + 8.0 * double(ndoc));
  const std::uint64_t needed = kMegatronHeaderBytes + nseq * 12 + ndoc * 8;
  const std::uint64_t extra = std::uint64_t(size) - needed;
  LOOM_CHECK(extra == 0 || extra == nseq, kMegatronHint,
             "{}: {} bytes after the document indices (expected 0, or {} for multimodal sequence modes)", idx, extra,
             nseq);
  d->has_modes = extra != 0 && nseq != 0;

  d->lengths.resize(nseq);
  d->pointers.resize(nseq);
  d->doc_indices.resize(ndoc);
  const unsigned char* p = b + kMegatronHeaderBytes;
  if (nseq) std::memcpy(d->lengths.data(), p, nseq * 4);
  p += nseq * 4;
  if (nseq) std::memcpy(d->pointers.data(), p, nseq * 8);
  p += nseq * 8;
  if (ndoc) std::memcpy(d->doc_indices.data(), p, ndoc * 8);

  // Document indices: 0, non-decreasing, ending at the sequence count.
  LOOM_CHECK(ndoc >= 1 && d->doc_indices[0] == 0, kMegatronHint,
             "{}: the document indices must start with 0 (they have {} entries{})", idx, ndoc,
             ndoc ? fmt::format(", the first is {}", d->doc_indices[0]) : std::string());
  for (std::uint64_t i = 1; i < ndoc; ++i) {
    LOOM_CHECK(d->doc_indices[i] >= d->doc_indices[i - 1], kMegatronHint,
               "{}: document indices decrease at entry {} ({} after {})", idx, i, d->doc_indices[i],
               d->doc_indices[i - 1]);
  }
  LOOM_CHECK(std::uint64_t(d->doc_indices.back()) == nseq, kMegatronHint,
             "{}: the last document index is {}, not the sequence count {}", idx, d->doc_indices.back(), nseq);

  // The data file, and lengths/pointers against it: sequences lie back to back from byte 0.
  d->fd = ::open(d->bin_path.c_str(), O_RDONLY | O_CLOEXEC);
  LOOM_CHECK(d->fd >= 0, "check its permissions", "{}: cannot open: {}", d->bin_path, std::strerror(errno));
  struct stat st {};
  LOOM_CHECK(fstat(d->fd, &st) == 0, "", "{}: cannot stat: {}", d->bin_path, std::strerror(errno));
  d->bin_bytes = st.st_size;
  const int isz = megatron_dtype_size(d->dtype);
  std::int64_t expect = 0;
  for (std::uint64_t i = 0; i < nseq; ++i) {
    const std::int64_t len = d->lengths[i], ptr = d->pointers[i];
    LOOM_CHECK(len >= 0, kMegatronHint, "{}: sequence {} has negative length {}", idx, i, len);
    LOOM_CHECK(ptr >= 0 && ptr <= d->bin_bytes && len <= (d->bin_bytes - ptr) / isz, kMegatronHint,
               "{}: sequence {} (byte offset {}, {} tokens of {} bytes) lies outside {} ({} bytes)", idx, i, ptr,
               len, isz, d->bin_path, d->bin_bytes);
    LOOM_CHECK(ptr == expect, kMegatronHint,
               "{}: sequence lengths and pointers are inconsistent: sequence {} starts at byte {}, but the "
               "sequences before it end at byte {}",
               idx, i, ptr, expect);
    expect += len * isz;
    d->tokens += len;
  }
  LOOM_CHECK(expect == d->bin_bytes, kMegatronHint,
             "{}: the index describes {} bytes of tokens but {} has {} bytes", idx, expect, d->bin_path, d->bin_bytes);

  if (d->bin_bytes > 0) {
    void* m = mmap(nullptr, static_cast<std::size_t>(d->bin_bytes), PROT_READ, MAP_SHARED, d->fd, 0);
    LOOM_CHECK(m != MAP_FAILED, "", "{}: cannot mmap: {}", d->bin_path, std::strerror(errno));
    d->map = static_cast<const unsigned char*>(m);
  }
  return MegatronDataset(std::move(d));
}

MegatronDataset::MegatronDataset(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MegatronDataset::MegatronDataset(MegatronDataset&&) noexcept = default;
MegatronDataset& MegatronDataset::operator=(MegatronDataset&&) noexcept = default;
MegatronDataset::~MegatronDataset() = default;

const std::string& MegatronDataset::idx_path() const { return impl_->idx_path; }
const std::string& MegatronDataset::bin_path() const { return impl_->bin_path; }
MegatronDType MegatronDataset::dtype() const { return impl_->dtype; }
bool MegatronDataset::has_sequence_modes() const { return impl_->has_modes; }
std::int64_t MegatronDataset::num_sequences() const { return std::int64_t(impl_->lengths.size()); }
std::int64_t MegatronDataset::num_documents() const { return std::int64_t(impl_->doc_indices.size()) - 1; }
std::int64_t MegatronDataset::num_tokens() const { return impl_->tokens; }
std::span<const std::int32_t> MegatronDataset::sequence_lengths() const { return impl_->lengths; }
std::span<const std::int64_t> MegatronDataset::sequence_pointers() const { return impl_->pointers; }
std::span<const std::int64_t> MegatronDataset::document_indices() const { return impl_->doc_indices; }

std::int64_t MegatronDataset::document_tokens(std::int64_t doc) const {
  LOOM_CHECK(doc >= 0 && doc < num_documents(), "", "{}: document {} out of range [0, {})", impl_->idx_path, doc,
             num_documents());
  std::int64_t n = 0;
  for (std::int64_t s = impl_->doc_indices[doc]; s < impl_->doc_indices[doc + 1]; ++s) n += impl_->lengths[s];
  return n;
}

void MegatronDataset::read_sequence(std::int64_t seq, std::int32_t* out) const {
  LOOM_CHECK(seq >= 0 && seq < num_sequences(), "", "{}: sequence {} out of range [0, {})", impl_->idx_path, seq,
             num_sequences());
  read_sequence_part(seq, 0, impl_->lengths[seq], out);
}

void MegatronDataset::read_sequence_part(std::int64_t seq, std::int64_t first, std::int64_t n,
                                         std::int32_t* out) const {
  LOOM_CHECK(seq >= 0 && seq < num_sequences(), "", "{}: sequence {} out of range [0, {})", impl_->idx_path, seq,
             num_sequences());
  LOOM_CHECK(first >= 0 && n >= 0 && first + n <= impl_->lengths[seq], "",
             "{}: tokens [{}, {}) of sequence {} lie outside its {} tokens", impl_->idx_path, first, first + n, seq,
             impl_->lengths[seq]);
  if (n == 0) return;
  const unsigned char* src = impl_->map + impl_->pointers[seq] + first * megatron_dtype_size(impl_->dtype);
  const std::string& f = impl_->bin_path;
  switch (impl_->dtype) {
    case MegatronDType::uint8: widen<std::uint8_t>(src, n, out, f, seq, first); break;
    case MegatronDType::int8: widen<std::int8_t>(src, n, out, f, seq, first); break;
    case MegatronDType::int16: widen<std::int16_t>(src, n, out, f, seq, first); break;
    case MegatronDType::uint16: widen<std::uint16_t>(src, n, out, f, seq, first); break;
    case MegatronDType::int32: widen<std::int32_t>(src, n, out, f, seq, first); break;
    case MegatronDType::int64: widen<std::int64_t>(src, n, out, f, seq, first); break;
    default: LOOM_CHECK(false, "", "{}: unsupported dtype", impl_->idx_path);
  }
}

std::vector<std::int32_t> MegatronDataset::sequence(std::int64_t seq) const {
  LOOM_CHECK(seq >= 0 && seq < num_sequences(), "", "{}: sequence {} out of range [0, {})", impl_->idx_path, seq,
             num_sequences());
  std::vector<std::int32_t> out(static_cast<std::size_t>(impl_->lengths[seq]));
  read_sequence(seq, out.data());
  return out;
}

std::vector<std::int32_t> MegatronDataset::document(std::int64_t doc) const {
  std::vector<std::int32_t> out(static_cast<std::size_t>(document_tokens(doc)));
  std::size_t at = 0;
  for (std::int64_t s = impl_->doc_indices[doc]; s < impl_->doc_indices[doc + 1]; ++s) {
    read_sequence(s, out.data() + at);
    at += static_cast<std::size_t>(impl_->lengths[s]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Writer

struct MegatronWriter::Impl {
  MegatronDType dtype;
  AtomicWrite bin, idx;
  std::ofstream out;
  std::vector<std::int32_t> lengths;
  std::vector<std::int64_t> doc_indices{0};
  bool finished = false;
  Impl(const std::string& prefix, MegatronDType t, Overwrite ow)
      : dtype(t), bin(prefix + ".bin", ow, "Megatron writer"), idx(prefix + ".idx", ow, "Megatron writer") {}
};

MegatronWriter::MegatronWriter(const std::string& prefix, MegatronDType dtype, Overwrite overwrite) {
  LOOM_CHECK(dtype == MegatronDType::uint16 || dtype == MegatronDType::int32, "",
             "Megatron writer: dtype {} not supported (uint16 or int32)", megatron_dtype_name(dtype));
  impl_ = std::make_unique<Impl>(prefix, dtype, overwrite);
  impl_->out.open(impl_->bin.tmp_path(), std::ios::binary | std::ios::trunc);
  LOOM_CHECK(impl_->out.good(), "check the permissions of the output directory", "cannot create '{}'",
             impl_->bin.tmp_path());
}

MegatronWriter::~MegatronWriter() = default;

void MegatronWriter::add_sequence(std::span<const std::int32_t> tokens) {
  LOOM_CHECK(!impl_->finished, "", "Megatron writer: add_sequence after finish");
  LOOM_CHECK(tokens.size() <= std::size_t(std::numeric_limits<std::int32_t>::max()), "",
             "Megatron writer: a sequence of {} tokens exceeds the int32 length field", tokens.size());
  if (impl_->dtype == MegatronDType::uint16) {
    std::vector<std::uint16_t> v(tokens.size());
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      LOOM_CHECK(tokens[i] >= 0 && tokens[i] <= 65535, "", "Megatron writer: token {} does not fit uint16",
                 tokens[i]);
      v[i] = static_cast<std::uint16_t>(tokens[i]);
    }
    impl_->out.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * 2));
  } else {
    impl_->out.write(reinterpret_cast<const char*>(tokens.data()), std::streamsize(tokens.size() * 4));
  }
  LOOM_CHECK(impl_->out.good(), "is the disk full?", "cannot write '{}'", impl_->bin.tmp_path());
  impl_->lengths.push_back(static_cast<std::int32_t>(tokens.size()));
}

void MegatronWriter::end_document() {
  LOOM_CHECK(!impl_->finished, "", "Megatron writer: end_document after finish");
  impl_->doc_indices.push_back(std::int64_t(impl_->lengths.size()));
}

void MegatronWriter::finish() {
  LOOM_CHECK(!impl_->finished, "", "Megatron writer: finish called twice");
  if (impl_->doc_indices.back() != std::int64_t(impl_->lengths.size())) end_document();
  impl_->out.close();
  LOOM_CHECK(!impl_->out.fail(), "is the disk full?", "cannot write '{}'", impl_->bin.tmp_path());

  std::ofstream x(impl_->idx.tmp_path(), std::ios::binary | std::ios::trunc);
  LOOM_CHECK(x.good(), "check the permissions of the output directory", "cannot create '{}'", impl_->idx.tmp_path());
  auto put = [&x](const auto& v) { x.write(reinterpret_cast<const char*>(&v), sizeof(v)); };
  x.write(kMegatronIndexMagic, 9);
  put(kMegatronIndexVersion);
  put(static_cast<std::uint8_t>(impl_->dtype));
  put(static_cast<std::uint64_t>(impl_->lengths.size()));
  put(static_cast<std::uint64_t>(impl_->doc_indices.size()));
  x.write(reinterpret_cast<const char*>(impl_->lengths.data()), std::streamsize(impl_->lengths.size() * 4));
  const std::int64_t isz = megatron_dtype_size(impl_->dtype);
  std::int64_t ptr = 0;
  for (const std::int32_t len : impl_->lengths) {
    put(ptr);
    ptr += len * isz;
  }
  x.write(reinterpret_cast<const char*>(impl_->doc_indices.data()), std::streamsize(impl_->doc_indices.size() * 8));
  x.close();
  LOOM_CHECK(!x.fail(), "is the disk full?", "cannot write '{}'", impl_->idx.tmp_path());
  impl_->bin.commit();
  impl_->idx.commit();
  impl_->finished = true;
}

// ---------------------------------------------------------------------------------------------------------------
// Conversion

ConversionSummary megatron_to_loom(const std::string& megatron_path, const std::string& output_h5,
                                   const FromMegatronOptions& o) {
  LOOM_CHECK(o.vocab_size >= 1 && o.vocab_size <= (std::int64_t(1) << 31),
             "a Megatron pair does not record its vocabulary: give it, e.g. --vocab-size 50257 (GPT-2)",
             "Megatron import: vocabulary size {} is missing or invalid", o.vocab_size);
  LOOM_CHECK(o.eod_id >= 0 && o.eod_id < o.vocab_size,
             "give the tokenizer's end-of-document id, e.g. --eod-id 50256 (GPT-2's <|endoftext|>)",
             "Megatron import: eod id {} is missing or outside [0, {})", o.eod_id, o.vocab_size);
  const MegatronDataset m = MegatronDataset::open(megatron_path);
  ConversionSummary s;
  s.documents = m.num_documents();
  std::vector<std::int32_t> stream;
  stream.reserve(static_cast<std::size_t>(m.num_tokens() + m.num_documents()));
  std::vector<std::uint64_t> starts;
  starts.reserve(static_cast<std::size_t>(m.num_documents()));
  for (std::int64_t d = 0; d < m.num_documents(); ++d) {
    starts.push_back(stream.size());
    const auto docs = m.document_indices();
    for (std::int64_t q = docs[d]; q < docs[d + 1]; ++q) {
      const std::size_t at = stream.size();
      stream.resize(at + static_cast<std::size_t>(m.sequence_lengths()[q]));
      m.read_sequence(q, stream.data() + at);
      for (std::size_t i = at; i < stream.size(); ++i) {
        LOOM_CHECK(stream[i] < o.vocab_size, "is --vocab-size right? it must exceed every token id",
                   "{}: sequence {} holds token {}, outside the vocabulary [0, {})", m.bin_path(), q, stream[i],
                   o.vocab_size);
      }
    }
    if (stream.size() == starts.back() || stream.back() != o.eod_id) {
      stream.push_back(o.eod_id);
      ++s.eod_added;
    }
  }
  s.tokens = std::int64_t(stream.size());
  LOOM_CHECK(s.tokens >= 2, "a loom dataset needs at least one token in each of train and val",
             "Megatron import: {} holds {} document(s), only {} token(s) with eod", m.idx_path(), s.documents, s.tokens);
  const TrainValSplit split = split_train_val(s.tokens, starts, o.val_fraction);
  s.train_tokens = split.train_tokens;
  s.val_tokens = split.val_tokens;
  DatasetMeta meta;
  meta.tokenizer = o.embedded.known() ? o.embedded.name : o.tokenizer;
  meta.embedded = o.embedded;
  meta.vocab_size = o.vocab_size;
  meta.eod_token = o.eod_id;
  const std::string prefix = megatron_prefix(megatron_path);
  std::error_code ec;
  meta.source_files = nlohmann::json::array({{{"path", m.idx_path()}, {"bytes", fs::file_size(m.idx_path(), ec)}},
                                             {{"path", m.bin_path()}, {"bytes", fs::file_size(m.bin_path(), ec)}}})
                          .dump();
  meta.created_by = "loom-data from-megatron";
  const std::span<const std::int32_t> all(stream);
  write_token_dataset(output_h5, all.first(static_cast<std::size_t>(split.train_tokens)), split.train_doc_offsets,
                      all.subspan(static_cast<std::size_t>(split.train_tokens)), split.val_doc_offsets, meta, o.write);
  return s;
}

ConversionSummary loom_to_megatron(const std::string& input_h5, const std::string& output_prefix,
                                   const ToMegatronOptions& o) {
  LOOM_CHECK(o.split == "train" || o.split == "val" || o.split == "all", "--split train, val or all",
             "Megatron export: unknown split '{}'", o.split);
  std::vector<TokenDataset> parts;
  if (o.split != "val") parts.push_back(TokenDataset::open(input_h5, "train"));
  if (o.split != "train") parts.push_back(TokenDataset::open(input_h5, "val"));
  const DatasetMeta meta = parts.front().meta();
  MegatronWriter w(megatron_prefix(output_prefix), meta.vocab_size <= 65536 ? MegatronDType::uint16 : MegatronDType::int32,
                   o.overwrite);
  ConversionSummary s;
  std::vector<std::int32_t> doc;  // the current document, possibly carried from train into val
  auto flush = [&] {
    w.add_document(doc);
    ++s.documents;
    s.tokens += std::int64_t(doc.size());
    doc.clear();
  };
  for (std::size_t p = 0; p < parts.size(); ++p) {
    const TokenDataset& t = parts[p];
    const auto offs = t.doc_offsets();
    (p == 0 && o.split != "val" ? s.train_tokens : s.val_tokens) = t.size();
    for (std::size_t i = 0; i < offs.size(); ++i) {
      const auto begin = static_cast<std::int64_t>(offs[i]);
      const auto end = i + 1 < offs.size() ? static_cast<std::int64_t>(offs[i + 1]) : t.size();
      // A split's first document continues the previous split's last one when that did not end with eod.
      const bool continues = i == 0 && !doc.empty() && doc.back() != meta.eod_token;
      if (!doc.empty() && !continues) flush();
      const std::size_t at = doc.size();
      doc.resize(at + static_cast<std::size_t>(end - begin));
      t.read(begin, end - begin, doc.data() + at);
    }
  }
  if (!doc.empty()) flush();
  w.finish();
  return s;
}

}  // namespace loom
