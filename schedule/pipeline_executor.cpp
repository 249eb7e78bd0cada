// schedule/pipeline_executor.cpp — see pipeline_executor.h.
#include "schedule/pipeline_executor.h"

#include "core/error.h"

namespace loom {

namespace {

// The tensors a communication step moves: the slot's activations or the chunk's gradients.
std::vector<Tensor> tensors_of(const PipeStep& s, PipelineStage& m) {
  const int slot = s.microbatch % m.slots(s.chunk);
  switch (s.op) {
    case PipeOp::send_activation: return m.outputs(s.chunk, slot);
    case PipeOp::recv_activation: return m.inputs(s.chunk, slot);
    case PipeOp::send_grad: return m.input_grads(s.chunk);
    case PipeOp::recv_grad: return m.output_grads(s.chunk);
    default: return {};
  }
}

}  // namespace

void run_pipeline_plan(const PipePlan& plan, int stage, int stages, Communicator& pp, PipelineStage& m) {
  for (std::size_t i = 0; i < plan.size();) {
    const PipeStep& s = plan[i];
    if (!is_communication(s.op)) {
      const int slot = s.microbatch % m.slots(s.chunk);
      if (s.op == PipeOp::forward) m.forward(s.chunk, s.microbatch, slot);
      else m.backward(s.chunk, s.microbatch, slot);
      ++i;
      continue;
    }
    const std::size_t end = comm_group_end(plan, i);
    std::vector<P2P> ops;
    for (; i < end; ++i) {
      const PipeStep& c = plan[i];
      const bool send = c.op == PipeOp::send_activation || c.op == PipeOp::send_grad;
      for (const Tensor& t : tensors_of(c, m))
        ops.push_back({send ? P2P::Kind::send : P2P::Kind::recv, t, peer_stage(c.op, stage, stages)});
    }
    pp.exchange(ops);
  }
}

PipePlan make_forward_only_plan(int stages, int stage, int microbatches, int chunks) {
  LOOM_CHECK(stages >= 1 && 0 <= stage && stage < stages && microbatches >= 1 && chunks >= 1 &&
                 (chunks == 1 || stages >= 2),
             "virtual stages need at least two pipeline stages",
             "forward-only plan: stage {} of {}, {} micro-batches, {} chunks", stage, stages, microbatches, chunks);
  // Micro-batch by micro-batch through every virtual stage: simple and deadlock-free
  // (each virtual stage waits only for the one before it).
  PipePlan plan;
  const int last = stages * chunks - 1;
  for (int mb = 0; mb < microbatches; ++mb)
    for (int v = 0; v < chunks; ++v) {
      const int virt = v * stages + stage;
      if (virt > 0) plan.push_back({PipeOp::recv_activation, mb, v});
      plan.push_back({PipeOp::forward, mb, v});
      if (virt < last) plan.push_back({PipeOp::send_activation, mb, v});
    }
  return plan;
}

}  // namespace loom
