// core/dtype.h — the element types loom stores: f32, bf16, f16.
//
// One X-macro table (LOOM_DTYPES) names each dtype, its C++ storage type and
// size; everything else (names, sizes, visit_dtype) is generated from it.
// MPI / NCCL / HDF5 / cuBLASLt type mappings live next to those libraries
// (parallel/, io/, backend/cuda/) as switches over DType, so core/ depends on
// nothing. Half types are stored as raw 16-bit patterns; arithmetic always
// happens in f32 (to_float / from_float), with round-to-nearest-even on the
// way down, NaN kept NaN and overflow going to inf, as IEEE 754 says.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "core/error.h"

namespace loom {

// Storage types. Plain structs so that nobody does arithmetic on them by accident.
struct bf16 { std::uint16_t bits; };
struct f16 { std::uint16_t bits; };

//        name  storage  bytes
#define LOOM_DTYPES(X) \
  X(f32, float, 4)     \
  X(bf16, bf16, 2)     \
  X(f16, f16, 2)

enum class DType : std::uint8_t {
#define LOOM_X(name, type, bytes) name,
  LOOM_DTYPES(LOOM_X)
#undef LOOM_X
};

constexpr std::size_t dtype_size(DType t) {
  switch (t) {
#define LOOM_X(name, type, bytes) case DType::name: return bytes;
    LOOM_DTYPES(LOOM_X)
#undef LOOM_X
  }
  return 0;
}

constexpr std::string_view dtype_name(DType t) {
  switch (t) {
#define LOOM_X(name, type, bytes) case DType::name: return #name;
    LOOM_DTYPES(LOOM_X)
#undef LOOM_X
  }
  return "?";
}

// Parses "f32" / "bf16" / "f16" (also "fp32", "fp16"); throws with the valid names.
DType parse_dtype(std::string_view name);

template <class T> struct dtype_of;
#define LOOM_X(name, type, bytes) \
  template <> struct dtype_of<type> { static constexpr DType value = DType::name; };
LOOM_DTYPES(LOOM_X)
#undef LOOM_X
template <class T> inline constexpr DType dtype_v = dtype_of<T>::value;

// Calls f(T{}) with T the storage type of `t`: the one place a runtime dtype
// becomes a template parameter (kernels are templates; interfaces are not).
template <class F>
decltype(auto) visit_dtype(DType t, F&& f) {
  switch (t) {
#define LOOM_X(name, type, bytes) case DType::name: return f(type{});
    LOOM_DTYPES(LOOM_X)
#undef LOOM_X
  }
  throw Error("visit_dtype: invalid dtype value");
}

// ---- conversions ---------------------------------------------------------------

inline float bits_to_f32(std::uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline std::uint32_t f32_to_bits(float f) { std::uint32_t u; std::memcpy(&u, &f, 4); return u; }

inline float to_float(float x) { return x; }
inline float to_float(bf16 x) { return bits_to_f32(std::uint32_t(x.bits) << 16); }
float to_float(f16 x);  // dtype.cpp: handles subnormals exactly

template <class T> T from_float(float x);
template <> inline float from_float<float>(float x) { return x; }
template <> inline bf16 from_float<bf16>(float x) {
  std::uint32_t u = f32_to_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{std::uint16_t((u >> 16) | 0x0040u)};  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  return bf16{std::uint16_t(u >> 16)};
}
template <> f16 from_float<f16>(float x);  // dtype.cpp

}  // namespace loom
