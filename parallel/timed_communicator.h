// parallel/timed_communicator.h — a Communicator that forwards to another and adds
// up the wall time spent in its calls: how loom-train reports the tensor-parallel
// communication time of a step (t_tp) without timers inside the layers.
#pragma once

#include <chrono>

#include "parallel/communicator.h"

namespace loom {

class TimedCommunicator final : public Communicator {
public:
  explicit TimedCommunicator(Communicator& inner) : inner_(inner) {}

  double seconds() const { return seconds_; }
  void reset() { seconds_ = 0; }

  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  void all_reduce(Tensor x, ReduceOp op = ReduceOp::sum) override { timed([&] { inner_.all_reduce(x, op); }); }
  void reduce_scatter(Tensor out, Tensor in) override { timed([&] { inner_.reduce_scatter(out, in); }); }
  void all_gather(Tensor out, Tensor in) override { timed([&] { inner_.all_gather(out, in); }); }
  void broadcast(Tensor x, int root) override { timed([&] { inner_.broadcast(x, root); }); }
  void send_recv(Tensor send, int dest, Tensor recv, int source) override {
    timed([&] { inner_.send_recv(send, dest, recv, source); });
  }
  void exchange(const std::vector<P2P>& ops) override { timed([&] { inner_.exchange(ops); }); }
  void barrier() override { timed([&] { inner_.barrier(); }); }
  void all_reduce_start(Tensor x) override { timed([&] { inner_.all_reduce_start(x); }); }
  void reduce_scatter_start(Tensor out, Tensor in) override { timed([&] { inner_.reduce_scatter_start(out, in); }); }
  void all_gather_parts(Tensor x) override { timed([&] { inner_.all_gather_parts(x); }); }
  void wait_all() override { timed([&] { inner_.wait_all(); }); }

private:
  template <class F>
  void timed(F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  Communicator& inner_;
  double seconds_ = 0;
};

}  // namespace loom
