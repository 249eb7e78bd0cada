// tests/unit/fake_comm.h — a Communicator that only knows its rank and size: enough to
// build a tensor-parallel shard, a pipeline stage's tied buffers or a ZeRO-1 shard without
// MPI. Collectives fail the test; exchange() records its operations.
#pragma once

#include <vector>

#include <gtest/gtest.h>

#include "parallel/communicator.h"

namespace loom::testing {

// A group of `size` ranks seen from `rank`: enough to build a tp shard; records exchanges.
class FakeComm final : public Communicator {
public:
  FakeComm(int rank, int size) : rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void all_reduce(Tensor, ReduceOp) override { fail(); }
  void reduce_scatter(Tensor, Tensor) override { fail(); }
  void all_gather(Tensor, Tensor) override { fail(); }
  void broadcast(Tensor, int) override { fail(); }
  void send_recv(Tensor, int, Tensor, int) override { fail(); }
  void exchange(const std::vector<P2P>& ops) override { exchanges.push_back(ops); }
  void barrier() override { fail(); }
  void all_reduce_start(Tensor) override { fail(); }
  void reduce_scatter_start(Tensor, Tensor) override { fail(); }
  void all_gather_parts(Tensor) override { fail(); }
  void wait_all() override { fail(); }
  std::vector<std::vector<P2P>> exchanges;

private:
  static void fail() { FAIL() << "unexpected collective"; }
  int rank_, size_;
};

}  // namespace loom::testing
