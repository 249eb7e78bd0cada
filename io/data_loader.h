// io/data_loader.h — deterministic training and evaluation batches (docs/data-format.md).
//
// T = seq_len; out is (count, T + 1) int32 row-major, written with `=` (inputs
// row[0..T), targets row[1..T+1)). Training sequence i of step s (i indexes the
// *global* batch; a dp rank asks for its slice) starts at
// rng_u64(seed, stream = s, index = i) % (size - T), so every layout sees the same
// batch; windows may cross documents. Evaluation sequence k = eval_index *
// seqs_per_batch + i starts at (k * T) % (size - T). Borrows the dataset; not thread-safe.
#pragma once

#include <cstdint>

#include "io/token_dataset.h"

namespace loom {

class DataLoader {
public:
  // loom::Error when the split has fewer than seq_len + 1 tokens.
  DataLoader(const TokenDataset& data, std::int64_t seq_len, std::uint64_t seed);

  std::int64_t seq_len() const { return seq_len_; }
  std::int64_t row_len() const { return seq_len_ + 1; }
  // Distinct non-overlapping evaluation windows before they wrap around: (size - 1) / T.
  std::int64_t eval_windows() const;

  // First token of global training sequence `seq` of `step`.
  std::int64_t train_window(std::int64_t step, std::int64_t seq) const;
  // First token of evaluation sequence `seq` (global index within batch eval_index).
  std::int64_t eval_window(std::int64_t eval_index, std::int64_t seq, std::int64_t seqs_per_batch) const;

  // Rows for global sequences [first_seq, first_seq + count) of training step `step`.
  void train_batch(std::int64_t step, std::int64_t first_seq, std::int64_t count, std::int32_t* out) const;
  // Rows for sequences [first_seq, first_seq + count) of evaluation batch `eval_index`;
  // first_seq + count <= seqs_per_batch.
  void eval_batch(std::int64_t eval_index, std::int64_t first_seq, std::int64_t count, std::int64_t seqs_per_batch,
                  std::int32_t* out) const;

private:
  const TokenDataset* data_;
  std::int64_t seq_len_;
  std::uint64_t seed_;
};

}  // namespace loom
