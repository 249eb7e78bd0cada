// parallel/local_communicator.h — the group of one rank, without MPI.
//
// LocalCommunicator is what a (dp, tp, pp) = (1, 1, 1) run and the unit tests
// use: every collective over a single rank is the identity (all_reduce,
// broadcast, barrier do nothing) or a copy (reduce_scatter, all_gather,
// send_recv to itself). Copies are host memcpy; on device tensors only the
// no-copy cases (identity, or out aliasing in) are allowed. Same checks and
// messages as MpiCommunicator, so code tested here behaves the same under MPI.
#pragma once

#include "parallel/communicator.h"

namespace loom {

class LocalCommunicator final : public Communicator {
public:
  int rank() const override { return 0; }
  int size() const override { return 1; }

  void all_reduce(Tensor x, ReduceOp op = ReduceOp::sum) override;
  void reduce_scatter(Tensor out, Tensor in) override;
  void all_gather(Tensor out, Tensor in) override;
  void broadcast(Tensor x, int root) override;
  void send_recv(Tensor send, int dest, Tensor recv, int source) override;
  void exchange(const std::vector<P2P>& ops) override;
  void barrier() override {}
  void all_reduce_start(Tensor) override {}  // the sum over one rank is x itself
  void reduce_scatter_start(Tensor out, Tensor in) override;  // a copy: the one part is all of in
  void all_gather_parts(Tensor) override {}                    // the one part is all of x
  void wait_all() override {}
};

}  // namespace loom
