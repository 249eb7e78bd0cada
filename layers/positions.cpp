// layers/positions.cpp — see positions.h.
#include "layers/positions.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace loom {

Positions parse_positions(const std::string& name) {
  if (name == "learned") return Positions::learned;
  if (name == "sinusoidal") return Positions::sinusoidal;
  if (name == "rope") return Positions::rope;
  if (name == "t5_relative") return Positions::t5_relative;
  LOOM_CHECK(name == "alibi", "use learned, sinusoidal, rope, alibi or t5_relative",
             "model.positions must be learned, sinusoidal, rope, alibi or t5_relative, got '{}'", name);
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

std::int32_t t5_bucket(std::int64_t offset, RelBuckets kind, std::int64_t num_buckets, std::int64_t max_distance) {
  std::int64_t bucket = 0, n = num_buckets, d = 0;
  if (kind == RelBuckets::bidirectional) {
    n /= 2;
    if (offset > 0) bucket += n;
    d = offset < 0 ? -offset : offset;
  } else {
    d = offset < 0 ? -offset : 0;
  }
  const std::int64_t exact = n / 2;
  LOOM_CHECK(exact >= 1 && max_distance > exact, "use model.rel_buckets >= 4 and model.rel_max_distance > rel_buckets / 2",
             "t5_bucket: {} buckets ({}) leave {} exact distances and max_distance {} must exceed them", num_buckets,
             kind == RelBuckets::causal ? "causal" : "bidirectional", exact, max_distance);
  if (d < exact) return std::int32_t(bucket + d);
  // f32 throughout, in PyTorch's order: log(float(d) / exact) / float(log(max_distance / exact)) * (n - exact)
  const float ratio = std::log(float(d) / float(exact)) / float(std::log(double(max_distance) / double(exact)));
  const std::int64_t large = exact + std::int64_t(ratio * float(n - exact));
  return std::int32_t(bucket + std::min(large, n - 1));
}

std::vector<std::int32_t> t5_offset_buckets(std::int64_t Tq, std::int64_t Tk, RelBuckets kind,
                                            std::int64_t num_buckets, std::int64_t max_distance) {
  std::vector<std::int32_t> b(std::size_t(std::max<std::int64_t>(Tq + Tk - 1, 0)));
  for (std::int64_t o = 0; o < std::int64_t(b.size()); ++o)
    b[std::size_t(o)] = t5_bucket(o - (Tq - 1), kind, num_buckets, max_distance);
  return b;
}

}  // namespace loom
