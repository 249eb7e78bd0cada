// launch/pipeline_executor.cpp — see pipeline_executor.h.
#include "launch/pipeline_executor.h"

#include <algorithm>

namespace loom {

int slots_needed(const PipePlan& plan) {
  int in_flight = 0, most = 1;
  for (const PipeStep& s : plan) {
    if (s.op == PipeOp::forward) most = std::max(most, ++in_flight);
    if (s.op == PipeOp::backward) --in_flight;
  }
  return most;
}

void run_pipeline_plan(const PipePlan& plan, int stage, int slots, Communicator& pp, const StageIo& io) {
  auto slot = [&](int mb) { return mb % slots; };
  for (std::size_t i = 0; i < plan.size(); ++i) {
    const PipeStep& s = plan[i];
    const bool paired = pairs_with_next(plan, i, stage);
    const PipeStep* next = paired ? &plan[i + 1] : nullptr;
    switch (s.op) {
      case PipeOp::forward: io.forward(s.microbatch, slot(s.microbatch)); break;
      case PipeOp::backward: io.backward(s.microbatch, slot(s.microbatch)); break;
      case PipeOp::send_activation:  // paired: with recv_grad of a later backward from stage + 1
        pp.send_recv(io.output(slot(s.microbatch)), stage + 1, paired ? io.grad : Tensor{}, paired ? stage + 1 : -1);
        break;
      case PipeOp::send_grad:  // paired: with recv_activation of the next forward from stage - 1
        pp.send_recv(io.grad, stage - 1, paired ? io.input(slot(next->microbatch)) : Tensor{}, paired ? stage - 1 : -1);
        break;
      case PipeOp::recv_activation: pp.send_recv({}, -1, io.input(slot(s.microbatch)), stage - 1); break;
      case PipeOp::recv_grad: pp.send_recv({}, -1, io.grad, stage + 1); break;
    }
    if (paired) ++i;  // the receive was part of this exchange
  }
}

}  // namespace loom
