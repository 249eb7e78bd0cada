// schedule/lr_schedule.h — the learning rate as a pure function of the step.
//
// Steps are 0-based, `steps` in total. Linear warmup over warmup_steps:
// lr * (step + 1) / warmup_steps (so step 0 already trains, as in llm.c), then
// decay from lr at step = warmup_steps to min_lr at the last step (steps - 1):
//   cosine:   min_lr + (lr - min_lr) * (1 + cos(pi * r)) / 2
//   linear:   lr + (min_lr - lr) * r
//   constant: lr
// with r = (step - warmup) / (steps - 1 - warmup) in [0, 1].
#pragma once

#include <cstdint>

#include "core/config.h"

namespace loom {

float learning_rate(const OptimConfig& o, std::int64_t steps, std::int64_t step);

}  // namespace loom
