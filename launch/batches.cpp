// launch/batches.cpp — see batches.h.
#include "launch/batches.h"

#include <algorithm>

#include "core/error.h"
#include "core/rng.h"

namespace loom {

namespace {
// Splits (B, T+1) windows into inputs tokens[:, :T] and targets tokens[:, 1:].
void split_windows(const std::int32_t* w, std::int64_t B, std::int64_t T, std::int32_t* x, std::int32_t* y) {
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t t = 0; t < T; ++t) {
      x[b * T + t] = w[b * (T + 1) + t];
      y[b * T + t] = w[b * (T + 1) + t + 1];
    }
}
}  // namespace

void LmBatches::train(std::int64_t step, std::int64_t count, std::int32_t* x, std::int32_t* y,
                      std::int32_t* len) const {
  if (len) std::fill(len, len + count, std::int32_t(loader_.seq_len()));
  windows_.resize(std::size_t(count * loader_.row_len()));
  loader_.train_batch(step, 0, count, windows_.data());
  if (mlm_) mlm_->train(step, 0, count, loader_.seq_len(), windows_.data(), x, y);
  else if (spans_) spans_->train(step, 0, count, windows_.data(), loader_.row_len(), x, y);
  else split_windows(windows_.data(), count, loader_.seq_len(), x, y);
}

void LmBatches::eval(std::int64_t e, std::int64_t per_batch, std::int32_t* x, std::int32_t* y,
                     std::int32_t* len) const {
  if (len) std::fill(len, len + per_batch, std::int32_t(loader_.seq_len()));
  windows_.resize(std::size_t(per_batch * loader_.row_len()));
  loader_.eval_batch(e, 0, per_batch, per_batch, windows_.data());
  if (mlm_) mlm_->eval(e, 0, per_batch, loader_.seq_len(), windows_.data(), x, y);
  else if (spans_) spans_->eval(e, 0, per_batch, windows_.data(), loader_.row_len(), x, y);
  else split_windows(windows_.data(), per_batch, loader_.seq_len(), x, y);
}

ClassifyBatches::ClassifyBatches(const LabelledSplit& split, std::int64_t classes, std::int64_t T,
                                 std::int32_t pad, std::uint64_t seed, Pooling pooling)
    : split_(split),
      classes_(classes),
      T_(T),
      pad_(pad),
      seed_(seed),
      pool_first_(pooling == Pooling::first_token) {
  LOOM_CHECK(split.size() > 0, "rebuild the dataset with more examples or another --val-fraction",
             "the labelled dataset has an empty split");
}

void ClassifyBatches::train(std::int64_t step, std::int64_t count, std::int32_t* x, std::int32_t* y,
                            std::int32_t* len) const {
  const auto n = std::uint64_t(split_.size());
  for (std::int64_t i = 0; i < count; ++i) {
    const auto example = std::int64_t(rng_u64(seed_, std::uint64_t(step), std::uint64_t(i)) % n);
    classify_row(split_, example, T_, pool_first_, x + i * T_, y + i * T_);
    if (len) len[i] = length(example);
  }
}

std::int32_t ClassifyBatches::length(std::int64_t example) const {
  return std::min(split_.lengths[std::size_t(example)], std::int32_t(T_));  // a shorter T truncates again
}

std::int64_t ClassifyBatches::eval_batches(std::int64_t per_batch) const {
  return (split_.size() + per_batch - 1) / per_batch;
}

void ClassifyBatches::eval(std::int64_t e, std::int64_t per_batch, std::int32_t* x, std::int32_t* y,
                           std::int32_t* len) const {
  for (std::int64_t i = 0; i < per_batch; ++i) {
    const std::int64_t k = e * per_batch + i;
    if (k < split_.size()) {
      classify_row(split_, k, T_, pool_first_, x + i * T_, y + i * T_);
      if (len) len[i] = length(k);
    } else {  // past the end of the split: a sequence that counts for nothing
      std::fill(x + i * T_, x + (i + 1) * T_, pad_);
      std::fill(y + i * T_, y + (i + 1) * T_, -1);
      if (len) len[i] = std::int32_t(T_);  // all filler, as it is (the row counts for nothing)
    }
  }
}

}  // namespace loom
