// launch/gemm_peak.h — the GEMM roof that MFU is measured against, measured in this run.
//
// CPU f32: raw cblas_sgemm (not our matmul path) at a GPT-2-small MLP shape
// (1024 x 768 x 3072), best of a few runs, with the threads this process has.
// CPU bf16/f16: the backend's matmul in that dtype (its fastest GEMM for it) at the same
// shape. CUDA: the backend's matmul at a large square shape. Mixed-precision MFU is
// measured against the 16-bit peak.
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
