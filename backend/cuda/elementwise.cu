// backend/cuda/elementwise.cu — fill, scale, axpy, add, cast and the matmul bias broadcast.
//
// One grid-stride kernel template per op, instantiated through visit_dtype over
// the storage types (float, bf16, f16). Values load as f32, are computed in f32
// and round to nearest even on store, like backend/cpu/elementwise.cpp; built
// with --fmad=false so y + alpha * x rounds as on the CPU. Outputs are written
// (`=`) except axpy and the accumulate form of the bias broadcast (`+=`).
#include "backend/cuda/device_dtype.cuh"
#include "backend/cuda/kernels.h"

namespace loom::cuda {

namespace {

template <class T>
__global__ void fill_kernel(T* x, std::int64_t n, float value) {
  LOOM_GRID_STRIDE(i, n) st(x, i, value);
}

template <class T>
__global__ void scale_kernel(T* x, std::int64_t n, float alpha) {
  LOOM_GRID_STRIDE(i, n) st(x, i, alpha * ld(x, i));
}

template <class TY, class TX>
__global__ void axpy_kernel(TY* y, float alpha, const TX* x, std::int64_t n) {
  LOOM_GRID_STRIDE(i, n) st(y, i, ld(y, i) + alpha * ld(x, i));
}

template <class T>
__global__ void add_kernel(T* out, const T* a, const T* b, std::int64_t n) {
  LOOM_GRID_STRIDE(i, n) st(out, i, ld(a, i) + ld(b, i));
}

template <class TD, class TS>
__global__ void cast_kernel(TD* dst, const TS* src, std::int64_t n) {
  LOOM_GRID_STRIDE(i, n) st(dst, i, ld(src, i));
}

template <class TO, class TB>
__global__ void bias_rows_kernel(TO* out, const TB* bias, std::int64_t rows, std::int64_t cols,
                                 bool accumulate) {
  LOOM_GRID_STRIDE(i, rows * cols) {
    const float b = ld(bias, i % cols);
    st(out, i, accumulate ? b + ld(out, i) : b);
  }
}

}  // namespace

cudaError_t launch_fill(void* x, DType t, std::int64_t n, float value, cudaStream_t stream) {
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    fill_kernel<<<grid_for(n), kThreads, 0, stream>>>(static_cast<T*>(x), n, value);
  });
  return cudaGetLastError();
}

cudaError_t launch_scale(void* x, DType t, std::int64_t n, float alpha, cudaStream_t stream) {
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    scale_kernel<<<grid_for(n), kThreads, 0, stream>>>(static_cast<T*>(x), n, alpha);
  });
  return cudaGetLastError();
}

cudaError_t launch_axpy(void* y, DType ty, float alpha, const void* x, DType tx, std::int64_t n,
                        cudaStream_t stream) {
  visit_dtype(ty, [&](auto tag_y) {
    visit_dtype(tx, [&](auto tag_x) {
      using TY = decltype(tag_y);
      using TX = decltype(tag_x);
      axpy_kernel<<<grid_for(n), kThreads, 0, stream>>>(static_cast<TY*>(y), alpha, static_cast<const TX*>(x),
                                                        n);
    });
  });
  return cudaGetLastError();
}

cudaError_t launch_add(void* out, const void* a, const void* b, DType t, std::int64_t n,
                       cudaStream_t stream) {
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    add_kernel<<<grid_for(n), kThreads, 0, stream>>>(static_cast<T*>(out), static_cast<const T*>(a),
                                                     static_cast<const T*>(b), n);
  });
  return cudaGetLastError();
}

cudaError_t launch_cast(void* dst, DType td, const void* src, DType ts, std::int64_t n, cudaStream_t stream) {
  visit_dtype(td, [&](auto tag_d) {
    visit_dtype(ts, [&](auto tag_s) {
      using TD = decltype(tag_d);
      using TS = decltype(tag_s);
      cast_kernel<<<grid_for(n), kThreads, 0, stream>>>(static_cast<TD*>(dst), static_cast<const TS*>(src),
                                                        n);
    });
  });
  return cudaGetLastError();
}

cudaError_t launch_bias_rows(void* out, DType to, const void* bias, DType tb, std::int64_t rows,
                             std::int64_t cols, bool accumulate, cudaStream_t stream) {
  visit_dtype(to, [&](auto tag_o) {
    visit_dtype(tb, [&](auto tag_b) {
      using TO = decltype(tag_o);
      using TB = decltype(tag_b);
      bias_rows_kernel<<<grid_for(rows * cols), kThreads, 0, stream>>>(
          static_cast<TO*>(out), static_cast<const TB*>(bias), rows, cols, accumulate);
    });
  });
  return cudaGetLastError();
}

}  // namespace loom::cuda
