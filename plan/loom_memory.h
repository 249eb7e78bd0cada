// plan/loom_memory.h — loom's own memory per rank, in closed form: what loom-train will
// allocate for a config and layout, by the same categories its memory plan prints.
//
// plan/model_cost.h counts activations as Megatron does (Korthikanti et al.'s formulas,
// 16-bit, dropout masks), which is what its published tables are checked against. loom's
// buffers differ (f32 or 16-bit activations by train.precision, f32 attention
// probabilities and a (B,H,T,T) backward scratch for the dense kernel or lse (B,H,T) for
// the tiled one (train.attention), no dropout, the
// residual stream kept per layer, a shared backward scratch, tied-gradient and reduction
// buffers), so a prediction of *loom's* peak memory needs this list instead. Each term
// mirrors one allocation site (layers/gpt.cpp, optimizer/, launch/checkpoint.cpp); the
// unit test builds the real model and optimizer and checks every category to the byte, so
// the two cannot drift apart silently.
#pragma once

#include <cstdint>
#include <string>

#include "core/config.h"
#include "core/memory_plan.h"

namespace loom::plan {

// The memory plan loom-train prints for tp rank 0, dp rank 0 of pipeline stage `stage`:
// model (parameters, gradients, activations, scratch), data-parallel and tied-gradient
// buffers, the optimizer, the checkpoint's host snapshot and the weights file's host copy
// at the end beyond that snapshot (freed before it: core/memory_plan.h). The host copies of the
// token datasets depend on the files, not the config: loom-plan adds them when it can
// open data.train. `c` holds a checked layout (parallel.dp filled in).
MemoryPlan loom_rank_memory(const RunConfig& c, int stage);

// The weights file's host copy loom-train gathers on that rank at the end
// (launch/model_io.h save_weights_host_bytes): the stage's stored f32 tensors, tp shards
// gathered; stage 0 of the writing pipeline receives every stage's.
std::size_t loom_weights_file_bytes(const RunConfig& c, int stage);

// The pipeline stage whose rank needs the most (the first or the last), and its total.
std::pair<int, std::size_t> loom_peak_stage(const RunConfig& c);

}  // namespace loom::plan
