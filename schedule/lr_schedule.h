// schedule/lr_schedule.h — the learning rate as a pure function of the step.
//
// Steps are 0-based, `steps` in total; W = warmup_steps, lr = peak, lr0 = warmup_start_lr,
// lr_min = min_lr. Every schedule starts with the same linear warmup (step 0 already trains,
// as in llm.c; the last warmup step W - 1 reaches lr exactly):
//   s < W:  lr0 + (lr - lr0) * (s + 1) / W
// and from s >= W on follows optim.decay, never going below lr_min:
//   constant:     lr
//   linear:       lr + (lr_min - lr) * r
//   cosine:       lr_min + (lr - lr_min) * (1 + cos(pi * r)) / 2
//     with r = (s - W) / (steps - 1 - W) in [0, 1] (r = 1 when that span is 0): these start
//     at lr at s = W and reach lr_min at the last step s = steps - 1.
//   exponential:  max(lr_min, lr * gamma^((s - W) / K)),  K = decay_steps, or when that is 0
//     K = max(steps - 1 - W, 1), so the last step gets lr * gamma (or lr_min if higher).
//   inverse_sqrt: max(lr_min, lr * sqrt(max(W, 1)) / sqrt(s + 1)); as a function of s + 1 it
//     meets the warmup at s = W - 1 (both give lr there), so s = W gives lr * sqrt(W / (W + 1)).
//   wsd (warmup-stable-decay): the last A = round(decay_fraction * steps) steps anneal, starting
//     at E = max(W, steps - A): lr for W <= s < E (the stable phase), then for s >= E with
//     q = (s - E + 1) / (steps - E) in (0, 1]:
//       wsd_anneal linear: lr + (lr_min - lr) * q
//       wsd_anneal cosine: lr_min + (lr - lr_min) * (1 + cos(pi * q)) / 2
//     so E - 1 is the last step at lr, E the first below it, the last step is lr_min; with
//     decay_fraction 0 the rate stays at lr.
// All are non-increasing after warmup. Computed in double, returned as float.
#pragma once

#include <cstdint>

#include "core/config.h"

namespace loom {

// Throws loom::Error when step is outside [0, steps) or optim.decay is unknown.
float learning_rate(const OptimConfig& o, std::int64_t steps, std::int64_t step);

}  // namespace loom
