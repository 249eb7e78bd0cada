// launch/gemm_peak.h — the GEMM roof that MFU is measured against, measured in this run.
//
// CPU: at a GPT-2-small MLP shape (1024 x 768 x 3072), best of a few runs with the threads
// this process has, the faster of the backend's matmul in `dtype` (the library it picks:
// oneDNN for bf16, oneDNN f32 when OpenBLAS runs its fallback kernels) and, for f32 where
// OpenBLAS knows the CPU, raw cblas_sgemm. CUDA: the backend's matmul at a large square shape.
// Mixed-precision MFU is measured against the 16-bit peak.
#pragma once

#include <string>

#include "backend/backend.h"

namespace loom {

double measure_gemm_peak_flops(Backend& be, DType dtype = DType::f32);
// The CPU kernel set OpenBLAS chose ("SkylakeX", "Haswell", ...). Printed next to the peak:
// a build that does not know the CPU falls back to an old one ("Prescott") and runs several
// times below the machine's peak (docs/performance.md); OPENBLAS_CORETYPE overrides it.
std::string blas_core_name();

}  // namespace loom
