// core/rng.h — counter-based random numbers (Philox-4x32-10).
//
// value = f(seed, stream, index): no state, no sequence. A rank that owns
// elements [a, b) of a global tensor generates exactly those values by asking
// for indices a..b-1, so every parallel layout starts from identical weights
// (design brief, idea 4). `stream` names what the numbers are for (a tensor
// id, a data step, a sampling step); `index` is the global element index.
#pragma once

#include <array>
#include <cstdint>

namespace loom {

// The Philox-4x32-10 block function (Salmon et al., SC'11): 4 x 32 random bits
// from a 128-bit counter and a 64-bit key.
std::array<std::uint32_t, 4> philox4x32(std::array<std::uint32_t, 4> counter,
                                        std::array<std::uint32_t, 2> key);

// Uniform in [0, 1), 24 random bits.
float rng_uniform(std::uint64_t seed, std::uint64_t stream, std::uint64_t index);
// Standard normal (Box-Muller on two words of the same Philox block).
float rng_normal(std::uint64_t seed, std::uint64_t stream, std::uint64_t index);
// 64 random bits, e.g. to pick a data window.
std::uint64_t rng_u64(std::uint64_t seed, std::uint64_t stream, std::uint64_t index);

// Fills out[i] = mean + std * rng_normal(seed, stream, first + i) for i < n.
void fill_normal(float* out, std::int64_t n, std::uint64_t seed, std::uint64_t stream,
                 std::uint64_t first, float mean, float std);
// Fills out[i] = lo + (hi - lo) * rng_uniform(seed, stream, first + i).
void fill_uniform(float* out, std::int64_t n, std::uint64_t seed, std::uint64_t stream,
                  std::uint64_t first, float lo, float hi);

}  // namespace loom
