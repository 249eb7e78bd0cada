// plan/model_cost.h — what a GPT layout costs on paper: FLOPs and memory per device.
//
// Glossary (Korthikanti et al. 2022, Narayanan et al. 2021): b micro-batch, s sequence,
// h channels, a heads, l layers, V padded vocabulary, F ffn, t tp, p pp, v virtual
// stages, d dp, m micro-batches per pipeline per step.
// FLOPs: a GEMM of (M,K)x(K,N) is 2MNK; backward is twice forward; training (no
// recompute) is 3 x forward = Narayanan's 72 b s l h^2 (1 + s/6h + V/12lh) per sequence
// batch, which is Gpt::flops_per_token x tokens; full recompute adds a layer forward
// (96 b s l h^2 (1 + s/6h + V/16lh)); selective adds the attention core's forward.
// Memory: parameters, gradients and optimizer state from Gpt::param_specs (loom's own
// parameter list, so the counts are exact), bytes as loom allocates them (working-dtype
// parameters, f32 gradients, f32 master weights for 16-bit and f32 m and v, sharded over dp
// with ZeRO-1); activations from Korthikanti et al.'s per-layer formulas (16-bit
// activations; fp32 doubles them) times the layers and micro-batches in flight.
#pragma once

#include <string>
#include <vector>

#include "core/config.h"

namespace loom::plan {

// Model FLOPs of one optimizer step (no recompute): what MFU divides by.
double model_flops_per_step(const RunConfig& c);
// FLOPs the hardware runs in one step, recompute included (HFU).
double hardware_flops_per_step(const RunConfig& c);

// Korthikanti et al. 2022 activation bytes of one layer for one micro-batch on one tp rank,
// for train.attention dense:
//   none        sbh (10 + 24/t + 5as/(ht))       with sp: sbh/t (34 + 5as/h)
//   attention   sbh (10 + 24/t)                  with sp: 34 sbh / t
//   full        2 sbh                            with sp: 2 sbh / t
// (16-bit activations; scaled by bytes / 2 for fp32). train.attention tiled (the default)
// keeps no s x s tensor: `none` (and `attention`, which is none there) is the `attention`
// row plus lse, 4 a s b / t bytes (f32) — linear in s; `full` is unchanged.
// FLOPs with model.window w count s x min(s, w) scores; the tiled backward's recompute of
// the scores (half the core's forward) is hardware FLOPs.
double layer_activation_bytes(const RunConfig& c);

struct MemoryEstimate {
  int stage = 0;  // the pipeline stage this is for (the most loaded one)
  double parameters = 0, gradients = 0, optimizer = 0, activations = 0;
  // Host memory that shares the device's: on a CPU cluster (Cluster::host_is_device) the
  // checkpoint snapshot, the token datasets and the process's own resident memory; 0 on GPUs.
  double host = 0;
  double total() const { return parameters + gradients + optimizer + activations + host; }
  // (name, bytes) of each term, largest-first order not implied.
  std::vector<std::pair<std::string, double>> terms() const {
    return {{"parameters", parameters},
            {"gradients", gradients},
            {"optimizer state", optimizer},
            {"activations", activations},
            {"host", host}};
  }
};

// Parameters held by pipeline stage `stage` (all its chunks) on one tp rank: loom's exact count.
std::int64_t stage_parameters(const RunConfig& c, int stage);
// The per-device memory of `stage`.
MemoryEstimate stage_memory(const RunConfig& c, int stage);
// The most loaded stage (the first or the last).
MemoryEstimate memory_per_device(const RunConfig& c);

}  // namespace loom::plan
