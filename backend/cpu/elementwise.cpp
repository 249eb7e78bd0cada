// backend/cpu/elementwise.cpp — fill, scale, axpy, add, cast, sum and sum of squares, GELU,
// softmax and AdamW: the ops that touch each element (or row) once.
//
// Every kernel is a template over the storage types, instantiated through
// visit_dtype; values are loaded to f32, computed, and rounded on store.
#include <algorithm>
#include <cmath>

#include "backend/adamw_math.h"
#include "backend/checks.h"
#include "backend/cpu/fast_math.h"
#include "backend/cpu/kernels.h"

namespace loom::cpu {

namespace {
constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;

// sum of f(x_i) in double over kReduceChunks chunks whose bounds depend on n only,
// each summed in order, then the chunks in order: the same bits for any thread
// count, and no allocation.
constexpr std::int64_t kReduceChunks = 256;
template <class F>
double reduce_double(Tensor x, F f) {
  return visit_dtype(x.dtype, [&](auto t) {
    using T = decltype(t);
    const T* p = static_cast<const T*>(x.ptr);
    const std::int64_t n = x.numel(), chunk = (n + kReduceChunks - 1) / kReduceChunks;
    double partial[kReduceChunks];
#pragma omp parallel for schedule(static)
    for (std::int64_t c = 0; c < kReduceChunks; ++c) {
      const std::int64_t begin = std::min(n, c * chunk), end = std::min(n, begin + chunk);
      double acc = 0;
#pragma omp simd reduction(+ : acc)
      for (std::int64_t i = begin; i < end; ++i) acc += f(double(ld(p, i)));
      partial[c] = acc;
    }
    double total = 0;
    for (double v : partial) total += v;
    return total;
  });
}
}  // namespace

void fill(Tensor x, float value) {
  visit_dtype(x.dtype, [&](auto t) {
    using T = decltype(t);
    T* p = static_cast<T*>(x.ptr);
    const T v = from_float<T>(value);
    const std::int64_t n = x.numel();
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) p[i] = v;
  });
}

void scale(Tensor x, float alpha) {
  visit_dtype(x.dtype, [&](auto t) {
    using T = decltype(t);
    T* p = static_cast<T*>(x.ptr);
    const std::int64_t n = x.numel();
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) st(p, i, alpha * ld(p, i));
  });
}

void axpy(Tensor y, float alpha, Tensor x) {
  check::numel("axpy", "y", y, x.numel());
  visit_dtype(y.dtype, [&](auto ty) {
    visit_dtype(x.dtype, [&](auto tx) {
      using TY = decltype(ty);
      using TX = decltype(tx);
      TY* py = static_cast<TY*>(y.ptr);
      const TX* px = static_cast<const TX*>(x.ptr);
      const std::int64_t n = y.numel();
#pragma omp parallel for schedule(static)
      for (std::int64_t i = 0; i < n; ++i) st(py, i, ld(py, i) + alpha * ld(px, i));
    });
  });
}

void add(Tensor out, Tensor a, Tensor b) {
  check::numel("add", "a", a, out.numel());
  check::numel("add", "b", b, out.numel());
  LOOM_CHECK(a.dtype == out.dtype && b.dtype == out.dtype, "", "add: dtypes differ: out {}, a {}, b {}",
             out.str(), a.str(), b.str());
  visit_dtype(out.dtype, [&](auto t) {
    using T = decltype(t);
    T* o = static_cast<T*>(out.ptr);
    const T* pa = static_cast<const T*>(a.ptr);
    const T* pb = static_cast<const T*>(b.ptr);
    const std::int64_t n = out.numel();
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) st(o, i, ld(pa, i) + ld(pb, i));
  });
}

void cast(Tensor dst, Tensor src) {
  check::numel("cast", "dst", dst, src.numel());
  visit_dtype(dst.dtype, [&](auto td) {
    visit_dtype(src.dtype, [&](auto ts) {
      using TD = decltype(td);
      using TS = decltype(ts);
      TD* d = static_cast<TD*>(dst.ptr);
      const TS* s = static_cast<const TS*>(src.ptr);
      const std::int64_t n = dst.numel();
#pragma omp parallel for schedule(static)
      for (std::int64_t i = 0; i < n; ++i) st(d, i, ld(s, i));
    });
  });
}

double sum(Tensor x) {
  return reduce_double(x, [](double v) { return v; });
}

double sum_squares(Tensor x) {
  return reduce_double(x, [](double v) { return v * v; });
}

void gelu_forward(Tensor out, Tensor x) {
  check::same_shape("gelu_forward", "out", out, "x", x);
  visit_dtype(x.dtype, [&](auto t) {
    using T = decltype(t);
    const T* px = static_cast<const T*>(x.ptr);
    T* o = out.data<T>();
    const std::int64_t n = x.numel();
#pragma omp parallel for simd schedule(static)
    for (std::int64_t i = 0; i < n; ++i) {
      const float v = ld(px, i);
      st(o, i, 0.5f * v * (1.0f + fast_tanh(kSqrt2OverPi * (v + kGeluCubic * v * v * v))));
    }
  });
}

void gelu_backward(Tensor dx, Tensor dout, Tensor x) {
  check::same_shape("gelu_backward", "dx", dx, "x", x);
  check::same_shape("gelu_backward", "dout", dout, "x", x);
  visit_dtype(x.dtype, [&](auto t) {
    using T = decltype(t);
    const T* px = static_cast<const T*>(x.ptr);
    const T* pd = dout.data<T>();
    T* pdx = dx.data<T>();
    const std::int64_t n = x.numel();
#pragma omp parallel for simd schedule(static)
    for (std::int64_t i = 0; i < n; ++i) {
      const float v = ld(px, i);
      const float u = kSqrt2OverPi * (v + kGeluCubic * v * v * v);
      const float th = fast_tanh(u);
      const float du = kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * v * v);
      const float grad = 0.5f * (1.0f + th) + 0.5f * v * (1.0f - th * th) * du;
      st(pdx, i, grad * ld(pd, i));
    }
  });
}

void softmax_forward(Tensor out, Tensor x) {
  check::same_shape("softmax_forward", "out", out, "x", x);
  const std::int64_t rows = x.shape.rows(), n = x.shape.last();
  visit_dtype(x.dtype, [&](auto t) {
    using T = decltype(t);
    const T* px = static_cast<const T*>(x.ptr);
    T* o = out.data<T>();
#pragma omp parallel for schedule(static)
    for (std::int64_t r = 0; r < rows; ++r) {
      const T* xr = px + r * n;
      T* orow = o + r * n;
      float mx = -INFINITY;
      #pragma omp simd reduction(max : mx)
      for (std::int64_t j = 0; j < n; ++j) mx = std::max(mx, ld(xr, j));
      float sum = 0;
#pragma omp simd reduction(+ : sum)
      for (std::int64_t j = 0; j < n; ++j) sum += fast_exp(ld(xr, j) - mx);
      const float inv = 1.0f / sum;
#pragma omp simd
      for (std::int64_t j = 0; j < n; ++j) st(orow, j, fast_exp(ld(xr, j) - mx) * inv);
    }
  });
}

void softmax_backward(Tensor dx, Tensor dout, Tensor y) {
  check::same_shape("softmax_backward", "dx", dx, "y", y);
  check::same_shape("softmax_backward", "dout", dout, "y", y);
  const std::int64_t rows = y.shape.rows(), n = y.shape.last();
  visit_dtype(y.dtype, [&](auto t) {
    using T = decltype(t);
    const T* py = static_cast<const T*>(y.ptr);
    const T* pd = dout.data<T>();
    T* pdx = dx.data<T>();
#pragma omp parallel for schedule(static)
    for (std::int64_t r = 0; r < rows; ++r) {
      const T *yr = py + r * n, *dr = pd + r * n;
      T* dxr = pdx + r * n;
      float dot = 0;  // sum_j dout_j y_j
#pragma omp simd reduction(+ : dot)
      for (std::int64_t j = 0; j < n; ++j) dot += ld(dr, j) * ld(yr, j);
#pragma omp simd
      for (std::int64_t j = 0; j < n; ++j) st(dxr, j, ld(yr, j) * (ld(dr, j) - dot));
    }
  });
}

void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWArgs& a) {
  const AdamWScalars s = check::adamw_args(param, grad, m, v, a);
  float* p = param.data<float>();
  const float* g = grad.data<float>();
  float* pm = m.data<float>();
  float* pv = v.data<float>();
  const std::int64_t n = param.numel();
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i) adamw_element(p[i], g[i], pm[i], pv[i], s);
}

}  // namespace loom::cpu
