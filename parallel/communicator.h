// parallel/communicator.h — the collectives loom uses, on one group of ranks.
//
// A Communicator is an object passed in (no global communicator anywhere):
// ParallelContext (parallel/parallel_context.h) bundles the world, tp, dp and pp
// groups. MpiCommunicator works on host tensors; a NCCL one will work on device
// tensors. Every call is collective over the group unless it says otherwise.
// Reductions of bf16/f16 tensors are computed in f32: each combine of two
// partial results converts to f32, adds (or maxes) and rounds once to the dtype.
#pragma once

#include <cstdint>
#include <vector>

#include "core/range.h"
#include "core/tensor.h"

namespace loom {

enum class ReduceOp { sum, max };

// One half of a point-to-point exchange: send `tensor` to, or receive it from, group rank `peer`.
struct P2P {
  enum class Kind : std::uint8_t { send, recv };
  Kind kind;
  Tensor tensor;
  int peer;
};

class Communicator {
public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;  // rank within this group
  virtual int size() const = 0;

  // In place: x = op over the group of every rank's x.
  virtual void all_reduce(Tensor x, ReduceOp op = ReduceOp::sum) = 0;
  // in holds size() equal chunks of out's numel; rank r gets out = sum over ranks of chunk r.
  // out may be exactly chunk rank() of in (ZeRO-1 style); in's other chunks are then clobbered.
  virtual void reduce_scatter(Tensor out, Tensor in) = 0;
  // out holds size() chunks; chunk r is rank r's in. in may be exactly chunk rank() of out.
  virtual void all_gather(Tensor out, Tensor in) = 0;
  virtual void broadcast(Tensor x, int root) = 0;
  // Paired point-to-point: sends `send` to group rank `dest` and receives `recv` from
  // `source` at once, so neighbours exchanging in both directions cannot deadlock.
  // An empty tensor (or a negative rank) skips that half.
  virtual void send_recv(Tensor send, int dest, Tensor recv, int source) = 0;
  // Batched point-to-point (Megatron's batch_isend_irecv): posts every send and receive
  // of `ops` at once and returns when all have completed. Messages between two ranks
  // match in the order they were posted, so the k-th send from a to b fills b's k-th
  // receive from a. How the pipeline executor issues each group of its plan's
  // communication steps: posted together, they cannot deadlock one another.
  virtual void exchange(const std::vector<P2P>& ops) = 0;
  virtual void barrier() = 0;

  // Non-blocking in-place sum: starts x = sum over the group of every rank's x and
  // returns at once; wait_all() completes every reduction started since the last
  // wait_all. x must not be touched in between. (How the data-parallel gradient
  // reduction overlaps the backward pass.)
  virtual void all_reduce_start(Tensor x) = 0;
  // Non-blocking, uneven (ZeRO-1's gradient reduce-scatter): `in` splits into size() parts
  // by shard_range(in.numel(), size(), r); out (part rank()'s size) gets the sum over the
  // group of every rank's part rank(). out is separate memory or exactly part rank() of in
  // (in place: the rest of in is clobbered). Completes at wait_all(), like
  // all_reduce_start; in and out must not be touched in between.
  virtual void reduce_scatter_start(Tensor out, Tensor in) = 0;
  // In place, uneven (ZeRO-1's parameter all-gather): part r of x (shard_range) comes from
  // rank r, on every rank.
  virtual void all_gather_parts(Tensor x) = 0;
  virtual void wait_all() = 0;
};

}  // namespace loom
