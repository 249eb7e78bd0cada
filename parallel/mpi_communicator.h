// parallel/mpi_communicator.h — Communicator over an MPI communicator, for host tensors.
//
// Owns one MPI_Comm (a duplicate or split of its parent, freed in the destructor)
// and the 2-byte datatype + user-defined MPI_Ops that reduce bf16/f16 in f32;
// move-only, destroyed before MPI_Finalize (MpiSession). Every op checks device ==
// cpu, dtypes and sizes before any MPI call, so a bad call throws the same
// loom::Error on every rank; MPI failures become loom::Error (MPI_ERRORS_RETURN).
// Every blocking operation tells the Watchdog (watchdog.h), if it has one, that it is
// in progress, so a rank stuck in it longer than the timeout ends the job with its name;
// the MPI calls are the blocking ones either way.
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

  // Every blocking operation (and wait_all) is then marked pending in the watchdog, which
  // ends the process naming watchdog->where(), the operation, this group and its world
  // ranks if it lasts longer than watchdog->timeout_s(). Null (the default) or disarmed:
  // wait forever. Not owned; must outlive the operations.
  void set_watchdog(Watchdog* watchdog) { watchdog_ = watchdog; }
  Watchdog* watchdog() const { return watchdog_; }  // for a device communicator wrapping this one
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
  // "<op()> (<mpi_call>) on group '<name>' (world ranks ...; this is its rank i of n)": what
  // the watchdog prints, formatted only when it fires.
  template <class Describe>
  std::string describe(const char* mpi_call, const Describe& op) const;
  // Runs call() (a blocking MPI call; returns MPI's code) marked pending in the watchdog as
  // `op` (e.g. "all_reduce of (4) f32"); throws when it fails.
  template <class Call, class Describe>
  void blocking(const char* mpi_call, Call&& call, Describe&& op);
  // MPI_Waitall of the requests of `op`, marked pending likewise; throws when one fails.
  template <class Describe>
  void wait(int n, MPI_Request* requests, MPI_Status* statuses, const char* mpi_call, Describe&& op);

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 0;
  std::string name_;
  std::vector<int> world_ranks_;
  std::unique_ptr<MpiHalfOps> half_;
  Watchdog* watchdog_ = nullptr;
};

}  // namespace loom
