// parallel/watchdog.cpp — see watchdog.h.
#include "parallel/watchdog.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

#include "core/error.h"

namespace loom {

Watchdog::Watchdog(double timeout_s, int world_rank) : timeout_s_(timeout_s), world_rank_(world_rank) {
  if (armed()) thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(stop_mutex_);
    stop_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

std::string Watchdog::where() const {
  const std::int64_t s = step();
  return s > 0 ? fmt::format("step {}", s) : std::string("before the first training step");
}

std::string Watchdog::message(double waited_s, const std::string& description) const {
  return Error(fmt::format("watchdog: {}: world rank {} waited {:.1f} s in {}, more than parallel.timeout = {:g} s: a "
                           "rank of that group is stalled, has died, or is in a different operation",
                           where(), world_rank_, waited_s, description, timeout_s_),
               "look for the rank of that group that did not report (stopped, out of memory, blocked on I/O); if "
               "steps are legitimately this slow, raise --parallel.timeout (0 turns the watchdog off)")
      .full_message();
}

// The fast path: a lock, three stores, a clock read (vDSO), an unlock.
void Watchdog::enter(Describe describe, const void* context) {
  const clock::time_point now = clock::now();
  std::lock_guard<std::mutex> lock(mutex_);
  describe_ = describe;
  context_ = context;
  since_ = now;
}

// Takes the lock even to clear the slot: while the thread formats the description (under
// the lock), the operation's arguments must stay alive, so the main thread waits here.
void Watchdog::leave() {
  std::lock_guard<std::mutex> lock(mutex_);
  describe_ = nullptr;
  context_ = nullptr;
}

void Watchdog::run() {
  // Wake often enough to fire within 10% of the timeout, at most once a second.
  const auto period = std::chrono::duration_cast<clock::duration>(
      std::chrono::duration<double>(std::min(1.0, timeout_s_ / 10)));
  std::unique_lock<std::mutex> stop_lock(stop_mutex_);
  while (!wake_.wait_for(stop_lock, period, [this] { return stop_; })) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (describe_ == nullptr) continue;
    const double waited = std::chrono::duration<double>(clock::now() - since_).count();
    if (waited <= timeout_s_) continue;
    // Fire. Still under the lock: the main thread cannot leave the operation (and free
    // what the description reads) until the process is gone.
    const std::string text = message(waited, describe_(context_));
    std::fprintf(stderr, "loom: rank %d: error: %s\n", world_rank_, text.c_str());
    std::fflush(stderr);
    std::fflush(stdout);
    // No MPI_Abort: only the main thread may call MPI. A non-zero exit makes mpirun (or
    // srun) end every other rank of the job.
    std::_Exit(2);
  }
}

}  // namespace loom
