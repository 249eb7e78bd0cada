// io/data_loader.h — deterministic training and evaluation batches (docs/data-format.md).
//
// T = seq_len; out is (count, T + 1) int32 row-major, written with `=` (inputs
// row[0..T), targets row[1..T+1)). Training sequence i of step s (i indexes the
// *global* batch; a dp rank asks for its slice) starts at
// rng_u64(seed, stream = s, index = i) % (size - T), so every layout sees the same
// batch; windows may cross documents. Evaluation sequence k = eval_index *
// seqs_per_batch + i starts at (k * T) % (size - T). Borrows the dataset; not thread-safe.
//
// A blend (docs/data-format.md, "Blends") has several sources with weights: sequence
// i of step s first draws its source, u = uniform from rng_u64(seed ^ kBlendKey,
// stream = s, index = i) against the cumulative normalised weights, then its window
// inside that source as above, so (source, window) stays a pure function of
// (seed, s, i). One source never draws: it reads exactly the windows above.
// Evaluation reads the first source.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/megatron_source.h"
#include "io/token_dataset.h"
#include "io/token_source.h"

namespace loom {

// XORed into the seed for the source draw, so it is independent of the window draw.
inline constexpr std::uint64_t kBlendKey = 0x9e3779b97f4a7c15ULL;

// `data.train`: "PATH" (weight 1), or "W1 PATH1 W2 PATH2 ..." separated by spaces
// (Megatron's weight-path pairs). A spec naming an existing file is one PATH even
// with spaces in it. Weights must be positive and finite; they are returned
// normalised to sum 1. loom::Error on an odd count, a bad or non-positive weight.
struct BlendSource {
  std::string path;
  double weight = 1;
};
std::vector<BlendSource> parse_blend(const std::string& spec);

// Opens `split` of `path`: a Megatron pair (is_megatron_path: PREFIX, PREFIX.idx or
// PREFIX.bin) read in place with `megatron`, else a loom HDF5 token dataset.
std::unique_ptr<TokenSource> open_token_source(const std::string& path, const std::string& split,
                                               const MegatronSourceOptions& megatron = {});

// Opens `split` of every source of the spec (open_token_source); loom::Error (naming
// both files) when two sources differ in vocabulary size or tokenizer.
struct Blend {
  std::vector<std::unique_ptr<TokenSource>> sets;
  std::vector<double> weights;  // normalised
};
Blend open_blend(const std::string& spec, const std::string& split, const MegatronSourceOptions& megatron = {});

class DataLoader {
 public:
  // loom::Error when the split has fewer than seq_len + 1 tokens.
  DataLoader(const TokenSource& data, std::int64_t seq_len, std::uint64_t seed);
  // A blend of sources with positive weights (normalised here); every source must
  // hold seq_len + 1 tokens and share vocabulary size and tokenizer.
  DataLoader(std::vector<const TokenSource*> sources, std::vector<double> weights, std::int64_t seq_len,
             std::uint64_t seed);
  // Borrows the blend's datasets.
  DataLoader(const Blend& blend, std::int64_t seq_len, std::uint64_t seed);

  std::int64_t sources() const { return static_cast<std::int64_t>(sources_.size()); }

  std::int64_t seq_len() const { return seq_len_; }
  std::int64_t row_len() const { return seq_len_ + 1; }
  // Distinct non-overlapping evaluation windows (of the first source) before they wrap around: (size - 1) /
  // T.
  std::int64_t eval_windows() const;

  // Source of global training sequence `seq` of `step` (0 for a single source).
  std::int64_t train_source(std::int64_t step, std::int64_t seq) const;
  // First token of global training sequence `seq` of `step`, in source train_source(step, seq).
  std::int64_t train_window(std::int64_t step, std::int64_t seq) const;
  // First token of evaluation sequence `seq` (first source) (global index within batch eval_index).
  std::int64_t eval_window(std::int64_t eval_index, std::int64_t seq, std::int64_t seqs_per_batch) const;

  // Rows for global sequences [first_seq, first_seq + count) of training step `step`.
  void train_batch(std::int64_t step, std::int64_t first_seq, std::int64_t count, std::int32_t* out) const;
  // Rows for sequences [first_seq, first_seq + count) of evaluation batch `eval_index`;
  // first_seq + count <= seqs_per_batch.
  void eval_batch(std::int64_t eval_index, std::int64_t first_seq, std::int64_t count,
                  std::int64_t seqs_per_batch, std::int32_t* out) const;

 private:
  std::vector<const TokenSource*> sources_;
  std::vector<double> cumulative_;  // cumulative normalised weights, the last exactly 1
  std::int64_t seq_len_;
  std::uint64_t seed_;
};

}  // namespace loom
