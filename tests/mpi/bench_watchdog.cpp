// tests/mpi/bench_watchdog.cpp — what the armed watchdog costs an all-reduce.
//
//   mpirun -n 2 bench_watchdog [rounds]
// In-place f32 all-reduce of 1 float and of 1 MiB through one MpiCommunicator, with the
// watchdog off (timeout 0) and armed (600 s, the default), alternating batch by batch so
// both see the same machine load; prints the best batch's time per call of each. Not a
// test (no pass/fail): the numbers quoted in docs/architecture.md come from it.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "parallel/mpi_communicator.h"
#include "parallel/parallel_context.h"
#include "parallel/watchdog.h"

namespace {

using namespace loom;

// Seconds per call of `calls` all-reduces of x (after a barrier, so the ranks start together).
double batch(MpiCommunicator& c, Tensor x, int calls) {
  c.barrier();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) c.all_reduce(x);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / calls;
}

int run(int rounds) {
  MpiCommunicator c = MpiCommunicator::dup(MPI_COMM_WORLD, "world");
  const int world_rank = c.world_ranks()[std::size_t(c.rank())];
  Watchdog off(0, world_rank), armed(600, world_rank);
  struct Case {
    const char* name;
    std::int64_t floats;
    int calls;
  };
  for (const Case k : {Case{"1 float", 1, 2000}, Case{"1 MiB", 1 << 18, 50}}) {
    std::vector<float> v(std::size_t(k.floats), 1.0f);
    const Tensor x = host_tensor(v.data(), Shape{k.floats});
    double best[2] = {1e9, 1e9};
    for (int r = 0; r < rounds; ++r) {
      for (int a = 0; a < 2; ++a) {
        // Alternate which goes first, so neither always follows the other.
        const int which = (r % 2 == 0) ? a : 1 - a;
        c.set_watchdog(which == 0 ? &off : &armed);
        std::fill(v.begin(), v.end(), 1.0f);  // keep the values finite
        best[which] = std::min(best[which], batch(c, x, k.calls));
      }
    }
    if (c.rank() == 0)
      std::printf("all_reduce %-8s at %d ranks: timeout 0: %8.2f us   timeout 600: %8.2f us   (best of %d batches of %d)\n",
                  k.name, c.size(), best[0] * 1e6, best[1] * 1e6, rounds, k.calls);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  loom::MpiSession mpi(argc, argv);
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 30;
  return loom::run_guarded(mpi.world(), [&] { return run(rounds); });
}
