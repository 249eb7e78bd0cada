// backend/cuda/adamw.cu — the AdamW update, one thread per element.
//
// The arithmetic is backend/adamw_math.h's adamw_element, the same inline
// function the CPU backend runs, compiled here as __host__ __device__; with
// --fmad=false and IEEE sqrt/division (nvcc's defaults without fast-math) the
// result matches the CPU to the last bit or so. param, m and v are updated in
// place; all four tensors are f32 of equal length (checked by the caller).
#define LOOM_HOST_DEVICE __host__ __device__
#include "backend/adamw_math.h"

#include "backend/cuda/device_dtype.cuh"
#include "backend/cuda/kernels.h"

namespace loom::cuda {

namespace {

__global__ void adamw_kernel(float* param, const float* grad, float* m, float* v, std::int64_t n,
                             AdamWScalars s) {
  LOOM_GRID_STRIDE(i, n) {
    float p = param[i], mi = m[i], vi = v[i];
    adamw_element(p, grad[i], mi, vi, s);
    param[i] = p;
    m[i] = mi;
    v[i] = vi;
  }
}

}  // namespace

cudaError_t launch_adamw(float* param, const float* grad, float* m, float* v, std::int64_t n,
                         const AdamWScalars& s, cudaStream_t stream) {
  adamw_kernel<<<grid_for(n), kThreads, 0, stream>>>(param, grad, m, v, n, s);
  return cudaGetLastError();
}

}  // namespace loom::cuda
