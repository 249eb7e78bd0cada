// io/data_loader.cpp — window arithmetic and batch assembly (see data_loader.h).
//
// Each row is one TokenDataset::read of T + 1 tokens, so a resident split costs a
// copy per row and a streamed one an HDF5 hyperslab read per row.
#include "io/data_loader.h"

#include "core/error.h"
#include "core/rng.h"

namespace loom {

DataLoader::DataLoader(const TokenDataset& data, std::int64_t seq_len, std::uint64_t seed)
    : data_(&data), seq_len_(seq_len), seed_(seed) {
  LOOM_CHECK(seq_len >= 1, "", "DataLoader: seq_len must be >= 1, got {}", seq_len);
  LOOM_CHECK(data.size() >= seq_len + 1,
             "use a shorter sequence length (model.seq_len) or more data (for the val split: a larger "
             "loom-data --val-fraction)",
             "the '{}' split of '{}' has {} tokens, too small for sequence length {} (needs at least {})",
             data.split(), data.path(), data.size(), seq_len, seq_len + 1);
}

std::int64_t DataLoader::eval_windows() const { return (data_->size() - 1) / seq_len_; }

std::int64_t DataLoader::train_window(std::int64_t step, std::int64_t seq) const {
  LOOM_CHECK(step >= 0 && seq >= 0, "", "DataLoader: step {} and sequence {} must be >= 0", step, seq);
  const auto span = static_cast<std::uint64_t>(data_->size() - seq_len_);
  return static_cast<std::int64_t>(rng_u64(seed_, static_cast<std::uint64_t>(step), static_cast<std::uint64_t>(seq)) %
                                   span);
}

std::int64_t DataLoader::eval_window(std::int64_t eval_index, std::int64_t seq, std::int64_t seqs_per_batch) const {
  LOOM_CHECK(eval_index >= 0 && seq >= 0 && seqs_per_batch >= 1, "",
             "DataLoader: eval_index {} and sequence {} must be >= 0, seqs_per_batch {} >= 1", eval_index, seq,
             seqs_per_batch);
  const auto span = static_cast<std::uint64_t>(data_->size() - seq_len_);
  const std::uint64_t s = static_cast<std::uint64_t>(eval_index) * static_cast<std::uint64_t>(seqs_per_batch) +
                          static_cast<std::uint64_t>(seq);
  __extension__ using u128 = unsigned __int128;  // (s * T) mod span, exact for any s
  return static_cast<std::int64_t>(u128(s) * u128(seq_len_) % span);
}

void DataLoader::train_batch(std::int64_t step, std::int64_t first_seq, std::int64_t count, std::int32_t* out) const {
  LOOM_CHECK(first_seq >= 0 && count >= 0, "", "DataLoader::train_batch: first_seq {} and count {} must be >= 0",
             first_seq, count);
  for (std::int64_t i = 0; i < count; ++i) {
    data_->read(train_window(step, first_seq + i), row_len(), out + i * row_len());
  }
}

void DataLoader::eval_batch(std::int64_t eval_index, std::int64_t first_seq, std::int64_t count,
                            std::int64_t seqs_per_batch, std::int32_t* out) const {
  LOOM_CHECK(first_seq >= 0 && count >= 0 && first_seq + count <= seqs_per_batch, "",
             "DataLoader::eval_batch: sequences [{}, {}) are outside the batch of {}", first_seq, first_seq + count,
             seqs_per_batch);
  for (std::int64_t i = 0; i < count; ++i) {
    data_->read(eval_window(eval_index, first_seq + i, seqs_per_batch), row_len(), out + i * row_len());
  }
}

}  // namespace loom
