// schedule/pipeline_plan.h — pipeline schedules (GPipe, 1F1B) as pure data, and a simulator.
//
// Glossary: p stages (0 holds the embedding, p-1 the loss), m microbatches per optimizer
// step, s the stage a plan is for. A plan is the ordered list of steps stage s runs in one
// step; it depends only on (p, s, m) and knows nothing of the model. An executor runs the
// steps in order: forward/backward call the stage's compute on that microbatch, recv_* blocks
// until the neighbour's tensor arrived, and a send_* that pairs_with_next() the following
// recv_* MUST be issued together with it as one Communicator::send_recv (Megatron's
// send_forward_recv_backward): with blocking sends, issued one by one, 1F1B deadlocks.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace loom {

// Activations flow s -> s+1, their gradients s+1 -> s.
enum class PipeOp { forward, backward, send_activation, recv_activation, send_grad, recv_grad };

struct PipeStep {
  PipeOp op;
  int microbatch;  // 0-based, in [0, m)
  bool operator==(const PipeStep&) const = default;
};

using PipePlan = std::vector<PipeStep>;

enum class PipeSchedule { gpipe, one_f_one_b };

// GPipe: all m forwards, then all m backwards in reverse order (m - 1 first); up to m
// microbatches are in flight (forwarded, not yet backwarded) on every stage.
PipePlan make_gpipe_plan(int stages, int stage, int microbatches);
// 1F1B (PipeDream-flush, Megatron non-interleaved): w = min(p - s - 1, m) warmup forwards,
// then m - w pairs (forward w + k, backward k), then w cooldown backwards; at most
// min(p - s, m) microbatches in flight. Microbatches are backwarded in forward order.
PipePlan make_1f1b_plan(int stages, int stage, int microbatches);
PipePlan make_pipeline_plan(PipeSchedule schedule, int stages, int stage, int microbatches);
// Every stage's plan, index = stage.
std::vector<PipePlan> make_pipeline_plans(PipeSchedule schedule, int stages, int microbatches);
// In both: a forward is preceded by recv_activation (s > 0) and followed by send_activation
// (s < p-1); a backward by recv_grad (s < p-1) and followed by send_grad (s > 0).
// Throws loom::Error for stages < 1, stage outside [0, stages), microbatches < 1.

bool is_communication(PipeOp op);
// The stage a communication step talks to: s+1 for send_activation / recv_grad, s-1 for
// recv_activation / send_grad; `stage` itself for forward / backward.
int peer_stage(PipeOp op, int stage);
// True when plan[i] is a send and plan[i+1] a recv with the same peer: issue them as one
// paired exchange. In 1F1B these are (send_activation, recv_grad) with s+1 wherever a
// forward is followed by a backward, and (send_grad, recv_activation) with s-1 wherever a
// backward is followed by a forward; GPipe has one, at its turn from forwards to backwards.
bool pairs_with_next(const PipePlan& plan, std::size_t i, int stage);

std::string to_string(PipeOp op);
std::string to_string(PipeStep step);  // e.g. "forward 3"

// How the simulator treats communication (which always costs 0 time).
enum class CommModel {
  buffered,           // a send completes at once (isend into a per-microbatch buffer)
  rendezvous,         // every send and recv waits for its partner, one step at a time
  paired_rendezvous,  // rendezvous, but pairs_with_next steps form one exchange (send_recv)
};

struct SimOptions {
  double forward_cost = 1;   // time units per forward of one microbatch on one stage
  double backward_cost = 2;  // time units per backward
  CommModel comm = CommModel::buffered;
};

struct PlanStats {
  double total_time = 0;           // until the last stage finishes its last step
  std::vector<double> idle_time;   // per stage: total_time minus its compute time
  double bubble_fraction = 0;      // sum(idle_time) / (p * total_time)
  std::vector<int> max_in_flight;  // per stage: most microbatches forwarded, not yet backwarded
};

// Runs plans[s] for every stage s at once. A recv completes when the matching send has
// happened (rendezvous: when both sides are posted), at the later of the two clocks.
// Throws loom::Error on deadlock (naming where each stage waits), on a recv whose
// microbatch differs from what the neighbour sends next, on a send never received, on a
// neighbour outside [0, p), and on a backward of a microbatch not forwarded.
PlanStats simulate(const std::vector<PipePlan>& plans, const SimOptions& options = {});

}  // namespace loom
