// io/megatron_source.h — a Megatron-LM pair (PREFIX.idx + PREFIX.bin) read in
// place as a training or validation split: the .bin stays memory-mapped, nothing
// is converted or copied whole into memory.
//
// The token stream is the one `loom-data from-megatron` writes, so a pair and its
// conversion give the same batches: each Megatron document's sequences
// concatenated, then eod_id unless the document already ends with it (Megatron's
// preprocess_data.py --append-eod). The pair has no val split, so, as
// from-megatron does, the last val_fraction of that stream (split_train_val) is
// "val" and the rest "train". Opening reads the index and the last token of each
// document (to know where eod is appended); it never reads the whole .bin.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/megatron_dataset.h"
#include "io/token_source.h"

namespace loom {

// A Megatron pair records neither its vocabulary nor its eod id: the caller gives
// them (loom-train: model.vocab, data.eod_id).
struct MegatronSourceOptions {
  std::int64_t vocab_size = 0;  // every token must lie in [0, vocab_size)
  std::int32_t eod_id = -1;     // in [0, vocab_size)
  double val_fraction = 0.05;   // in (0, 1); loom-data from-megatron's default
  // The tokenizer the pair was made with, when the user names it (loom-train
  // data.tokenizer): it then travels into the model like a loom dataset's. Unknown otherwise.
  EmbeddedTokenizer tokenizer;
};

// The tokenizer a user names for data that records none (a Megatron pair): `name` is
// bytes, PATH.json or PATH.model (tokenizer_by_name). vocab_size <= 0 and eod_id < 0
// are filled in from it; given ones are checked against it (eod must be its eod; the
// vocabulary may be larger, padded as Megatron pads it, never smaller). loom::Error
// naming `vocab_option` / `eod_option` on a conflict.
struct DeclaredTokenizer {
  EmbeddedTokenizer tokenizer;
  std::int64_t vocab_size = 0;
  std::int32_t eod_id = -1;
};
DeclaredTokenizer declare_tokenizer(const std::string& name, std::int64_t vocab_size, std::int32_t eod_id,
                                    const std::string& vocab_option, const std::string& eod_option);

// True when `path` names a Megatron pair: it ends in .idx or .bin, or PATH.idx or PATH.bin exists.
bool is_megatron_path(const std::string& path);

class MegatronSource final : public TokenSource {
public:
  // split: "train" or "val". loom::Error naming the file when the pair is missing,
  // truncated or malformed, or the options are missing.
  static std::unique_ptr<MegatronSource> open(const std::string& path_or_prefix, const std::string& split,
                                              const MegatronSourceOptions& options);

  std::int64_t size() const override { return size_; }
  std::int64_t vocab_size() const override { return vocab_; }
  const std::string& tokenizer() const override { return tokenizer_; }
  EmbeddedTokenizer embedded_tokenizer() const override {
    return embedded_.known() ? embedded_ : TokenSource::embedded_tokenizer();
  }
  const std::string& path() const override { return data_.idx_path(); }
  const std::string& split() const override { return split_; }
  // CRC-32 of the .idx continued with the .bin's size: the index pins every
  // sequence's length and offset, and reading the .bin whole would cost minutes.
  std::uint32_t tokens_checksum() const override { return checksum_; }
  std::int64_t resident_bytes() const override;
  // Tokens outside [0, vocab_size) are an error naming the .bin.
  void read(std::int64_t offset, std::int64_t count, std::int32_t* out) const override;

private:
  explicit MegatronSource(MegatronDataset data) : data_(std::move(data)) {}
  // Fills seq_start_, eod_at_ and total_; returns each document's first stream offset.
  std::vector<std::uint64_t> build_stream();

  MegatronDataset data_;
  std::string split_, tokenizer_ = "megatron";  // from-megatron's default tokenizer name
  EmbeddedTokenizer embedded_;                   // MegatronSourceOptions::tokenizer
  std::int64_t vocab_ = 0;
  std::int32_t eod_ = -1;
  std::int64_t total_ = 0;                // tokens in the whole stream (both splits)
  std::int64_t begin_ = 0, size_ = 0;     // this split: stream tokens [begin_, begin_ + size_)
  std::vector<std::int64_t> seq_start_;   // stream offset of each sequence's first token
  std::vector<std::int64_t> eod_at_;      // stream offsets of the appended eod tokens, increasing
  std::uint32_t checksum_ = 0;
};

}  // namespace loom
