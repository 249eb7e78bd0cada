// io/labelled_dataset.h — the HDF5 labelled dataset (sequence classification): writer,
// reader, and the TSV builder behind `loom-data classify`. The format, with h5py
// snippets, is in docs/data-format.md ("Labelled datasets").
//
// One file, splits /train and /val, each with `tokens` int32 (N, T) — every sequence
// truncated to T tokens or padded after its end with the file's pad token —, `lengths`
// int32 (N) (real tokens, 1..T) and `labels` int32 (N) (0..classes-1). Root attributes:
// magic "loom-labelled", format_version, seq_len, vocab_size, pad_token, label_names
// (JSON array, index = label id), tokenizer (+ the embedded tokenizer's attributes).
// Everything is held in memory (labelled sets are small). Errors are loom::Error naming
// the file (or the TSV line) and a fix.
#pragma once

#include <cstdint>
#include <istream>
#include <string>
#include <vector>

#include "io/embedded_tokenizer.h"
#include "io/files.h"
#include "io/tokenizer.h"

namespace loom {

inline constexpr const char* kLabelledMagic = "loom-labelled";
inline constexpr std::int64_t kLabelledFormatVersion = 1;

// One split: N sequences of T token ids (row-major), their lengths and labels.
struct LabelledSplit {
  std::vector<std::int32_t> tokens;  // (N, T), pad_token after lengths[i]
  std::vector<std::int32_t> lengths, labels;
  std::int64_t size() const { return std::int64_t(labels.size()); }
  // The share of the most frequent label (the majority-class baseline accuracy); 0 when empty.
  double majority_share(std::int64_t classes) const;
};

struct LabelledDataset {
  std::int64_t seq_len = 0, vocab_size = 257;
  std::int32_t pad_token = 256;  // the tokenizer's eod
  std::vector<std::string> label_names;
  std::string tokenizer = "bytes";
  EmbeddedTokenizer embedded;
  LabelledSplit train, val;
  std::int64_t classes() const { return std::int64_t(label_names.size()); }
};

// True when `path` is an HDF5 file whose magic is kLabelledMagic (a token dataset is not).
bool is_labelled_dataset(const std::string& path);
LabelledDataset read_labelled_dataset(const std::string& path);
void write_labelled_dataset(const std::string& path, const LabelledDataset& d,
                            Overwrite overwrite = Overwrite::no);

// The TSV builder. Each non-empty line is `text<TAB>label` (exactly one tab; a trailing
// \r is dropped); labels are strings, mapped to ids in order of first appearance. The
// text is tokenised with `tok` and truncated to seq_len tokens. Example i goes to val
// when it is among the round(val_fraction * N) examples with the smallest
// rng_u64(seed, 0, i) (a seeded shuffle, so a file sorted by label still gets every label
// in both splits); both splits keep file order. loom::Error names the line (1-based) of a
// line without a tab, with two, with an empty text or label, or with text that
// tokenises to nothing.
struct ClassifyBuildOptions {
  std::int64_t seq_len = 128;
  double val_fraction = 0.1;
  std::uint64_t seed = 1234;
  std::string source = "input";  // named in errors
};
LabelledDataset build_labelled_dataset(std::istream& tsv, const TokenizerInfo& tok,
                                       const ClassifyBuildOptions& o);

// Inputs and targets of one example for the runtime (layers/stage_model.h): x = its
// tokens, y = -1 except `label` at the pooled position: the first token (pool_first) or
// the last real one, so the runtime's target count is the number of sequences.
void classify_row(const LabelledSplit& s, std::int64_t i, std::int64_t T, bool pool_first, std::int32_t* x,
                  std::int32_t* y);

}  // namespace loom
