// parallel/local_communicator.cpp — collectives over a group of one rank.
//
// With one rank, reduce_scatter and all_gather are `out = in` and a send_recv
// can only pair with itself (dest = source = 0): `recv = send`. Sizes and dtypes
// are checked exactly as MpiCommunicator checks them. Nothing is allocated.
#include "parallel/local_communicator.h"

#include <cstring>

#include "core/error.h"

namespace loom {

namespace {

// out = in, for the single-rank cases; a no-op when out and in are the same memory.
void copy_into(const Tensor& out, const Tensor& in, const char* op) {
  LOOM_CHECK(out.dtype == in.dtype, "", "{}: out is {} but in is {}", op, dtype_name(out.dtype),
             dtype_name(in.dtype));
  LOOM_CHECK(out.numel() == in.numel(), "", "{} on a group of 1: out {} and in {} must have the same numel",
             op, out.str(), in.str());
  if (out.ptr == in.ptr || out.bytes() == 0) return;
  LOOM_CHECK(out.device == Device::cpu && in.device == Device::cpu,
             "use a device communicator for device tensors (or pass out aliasing in)",
             "{}: LocalCommunicator copies host memory only, got {} and {} tensors", op,
             device_name(out.device), device_name(in.device));
  std::memmove(out.ptr, in.ptr, out.bytes());
}

}  // namespace

void LocalCommunicator::all_reduce(Tensor, ReduceOp) {}

void LocalCommunicator::reduce_scatter(Tensor out, Tensor in) { copy_into(out, in, "reduce_scatter"); }

void LocalCommunicator::all_gather(Tensor out, Tensor in) { copy_into(out, in, "all_gather"); }

void LocalCommunicator::reduce_scatter_start(Tensor out, Tensor in) { copy_into(out, in, "reduce_scatter_start"); }

void LocalCommunicator::broadcast(Tensor, int root) {
  LOOM_CHECK(root == 0, "", "broadcast on a group of 1: root {} out of range [0, 1)", root);
}

void LocalCommunicator::send_recv(Tensor send, int dest, Tensor recv, int source) {
  const bool sending = !send.empty() && dest >= 0;
  const bool receiving = !recv.empty() && source >= 0;
  LOOM_CHECK(!sending || dest == 0, "", "send_recv on a group of 1: dest {} out of range [0, 1)", dest);
  LOOM_CHECK(!receiving || source == 0, "", "send_recv on a group of 1: source {} out of range [0, 1)",
             source);
  LOOM_CHECK(sending == receiving, "a send to oneself needs the matching receive in the same call",
             "send_recv on a group of 1: a {} without its matching {} would never complete",
             sending ? "send" : "receive", sending ? "receive" : "send");
  if (sending) copy_into(recv, send, "send_recv");
}

void LocalCommunicator::exchange(const std::vector<P2P>& ops) {
  // A group of one can only talk to itself: the k-th send fills the k-th receive.
  std::vector<const P2P*> sends, recvs;
  for (const P2P& op : ops) {
    LOOM_CHECK(op.peer == 0, "", "exchange on a group of 1: peer {} out of range [0, 1)", op.peer);
    (op.kind == P2P::Kind::send ? sends : recvs).push_back(&op);
  }
  LOOM_CHECK(sends.size() == recvs.size(), "a send to oneself needs its matching receive in the same exchange",
             "exchange on a group of 1: {} sends but {} receives would never complete", sends.size(), recvs.size());
  for (std::size_t k = 0; k < sends.size(); ++k) copy_into(recvs[k]->tensor, sends[k]->tensor, "exchange");
}

}  // namespace loom
