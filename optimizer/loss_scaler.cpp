// optimizer/loss_scaler.cpp — see loss_scaler.h.
#include "optimizer/loss_scaler.h"

#include <algorithm>

namespace loom {

LossScaler::LossScaler(const std::string& precision, const OptimConfig& cfg)
    : backoff_(cfg.loss_scale_backoff), min_(cfg.min_loss_scale), window_(cfg.loss_scale_window) {
  if (cfg.loss_scale > 0) {
    mode_ = Mode::fixed;
    scale_ = cfg.loss_scale;
  } else if (precision == "fp16") {
    mode_ = Mode::dynamic;
    scale_ = cfg.initial_loss_scale;
  }
}

void LossScaler::restore(const State& s) {
  if (mode_ == Mode::dynamic) scale_ = s.scale;  // fixed and none keep this run's option
  good_ = s.good;
  skipped_ = s.skipped;
  skipped_at_min_ = s.skipped_at_min;
}

bool LossScaler::update(bool finite) {
  if (mode_ == Mode::none) return false;  // nothing scaled: a non-finite step is divergence, not overflow
  if (!finite) {
    ++skipped_;
    good_ = 0;
    skipped_at_min_ = mode_ == Mode::dynamic && scale_ <= min_ ? skipped_at_min_ + 1 : 0;
    if (mode_ == Mode::dynamic) scale_ = std::max(min_, scale_ * backoff_);
    return true;
  }
  skipped_at_min_ = 0;
  if (mode_ == Mode::dynamic && ++good_ == window_) {
    scale_ *= 2;
    good_ = 0;
  }
  return false;
}

}  // namespace loom
