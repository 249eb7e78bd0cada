// launch/pipeline_executor.h — runs a pipeline plan (schedule/pipeline_plan.h) on one stage.
//
// The executor knows the plan and the stage's four tensors (input and output of a
// micro-batch slot, the gradient crossing stages) and nothing else of the model:
// forward / backward are callbacks. Micro-batch mb lives in slot mb % slots (the
// plan keeps at most `slots` in flight, contiguous, so they never collide). A send
// followed by a receive from the same neighbour is one paired send_recv (Megatron's
// send_forward_recv_backward), which is what keeps 1F1B from deadlocking.
#pragma once

#include <functional>

#include "core/tensor.h"
#include "parallel/communicator.h"
#include "schedule/pipeline_plan.h"

namespace loom {

struct StageIo {
  std::function<void(int mb, int slot)> forward, backward;
  std::function<Tensor(int slot)> input, output;  // the slot's stage input / output activations
  Tensor grad;                                     // d loss / d (output or input), crossing stages
};

// `pp`: the pipeline group, group rank = stage.
void run_pipeline_plan(const PipePlan& plan, int stage, int slots, Communicator& pp, const StageIo& io);

// Minimum number of slots a stage needs for a plan: its most micro-batches in flight.
int slots_needed(const PipePlan& plan);

}  // namespace loom
