// backend/cpu/attention_tiles.h — what the CPU attention kernels (attention.cpp,
// grouped_attention.cpp) share: f32 views of one head's (T, D) slices, widened into
// per-thread tiles when the tensors are 16-bit (see attention.cpp's header), the tile
// GEMM (sgemm.h: oneDNN or OpenBLAS, single-threaded inside the kernels' OpenMP loops),
// and the causal row softmax.
#pragma once

#include <algorithm>
#include <cmath>

#include "backend/cpu/convert.h"
#include "backend/cpu/fast_math.h"
#include "backend/cpu/sgemm.h"
#include "core/dtype.h"

namespace loom::cpu {

// A (b, h) slice: rows of D elements, row stride ld.
struct View {
  float* p;
  std::int64_t ld;
};

// The f32 views of one pair's slices: straight into the tensor for f32, else a
// scratch tile (ld = D) filled from (in) or written back to (out) the tensor.
class Slices {
public:
  Slices(DType dt, std::int64_t T, std::int64_t D, float* tiles) : dt_(dt), T_(T), D_(D), tiles_(tiles) {}
  View in(int i, char* src, std::int64_t ld) {
    if (dt_ == DType::f32) return {reinterpret_cast<float*>(src), ld};
    float* t = tiles_ + i * T_ * D_;
    visit_dtype(dt_, [&](auto z) {
      using T = decltype(z);
      convert_rows(t, D_, reinterpret_cast<const T*>(src), ld, 0, T_, D_);
    });
    return {t, D_};
  }
  View out(int i, char* dst, std::int64_t ld) {
    if (dt_ == DType::f32) return {reinterpret_cast<float*>(dst), ld};
    pending_[n_pending_++] = {i, dst, ld};
    return {tiles_ + i * T_ * D_, D_};
  }
  ~Slices() {  // write the output tiles back
    for (int j = 0; j < n_pending_; ++j)
      visit_dtype(dt_, [&](auto z) {
        using T = decltype(z);
        const Pending& o = pending_[j];
        convert_rows(reinterpret_cast<T*>(o.dst), o.ld, tiles_ + o.tile * T_ * D_, D_, 0, T_, D_);
      });
  }
  static constexpr int kTiles = 7;

private:
  struct Pending {
    int tile;
    char* dst;
    std::int64_t ld;
  };
  DType dt_;
  std::int64_t T_, D_;
  float* tiles_;
  Pending pending_[kTiles] = {};
  int n_pending_ = 0;
};

// Row i of a causal score matrix (T columns) in place: the softmax over columns j <= i,
// zeros after.
inline void causal_softmax_row(float* row, std::int64_t i, std::int64_t T) {
  float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
  for (std::int64_t j = 0; j <= i; ++j) mx = std::max(mx, row[j]);
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (std::int64_t j = 0; j <= i; ++j) sum += (row[j] = fast_exp(row[j] - mx));
  const float inv = 1.0f / sum;
#pragma omp simd
  for (std::int64_t j = 0; j <= i; ++j) row[j] *= inv;
  for (std::int64_t j = i + 1; j < T; ++j) row[j] = 0.0f;
}

}  // namespace loom::cpu
