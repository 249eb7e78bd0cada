// backend/cpu/convert.h — element loads and stores for the CPU kernels, written so that
// GCC vectorises them (AVX-512: 16 lanes per instruction).
//
// core/dtype.h's to_float / from_float are the definitions (round to nearest even,
// NaN stays NaN, overflow to inf); these give the same bits. bf16 is a shift and a
// rounding add on the bit pattern (std::bit_cast, not memcpy: GCC cannot vectorise
// through memcpy's stack temporaries); f16 goes through _Float16, which GCC compiles
// to vcvtph2ps / vcvtps2ph (F16C, AVX-512) — the hardware conversions round to
// nearest even and handle subnormals, infinities and NaN as IEEE 754 says.
#pragma once

#include <bit>
#include <cstdint>

#include "core/dtype.h"

namespace loom::cpu {

inline float ld(const float* p, std::int64_t i) { return p[i]; }
inline float ld(const bf16* p, std::int64_t i) { return std::bit_cast<float>(std::uint32_t(p[i].bits) << 16); }
inline float ld(const f16* p, std::int64_t i) { return float(std::bit_cast<_Float16>(p[i].bits)); }

inline void st(float* p, std::int64_t i, float v) { p[i] = v; }
inline void st(bf16* p, std::int64_t i, float v) {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(v);
  const std::uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;  // to nearest, ties to even
  const std::uint32_t quiet_nan = (u >> 16) | 0x0040u;
  p[i].bits = std::uint16_t((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}
inline void st(f16* p, std::int64_t i, float v) { p[i].bits = std::bit_cast<std::uint16_t>(_Float16(v)); }

// dst (rows, cols; row stride ldd) = src (rows, cols; row stride lds), converted.
// Run by the calling thread; callers parallelise over rows when they want to.
template <class TD, class TS>
inline void convert_rows(TD* dst, std::int64_t ldd, const TS* src, std::int64_t lds, std::int64_t r0,
                         std::int64_t r1, std::int64_t cols) {
  for (std::int64_t r = r0; r < r1; ++r) {
    TD* d = dst + r * ldd;
    const TS* s = src + r * lds;
#pragma omp simd
    for (std::int64_t j = 0; j < cols; ++j) st(d, j, ld(s, j));
  }
}

}  // namespace loom::cpu
