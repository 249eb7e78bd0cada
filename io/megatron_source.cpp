// io/megatron_source.cpp — a Megatron pair as a TokenSource (see megatron_source.h).
//
// The stream is indexed by two sorted tables: where each sequence starts in it,
// and where an eod was appended. A read walks them from the window's start, so
// a window costs two binary searches plus a memcpy out of the mapped .bin per
// sequence it touches.
#include "io/megatron_source.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <fmt/format.h>

#include "core/error.h"
#include "io/files.h"
#include "io/token_dataset.h"

namespace loom {

namespace {

bool ends_with(const std::string& s, const char* tail) {
  const std::string t(tail);
  return s.size() > t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}

// CRC-32 of the index file, continued with the data file's size (8 bytes, little-endian).
std::uint32_t pair_checksum(const MegatronDataset& d) {
  std::ifstream in(d.idx_path(), std::ios::binary);
  const std::vector<char> idx((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  LOOM_CHECK(!in.bad(), "", "{}: read error", d.idx_path());
  std::error_code ec;
  const auto bin_bytes = static_cast<std::uint64_t>(std::filesystem::file_size(d.bin_path(), ec));
  LOOM_CHECK(!ec, "", "{}: cannot stat: {}", d.bin_path(), ec.message());
  return crc32_update(crc32_update(0, idx.data(), idx.size()), &bin_bytes, sizeof bin_bytes);
}

void check_options(const std::string& prefix, const std::string& split, const MegatronSourceOptions& o) {
  LOOM_CHECK(split == "train" || split == "val", "", "Megatron pair '{}': unknown split '{}' (train or val)", prefix,
             split);
  LOOM_CHECK(o.vocab_size >= 1 && o.vocab_size <= (std::int64_t(1) << 31),
             "a Megatron pair does not record its vocabulary: give the tokenizer's, e.g. --model.vocab 50257 (GPT-2)",
             "Megatron pair '{}': the vocabulary size is not given (model.vocab = {})", prefix, o.vocab_size);
  LOOM_CHECK(o.eod_id >= 0 && o.eod_id < o.vocab_size,
             "a Megatron pair does not record its end-of-document id: give the tokenizer's, e.g. --data.eod_id 50256 "
             "(GPT-2's <|endoftext|>)",
             "Megatron pair '{}': the eod id {} is not given or outside the vocabulary [0, {})", prefix, o.eod_id,
             o.vocab_size);
  LOOM_CHECK(o.val_fraction > 0 && o.val_fraction < 1, "e.g. --data.val_fraction 0.05",
             "Megatron pair '{}': data.val_fraction {} is outside (0, 1)", prefix, o.val_fraction);
}

}  // namespace

DeclaredTokenizer declare_tokenizer(const std::string& name, std::int64_t vocab_size, std::int32_t eod_id,
                                    const std::string& vocab_option, const std::string& eod_option) {
  DeclaredTokenizer d;
  d.tokenizer = embed_tokenizer(name);
  const TokenizerInfo info = tokenizer_info(d.tokenizer);
  d.vocab_size = vocab_size > 0 ? vocab_size : info.vocab_size;
  d.eod_id = eod_id >= 0 ? eod_id : info.eod;
  LOOM_CHECK(d.vocab_size >= info.vocab_size, fmt::format("drop {} to take the tokenizer's, or raise it", vocab_option),
             "{} = {} is smaller than the vocabulary of the tokenizer '{}' ({})", vocab_option, d.vocab_size, name,
             info.vocab_size);
  LOOM_CHECK(d.eod_id == info.eod, fmt::format("drop {} to take the tokenizer's", eod_option),
             "{} = {} is not the end-of-document id of the tokenizer '{}' ({})", eod_option, d.eod_id, name, info.eod);
  return d;
}

bool is_megatron_path(const std::string& path) {
  std::error_code ec;
  // PATH.bin alone counts too, so a lost .idx is reported as such, not as a missing HDF5 file.
  return ends_with(path, ".idx") || ends_with(path, ".bin") || std::filesystem::exists(path + ".idx", ec) ||
         std::filesystem::exists(path + ".bin", ec);
}

std::unique_ptr<MegatronSource> MegatronSource::open(const std::string& path_or_prefix, const std::string& split,
                                                     const MegatronSourceOptions& o) {
  check_options(megatron_prefix(path_or_prefix), split, o);
  std::unique_ptr<MegatronSource> s(new MegatronSource(MegatronDataset::open(path_or_prefix)));
  s->split_ = split;
  s->vocab_ = o.vocab_size;
  s->eod_ = o.eod_id;
  if (o.tokenizer.known()) {
    s->embedded_ = o.tokenizer;
    s->tokenizer_ = o.tokenizer.name;
  }
  const std::vector<std::uint64_t> doc_starts = s->build_stream();
  LOOM_CHECK(s->total_ >= 2, "a split needs at least one token in each of train and val",
             "{}: {} document(s), only {} token(s) with eod", s->path(), s->data_.num_documents(), s->total_);
  const TrainValSplit cut = split_train_val(s->total_, doc_starts, o.val_fraction);
  s->begin_ = split == "train" ? 0 : cut.train_tokens;
  s->size_ = split == "train" ? cut.train_tokens : cut.val_tokens;
  s->checksum_ = pair_checksum(s->data_);
  return s;
}

// Each document: its sequences back to back, then eod unless its last token is eod
// (what megatron_to_loom writes). Reads one token per non-empty document.
std::vector<std::uint64_t> MegatronSource::build_stream() {
  const auto docs = data_.document_indices();
  const auto lens = data_.sequence_lengths();
  seq_start_.resize(lens.size());
  std::vector<std::uint64_t> doc_starts;
  doc_starts.reserve(static_cast<std::size_t>(data_.num_documents()));
  std::int64_t pos = 0;
  for (std::int64_t d = 0; d < data_.num_documents(); ++d) {
    doc_starts.push_back(static_cast<std::uint64_t>(pos));
    std::int64_t last_seq = -1;  // the document's last non-empty sequence
    for (std::int64_t q = docs[d]; q < docs[d + 1]; ++q) {
      seq_start_[q] = pos;
      pos += lens[q];
      if (lens[q] > 0) last_seq = q;
    }
    std::int32_t last = -1;
    if (last_seq >= 0) data_.read_sequence_part(last_seq, lens[last_seq] - 1, 1, &last);
    if (last != eod_) eod_at_.push_back(pos++);
  }
  total_ = pos;
  return doc_starts;
}

std::int64_t MegatronSource::resident_bytes() const {
  // The index tables (lengths 4 + pointers 8 + stream starts 8 per sequence); the
  // mapped .bin is page cache, not this process's memory.
  return 20 * data_.num_sequences() + 8 * (data_.num_documents() + 1) + 8 * std::int64_t(eod_at_.size());
}

void MegatronSource::read(std::int64_t offset, std::int64_t count, std::int32_t* out) const {
  LOOM_CHECK(offset >= 0 && count >= 0 && offset <= size_ - count, "",
             "{}: tokens [{}, {}) lie outside the {} split's {} tokens", path(), offset, offset + count, split_, size_);
  std::int64_t g = begin_ + offset;
  const std::int64_t end = g + count;
  auto eod = std::lower_bound(eod_at_.begin(), eod_at_.end(), g);
  const auto lens = data_.sequence_lengths();
  while (g < end) {
    if (eod != eod_at_.end() && *eod == g) {
      *out++ = eod_;
      ++g, ++eod;
      continue;
    }
    // The last sequence starting at or before g holds g (empty ones start after the token before).
    const std::int64_t q = std::upper_bound(seq_start_.begin(), seq_start_.end(), g) - seq_start_.begin() - 1;
    const std::int64_t within = g - seq_start_[q];
    const std::int64_t n = std::min(end - g, lens[q] - within);
    data_.read_sequence_part(q, within, n, out);
    for (std::int64_t i = 0; i < n; ++i)
      LOOM_CHECK(out[i] < vocab_, "is model.vocab right? it must exceed every token id of the pair",
                 "{}: sequence {} holds token {}, outside the vocabulary [0, {})", data_.bin_path(), q, out[i], vocab_);
    out += n;
    g += n;
  }
}

}  // namespace loom
