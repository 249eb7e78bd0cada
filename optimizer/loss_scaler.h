// optimizer/loss_scaler.h — loss scaling for fp16 training: static or dynamic.
//
// fp16 holds magnitudes from 6e-8 to 65504, and small activation gradients underflow to
// zero. The loss gradient is multiplied by scale() (so every activation and parameter
// gradient is), and the optimizer divides it back out. Dynamic scaling (PyTorch's
// GradScaler, Megatron's DynamicGradScaler without hysteresis): after each step the
// caller says whether the gradients were finite; a step with an inf/NaN is skipped (no
// update: parameters and moments unchanged) and the scale multiplied by `backoff`, not
// below `min`; after `window` finite steps in a row the scale doubles. The finiteness
// verdict must be the same on every rank: the trainer derives it from the whole model's
// gradient norm, which every rank computes to the same value (it is all-reduced over dp,
// tp and pp, and a non-finite element anywhere makes it non-finite).
#pragma once

#include <cstdint>
#include <string>

#include "core/config.h"

namespace loom {

class LossScaler {
public:
  enum class Mode : std::uint8_t { none, fixed, dynamic };
  // From train.precision and the optim.*loss_scale* options: dynamic under fp16 unless
  // optim.loss_scale fixes it; a fixed scale when optim.loss_scale > 0; else none.
  LossScaler(const std::string& precision, const OptimConfig& cfg);

  Mode mode() const { return mode_; }
  float scale() const { return scale_; }  // 1 when mode() is none
  // After a step's backward: returns true when the step must be skipped (non-finite
  // gradients under a loss scale) and updates the scale.
  bool update(bool finite);
  std::int64_t skipped() const { return skipped_; }  // steps skipped so far
  // Dynamic scaling cannot go below min: overflows that persist there are divergence, not
  // a scale too high. exhausted() once kMaxSkipsAtMin steps in a row were skipped at the
  // minimum scale (DeepSpeed stops at the first; a few allow for a transient spike).
  static constexpr std::int64_t kMaxSkipsAtMin = 3;
  bool exhausted() const { return skipped_at_min_ >= kMaxSkipsAtMin; }
  std::int64_t skipped_at_min() const { return skipped_at_min_; }  // consecutive, at the minimum scale

  // What a checkpoint keeps, so a resumed run scales exactly as the uninterrupted one.
  struct State {
    float scale = 1;
    std::int64_t good = 0, skipped = 0;  // finite steps since the last change; skipped so far
    std::int64_t skipped_at_min = 0;     // consecutive skips at the minimum scale
  };
  State state() const { return {scale_, good_, skipped_, skipped_at_min_}; }
  void restore(const State& s);

private:
  Mode mode_ = Mode::none;
  float scale_ = 1, backoff_ = 0.5f, min_ = 1;
  std::int64_t window_ = 1000, good_ = 0, skipped_ = 0, skipped_at_min_ = 0;
};

}  // namespace loom
