// core/dtype.cpp — IEEE binary16 conversions (bf16 is inline in dtype.h).
#include "core/dtype.h"

#include <cmath>

namespace loom {

DType parse_dtype(std::string_view name) {
  if (name == "f32" || name == "fp32") return DType::f32;
  if (name == "bf16") return DType::bf16;
  if (name == "f16" || name == "fp16") return DType::f16;
  throw Error(fmt::format("unknown dtype '{}'", name), "use one of f32, bf16, f16");
}

float to_float(f16 h) {
  const std::uint32_t sign = std::uint32_t(h.bits & 0x8000u) << 16;
  const std::uint32_t exp = (h.bits >> 10) & 0x1fu;
  const std::uint32_t man = h.bits & 0x3ffu;
  if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (man << 13));  // inf / NaN
  if (exp == 0) {  // zero or subnormal: man * 2^-24, exact in f32
    const float mag = std::ldexp(float(man), -24);
    return sign ? -mag : mag;
  }
  return bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

template <>
f16 from_float<f16>(float x) {
  const std::uint32_t u = f32_to_bits(x);
  const std::uint16_t sign = std::uint16_t((u >> 16) & 0x8000u);
  const std::uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return f16{std::uint16_t(sign | 0x7e00u | ((abs >> 13) & 0x3ffu))};  // NaN
  if (abs >= 0x477ff000u) return f16{std::uint16_t(sign | 0x7c00u)};  // rounds to >= 65520: inf
  if (abs >= 0x38800000u) {  // normal in f16 (>= 2^-14)
    const std::uint32_t r = abs - (112u << 23);  // rebias exponent
    const std::uint32_t rounded = r + 0xfffu + ((r >> 13) & 1u);  // nearest, ties to even
    return f16{std::uint16_t(sign | (rounded >> 13))};
  }
  // Subnormal or zero in f16: value = m * 2^-24 with m = round(|x| * 2^24).
  // nearbyint uses the default rounding mode (nearest-even); |x|*2^24 is exact.
  const float m = std::nearbyint(bits_to_f32(abs) * 16777216.0f);
  return f16{std::uint16_t(sign | std::uint16_t(m))};  // m == 1024 becomes the smallest normal
}

}  // namespace loom
