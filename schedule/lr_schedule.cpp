// schedule/lr_schedule.cpp — warmup, then one of the decays listed in lr_schedule.h.
#include "schedule/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace loom {

namespace {

// Position in [0, 1] of `step` on a ramp that starts at `first` and ends at `last`.
double ramp(std::int64_t step, std::int64_t first, std::int64_t last) {
  if (last <= first) return 1.0;
  return std::clamp(double(step - first) / double(last - first), 0.0, 1.0);
}

double cosine(double lr, double min_lr, double r) {
  return min_lr + (lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * r));
}
double linear(double lr, double min_lr, double r) { return lr + (min_lr - lr) * r; }

}  // namespace

float learning_rate(const OptimConfig& o, std::int64_t steps, std::int64_t step) {
  LOOM_CHECK(0 <= step && step < steps, "", "learning_rate: step {} outside [0, {})", step, steps);
  const std::int64_t W = o.warmup_steps;
  const double lr = o.lr, min_lr = o.min_lr, start = o.warmup_start_lr;
  if (step < W) return float(start + (lr - start) * double(step + 1) / double(W));
  double v = 0;
  if (o.decay == "constant") {
    v = lr;
  } else if (o.decay == "linear") {
    v = linear(lr, min_lr, ramp(step, W, steps - 1));
  } else if (o.decay == "cosine") {
    v = cosine(lr, min_lr, ramp(step, W, steps - 1));
  } else if (o.decay == "exponential") {
    const std::int64_t K = o.decay_steps > 0 ? o.decay_steps : std::max<std::int64_t>(steps - 1 - W, 1);
    v = lr * std::pow(double(o.gamma), double(step - W) / double(K));
  } else if (o.decay == "inverse_sqrt") {
    v = lr * std::sqrt(double(std::max<std::int64_t>(W, 1))) / std::sqrt(double(step + 1));
  } else if (o.decay == "wsd") {
    const std::int64_t E = o.wsd_anneal_start(steps);
    if (step < E) {
      v = lr;
    } else {
      const double q = double(step - E + 1) / double(steps - E);
      LOOM_CHECK(o.wsd_anneal == "linear" || o.wsd_anneal == "cosine", "use linear or cosine",
                 "optim.wsd_anneal '{}' is not an anneal shape", o.wsd_anneal);
      v = o.wsd_anneal == "linear" ? linear(lr, min_lr, q) : cosine(lr, min_lr, q);
    }
  } else {
    throw Error(fmt::format("optim.decay '{}' is not a learning-rate schedule", o.decay),
                "use one of " + std::string(kDecaySchedules));
  }
  return float(std::max(v, min_lr));
}

}  // namespace loom
