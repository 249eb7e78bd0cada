// parallel/mpi_wait.cpp — see mpi_wait.h.
#include "parallel/mpi_wait.h"

#include <algorithm>
#include <thread>

namespace loom {

WaitOutcome wait_until(int n, MPI_Request* requests, MPI_Status* statuses, double timeout_s) {
  WaitOutcome out;
  if (timeout_s <= 0) {
    out.rc = MPI_Waitall(n, requests, statuses);
    return out;
  }
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  std::chrono::microseconds sleep{10};
  for (;;) {
    // Each request on its own (MPI_Test), as MPI_Sendrecv waits for its halves: Open MPI
    // 4.1's MPI_Waitall/Testall can hang on a batch holding a truncated receive.
    bool done = true;
    for (int k = 0; k < n; ++k) {
      if (requests[k] == MPI_REQUEST_NULL) continue;  // completed (and its status taken) or never posted
      int flag = 0;
      out.rc =
          MPI_Test(&requests[k], &flag, statuses == MPI_STATUSES_IGNORE ? MPI_STATUS_IGNORE : &statuses[k]);
      if (out.rc != MPI_SUCCESS) return out;
      done = done && flag;
    }
    if (done) break;
    out.waited_s = std::chrono::duration<double>(clock::now() - t0).count();
    if (out.waited_s >= timeout_s) {
      out.timed_out = true;
      return out;
    }
    if (out.waited_s >= kSpinSeconds) {
      std::this_thread::sleep_for(sleep);
      sleep = std::min(sleep * 2, kMaxSleep);
    }
  }
  out.waited_s = std::chrono::duration<double>(clock::now() - t0).count();
  return out;
}

}  // namespace loom
