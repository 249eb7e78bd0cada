// launch/bench_util.h — timing helpers for loom-bench: median wall time of repeated runs.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <utility>
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

// Medians of two functions timed alternately (a, b, a, b, ...), so drift in
// machine load hits both equally: for "ours vs reference" ratios.
inline std::pair<double, double> median_seconds_paired(Backend& be, int warmup, int repeat,
                                                       const std::function<void()>& a,
                                                       const std::function<void()>& b) {
  for (int i = 0; i < warmup; ++i) a(), b();
  std::vector<double> ta, tb;
  for (int i = 0; i < repeat; ++i) {
    ta.push_back(median_seconds(be, 0, 1, a));
    tb.push_back(median_seconds(be, 0, 1, b));
  }
  std::sort(ta.begin(), ta.end());
  std::sort(tb.begin(), tb.end());
  return {ta[ta.size() / 2], tb[tb.size() / 2]};
}

}  // namespace loom::bench
