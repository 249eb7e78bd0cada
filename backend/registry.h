// backend/registry.h — the one place that knows which backends were compiled in.
#pragma once

#include <memory>

#include "backend/backend.h"

namespace loom {

struct BackendOptions {
  int cuda_device = 0;  // CUDA device ordinal (ignored for the CPU)
};

// The CPU backend always exists; the CUDA one when built with LOOM_CUDA and
// a GPU is visible. Throws loom::Error with a hint otherwise.
std::unique_ptr<Backend> make_backend(Device device, const BackendOptions& opts = {});
bool cuda_backend_compiled();
// Number of visible CUDA devices (0 when not compiled or no GPU/driver).
int cuda_device_count();
// The CUDA stream (cudaStream_t as void*) a CUDA backend runs its ops on, for the
// device communicators (parallel/device_comm.h); nullptr for the CPU backend.
void* cuda_stream_of(Backend& be);

}  // namespace loom
