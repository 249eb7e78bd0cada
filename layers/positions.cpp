// layers/positions.cpp — see positions.h.
#include "layers/positions.h"

#include <cmath>

#include "core/error.h"

namespace loom {

Positions parse_positions(const std::string& name) {
  if (name == "learned") return Positions::learned;
  if (name == "sinusoidal") return Positions::sinusoidal;
  if (name == "rope") return Positions::rope;
  LOOM_CHECK(name == "alibi", "use learned, sinusoidal, rope or alibi",
             "model.positions must be learned, sinusoidal, rope or alibi, got '{}'", name);
  return Positions::alibi;
}

std::vector<float> sinusoidal_table(std::int64_t T, std::int64_t C) {
  std::vector<float> pe(static_cast<std::size_t>(T * C));
  for (std::int64_t t = 0; t < T; ++t)
    for (std::int64_t c = 0; c < C; ++c) {
      const double angle = double(t) / std::pow(10000.0, double(c - c % 2) / double(C));
      pe[std::size_t(t * C + c)] = float(c % 2 == 0 ? std::sin(angle) : std::cos(angle));
    }
  return pe;
}

namespace {
std::vector<double> power_of_two_slopes(std::int64_t n) {
  std::vector<double> s;
  for (std::int64_t h = 0; h < n; ++h) s.push_back(std::exp2(-8.0 * double(h + 1) / double(n)));
  return s;
}
}  // namespace

std::vector<float> alibi_slopes(std::int64_t heads) {
  LOOM_CHECK(heads > 0, "", "alibi_slopes: heads must be > 0, got {}", heads);
  std::int64_t m = 1;
  while (m * 2 <= heads) m *= 2;
  std::vector<double> s = power_of_two_slopes(m);
  const std::vector<double> twice = power_of_two_slopes(2 * m);
  for (std::int64_t i = 0; std::int64_t(s.size()) < heads; i += 2) s.push_back(twice[std::size_t(i)]);
  return {s.begin(), s.end()};
}

}  // namespace loom
