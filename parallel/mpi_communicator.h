// parallel/mpi_communicator.h — Communicator over an MPI communicator, for host tensors.
//
// Owns one MPI_Comm (a duplicate or split of its parent, freed in the destructor)
// and the 2-byte datatype + user-defined MPI_Ops that reduce bf16/f16 in f32;
// move-only, destroyed before MPI_Finalize (MpiSession). Every op checks device ==
// cpu, dtypes and sizes before any MPI call, so a bad call throws the same
// loom::Error on every rank; MPI failures become loom::Error (MPI_ERRORS_RETURN).
// With a Watchdog (watchdog.h) armed, every operation is non-blocking underneath
// (MPI_Iallreduce, MPI_Isend/Irecv, ...) and completed by a polling wait, so a rank
// waits a bounded time for a stalled peer; without one the collectives block in MPI.
#pragma once

#include <mpi.h>

#include <deque>
#include <vector>

#include <memory>
#include <string>

#include "parallel/communicator.h"
#include "parallel/watchdog.h"

namespace loom {

struct MpiHalfOps;  // mpi_communicator.cpp: the bf16/f16 datatype and reduction ops

class MpiCommunicator final : public Communicator {
public:
  // Collective over `parent`: a private duplicate of it (same ranks, same order).
  static MpiCommunicator dup(MPI_Comm parent, std::string name = "world");
  // Collective over `parent`: ranks passing the same `color` form one group,
  // ordered by `key` (ties by parent rank), as MPI_Comm_split does. color >= 0.
  static MpiCommunicator split(MPI_Comm parent, int color, int key, std::string name);

  MpiCommunicator(MpiCommunicator&& o) noexcept;
  MpiCommunicator& operator=(MpiCommunicator&& o) noexcept;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;
  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& name() const { return name_; }
  // The underlying communicator, for libraries that take one (parallel HDF5).
  // Still owned by this object.
  MPI_Comm comm() const { return comm_; }

  void all_reduce(Tensor x, ReduceOp op = ReduceOp::sum) override;
  void all_reduce_start(Tensor x) override;
  void reduce_scatter_start(Tensor out, Tensor in) override;
  void all_gather_parts(Tensor x) override;
  void wait_all() override;
  void reduce_scatter(Tensor out, Tensor in) override;
  void all_gather(Tensor out, Tensor in) override;
  void broadcast(Tensor x, int root) override;
  void send_recv(Tensor send, int dest, Tensor recv, int source) override;
  void exchange(const std::vector<P2P>& ops) override;
  void barrier() override;

  // Every blocking operation then waits at most watchdog->timeout_s and, past it, throws
  // a loom::Error naming watchdog->where(), this group and its world ranks, and the
  // operation. Null (the default) or a timeout of 0: wait forever. Not owned.
  void set_watchdog(const Watchdog* watchdog) { watchdog_ = watchdog; }
  const std::vector<int>& world_ranks() const { return world_ranks_; }  // MPI_COMM_WORLD rank of each member

private:
  std::vector<MPI_Request> pending_;  // started by all_reduce_start, completed by wait_all
  std::deque<std::vector<int>> pending_counts_;  // MPI reads a pending reduce-scatter's counts until it completes
  struct Move {
    void* to;
    const void* from;
    std::size_t bytes;
  };
  std::vector<Move> pending_moves_;  // in-place reduce-scatter results to move into place at wait_all
  MpiCommunicator(MPI_Comm owned, std::string name);
  void reset() noexcept;
  void check_live() const;  // throws on a moved-from communicator
  MPI_Datatype datatype(DType t) const;
  MPI_Op reduce_op(DType t, ReduceOp op) const;
  // Throws loom::Error("<what> on group <name> failed: <MPI's message>") when rc != MPI_SUCCESS.
  void check_mpi(int rc, const char* what) const;
  // Completes the requests of `op` (e.g. "all_reduce of f32[4]", formatted only on a
  // timeout) under the watchdog's deadline (mpi_wait.h); throws when it passes.
  template <class Describe>
  void wait(int n, MPI_Request* requests, MPI_Status* statuses, const char* mpi_call, Describe&& op);
  // A collective: `blocking()` (MPI's return code) without an armed watchdog; else
  // start(&request) and wait() for it.
  template <class Blocking, class Start, class Describe>
  void collective(const char* name, Blocking&& blocking, const char* start_name, Start&& start, Describe&& op);

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 0;
  std::string name_;
  std::vector<int> world_ranks_;
  std::unique_ptr<MpiHalfOps> half_;
  const Watchdog* watchdog_ = nullptr;
};

}  // namespace loom
