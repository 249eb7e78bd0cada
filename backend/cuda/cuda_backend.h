// backend/cuda/cuda_backend.h — the CUDA backend: cuBLASLt matmul, cuBLAS attention GEMMs + CUDA kernels.
//
// Only backend/registry.cpp includes this (it alone sees LOOM_WITH_CUDA). The
// backend owns one CUDA stream, a cuBLASLt handle and its workspace and a cuBLAS
// handle, made at construction; ops enqueue on that stream. Every op of
// backend.h is implemented, in f32, bf16 and f16 with f32 arithmetic. Ops never
// allocate Buffers; layernorm_backward and 16-bit attention use one
// backend-owned f32 workspace that grows to the largest request it has seen.
// Token ids (embedding, cross-entropy targets) must be in device memory. A
// cross-entropy target >= vocab throws at the backend's next host synchronisation
// (copy to or from the host, synchronize, sum), not at the call as on the CPU.
#pragma once

#include <memory>

#include "backend/backend.h"

namespace loom {

// Number of CUDA devices this process can see; 0 when there is no driver, no
// GPU, or any other CUDA error. Never throws.
int cuda_visible_devices() noexcept;

// A backend on CUDA device `ordinal` (0-based, within CUDA_VISIBLE_DEVICES).
// Throws loom::Error when the device does not exist or CUDA/cuBLASLt setup fails.
std::unique_ptr<Backend> make_cuda_backend(int ordinal);

// The cudaStream_t (as void*) a backend made by make_cuda_backend enqueues its ops
// on, for communicators that must order themselves after it; nullptr for any
// other backend.
void* cuda_backend_stream(Backend& be) noexcept;

}  // namespace loom
