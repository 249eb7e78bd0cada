// backend/cuda/rmsnorm.cu — RMSNorm over the last dim, forward and backward.
//
// x, out, dout, dx: (N, C) of one storage type; weight: (C) of that type; dweight: (C),
// that type or f32; rstd: (N) f32. As backend/cpu/rmsnorm.cpp: rstd = 1 / sqrt(mean(x^2)
// + eps), out = x * rstd * weight; backward with xhat = x * rstd, dn = dout * weight:
// dx = rstd * (dn - xhat * mean(dn * xhat)) (= or +=), dweight += sum_i dout * xhat.
// Forward and dx: one block a row, fixed-order block reductions (block_reduce.cuh).
// dweight: layernorm.cu's two deterministic passes (f32 partials per row group in the
// caller's scratch, then one thread a column adds them in order). No atomics.
#include "backend/cuda/block_reduce.cuh"
#include "backend/cuda/device_dtype.cuh"
#include "backend/cuda/kernels.h"

namespace loom::cuda {

namespace {

constexpr int kRowThreads = 256;

template <class T>
__global__ void rmsnorm_forward_kernel(T* out, float* rstd, const T* x, const T* w, std::int64_t C,
                                       float eps) {
  __shared__ float shared[kMaxWarps];
  const std::int64_t i = blockIdx.x;
  const T* xr = x + i * C;
  float ss = 0;
  for (std::int64_t c = threadIdx.x; c < C; c += blockDim.x) ss += ld(xr, c) * ld(xr, c);
  const float r = 1.0f / sqrtf(block_sum(ss, shared) / float(C) + eps);
  T* orow = out + i * C;
  for (std::int64_t c = threadIdx.x; c < C; c += blockDim.x) st(orow, c, ld(xr, c) * r * ld(w, c));
  if (threadIdx.x == 0) rstd[i] = r;
}

// dx = r * (dout*w - xhat * mean(dout*w*xhat)), written or added.
template <class T>
__global__ void rmsnorm_dx_kernel(T* dx, const T* dout, const T* x, const T* w, const float* rstd,
                                  std::int64_t C, bool accumulate) {
  __shared__ float shared[kMaxWarps];
  const std::int64_t i = blockIdx.x;
  const T* xr = x + i * C;
  const T* dr = dout + i * C;
  const float r = rstd[i];
  float a = 0;
  for (std::int64_t c = threadIdx.x; c < C; c += blockDim.x) a += ld(dr, c) * ld(w, c) * ld(xr, c) * r;
  const float mean_dn_xhat = block_sum(a, shared) / float(C);
  T* dxr = dx + i * C;
  for (std::int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const float g = r * (ld(dr, c) * ld(w, c) - ld(xr, c) * r * mean_dn_xhat);
    st(dxr, c, accumulate ? ld(dxr, c) + g : g);
  }
}

constexpr int kCols = 32;   // threadIdx.x: one column each
constexpr int kLanes = 32;  // threadIdx.y: rows of the block's slice, strided

// partials (groups, C): for row group blockIdx.y (rows [g*rows_per, (g+1)*rows_per)),
// sum dout * xhat per column.
template <class T>
__global__ void rmsnorm_param_partial_kernel(float* partials, const T* dout, const T* x, const float* rstd,
                                             std::int64_t N, std::int64_t C, std::int64_t rows_per) {
  __shared__ float sw[kLanes][kCols + 1];
  const std::int64_t c = std::int64_t(blockIdx.x) * kCols + threadIdx.x;
  const std::int64_t begin = std::int64_t(blockIdx.y) * rows_per;
  const std::int64_t end = begin + rows_per < N ? begin + rows_per : N;
  float aw = 0;
  if (c < C)
    for (std::int64_t i = begin + threadIdx.y; i < end; i += kLanes)
      aw += ld(dout, i * C + c) * ld(x, i * C + c) * rstd[i];
  sw[threadIdx.y][threadIdx.x] = aw;
  for (int h = kLanes / 2; h > 0; h >>= 1) {
    __syncthreads();
    if (int(threadIdx.y) < h) sw[threadIdx.y][threadIdx.x] += sw[threadIdx.y + h][threadIdx.x];
  }
  if (threadIdx.y == 0 && c < C) partials[std::int64_t(blockIdx.y) * C + c] = sw[0][threadIdx.x];
}

template <class G>
__global__ void rmsnorm_param_final_kernel(G* dweight, const float* partials, int groups, std::int64_t C) {
  LOOM_GRID_STRIDE(c, C) {
    float aw = 0;
    for (int g = 0; g < groups; ++g) aw += partials[std::int64_t(g) * C + c];
    st(dweight, c, ld(dweight, c) + aw);
  }
}

}  // namespace

cudaError_t launch_rmsnorm_forward(void* out, float* rstd, const void* x, const void* weight, DType t,
                                   std::int64_t N, std::int64_t C, float eps, cudaStream_t stream) {
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    rmsnorm_forward_kernel<<<unsigned(N), kRowThreads, 0, stream>>>(
        static_cast<T*>(out), rstd, static_cast<const T*>(x), static_cast<const T*>(weight), C, eps);
  });
  return cudaGetLastError();
}

cudaError_t launch_rmsnorm_backward(void* dx, void* dweight, DType tg, const void* dout, const void* x,
                                    const void* weight, const float* rstd, DType t, std::int64_t N,
                                    std::int64_t C, bool accumulate_dx, float* scratch, cudaStream_t stream) {
  const int groups = layernorm_param_groups(N);
  const std::int64_t rows_per = (N + groups - 1) / groups;
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    const dim3 grid(unsigned((C + kCols - 1) / kCols), unsigned(groups));
    rmsnorm_param_partial_kernel<<<grid, dim3(kCols, kLanes), 0, stream>>>(
        scratch, static_cast<const T*>(dout), static_cast<const T*>(x), rstd, N, C, rows_per);
    rmsnorm_dx_kernel<<<unsigned(N), kRowThreads, 0, stream>>>(
        static_cast<T*>(dx), static_cast<const T*>(dout), static_cast<const T*>(x),
        static_cast<const T*>(weight), rstd, C, accumulate_dx);
  });
  visit_dtype(tg, [&](auto tag) {
    using G = decltype(tag);
    rmsnorm_param_final_kernel<<<grid_for(C), kThreads, 0, stream>>>(static_cast<G*>(dweight), scratch,
                                                                     groups, C);
  });
  return cudaGetLastError();
}

}  // namespace loom::cuda
