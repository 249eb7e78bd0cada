// schedule/pipeline_plan.h — pipeline schedules (GPipe, 1F1B, interleaved 1F1B) as pure data.
//
// Glossary: p stages (ranks of the pipeline group), s the stage a plan is for, m
// microbatches per optimizer step, V model chunks per stage (virtual pipeline stages;
// V = 1 except for interleaved). Rank s holds chunks v = 0..V-1, i.e. virtual stages
// v*p + s of the model: virtual stage 0 (rank 0, chunk 0) holds the embedding, V*p - 1
// (rank p-1, chunk V-1) the loss. A plan is the ordered list of steps stage s runs in one
// optimizer step; it depends only on (schedule, p, s, m, V) and knows nothing of the model.
//
// Placement. Plans are made of units of compute: a forward, a backward, or (interleaved
// steady state) a forward and a backward back to back. A compute step's recv is in the run of
// communication steps right before its unit, its send in the run right after: for GPipe and
// 1F1B directly around the step; in the interleaved steady state one run holds the last
// pair's sends and the next pair's receives (Megatron's send_forward_backward_recv_forward_
// backward). A run holds at most one step of each kind.
//
// Executor contract. Run the plan in order, one group at a time: a compute step is its own
// group; every maximal run of communication steps, [i, comm_group_end(plan, i)), is ONE
// group, posted all at once as non-blocking sends and receives and waited for together (MPI
// Isend/Irecv + Waitall; Megatron's batch_isend_irecv). Messages between an ordered pair of
// ranks (a, b) form one stream, matched in plan order whatever their kind: the k-th send
// from a to b is the k-th receive on b from a (p = 2 mixes activations and gradients). Chunk
// v's microbatch mb lives in activation slot mb % slots_needed(plan, v) of that chunk from
// its recv_activation (right before its forward) to its backward; a chunk's in-flight
// microbatches are consecutive, so slots never collide, and a send_activation or recv_grad
// always finds its microbatch in flight. Gradients need two buffers: the one received (read
// by the next backward, after at most one forward) and the one sent (written by the last
// backward); interleaved groups hold both. Blocking steps one at a time deadlock 1F1B, and
// interleaved plans even when pairs_with_next steps are paired: see pipeline_sim.h.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace loom {

// Activations flow to the next virtual stage (rank (s+1) % p: rank p-1's chunk v feeds rank
// 0's chunk v+1), their gradients to the previous one (rank (s-1+p) % p).
enum class PipeOp { forward, backward, send_activation, recv_activation, send_grad, recv_grad };

struct PipeStep {
  PipeOp op;
  int microbatch;  // 0-based, in [0, m)
  // The model chunk on this stage, in [0, V): for a compute step and a recv the stage's own
  // chunk; for a send the chunk that produced the tensor (the sender's).
  int chunk = 0;
  bool operator==(const PipeStep&) const = default;
};

using PipePlan = std::vector<PipeStep>;

// interleaved: Megatron's interleaved 1F1B with V = chunks >= 1 (V = 1 is 1F1B itself).
// gpipe and one_f_one_b take chunks = 1 only.
enum class PipeSchedule { gpipe, one_f_one_b, interleaved };
// The schedule a run uses: interleaved with more than one chunk per stage, else
// parallel.schedule ("gpipe" or "1f1b").
PipeSchedule pipe_schedule(const std::string& schedule, int chunks);

// GPipe: all m forwards, then all m backwards in reverse order (m - 1 first); up to m
// microbatches are in flight (forwarded, not yet backwarded) on every stage.
PipePlan make_gpipe_plan(int stages, int stage, int microbatches);
// 1F1B (PipeDream-flush, Megatron non-interleaved): w = min(p - s - 1, m) warmup forwards,
// then m - w pairs (forward w + k, backward k), then w cooldown backwards; at most
// min(p - s, m) microbatches in flight. Microbatches are backwarded in forward order.
PipePlan make_1f1b_plan(int stages, int stage, int microbatches);
// Interleaved 1F1B (Megatron virtual pipeline stages). The k-th forward (k in [0, m*V)) is
// chunk (k/p) % V of microbatch (k / (p*V)) * p + k % p; the k-th backward the same with
// chunk V-1 - (k/p) % V. w = min(m*V, 2*(p - s - 1) + (V-1)*p) warmup forwards, then
// m*V - w units (forward w + k, backward k), then w cooldown backwards; at most
// min(w + 1, m*V) (microbatch, chunk) in flight. Bubble time over ideal time: (p-1) / (V*m)
// with per-chunk costs f/V, b/V (1F1B's (p-1) / m divided by V). Requires m % p == 0 and
// p >= 2 unless V == 1, which is make_1f1b_plan (no such requirement).
PipePlan make_interleaved_plan(int stages, int stage, int microbatches, int chunks);
PipePlan make_pipeline_plan(PipeSchedule schedule, int stages, int stage, int microbatches, int chunks = 1);
// Every stage's plan, index = stage.
std::vector<PipePlan> make_pipeline_plans(PipeSchedule schedule, int stages, int microbatches,
                                          int chunks = 1);
// In all: a forward of (mb, v) has a recv_activation (mb, v) unless virtual stage v*p + s is
// 0, and a send_activation (mb, v) unless it is the last, V*p - 1; a backward has a
// recv_grad (mb, v) unless v*p + s is the last, and a send_grad (mb, v) unless it is 0;
// placed as above. Throws loom::Error for stages < 1, stage outside
// [0, stages), microbatches < 1, chunks < 1, chunks > 1 with a schedule other than
// interleaved, and (interleaved, chunks > 1) stages < 2 or microbatches % stages != 0.

bool is_communication(PipeOp op);
bool is_send(PipeOp op);
// The rank a communication step talks to: (s+1) % p for send_activation / recv_grad,
// (s-1+p) % p for recv_activation / send_grad; `stage` itself for forward / backward.
int peer_stage(PipeOp op, int stage, int stages);
// One past the run of communication steps starting at plan[i] (i itself when plan[i] is a
// compute step or i == plan.size()): the group an executor posts at once.
std::size_t comm_group_end(const PipePlan& plan, std::size_t i);
// True when plan[i] is a send and plan[i+1] a recv in the same direction (both to the
// next rank, or both to the previous): one paired exchange, for executors of blocking
// send_recv. In 1F1B these are (send_activation, recv_grad) wherever a forward is followed
// by a backward, and (send_grad, recv_activation) wherever a backward is followed by a
// forward; GPipe has one, at its turn from forwards to backwards. `stage` is unused (the
// pairing depends on directions only) and kept for callers.
bool pairs_with_next(const PipePlan& plan, std::size_t i, int stage);
// The most microbatches of `chunk` in flight (forwarded, not yet backwarded) at once, at
// least 1: the activation slots the executor allocates for that chunk.
int slots_needed(const PipePlan& plan, int chunk);

std::string to_string(PipeOp op);
std::string to_string(PipeStep step);  // e.g. "forward 3" (chunk 0), "forward 3 chunk 1"

}  // namespace loom
