// launch/bench_util.h — timing helpers for loom-bench: median wall time of repeated runs.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

#include "backend/backend.h"

namespace loom::bench {

// Median seconds per call of `fn` over `repeat` timed calls after `warmup` untimed
// ones; the backend is synchronised around each call so GPU timings are real.
inline double median_seconds(Backend& be, int warmup, int repeat, const std::function<void()>& fn) {
  for (int i = 0; i < warmup; ++i) fn();
  be.synchronize();
  std::vector<double> t;
  for (int i = 0; i < repeat; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    be.synchronize();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace loom::bench
