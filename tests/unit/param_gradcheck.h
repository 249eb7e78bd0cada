// tests/unit/param_gradcheck.h — the whole-model finite-difference check the model tests share.
//
// For each element j in `idx` of parameter i (host copy `p`, as ParamStore::read gives it):
// the central difference (loss(p_j + h) - loss(p_j - h)) / 2h against the analytic gradient
// grad[j], to 2e-3 relative plus 5e-5 (the f32 rounding of the loss divided by 2h). Each
// element is written back as it was before the next. Returns how many elements it checked.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "layers/param_store.h"

namespace loom::test {

inline int expect_param_gradients(ParamStore& params, std::size_t i, std::vector<float>& p,
                                  const std::vector<float>& grad, const std::vector<std::size_t>& idx, float h,
                                  const std::function<double()>& loss) {
  const std::string& name = params.spec(i).name;
  int checked = 0;
  for (std::size_t j : idx) {
    const float orig = p[j];
    p[j] = orig + h;
    params.write(i, p);
    const double lp = loss();
    p[j] = orig - h;
    params.write(i, p);
    const double lm = loss();
    p[j] = orig;
    params.write(i, p);
    const double fd = (lp - lm) / (2.0 * h);
    EXPECT_NEAR(grad[j], fd, 2e-3 * std::max(std::abs(fd), 1e-2) + 5e-5) << name << "[" << j << "]";
    ++checked;
  }
  return checked;
}

}  // namespace loom::test
