// launch/batches.h — what the trainer reads: the global batch of a step, or one pass over
// the validation data, as rows of T inputs and T targets (layers/stage_model.h: targets
// < 0 are not targets). Every rank computes the whole global batch (a pure function of
// the seed and the step, no communication) to count its targets, and runs its dp slice.
//   LmBatches        language modelling over a token stream (io/data_loader.h): targets
//                    are the inputs shifted by one, or with a masker (model.family bert)
//                    the masked positions' tokens (io/mlm_masker.h), or with a span
//                    corruptor (model.family t5) T5's packed encoder-decoder rows
//                    (io/span_corruption.h: x = [encoder | decoder input], y = [-1 |
//                    decoder targets], rows of T_enc + T_dec from windows of its raw
//                    length); evaluation reads train.eval_batches.
//   ClassifyBatches  sequence classification over a labelled split (io/labelled_dataset.h):
//                    one target per sequence, its label at the pooled position; training
//                    sequence i of step s is example rng_u64(seed, s, i) % N (drawn with
//                    replacement, like the LM windows); evaluation is one pass over the
//                    whole split, the last batch padded with sequences without targets
//                    (length T).
// x and y are (count, T) row-major, written (=); `len` (count) the real tokens of each
// sequence (ClassifyBatches: the example's length, min T; LmBatches: T, a stream has no
// padding), written (=) when not null.
#pragma once

#include <cstdint>
#include <vector>

#include "io/data_loader.h"
#include "io/labelled_dataset.h"
#include "io/mlm_masker.h"
#include "io/span_corruption.h"
#include "layers/class_head.h"

namespace loom {

class Batches {
 public:
  virtual ~Batches() = default;
  // Sequences [0, count) of the global batch of training step `step`.
  virtual void train(std::int64_t step, std::int64_t count, std::int32_t* x, std::int32_t* y,
                     std::int32_t* len) const = 0;
  // Batches of `per_batch` sequences in one evaluation pass, and batch `e` of them.
  virtual std::int64_t eval_batches(std::int64_t per_batch) const = 0;
  virtual void eval(std::int64_t e, std::int64_t per_batch, std::int32_t* x, std::int32_t* y,
                    std::int32_t* len) const = 0;
  // Whether sequences are padded (labelled data): the trainer then passes `len` to the model.
  virtual bool padded() const { return false; }
  // Classification: the accuracy of always answering the split's most frequent label (the
  // majority-class baseline); < 0 for language modelling.
  virtual double majority_share() const { return -1; }
};

class LmBatches final : public Batches {
 public:
  // Borrows the loader (and the masker or the span corruptor: null for next-token
  // prediction; at most one); `eval_batches`: train.eval_batches.
  LmBatches(const DataLoader& loader, std::int64_t eval_batches, const MlmMasker* mlm = nullptr,
            const SpanCorruptor* spans = nullptr)
      : loader_(loader), eval_batches_(eval_batches), mlm_(mlm), spans_(spans) {}
  void train(std::int64_t step, std::int64_t count, std::int32_t* x, std::int32_t* y,
             std::int32_t* len) const override;
  std::int64_t eval_batches(std::int64_t) const override { return eval_batches_; }
  void eval(std::int64_t e, std::int64_t per_batch, std::int32_t* x, std::int32_t* y, std::int32_t* len) const override;

 private:
  const DataLoader& loader_;
  std::int64_t eval_batches_;
  const MlmMasker* mlm_;
  const SpanCorruptor* spans_;
  mutable std::vector<std::int32_t> windows_;  // (count, T + 1)
};

class ClassifyBatches final : public Batches {
 public:
  // Borrows the split; `T` <= the dataset's seq_len; `pad`: the token of padding sequences.
  ClassifyBatches(const LabelledSplit& split, std::int64_t classes, std::int64_t T, std::int32_t pad,
                  std::uint64_t seed, Pooling pooling);
  void train(std::int64_t step, std::int64_t count, std::int32_t* x, std::int32_t* y,
             std::int32_t* len) const override;
  std::int64_t eval_batches(std::int64_t per_batch) const override;
  void eval(std::int64_t e, std::int64_t per_batch, std::int32_t* x, std::int32_t* y, std::int32_t* len) const override;
  double majority_share() const override { return split_.majority_share(classes_); }
  bool padded() const override { return true; }

 private:
  const LabelledSplit& split_;
  std::int64_t classes_, T_;
  std::int32_t pad_;
  std::uint64_t seed_;
  bool pool_first_;
  std::int32_t length(std::int64_t example) const;
};

}  // namespace loom
