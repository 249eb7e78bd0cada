// core/rng.cpp — Philox-4x32-10 and the distributions built on it.
#include "core/rng.h"

#include <cmath>

namespace loom {

namespace {
constexpr std::uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
constexpr std::uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;

std::array<std::uint32_t, 4> block(std::uint64_t seed, std::uint64_t stream, std::uint64_t index) {
  return philox4x32({std::uint32_t(index), std::uint32_t(index >> 32), std::uint32_t(stream),
                     std::uint32_t(stream >> 32)},
                    {std::uint32_t(seed), std::uint32_t(seed >> 32)});
}
}  // namespace

std::array<std::uint32_t, 4> philox4x32(std::array<std::uint32_t, 4> c, std::array<std::uint32_t, 2> k) {
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = std::uint64_t(kMul0) * c[0];
    const std::uint64_t p1 = std::uint64_t(kMul1) * c[2];
    c = {std::uint32_t(p1 >> 32) ^ c[1] ^ k[0], std::uint32_t(p1), std::uint32_t(p0 >> 32) ^ c[3] ^ k[1],
         std::uint32_t(p0)};
    k = {k[0] + kWeyl0, k[1] + kWeyl1};
  }
  return c;
}

float rng_uniform(std::uint64_t seed, std::uint64_t stream, std::uint64_t index) {
  return float(block(seed, stream, index)[0] >> 8) * (1.0f / 16777216.0f);
}

float rng_normal(std::uint64_t seed, std::uint64_t stream, std::uint64_t index) {
  const auto r = block(seed, stream, index);
  // u1 in (0, 1] so the log is finite; u2 in [0, 1).
  const double u1 = (double(r[0]) + 1.0) * (1.0 / 4294967296.0);
  const double u2 = double(r[1]) * (1.0 / 4294967296.0);
  return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

std::uint64_t rng_u64(std::uint64_t seed, std::uint64_t stream, std::uint64_t index) {
  const auto r = block(seed, stream, index);
  return (std::uint64_t(r[0]) << 32) | r[1];
}

void fill_normal(float* out, std::int64_t n, std::uint64_t seed, std::uint64_t stream, std::uint64_t first,
                 float mean, float std) {
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i) out[i] = mean + std * rng_normal(seed, stream, first + i);
}

void fill_uniform(float* out, std::int64_t n, std::uint64_t seed, std::uint64_t stream, std::uint64_t first,
                  float lo, float hi) {
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i) out[i] = lo + (hi - lo) * rng_uniform(seed, stream, first + i);
}

}  // namespace loom
