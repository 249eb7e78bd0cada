// tests/mpi/test_abort.cpp — a job in which one rank throws must end, with its message.
//
// Run by expect_exit.cmake under `timeout` (without MPI_Abort, waiters hang), modes:
//   loom_error     rank 1 throws loom::Error (with a hint) while the others wait in an all_reduce
//   std_exception  the last rank throws std::runtime_error while the others wait in a barrier
//   bad_grid       every rank asks for a (2,2,2) grid from a smaller world (make_mpi_context throws)
//   single_rank    the only rank throws: run_guarded returns 2, no MPI_Abort
//   ok             nothing throws: every rank returns 0 and rank 0 says so
//   watchdog_late  --parallel.timeout 0.5 at step 7; rank 0 arrives 30 s late at an all_reduce:
//                  the others' watchdog names the step, operation and group and ends the job
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "parallel/parallel_context.h"

namespace {

using namespace loom;

int run(const std::string& mode) {
  int world_size = 0, world_rank = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  const int thrower = mode == "loom_error" && world_size > 1 ? 1 : world_size - 1;

  if (mode == "watchdog_late") {
    ParallelContext ctx = make_mpi_context(MPI_COMM_WORLD, GridShape{.dp = world_size, .tp = 1, .pp = 1}, 0.5);
    ctx.watchdog->set_step(7);
    std::vector<float> x(16, 1.0f);
    // Longer than the test's own limit: only the watchdog can end this job in time.
    if (world_rank == 0) std::this_thread::sleep_for(std::chrono::seconds(30));
    ctx.world->all_reduce(host_tensor(x.data(), Shape{16}));
    std::printf("rank %d: left the all_reduce; the watchdog did not fire\n", world_rank);
    return 0;
  }
  if (mode == "bad_grid") {
    ParallelContext ctx = make_mpi_context(MPI_COMM_WORLD, GridShape{.dp = 2, .tp = 2, .pp = 2});
    return 0;  // not reached: the grid does not fit
  }
  ParallelContext ctx = make_mpi_context(MPI_COMM_WORLD, GridShape{.dp = world_size, .tp = 1, .pp = 1});
  std::vector<float> x(16, 1.0f);
  ctx.world->all_reduce(host_tensor(x.data(), Shape{16}));  // everyone is up and connected

  if (mode == "ok") {
    ctx.world->all_reduce(host_tensor(x.data(), Shape{16}));
    ctx.world->barrier();
    if (world_rank == 0) std::printf("all %d ranks returned normally (x[0] = %g)\n", world_size, x[0]);
    return 0;
  }
  if (world_rank == thrower) {
    // Let the other ranks get well into their collective first.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    if (mode == "std_exception") throw std::runtime_error("deliberate std::runtime_error");
    throw Error(fmt::format("deliberate failure on rank {} of {}", world_rank, world_size),
                "this is the abort test");
  }
  if (mode == "std_exception") {
    ctx.world->barrier();
  } else {
    ctx.world->all_reduce(host_tensor(x.data(), Shape{16}));
  }
  std::printf("rank %d: left the collective although rank %d never joined it\n", world_rank, thrower);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  loom::MpiSession mpi(argc, argv);
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode != "loom_error" && mode != "std_exception" && mode != "bad_grid" && mode != "single_rank" &&
      mode != "ok" && mode != "watchdog_late") {
    std::fprintf(stderr, "usage: test_abort loom_error|std_exception|bad_grid|single_rank|ok|watchdog_late\n");
    return 1;
  }
  return loom::run_guarded(mpi.world(), [&] { return run(mode == "single_rank" ? "loom_error" : mode); });
}
