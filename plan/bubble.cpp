// plan/bubble.cpp — see bubble.h.
#include "plan/bubble.h"

#include <algorithm>

namespace loom::plan {

double bubble_over_ideal(int p, int m, int v) { return double(p - 1) / (double(v) * m); }

double bubble_share_of_step(int p, int m, int v) { return double(p - 1) / (double(v) * m + p - 1); }

double stage0_in_flight(int p, int m, int v, bool gpipe) {
  if (gpipe) return m;
  if (v == 1) return std::min(p, m);
  const int units = std::min(2 * (p - 1) + (v - 1) * p + 1, v * m);
  return double(units) / v;
}

}  // namespace loom::plan
