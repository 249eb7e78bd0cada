// io/megatron_dataset.h — Megatron-LM indexed datasets (Megatron-Core's
// IndexedDataset, "MMIDIDX": a PREFIX.idx index and a PREFIX.bin of raw tokens):
// reader, writer, and conversion to and from loom's HDF5 token dataset. The byte
// layout and the conversion rules are in docs/data-format.md.
//
// Reader: the .idx is read and validated whole at open (header, sizes, document
// indices, lengths and pointers against the .bin); the .bin is memory-mapped and
// never loaded whole. Tokens come back as int32; a token that is negative or does
// not fit in int32 is an error naming the file and the sequence. Every problem
// throws loom::Error naming the file and what is wrong. A sequence is one entry of
// the index; document d is the sequences [document_indices[d], document_indices[d+1]).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "io/files.h"
#include "io/token_dataset.h"

namespace loom {

inline constexpr char kMegatronIndexMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', '\0', '\0'};
inline constexpr std::uint64_t kMegatronIndexVersion = 1;
inline constexpr std::int64_t kMegatronHeaderBytes = 34;  // magic 9 + version 8 + dtype 1 + counts 8 + 8

// Megatron's DType codes (the byte after the version).
enum class MegatronDType : std::uint8_t {
  uint8 = 1, int8 = 2, int16 = 3, int32 = 4, int64 = 5, float64 = 6, float32 = 7, uint16 = 8
};
const char* megatron_dtype_name(MegatronDType t);
int megatron_dtype_size(MegatronDType t);

// "PREFIX", "PREFIX.idx" or "PREFIX.bin" -> "PREFIX".
std::string megatron_prefix(const std::string& path);

class MegatronDataset {
public:
  static MegatronDataset open(const std::string& path_or_prefix);
  MegatronDataset(MegatronDataset&&) noexcept;
  MegatronDataset& operator=(MegatronDataset&&) noexcept;
  ~MegatronDataset();

  const std::string& idx_path() const;
  const std::string& bin_path() const;
  MegatronDType dtype() const;
  bool has_sequence_modes() const;  // the multimodal trailer (one int8 per sequence) is present

  std::int64_t num_sequences() const;
  std::int64_t num_documents() const;  // document_indices.size() - 1
  std::int64_t num_tokens() const;
  std::span<const std::int32_t> sequence_lengths() const;
  std::span<const std::int64_t> sequence_pointers() const;  // byte offsets into the .bin
  std::span<const std::int64_t> document_indices() const;   // num_documents() + 1 entries, 0 .. num_sequences()

  std::int64_t document_tokens(std::int64_t doc) const;  // tokens in document doc
  // out receives sequence_lengths()[seq] tokens.
  void read_sequence(std::int64_t seq, std::int32_t* out) const;
  // out receives tokens [first, first + count) of the sequence (a training window
  // needs a slice of a long sequence, not all of it).
  void read_sequence_part(std::int64_t seq, std::int64_t first, std::int64_t count, std::int32_t* out) const;
  std::vector<std::int32_t> sequence(std::int64_t seq) const;
  // The document's sequences, concatenated.
  std::vector<std::int32_t> document(std::int64_t doc) const;

private:
  struct Impl;
  explicit MegatronDataset(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Writes PREFIX.bin and PREFIX.idx (each under .tmp, renamed into place by finish()).
// dtype must be uint16 or int32 (what Megatron's preprocessing writes); every token
// must fit it. Sequences added after the last end_document() form a final document
// at finish().
class MegatronWriter {
public:
  MegatronWriter(const std::string& prefix, MegatronDType dtype, Overwrite overwrite = Overwrite::no);
  ~MegatronWriter();
  MegatronWriter(const MegatronWriter&) = delete;
  MegatronWriter& operator=(const MegatronWriter&) = delete;

  void add_sequence(std::span<const std::int32_t> tokens);
  void end_document();
  void add_document(std::span<const std::int32_t> tokens) {  // one sequence, one document
    add_sequence(tokens);
    end_document();
  }
  void finish();

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Megatron pair -> loom HDF5 dataset. Each Megatron document becomes one loom
// document: its sequences concatenated, then eod_id unless its last token already
// is eod_id (Megatron's preprocess_data.py --append-eod). The stream is split
// into train/val like loom-data (split_train_val). Holds the token stream in memory.
struct FromMegatronOptions {
  std::int64_t vocab_size = 0;  // required: every token must lie in [0, vocab_size)
  std::int32_t eod_id = -1;     // required: in [0, vocab_size)
  double val_fraction = 0.05;
  std::string tokenizer = "megatron";  // the name stored; replaced by embedded.name when that is known
  EmbeddedTokenizer embedded;           // embedded in the dataset when known (declare_tokenizer)
  TokenWriteOptions write;
};
struct ConversionSummary {
  std::int64_t documents = 0, tokens = 0, eod_added = 0, train_tokens = 0, val_tokens = 0;
};
ConversionSummary megatron_to_loom(const std::string& megatron_path, const std::string& output_h5,
                                   const FromMegatronOptions& options);

// loom HDF5 dataset -> Megatron pair. split: "train", "val" or "all" (train then
// val, with the document cut by the split boundary joined back into one). Each loom
// document (its eod included) becomes one sequence and one document. dtype uint16
// when vocab_size <= 65536, else int32.
struct ToMegatronOptions {
  std::string split = "all";
  Overwrite overwrite = Overwrite::no;
};
ConversionSummary loom_to_megatron(const std::string& input_h5, const std::string& output_prefix,
                                   const ToMegatronOptions& options);

}  // namespace loom
