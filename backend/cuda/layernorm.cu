// backend/cuda/layernorm.cu — layernorm over the last dim, forward and backward.
//
// x, out, dout, dx: (N, C) of one storage type; weight, bias: (C) of that type;
// dweight, dbias: (C), that type or f32; mean, rstd: (N) f32. Forward: one block
// a row, two passes (mean, then the centred variance) as backend/cpu/layernorm.cpp.
// Backward: dx (= or +=) one block a row; dweight += and dbias += in two
// deterministic passes: each block of (32 columns x 32 row lanes) sums a fixed
// slice of rows into f32 partials in the caller's scratch, then one thread a
// column adds the partials in order and accumulates into dweight/dbias. No
// atomics: the same bits on every run.
#include "backend/cuda/block_reduce.cuh"
#include "backend/cuda/device_dtype.cuh"
#include "backend/cuda/kernels.h"

namespace loom::cuda {

namespace {

constexpr int kRowThreads = 256;

template <class T>
__global__ void layernorm_forward_kernel(T* out, float* mean, float* rstd, const T* x, const T* w, const T* b,
                                         std::int64_t C, float eps) {
  __shared__ float shared[kMaxWarps];
  const std::int64_t i = blockIdx.x;
  const T* xr = x + i * C;
  float s = 0;
  for (std::int64_t c = threadIdx.x; c < C; c += blockDim.x) s += ld(xr, c);
  const float m = block_sum(s, shared) / float(C);
  float v = 0;
  for (std::int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const float d = ld(xr, c) - m;
    v += d * d;
  }
  const float r = 1.0f / sqrtf(block_sum(v, shared) / float(C) + eps);
  T* orow = out + i * C;
  for (std::int64_t c = threadIdx.x; c < C; c += blockDim.x) st(orow, c, (ld(xr, c) - m) * r * ld(w, c) + ld(b, c));
  if (threadIdx.x == 0) {
    mean[i] = m;
    rstd[i] = r;
  }
}

// dx = r * (dout*w - mean(dout*w) - xhat * mean(dout*w*xhat)), written or added.
template <class T>
__global__ void layernorm_dx_kernel(T* dx, const T* dout, const T* x, const T* w, const float* mean,
                                    const float* rstd, std::int64_t C, bool accumulate) {
  __shared__ float shared[kMaxWarps];
  const std::int64_t i = blockIdx.x;
  const T* xr = x + i * C;
  const T* dr = dout + i * C;
  const float m = mean[i], r = rstd[i];
  float a = 0, b = 0;
  for (std::int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const float dn = ld(dr, c) * ld(w, c);
    a += dn;
    b += dn * (ld(xr, c) - m) * r;
  }
  const float mean_dn = block_sum(a, shared) / float(C);
  const float mean_dn_xhat = block_sum(b, shared) / float(C);
  T* dxr = dx + i * C;
  for (std::int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const float xhat = (ld(xr, c) - m) * r;
    const float g = r * (ld(dr, c) * ld(w, c) - mean_dn - xhat * mean_dn_xhat);
    st(dxr, c, accumulate ? ld(dxr, c) + g : g);
  }
}

constexpr int kCols = 32;  // threadIdx.x: one column each
constexpr int kLanes = 32;  // threadIdx.y: rows of the block's slice, strided

// partials (groups, 2, C): for row group blockIdx.y (rows [g*rows_per, (g+1)*rows_per)),
// [0] = sum dout * xhat, [1] = sum dout, per column.
template <class T>
__global__ void layernorm_param_partial_kernel(float* partials, const T* dout, const T* x, const float* mean,
                                               const float* rstd, std::int64_t N, std::int64_t C,
                                               std::int64_t rows_per) {
  __shared__ float sw[kLanes][kCols + 1];
  __shared__ float sb[kLanes][kCols + 1];
  const std::int64_t c = std::int64_t(blockIdx.x) * kCols + threadIdx.x;
  const std::int64_t begin = std::int64_t(blockIdx.y) * rows_per;
  const std::int64_t end = begin + rows_per < N ? begin + rows_per : N;
  float aw = 0, ab = 0;
  if (c < C)
    for (std::int64_t i = begin + threadIdx.y; i < end; i += kLanes) {
      const float d = ld(dout, i * C + c);
      aw += d * (ld(x, i * C + c) - mean[i]) * rstd[i];
      ab += d;
    }
  sw[threadIdx.y][threadIdx.x] = aw;
  sb[threadIdx.y][threadIdx.x] = ab;
  for (int h = kLanes / 2; h > 0; h >>= 1) {
    __syncthreads();
    if (int(threadIdx.y) < h) {
      sw[threadIdx.y][threadIdx.x] += sw[threadIdx.y + h][threadIdx.x];
      sb[threadIdx.y][threadIdx.x] += sb[threadIdx.y + h][threadIdx.x];
    }
  }
  if (threadIdx.y == 0 && c < C) {
    float* p = partials + std::int64_t(blockIdx.y) * 2 * C;
    p[c] = sw[0][threadIdx.x];
    p[C + c] = sb[0][threadIdx.x];
  }
}

template <class G>
__global__ void layernorm_param_final_kernel(G* dweight, G* dbias, const float* partials, int groups,
                                             std::int64_t C) {
  LOOM_GRID_STRIDE(c, C) {
    float aw = 0, ab = 0;
    for (int g = 0; g < groups; ++g) {
      aw += partials[std::int64_t(g) * 2 * C + c];
      ab += partials[std::int64_t(g) * 2 * C + C + c];
    }
    st(dweight, c, ld(dweight, c) + aw);
    st(dbias, c, ld(dbias, c) + ab);
  }
}

}  // namespace

int layernorm_param_groups(std::int64_t N) {
  const std::int64_t g = (N + 255) / 256;  // at least 256 rows a group, at most kLayernormGroups groups
  return int(g < 1 ? 1 : (g > kLayernormGroups ? kLayernormGroups : g));
}

cudaError_t launch_layernorm_forward(void* out, float* mean, float* rstd, const void* x, const void* weight,
                                     const void* bias, DType t, std::int64_t N, std::int64_t C, float eps,
                                     cudaStream_t stream) {
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    layernorm_forward_kernel<<<unsigned(N), kRowThreads, 0, stream>>>(
        static_cast<T*>(out), mean, rstd, static_cast<const T*>(x), static_cast<const T*>(weight),
        static_cast<const T*>(bias), C, eps);
  });
  return cudaGetLastError();
}

cudaError_t launch_layernorm_backward(void* dx, void* dweight, void* dbias, DType tg, const void* dout,
                                      const void* x, const void* weight, const float* mean, const float* rstd,
                                      DType t, std::int64_t N, std::int64_t C, bool accumulate_dx,
                                      float* scratch, cudaStream_t stream) {
  const int groups = layernorm_param_groups(N);
  const std::int64_t rows_per = (N + groups - 1) / groups;
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    layernorm_dx_kernel<<<unsigned(N), kRowThreads, 0, stream>>>(
        static_cast<T*>(dx), static_cast<const T*>(dout), static_cast<const T*>(x), static_cast<const T*>(weight),
        mean, rstd, C, accumulate_dx);
    const dim3 grid(unsigned((C + kCols - 1) / kCols), unsigned(groups));
    layernorm_param_partial_kernel<<<grid, dim3(kCols, kLanes), 0, stream>>>(
        scratch, static_cast<const T*>(dout), static_cast<const T*>(x), mean, rstd, N, C, rows_per);
  });
  visit_dtype(tg, [&](auto tag) {
    using G = decltype(tag);
    layernorm_param_final_kernel<<<grid_for(C), kThreads, 0, stream>>>(static_cast<G*>(dweight),
                                                                     static_cast<G*>(dbias), scratch, groups, C);
  });
  return cudaGetLastError();
}

}  // namespace loom::cuda
