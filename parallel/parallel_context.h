// parallel/parallel_context.h — the communicators one rank trains with, and MPI's lifetime.
//
// A ParallelContext owns this rank's world, tp, dp and pp communicators and its
// (dp, tp, pp) coordinate; launch/ builds it once and passes it by reference. No
// global one exists, so a process can hold several side by side. Group ranks are
// grid coordinates (tp->rank() == coord.tp, ...). A launch/ program holds an
// MpiSession for all of main and wraps its work in run_guarded, so an exception on
// any rank ends the whole job with its message instead of a hang.
#pragma once

#include <mpi.h>

#include <functional>
#include <memory>

#include "parallel/communicator.h"
#include "parallel/process_grid.h"
#include "parallel/watchdog.h"

namespace loom {

struct ParallelContext {
  GridShape shape;
  GridCoord coord;
  int world_rank = 0;
  std::unique_ptr<Communicator> world, tp, dp, pp;
  // Ends the process when an MPI communicator's operation blocks longer than its timeout,
  // naming the step the trainer is in (watchdog.h); on the heap so the communicators'
  // pointer survives moves. Disarmed (no thread) unless make_mpi_context arms it.
  std::unique_ptr<Watchdog> watchdog = std::make_unique<Watchdog>();

  bool first_stage() const { return coord.pp == 0; }
  bool last_stage() const { return coord.pp == shape.pp - 1; }
};

// Collective over `world`: checks the grid against world's size (check_grid's
// message on every rank if it does not fit), then duplicates `world` and splits
// it into this rank's tp, dp and pp groups (MpiCommunicators) ordered by coordinate.
// When one of their operations blocks longer than timeout_s seconds (0: never), the
// watchdog's thread prints the step, group and operation and ends the process (exit
// code 2; ctx.watchdog). The context must be destroyed before MPI_Finalize.
ParallelContext make_mpi_context(MPI_Comm world, const GridShape& shape, double timeout_s = 0);

// The (1, 1, 1) context of a single process, with LocalCommunicators; needs no MPI.
ParallelContext make_local_context();

// ---- MPI's lifetime and the job-wide error guard ---------------------------------

// MPI_Init_thread with MPI_THREAD_FUNNELED (only the main thread calls MPI; OpenMP
// threads do not) for the whole of main. Contexts and communicators must be
// destroyed before the session is.
class MpiSession {
public:
  // Initialises MPI unless it already is (then this session finalises nothing).
  MpiSession(int& argc, char**& argv);
  MpiSession();
  ~MpiSession();  // MPI_Finalize, when this session initialised MPI
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  MPI_Comm world() const { return MPI_COMM_WORLD; }
  int thread_level() const { return provided_; }  // MPI_THREAD_* that MPI provided

private:
  void init(int* argc, char*** argv);
  bool owns_ = false;
  int provided_ = MPI_THREAD_SINGLE;
};

// Runs body and returns its exit code. If body throws (loom::Error, any
// std::exception, or anything else), prints "loom: rank R: error: <message>"
// (with loom::Error's HINT line) to stderr and calls MPI_Abort(world, 2), which
// ends every rank of the job; when MPI_COMM_WORLD has one rank it returns 2
// instead, so a single-process run unwinds and exits normally with code 2.
int run_guarded(MPI_Comm world, const std::function<int()>& body);

}  // namespace loom
