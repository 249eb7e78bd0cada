// io/token_dataset.h — the HDF5 token dataset: writer and reader. The format
// (every dataset and attribute, with h5py snippets) is in docs/data-format.md.
//
// One file holds the splits /train and /val. Each split has `tokens` (uint16 when
// vocab <= 65536, else uint32; chunked, shuffle+deflate) and `doc_offsets` (uint64,
// the index of the first token of every document in that split) and the attribute
// `tokens_checksum`. The writer writes PATH.tmp and renames it into place. The
// reader returns tokens as int32 and throws loom::Error naming the file and the
// problem, with a hint. TokenDataset is move-only and not thread-safe (HDF5 is not).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "io/embedded_tokenizer.h"
#include "io/files.h"
#include "io/token_source.h"

namespace loom {

inline constexpr const char* kTokensMagic = "loom-tokens";
inline constexpr std::int64_t kTokensFormatVersion = 1;

// File-level attributes. The writer takes them from the caller; the reader fills
// them from the file (format_version included).
struct DatasetMeta {
  std::string tokenizer = "bytes";
  // The tokenizer itself (io/embedded_tokenizer.h), written when known(); its name must
  // equal `tokenizer`. The reader fills it from the file; a file without one reads as
  // kind "bytes" when `tokenizer` is "bytes", else as unknown (the name only).
  EmbeddedTokenizer embedded;
  std::int64_t vocab_size = 257;
  std::int32_t eod_token = 256;
  std::string source_files = "[]";  // JSON array of {"path", "bytes", "crc32"}, one per input
  std::string created_by = "loom";
  std::int64_t format_version = kTokensFormatVersion;
};

struct TokenWriteOptions {
  Overwrite overwrite = Overwrite::no;
  int deflate_level = 1;                 // 0: no compression (and no shuffle filter)
  std::int64_t chunk_tokens = 1 << 16;   // HDF5 chunk length of `tokens`
};

// Writes both splits. doc_offsets must be strictly increasing, start at 0 when the
// split has tokens (every token belongs to a document) and be empty otherwise;
// tokens must lie in [0, meta.vocab_size); meta.source_files must be valid JSON.
void write_token_dataset(const std::string& path, std::span<const std::int32_t> train_tokens,
                         std::span<const std::uint64_t> train_doc_offsets,
                         std::span<const std::int32_t> val_tokens, std::span<const std::uint64_t> val_doc_offsets,
                         const DatasetMeta& meta, const TokenWriteOptions& options = {});

// Where loom-data cuts a token stream: the last val_fraction of it (rounded, at
// least one token on each side) is val, the rest train. doc_starts are the
// documents' first tokens in the whole stream (increasing, starting at 0); each
// split's doc_offsets are relative to the split and start at 0 (a document cut
// by the boundary counts in both). Needs total_tokens >= 2 and val_fraction in (0, 1).
struct TrainValSplit {
  std::int64_t train_tokens = 0, val_tokens = 0;
  std::vector<std::uint64_t> train_doc_offsets, val_doc_offsets;
};
TrainValSplit split_train_val(std::int64_t total_tokens, std::span<const std::uint64_t> doc_starts,
                              double val_fraction);

// Writes a dataset from a token stream of any length with bounded memory: append() the
// stream in order (tokens checked against meta.vocab_size as they come), then finish()
// cuts it with split_train_val and writes PATH.tmp, renamed into place. The tokens are
// spooled to an anonymous temporary file next to the output (on-disk width: 2 or 4 bytes
// a token; unlinked at once, so nothing is left behind even on a crash) because the val
// split is the stream's end, known only at finish(). Memory: the document starts (8
// bytes a document, twice at finish) and a few MiB of buffers. Without finish(), nothing
// is written under the final name. The output is the same file write_token_dataset makes.
class TokenStreamWriter {
public:
  // Refuses at once (loom::Error) an existing `path` unless options.overwrite.
  TokenStreamWriter(const std::string& path, const DatasetMeta& meta, const TokenWriteOptions& options = {});
  ~TokenStreamWriter();
  TokenStreamWriter(const TokenStreamWriter&) = delete;
  TokenStreamWriter& operator=(const TokenStreamWriter&) = delete;

  // doc_starts: stream positions (increasing) of the documents that start in `tokens`;
  // the first append must start a document at position 0.
  void append(std::span<const std::int32_t> tokens, std::span<const std::uint64_t> doc_starts);
  std::int64_t tokens() const;
  std::int64_t documents() const;
  // The source_files attribute (JSON), when it is known only after the stream.
  void set_source_files(const std::string& json);
  // Cuts the stream (the last val_fraction is val), writes both splits and renames the
  // file into place; returns the cut.
  TrainValSplit finish(double val_fraction);

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct TokenReadOptions {
  // A split whose tokens take at most this many bytes on disk (uncompressed) is
  // read into memory at open and checked there (range and checksum); a larger one
  // stays on disk and each read() is an HDF5 hyperslab read, range-checked.
  std::int64_t max_resident_bytes = std::int64_t(2) << 30;
};

class TokenDataset final : public TokenSource {
public:
  // split: "train" or "val".
  static TokenDataset open(const std::string& path, const std::string& split, const TokenReadOptions& options = {});
  TokenDataset(TokenDataset&&) noexcept;
  TokenDataset& operator=(TokenDataset&&) noexcept;
  ~TokenDataset();

  std::int64_t size() const override;  // tokens in this split
  std::int64_t vocab_size() const override;
  const std::string& tokenizer() const override { return meta().tokenizer; }
  const DatasetMeta& meta() const;
  EmbeddedTokenizer embedded_tokenizer() const override { return meta().embedded; }
  const std::string& path() const override;
  const std::string& split() const override;
  std::span<const std::uint64_t> doc_offsets() const;
  std::uint32_t tokens_checksum() const override;  // as stored in the file
  bool resident() const;                           // whole split held in memory
  std::int64_t resident_bytes() const override;    // host memory the split holds (for the memory plan)

  // out[i] = token[offset + i] for i < count; [offset, offset + count) must lie in the split.
  void read(std::int64_t offset, std::int64_t count, std::int32_t* out) const override;
  // Streams the split from disk checking range and checksum (open() already did
  // this when resident()).
  void verify() const;

private:
  struct Impl;
  explicit TokenDataset(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace loom
