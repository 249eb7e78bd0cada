// backend/cpu/cpu_backend.h — the CPU backend: OpenBLAS sgemm + OpenMP loops, the numerical reference.
#pragma once

#include <memory>

#include "backend/backend.h"

namespace loom {

std::unique_ptr<Backend> make_cpu_backend();

}  // namespace loom
