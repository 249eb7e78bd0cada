// backend/cuda/reduce.cu — reductions: sum and sum of squares (double) and the bias
// gradient (column sums).
//
// sum / sum_squares run a grid of at most kReduceBlocks blocks (fixed for a given
// n), each leaving a double partial sum in the backend's scratch, then one block
// adds the partials: no atomics, so the result is the same run to run. bias_backward
// gives each block 32 columns; 32 row-lanes sum in f32 and a shared-memory tree
// combines them; dbias is accumulated (`+=`), matching the CPU reference.
#include "backend/cuda/device_dtype.cuh"
#include "backend/cuda/kernels.h"

namespace loom::cuda {

namespace {

// In-place tree sum of s[0..kThreads) into s[0]; every thread of the block calls it.
template <class Acc>
__device__ void block_tree_sum(Acc* s) {
  for (int w = kThreads / 2; w > 0; w >>= 1) {
    __syncthreads();
    if (int(threadIdx.x) < w) s[threadIdx.x] += s[threadIdx.x + w];
  }
  __syncthreads();
}

// Sum of x (Square = false) or x^2 (true) over a grid-stride slice, one partial per block.
template <bool Square, class T>
__global__ void sum_partial_kernel(const T* x, std::int64_t n, double* partials) {
  __shared__ double s[kThreads];
  double acc = 0;
  LOOM_GRID_STRIDE(i, n) {
    const double v = ld(x, i);
    acc += Square ? v * v : v;
  }
  s[threadIdx.x] = acc;
  block_tree_sum(s);
  if (threadIdx.x == 0) partials[blockIdx.x] = s[0];
}

__global__ void sum_partials_kernel(const double* partials, int count, double* result) {
  __shared__ double s[kThreads];
  double acc = 0;
  for (int i = threadIdx.x; i < count; i += kThreads) acc += partials[i];
  s[threadIdx.x] = acc;
  block_tree_sum(s);
  if (threadIdx.x == 0) *result = s[0];
}

constexpr int kColsPerBlock = 32;  // threadIdx.x: one column each
constexpr int kRowLanes = 32;      // threadIdx.y: rows ty, ty + 32, ...

template <class TB, class TD>
__global__ void bias_backward_kernel(TB* dbias, const TD* dout, std::int64_t rows, std::int64_t cols) {
  __shared__ float s[kRowLanes][kColsPerBlock + 1];
  const std::int64_t c = std::int64_t(blockIdx.x) * kColsPerBlock + threadIdx.x;
  float acc = 0;
  if (c < cols)
    for (std::int64_t r = threadIdx.y; r < rows; r += kRowLanes) acc += ld(dout, r * cols + c);
  s[threadIdx.y][threadIdx.x] = acc;
  for (int w = kRowLanes / 2; w > 0; w >>= 1) {
    __syncthreads();
    if (int(threadIdx.y) < w) s[threadIdx.y][threadIdx.x] += s[threadIdx.y + w][threadIdx.x];
  }
  if (threadIdx.y == 0 && c < cols) st(dbias, c, ld(dbias, c) + s[0][threadIdx.x]);
}

template <bool Square>
cudaError_t launch_reduce(const void* x, DType t, std::int64_t n, double* scratch, cudaStream_t stream) {
  std::int64_t blocks = (n + kThreads - 1) / kThreads;
  blocks = blocks < 1 ? 1 : (blocks > kReduceBlocks ? kReduceBlocks : blocks);
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    sum_partial_kernel<Square>
        <<<unsigned(blocks), kThreads, 0, stream>>>(static_cast<const T*>(x), n, scratch);
  });
  sum_partials_kernel<<<1, kThreads, 0, stream>>>(scratch, int(blocks), scratch + kReduceBlocks);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_sum(const void* x, DType t, std::int64_t n, double* scratch, cudaStream_t stream) {
  return launch_reduce<false>(x, t, n, scratch, stream);
}

cudaError_t launch_sum_squares(const void* x, DType t, std::int64_t n, double* scratch, cudaStream_t stream) {
  return launch_reduce<true>(x, t, n, scratch, stream);
}

cudaError_t launch_bias_backward(void* dbias, DType tb, const void* dout, DType td, std::int64_t rows,
                                 std::int64_t cols, cudaStream_t stream) {
  const unsigned blocks = unsigned((cols + kColsPerBlock - 1) / kColsPerBlock);
  visit_dtype(tb, [&](auto tag_b) {
    visit_dtype(td, [&](auto tag_d) {
      using TB = decltype(tag_b);
      using TD = decltype(tag_d);
      bias_backward_kernel<<<blocks, dim3(kColsPerBlock, kRowLanes), 0, stream>>>(
          static_cast<TB*>(dbias), static_cast<const TD*>(dout), rows, cols);
    });
  });
  return cudaGetLastError();
}

}  // namespace loom::cuda
