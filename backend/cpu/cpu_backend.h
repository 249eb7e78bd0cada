// backend/cpu/cpu_backend.h — the CPU backend: OpenBLAS sgemm, oneDNN bf16 matmul + OpenMP loops, the numerical reference.
#pragma once

#include <memory>

#include "backend/backend.h"

namespace loom {

std::unique_ptr<Backend> make_cpu_backend();

}  // namespace loom
