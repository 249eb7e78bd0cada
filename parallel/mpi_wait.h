// parallel/mpi_wait.h — completing MPI requests against a deadline.
//
// MPI_Waitall cannot time out, so a stalled peer (stopped, swapping, dead without its
// connection dropping) would hang the job forever. wait_until polls MPI_Test
// instead. For the first kSpinSeconds it only polls, as MPI_Waitall's own loop does:
// MPI_Test drives the progress engine, and a rank that sleeps makes no progress on
// a transfer its peer is waiting for (sleeping after 2 ms instead tripled a tp 2 run's
// t_tp on a loaded machine, where peers routinely lag by milliseconds). A wait longer
// than that is a stall or a slow peer: it sleeps between polls with a backoff (up to
// kMaxSleep, under 0.1% of such a wait) so it stops burning a core.
#pragma once

#include <mpi.h>

#include <chrono>

namespace loom {

struct WaitOutcome {
  int rc = MPI_SUCCESS;  // MPI's return code (MPI_ERRORS_RETURN)
  bool timed_out = false;
  double waited_s = 0;  // seconds spent in wait_until
};

inline constexpr double kSpinSeconds = 1.0;
inline constexpr std::chrono::microseconds kMaxSleep{1000};

// Completes the n requests (statuses: n entries or MPI_STATUSES_IGNORE). timeout_s <= 0:
// MPI_Waitall. Otherwise polls each request with MPI_Test (a failed request's own error
// code is returned) and gives up with timed_out = true, the requests still pending,
// once timeout_s seconds have passed without all of them completing.
WaitOutcome wait_until(int n, MPI_Request* requests, MPI_Status* statuses, double timeout_s);

}  // namespace loom
