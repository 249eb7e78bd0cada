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

// The fast path: three stores (one with release ordering, a plain store on x86).
void Watchdog::enter(Describe describe, const void* context) {
  ++seq_;
  describe_.store(describe, std::memory_order_relaxed);
  context_.store(context, std::memory_order_relaxed);
  state_.store(seq_ << 2 | kPending, std::memory_order_release);
}

// One exchange. If the thread has claimed this operation it is printing from what the
// description reads, and will end the process: stay here (do not free it) until it does.
void Watchdog::leave() {
  if ((state_.exchange(seq_ << 2 | kIdle, std::memory_order_acq_rel) & kPhase) == kFiring)
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}

void Watchdog::run() {
  // Wake often enough to fire within 10% of the timeout, at most once a second.
  const auto period = std::chrono::duration_cast<clock::duration>(
      std::chrono::duration<double>(std::min(1.0, timeout_s_ / 10)));
  std::uint64_t watched = kIdle;  // the pending state seen at the last wake
  clock::time_point first_seen;   // when it was first seen
  std::unique_lock<std::mutex> stop_lock(stop_mutex_);
  while (!wake_.wait_for(stop_lock, period, [this] { return stop_; })) {
    std::uint64_t s = state_.load(std::memory_order_acquire);
    const clock::time_point now = clock::now();
    if ((s & kPhase) != kPending) continue;
    if (s != watched) {  // a new operation (the number changes with every call)
      watched = s;
      first_seen = now;
      continue;
    }
    const double waited = std::chrono::duration<double>(now - first_seen).count();
    if (waited < timeout_s_) continue;
    // Claim exactly this operation; fails if the main thread left it meanwhile.
    if (state_.compare_exchange_strong(s, (s & ~kPhase) | kFiring, std::memory_order_acq_rel)) fire(waited);
  }
}

void Watchdog::fire(double waited_s) {
  const Describe describe = describe_.load(std::memory_order_relaxed);
  const std::string text = message(waited_s, describe(context_.load(std::memory_order_relaxed)));
  std::fprintf(stderr, "loom: rank %d: error: %s\n", world_rank_, text.c_str());
  std::fflush(stderr);
  std::fflush(stdout);
  // No MPI_Abort: only the main thread may call MPI. A non-zero exit makes mpirun (or
  // srun) end every other rank of the job.
  std::_Exit(2);
}

}  // namespace loom
