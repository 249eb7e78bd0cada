// parallel/parallel_context.cpp — ParallelContext from MPI_COMM_WORLD (or alone), MpiSession, run_guarded.
//
// Each group is one MPI_Comm_split of the world: colour = the group's first world
// rank (unique, since groups partition the world), key = this rank's index in the
// group, both from process_grid.h, so MPI's group order is the coordinate order by
// construction (and checked). run_guarded prints and flushes before MPI_Abort,
// which ends the other ranks without running destructors or flushing stdio.
#include "parallel/parallel_context.h"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "core/error.h"
#include "parallel/local_communicator.h"
#include "parallel/mpi_communicator.h"

namespace loom {

namespace {

std::unique_ptr<Communicator> split_group(MPI_Comm world, const std::vector<int>& ranks, int index,
                                          const char* name, Watchdog* watchdog) {
  auto c = std::make_unique<MpiCommunicator>(MpiCommunicator::split(world, ranks.front(), index, name));
  c->set_watchdog(watchdog);
  LOOM_CHECK(c->size() == int(ranks.size()) && c->rank() == index, "",
             "make_mpi_context: the {} group has size {} and rank {}, expected size {} and rank {}", name,
             c->size(), c->rank(), ranks.size(), index);
  return c;
}

}  // namespace

ParallelContext make_mpi_context(MPI_Comm world, const GridShape& shape, double timeout_s) {
  int world_size = 0, world_rank = 0;
  MPI_Comm_size(world, &world_size);
  MPI_Comm_rank(world, &world_rank);
  check_grid(shape, world_size);

  ParallelContext ctx;
  ctx.shape = shape;
  ctx.coord = coord_of(shape, world_rank);
  ctx.world_rank = world_rank;
  ctx.watchdog = std::make_unique<Watchdog>(timeout_s, world_rank);
  auto w = std::make_unique<MpiCommunicator>(MpiCommunicator::dup(world, "world"));
  w->set_watchdog(ctx.watchdog.get());
  ctx.world = std::move(w);
  ctx.tp = split_group(world, tp_group(shape, world_rank), ctx.coord.tp, "tp", ctx.watchdog.get());
  ctx.dp = split_group(world, dp_group(shape, world_rank), ctx.coord.dp, "dp", ctx.watchdog.get());
  ctx.pp = split_group(world, pp_group(shape, world_rank), ctx.coord.pp, "pp", ctx.watchdog.get());
  return ctx;
}

ParallelContext make_local_context() {
  ParallelContext ctx;  // shape (1, 1, 1), coordinate (0, 0, 0), world rank 0
  ctx.world = std::make_unique<LocalCommunicator>();
  ctx.tp = std::make_unique<LocalCommunicator>();
  ctx.dp = std::make_unique<LocalCommunicator>();
  ctx.pp = std::make_unique<LocalCommunicator>();
  return ctx;
}

// ---- MpiSession and run_guarded --------------------------------------------------

MpiSession::MpiSession(int& argc, char**& argv) { init(&argc, &argv); }
MpiSession::MpiSession() { init(nullptr, nullptr); }

void MpiSession::init(int* argc, char*** argv) {
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (initialised) {
    MPI_Query_thread(&provided_);
    return;
  }
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided_);
  owns_ = true;
}

MpiSession::~MpiSession() {
  int finalised = 0;
  MPI_Finalized(&finalised);
  if (owns_ && !finalised) MPI_Finalize();
}

namespace {

void print_error(MPI_Comm world, const std::string& message) {
  int rank = -1;
  MPI_Comm_rank(world, &rank);
  std::fprintf(stderr, "loom: rank %d: error: %s\n", rank, message.c_str());
  std::fflush(stderr);
  std::fflush(stdout);
}

}  // namespace

int run_guarded(MPI_Comm world, const std::function<int()>& body) {
  std::string message;
  try {
    return body();
  } catch (const Error& e) {
    message = e.full_message();
  } catch (const std::exception& e) {
    message = e.what();
  } catch (...) {
    message = "unknown exception (not derived from std::exception)";
  }
  print_error(world, message);
  // A process that is the whole job returns, so destructors run and MPI finalises.
  int job_size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &job_size);
  if (job_size == 1) return 2;
  MPI_Abort(world, 2);
  std::_Exit(2);  // MPI_Abort does not return; this is only reached if it does
}

}  // namespace loom
