// tests/unit/test_dtype.cpp — the dtype table and the f32 <-> bf16/f16 conversions.
//
// to_float is checked for every 16-bit pattern against an independent decoder
// (sign * significand * 2^exponent in double); from_float is checked against an
// independent round-to-nearest-even written in double (quantum, floor, tie ->
// even significand, overflow -> inf) on every midpoint between adjacent half
// values and its f32 neighbours, on random f32 bit patterns and on named edges.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "core/dtype.h"

namespace loom {
namespace {

// A binary format with `man` stored mantissa bits and `exp` exponent bits.
struct Format {
  int man, exp;
  int bias() const { return (1 << (exp - 1)) - 1; }
  int emin() const { return 1 - bias(); }  // exponent of the smallest normal
  double max_finite() const { return std::ldexp(2.0 - std::ldexp(1.0, -man), bias()); }
};
constexpr Format kBF16{7, 8}, kF16{10, 5};

// Independent decoder: bits -> double (NaN for NaN patterns).
double decode(Format f, std::uint16_t bits) {
  const bool neg = bits >> 15;
  const int e = (bits >> f.man) & ((1 << f.exp) - 1);
  const int m = bits & ((1 << f.man) - 1);
  double v;
  if (e == (1 << f.exp) - 1)
    v = m ? std::numeric_limits<double>::quiet_NaN() : INFINITY;
  else if (e == 0)
    v = std::ldexp(double(m), f.emin() - f.man);
  else
    v = std::ldexp(double((1 << f.man) + m), e - f.bias() - f.man);
  return neg ? -v : v;
}

// Independent rounding of a finite double to the format, nearest, ties to even.
double round_ref(Format f, double x) {
  const double a = std::fabs(x);
  int e2;
  std::frexp(a, &e2);  // a = frac * 2^e2, frac in [0.5, 1): exponent of a is e2 - 1
  const int e = a == 0 ? f.emin() : std::max(e2 - 1, f.emin());
  const double q = std::ldexp(1.0, e - f.man);  // spacing of representable values near a
  const double n = a / q;                       // exact: a has 24 bits, q is 2^k
  double r = std::floor(n);
  const double frac = n - r;
  if (frac > 0.5 || (frac == 0.5 && std::fmod(r, 2.0) == 1.0)) r += 1;
  double v = r * q;
  if (v > f.max_finite()) v = INFINITY;
  return std::signbit(x) ? -v : v;
}

template <class T>
Format format_of();
template <>
Format format_of<bf16>() {
  return kBF16;
}
template <>
Format format_of<f16>() {
  return kF16;
}

template <class T>
void expect_rounds_like_reference(float x) {
  const Format f = format_of<T>();
  const T h = from_float<T>(x);
  const double want = round_ref(f, double(x));
  const double got = decode(f, h.bits);
  EXPECT_TRUE(got == want && std::signbit(got) == std::signbit(want))
      << "x=" << x << " (bits 0x" << std::hex << f32_to_bits(x) << ") -> 0x" << h.bits << std::dec << " = "
      << got << ", want " << want;
}

template <class T>
void check_all_patterns() {
  const Format f = format_of<T>();
  int nan_count = 0;
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const T h{std::uint16_t(b)};
    const float v = to_float(h);
    const double ref = decode(f, h.bits);
    if (std::isnan(ref)) {
      ++nan_count;
      ASSERT_TRUE(std::isnan(v)) << std::hex << b;
      ASSERT_TRUE(std::isnan(to_float(from_float<T>(v)))) << "NaN 0x" << std::hex << b << " lost";
      continue;
    }
    ASSERT_EQ(double(v), ref) << "to_float(0x" << std::hex << b << ")";
    ASSERT_EQ(std::signbit(v), std::signbit(ref)) << std::hex << b;
    ASSERT_EQ(from_float<T>(v).bits, b) << "round trip of 0x" << std::hex << b;
  }
  EXPECT_EQ(nan_count, 2 * ((1 << f.man) - 1));
}

template <class T>
void check_midpoints() {
  // Every midpoint between adjacent finite values (and the one past max finite)
  // fits in f32; the midpoint itself is a tie, its f32 neighbours are not.
  const Format f = format_of<T>();
  const std::uint16_t max_bits = std::uint16_t(((1 << f.exp) - 1) << f.man) - 1;
  for (std::uint16_t b = 0; b <= max_bits; ++b) {
    const double lo = decode(f, b);
    const double hi = b == max_bits ? std::ldexp(1.0, f.bias() + 1) : decode(f, std::uint16_t(b + 1));
    const float mid = float((lo + hi) / 2);
    ASSERT_EQ(double(mid), (lo + hi) / 2);
    for (float s : {1.0f, -1.0f}) {
      const float m = s * mid;
      expect_rounds_like_reference<T>(m);
      expect_rounds_like_reference<T>(std::nextafter(m, 0.0f));
      expect_rounds_like_reference<T>(std::nextafter(m, s * INFINITY));
      expect_rounds_like_reference<T>(float(s * lo));
    }
  }
}

template <class T>
void check_random_patterns() {
  std::mt19937 gen(1234);
  for (int i = 0; i < 1000000; ++i) {
    const float x = bits_to_f32(gen());
    if (std::isnan(x)) {
      EXPECT_TRUE(std::isnan(to_float(from_float<T>(x))));
      continue;
    }
    expect_rounds_like_reference<T>(x);
  }
}

// ---- the table -------------------------------------------------------------------

TEST(DType, SizesAndNames) {
  EXPECT_EQ(dtype_size(DType::f32), 4u);
  EXPECT_EQ(dtype_size(DType::bf16), 2u);
  EXPECT_EQ(dtype_size(DType::f16), 2u);
  EXPECT_EQ(dtype_name(DType::f32), "f32");
  EXPECT_EQ(dtype_name(DType::bf16), "bf16");
  EXPECT_EQ(dtype_name(DType::f16), "f16");
  EXPECT_EQ(dtype_v<float>, DType::f32);
  EXPECT_EQ(dtype_v<bf16>, DType::bf16);
  EXPECT_EQ(dtype_v<f16>, DType::f16);
  for (DType t : {DType::f32, DType::bf16, DType::f16})
    EXPECT_EQ(visit_dtype(t, [](auto v) { return sizeof(v); }), dtype_size(t));
}

TEST(DType, ParseAcceptsKnownNames) {
  EXPECT_EQ(parse_dtype("f32"), DType::f32);
  EXPECT_EQ(parse_dtype("fp32"), DType::f32);
  EXPECT_EQ(parse_dtype("bf16"), DType::bf16);
  EXPECT_EQ(parse_dtype("f16"), DType::f16);
  EXPECT_EQ(parse_dtype("fp16"), DType::f16);
  for (DType t : {DType::f32, DType::bf16, DType::f16}) EXPECT_EQ(parse_dtype(dtype_name(t)), t);
}

TEST(DType, ParseRejectsOthers) {
  for (const char* bad : {"", "f64", "fp64", "float", "int8", "bf", "f32 ", "BF16", "half"}) {
    try {
      parse_dtype(bad);
      ADD_FAILURE() << "parse_dtype(\"" << bad << "\") did not throw";
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), testing::HasSubstr(std::string("'") + bad + "'"));
      EXPECT_THAT(e.full_message(), testing::HasSubstr("bf16"));  // lists the valid names
    }
  }
}

// ---- exhaustive and reference-based -------------------------------------------------

TEST(BF16, EveryPatternDecodesAndRoundTrips) { check_all_patterns<bf16>(); }
TEST(F16, EveryPatternDecodesAndRoundTrips) { check_all_patterns<f16>(); }
TEST(BF16, MidpointsRoundLikeReference) { check_midpoints<bf16>(); }
TEST(F16, MidpointsRoundLikeReference) { check_midpoints<f16>(); }
TEST(BF16, RandomF32RoundsLikeReference) { check_random_patterns<bf16>(); }
TEST(F16, RandomF32RoundsLikeReference) { check_random_patterns<f16>(); }

TEST(Float, IdentityConversions) {
  for (float x : {0.0f, -0.0f, 1.5f, -3e38f, 1e-45f, INFINITY})
    EXPECT_EQ(f32_to_bits(from_float<float>(x)), f32_to_bits(x));
}

// ---- named edges (hand-computed bit patterns) ------------------------------------------

std::uint16_t bf(float x) { return from_float<bf16>(x).bits; }
std::uint16_t hf(float x) { return from_float<f16>(x).bits; }

TEST(BF16, TiesToEven) {
  // 1.0 = 0x3f80 (even); 0x3f808000 is exactly halfway to 0x3f81 (odd): stays.
  EXPECT_EQ(bf(bits_to_f32(0x3f808000u)), 0x3f80);
  EXPECT_EQ(bf(bits_to_f32(0x3f807fffu)), 0x3f80);
  EXPECT_EQ(bf(bits_to_f32(0x3f808001u)), 0x3f81);
  // halfway between 0x3f81 (odd) and 0x3f82 (even): goes up to even.
  EXPECT_EQ(bf(bits_to_f32(0x3f818000u)), 0x3f82);
  EXPECT_EQ(bf(bits_to_f32(0xbf818000u)), 0xbf82);
  // carry into the exponent: 0x3fff8000 is halfway between 0x3fff (odd) and 0x4000.
  EXPECT_EQ(bf(bits_to_f32(0x3fff8000u)), 0x4000);
  EXPECT_EQ(bf(1.0f + 1.0f / 256), 0x3f80);  // 1 + 2^-8: tie, even is 1.0
  EXPECT_EQ(bf(1.0f + 3.0f / 256), 0x3f82);  // 1 + 3*2^-8: tie, even is 1 + 2^-6
}

TEST(BF16, SpecialValues) {
  EXPECT_EQ(bf(INFINITY), 0x7f80);
  EXPECT_EQ(bf(-INFINITY), 0xff80);
  EXPECT_EQ(bf(0.0f), 0x0000);
  EXPECT_EQ(bf(-0.0f), 0x8000);
  EXPECT_TRUE(std::signbit(to_float(bf16{0x8000})));
  // NaNs whose payload sits only in the low 16 bits must not become inf.
  for (std::uint32_t nan : {0x7fc00000u, 0x7f800001u, 0xff800001u, 0x7fffffffu, 0x7f80ffffu}) {
    const std::uint16_t b = bf(bits_to_f32(nan));
    EXPECT_EQ(b & 0x7f80, 0x7f80) << std::hex << nan;
    EXPECT_NE(b & 0x007f, 0) << std::hex << nan;
    EXPECT_TRUE(std::isnan(to_float(bf16{b})));
  }
}

TEST(BF16, MaxFiniteAndOverflow) {
  const float max_bf16 = to_float(bf16{0x7f7f});
  EXPECT_EQ(double(max_bf16), std::ldexp(255.0, 120));  // (2 - 2^-7) * 2^127
  EXPECT_EQ(bf(max_bf16), 0x7f7f);
  EXPECT_EQ(bf(bits_to_f32(0x7f7f7fffu)), 0x7f7f);  // just below the halfway point
  EXPECT_EQ(bf(bits_to_f32(0x7f7f8000u)), 0x7f80);  // halfway to 2^128: ties to even = inf
  EXPECT_EQ(bf(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_EQ(bf(-std::numeric_limits<float>::max()), 0xff80);
  // smallest f32 subnormal is representable-ish: rounds to the bf16 subnormal grid
  EXPECT_EQ(bf(bits_to_f32(0x00000001u)), 0x0000);
  EXPECT_EQ(bf(bits_to_f32(0x00010000u)), 0x0001);
}

TEST(F16, Subnormals) {
  const float tiny = std::ldexp(1.0f, -24);  // smallest positive f16 subnormal
  EXPECT_EQ(hf(tiny), 0x0001);
  EXPECT_EQ(to_float(f16{0x0001}), tiny);
  EXPECT_EQ(hf(tiny / 2), 0x0000);  // exactly halfway to 0: ties to even (0)
  EXPECT_EQ(hf(-tiny / 2), 0x8000);
  EXPECT_EQ(hf(std::nextafter(tiny / 2, 1.0f)), 0x0001);  // just above halfway rounds up
  EXPECT_EQ(hf(std::nextafter(tiny / 2, 0.0f)), 0x0000);
  EXPECT_EQ(hf(1.5f * tiny), 0x0002);     // halfway between 1 (odd) and 2 (even)
  EXPECT_EQ(hf(2.5f * tiny), 0x0002);     // halfway between 2 (even) and 3 (odd)
  EXPECT_EQ(hf(1023 * tiny), 0x03ff);     // largest subnormal
  EXPECT_EQ(hf(1023.5f * tiny), 0x0400);  // halfway into the smallest normal 2^-14
  EXPECT_EQ(to_float(f16{0x0400}), std::ldexp(1.0f, -14));
  EXPECT_EQ(hf(1e-10f), 0x0000);
  EXPECT_EQ(hf(std::numeric_limits<float>::denorm_min()), 0x0000);
}

TEST(F16, OverflowAndSpecials) {
  EXPECT_EQ(hf(65504.0f), 0x7bff);  // max finite
  EXPECT_EQ(to_float(f16{0x7bff}), 65504.0f);
  EXPECT_EQ(hf(65519.99f), 0x7bff);
  EXPECT_EQ(hf(65520.0f), 0x7c00);  // halfway to 65536: ties to even = inf
  EXPECT_EQ(hf(-65520.0f), 0xfc00);
  EXPECT_EQ(hf(1e10f), 0x7c00);
  EXPECT_EQ(hf(INFINITY), 0x7c00);
  EXPECT_EQ(hf(-INFINITY), 0xfc00);
  EXPECT_EQ(hf(-0.0f), 0x8000);
  EXPECT_EQ(hf(0.0f), 0x0000);
  EXPECT_EQ(hf(1.0f), 0x3c00);
  EXPECT_EQ(hf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie, even
  EXPECT_EQ(hf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie, even (up)
  for (std::uint32_t nan : {0x7fc00000u, 0x7f800001u, 0xff800001u, 0x7f801fffu}) {
    const std::uint16_t h = hf(bits_to_f32(nan));
    EXPECT_EQ(h & 0x7c00, 0x7c00) << std::hex << nan;
    EXPECT_NE(h & 0x03ff, 0) << std::hex << nan;
  }
}

}  // namespace
}  // namespace loom
