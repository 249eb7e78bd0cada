// backend/cuda/cuda_backend.h — the CUDA backend: cuBLASLt matmul + CUDA kernels.
//
// Only backend/registry.cpp includes this (it alone sees LOOM_WITH_CUDA). The
// backend owns one CUDA stream, a cuBLASLt handle and its workspace, all made
// at construction; ops enqueue on that stream and never allocate. This issue
// covers memory, elementwise ops, reductions, AdamW and matmul; every other op
// throws loom::Error saying it is not yet available on the CUDA backend.
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

}  // namespace loom
