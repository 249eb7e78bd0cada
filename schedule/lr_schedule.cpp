// schedule/lr_schedule.cpp — warmup then cosine / linear / constant decay.
#include "schedule/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace loom {

float learning_rate(const OptimConfig& o, std::int64_t steps, std::int64_t step) {
  LOOM_CHECK(0 <= step && step < steps, "", "learning_rate: step {} outside [0, {})", step, steps);
  if (step < o.warmup_steps) return o.lr * float(step + 1) / float(o.warmup_steps);
  const std::int64_t span = steps - 1 - o.warmup_steps;
  const double r = span > 0 ? std::clamp(double(step - o.warmup_steps) / double(span), 0.0, 1.0) : 1.0;
  if (o.decay == "constant") return o.lr;
  if (o.decay == "linear") return float(o.lr + (o.min_lr - o.lr) * r);
  return float(o.min_lr + (o.lr - o.min_lr) * 0.5 * (1.0 + std::cos(M_PI * r)));
}

}  // namespace loom
