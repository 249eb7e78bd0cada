// backend/cpu/fast_math.h — exp and tanh that GCC can vectorise (std::exp / std::tanh
// are scalar libm calls and dominated GELU, softmax and cross-entropy times).
//
// fast_exp: Cephes-style range reduction x = n ln2 + r, |r| <= ln2/2, a degree-6
// polynomial for e^r, and 2^n built from exponent bits; relative error about
// 2e-7 (two ulp) over the whole range; inputs below -87.3 give exactly 0 (so a
// -inf mask entry becomes probability 0), inputs above 88.3 give +inf (true
// e^x overflows at 88.72; the 0.4 between is given up to keep 2^n in range).
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>

namespace loom::cpu {

inline float fast_exp(float x) {
  // Written as straight-line code with simple selects: any branch here stops
  // GCC from vectorising the loops that call it.
  const float xc = std::min(std::max(x, -87.3f), 88.3f);
  // n = round(xc / ln2) in [-126, 127]; the argument of the truncating
  // conversion is positive, so truncation is floor (floorf itself does not
  // vectorise unless -fno-trapping-math).
  const std::int32_t ni = std::int32_t(xc * 1.44269504088896341f + 127.5f) - 127;
  const float n = float(ni);
  const float r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;
  const float z = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  // (bit_cast, not memcpy: GCC cannot vectorise through memcpy's stack temporaries)
  const float scale = std::bit_cast<float>((ni + 127) << 23);
  float result = (p * z + r + 1.0f) * scale;
  result = x < -87.3f ? 0.0f : result;
  result = x > 88.3f ? __builtin_inff() : result;
  return result;
}

// tanh(u) = 1 - 2 / (1 + e^{2u}); absolute error about 2e-7, which is what GELU
// needs (tanh is added to 1 there).
inline float fast_tanh(float u) { return 1.0f - 2.0f / (1.0f + fast_exp(2.0f * u)); }

}  // namespace loom::cpu
