// backend/cuda/cuda_check.h — turning CUDA runtime and cuBLASLt status codes into loom::Error.
//
// Host-side only (the .cpp files): kernels in the .cu files report through the
// cudaError_t their launchers return, which the caller passes to check_cuda.
// Every message names the failing call and the library's own error string.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "core/error.h"

namespace loom::cuda {

inline void check_cuda(cudaError_t err, const char* call) {
  if (err == cudaSuccess) return;
  throw Error(fmt::format("{} failed: {} ({})", call, cudaGetErrorString(err), cudaGetErrorName(err)),
              err == cudaErrorMemoryAllocation
                  ? "the GPU is out of memory: reduce train.micro_batch or model size, or use more ranks"
                  : "check nvidia-smi and the driver; CUDA_LAUNCH_BLOCKING=1 pins an asynchronous error "
                    "to its call");
}

inline void check_cublas(cublasStatus_t status, const char* call) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw Error(
      fmt::format("{} failed: {} ({})", call, cublasLtGetStatusString(status), cublasLtGetStatusName(status)),
      "a cuBLASLt failure on valid shapes is a loom bug; please report it with the shapes");
}

}  // namespace loom::cuda

// Wraps a CUDA runtime / cuBLASLt call so the message names the call as written.
#define LOOM_CUDA_CHECK(call) ::loom::cuda::check_cuda((call), #call)
#define LOOM_CUBLAS_CHECK(call) ::loom::cuda::check_cublas((call), #call)
