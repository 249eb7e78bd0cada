// schedule/pipeline_executor.h — runs one stage's pipeline plan (schedule/pipeline_plan.h).
//
// The executor knows the plan and, through PipelineStage, the tensors that cross the
// stage boundary and two compute calls; nothing else of the model, the loss or the data.
// Micro-batch mb of chunk v lives in activation slot mb % slots(v) (the plan keeps at
// most slots_needed(plan, v) of a chunk in flight, and never two with the same slot).
// Every maximal run of communication steps between two compute steps is issued as ONE
// Communicator::exchange (all sends and receives posted at once, then waited for):
// the grouping the plans are checked deadlock-free under (CommModel::grouped).
// Training runs a forward-backward plan; evaluation runs a forward-only plan through the
// same executor (make_forward_only_plan).
#pragma once

#include <vector>

#include "core/tensor.h"
#include "parallel/communicator.h"
#include "schedule/pipeline_plan.h"

namespace loom {

class PipelineStage {
public:
  virtual ~PipelineStage() = default;
  virtual int slots(int chunk) const = 0;
  virtual std::vector<Tensor> inputs(int chunk, int slot) = 0;   // received before forward
  virtual std::vector<Tensor> outputs(int chunk, int slot) = 0;  // sent after forward
  virtual std::vector<Tensor> input_grads(int chunk) = 0;        // sent after backward
  virtual std::vector<Tensor> output_grads(int chunk) = 0;       // received before backward
  virtual void forward(int chunk, int microbatch, int slot) = 0;
  virtual void backward(int chunk, int microbatch, int slot) = 0;
};

// `pp`: the pipeline group (group rank = stage), of `stages` ranks.
void run_pipeline_plan(const PipePlan& plan, int stage, int stages, Communicator& pp, PipelineStage& model);

// Forward only, for evaluation: every micro-batch's forwards in order, each chunk's
// activation received before and sent after (one slot per chunk suffices).
PipePlan make_forward_only_plan(int stages, int stage, int microbatches, int chunks = 1);

}  // namespace loom
