// backend/registry.cpp — picks a backend by Device; the only file that sees LOOM_WITH_CUDA.
#include "backend/registry.h"

#include "backend/cpu/cpu_backend.h"
#if LOOM_WITH_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace loom {

bool cuda_backend_compiled() {
#if LOOM_WITH_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_device_count() {
#if LOOM_WITH_CUDA
  return cuda_visible_devices();
#else
  return 0;
#endif
}

void* cuda_stream_of(Backend& be) {
#if LOOM_WITH_CUDA
  return cuda_backend_stream(be);
#else
  (void)be;
  return nullptr;
#endif
}

std::unique_ptr<Backend> make_backend(Device device, const BackendOptions& opts) {
  if (device == Device::cpu) return make_cpu_backend();
#if LOOM_WITH_CUDA
  LOOM_CHECK(cuda_visible_devices() > 0, "check nvidia-smi, or run with the CPU backend",
             "no CUDA device is visible to this process");
  return make_cuda_backend(opts.cuda_device);
#else
  (void)opts;
  throw Error("this loom was built without the CUDA backend",
              "reconfigure with -DLOOM_CUDA=ON on a machine with nvcc (/usr/local/cuda)");
#endif
}

}  // namespace loom
