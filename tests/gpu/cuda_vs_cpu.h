// tests/gpu/cuda_vs_cpu.h — helpers shared by the CUDA-vs-CPU tests.
//
// Inputs come from core/rng.h on the host and are rounded to bf16/f16 by
// core/dtype.h before upload, so both backends see identical bits. The fixture
// skips every test (saying so) when no CUDA device is visible, so these programs
// pass on machines without a GPU.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "backend/registry.h"
#include "core/buffer.h"
#include "core/rng.h"

namespace loom {

inline constexpr std::uint64_t kSeed = 20240607;

inline std::vector<float> randn(std::int64_t n, std::uint64_t stream, float stddev = 1.0f) {
  std::vector<float> v(static_cast<std::size_t>(n));
  fill_normal(v.data(), n, kSeed, stream, 0, 0.0f, stddev);
  return v;
}

inline std::vector<float> randu(std::int64_t n, std::uint64_t stream, float lo, float hi) {
  std::vector<float> v(static_cast<std::size_t>(n));
  fill_uniform(v.data(), n, kSeed, stream, 0, lo, hi);
  return v;
}

// `values` stored as dtype t on the host (rounded by core/dtype.h), and back.
inline std::vector<std::byte> encode(const std::vector<float>& values, DType t) {
  std::vector<std::byte> out(values.size() * dtype_size(t));
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    T* p = reinterpret_cast<T*>(out.data());
    for (std::size_t i = 0; i < values.size(); ++i) p[i] = from_float<T>(values[i]);
  });
  return out;
}

inline std::vector<float> decode(const std::vector<std::byte>& bytes, DType t) {
  std::vector<float> out(bytes.size() / dtype_size(t));
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    const T* p = reinterpret_cast<const T*>(bytes.data());
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = to_float(p[i]);
  });
  return out;
}

// A buffer on `be` holding `values` as dtype t; and the bytes / values of a tensor.
inline Buffer upload(Backend& be, const std::vector<float>& values, Shape s, DType t) {
  Buffer buf(be, s, t);
  std::vector<std::byte> bytes = encode(values, t);
  be.copy(buf, Tensor{bytes.data(), s, t, Device::cpu});
  return buf;
}
inline std::vector<std::byte> bytes_of(Backend& be, Tensor t) {
  std::vector<std::byte> out(t.bytes());
  be.copy(Tensor{out.data(), t.shape, t.dtype, Device::cpu}, t);
  return out;
}
inline std::vector<float> download(Backend& be, Tensor t) { return decode(bytes_of(be, t), t.dtype); }

// Element-wise |got - want| <= abs + rel * |want|; reports the first few misses.
inline void expect_close(const std::vector<float>& got, const std::vector<float>& want, double rel, double abs,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int misses = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], w = want[i];
    const bool same_inf = std::isinf(g) && std::isinf(w) && (g > 0) == (w > 0);
    if (same_inf || std::fabs(g - w) <= abs + rel * std::fabs(w)) continue;
    if (++misses <= 5)
      ADD_FAILURE() << what << ": element " << i << " is " << g << " on CUDA but " << w << " on the CPU";
  }
  EXPECT_EQ(misses, 0) << what << ": " << misses << " of " << got.size() << " elements differ";
}

// |got - want| <= tol * max(1, max |want|): for sums whose terms may cancel.
inline void expect_close_scaled(const std::vector<float>& got, const std::vector<float>& want, double tol,
                         const std::string& what) {
  double scale = 1.0;
  for (float w : want) scale = std::max(scale, double(std::fabs(w)));
  expect_close(got, want, 0.0, tol * scale, what);
}

inline std::string label(DType t) { return std::string(dtype_name(t)); }

class CudaVsCpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device visible";
    cpu_ = make_backend(Device::cpu);
    gpu_ = make_backend(Device::cuda);
  }

  Backend& cpu() { return *cpu_; }
  Backend& gpu() { return *gpu_; }

  std::unique_ptr<Backend> cpu_, gpu_;
};

inline const DType kDTypes[] = {DType::f32, DType::bf16, DType::f16};
inline const std::int64_t kSizes[] = {1, 3, 17, 65, 768, 4099};

// Relative tolerance for one rounding to dtype t (a one-ulp flip is allowed).
inline double ulp_tol(DType t) { return t == DType::f32 ? 1e-6 : (t == DType::bf16 ? 1e-2 : 2e-3); }

// ---- shared by the op tests (test_cuda_ops_vs_cpu.cpp, test_cuda_flash_attention.cpp) ----

// Tolerance of an op's outputs: 1e-5 f32, 1e-2 bf16, 2e-3 f16.
inline double op_tol(DType t) { return t == DType::f32 ? 1e-5 : (t == DType::bf16 ? 1e-2 : 2e-3); }

// A buffer of n NaNs of dtype t on `be` (every kernel output starts like this).
inline Buffer poisoned(Backend& be, Shape s, DType t) {
  Buffer b(be, s, t);
  be.fill(b, std::numeric_limits<float>::quiet_NaN());
  return b;
}

inline void expect_no_nan(const std::vector<float>& v, const std::string& what) {
  const auto n = std::count_if(v.begin(), v.end(), [](float x) { return std::isnan(x); });
  EXPECT_EQ(n, 0) << what << ": " << n << " NaN elements (not written?)";
}

// got vs want (the CPU's), no NaN, within tol relative to max(1, max |want|).
inline void compare(Backend& gpu, Tensor g, Backend& cpu, Tensor c, double tol, const std::string& what) {
  const std::vector<float> got = download(gpu, g), want = download(cpu, c);
  expect_no_nan(got, what);
  expect_close_scaled(got, want, tol, what);
}

// Token ids (int32) in 4-byte elements on `be`, as layers/gpt.cpp keeps them.
inline Buffer upload_ids(Backend& be, const std::vector<std::int32_t>& ids, Shape s) {
  Buffer b(be, s, DType::f32);
  be.copy(b, Tensor{const_cast<std::int32_t*>(ids.data()), s, DType::f32, Device::cpu});
  return b;
}
inline TokenView ids_of(const Buffer& b, Shape s) {
  const Tensor t = b.tensor();
  return TokenView{static_cast<const std::int32_t*>(t.ptr), s, t.device};
}

}  // namespace loom
