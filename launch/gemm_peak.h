// launch/gemm_peak.h — the GEMM roof that MFU is measured against, measured in this run.
//
// CPU: raw cblas_sgemm (not our matmul path) at a GPT-2-small MLP shape
// (1024 x 768 x 3072), best of a few runs, with the threads this process has.
// CUDA: the backend's f32 matmul at a large square shape.
#pragma once

#include "backend/backend.h"

namespace loom {

double measure_gemm_peak_flops(Backend& be);

}  // namespace loom
