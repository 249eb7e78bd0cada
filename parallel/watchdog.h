// parallel/watchdog.h — a heartbeat thread that ends a process stuck in communication.
//
// MPI's blocking calls cannot time out, so a stalled peer (stopped, swapping, dead
// without its connection dropping) would hang the job forever. Rather than make every
// collective non-blocking and poll it (Open MPI 4.1's non-blocking collectives are up to
// 1.8x slower than the blocking ones), the communicators keep their blocking MPI calls
// and only mark them: a Pending scope records "this rank entered OP" (an operation
// number and a pointer to a describer: a few stores, no clock read, no formatting) and
// clears it when the call returns. A thread owned by the Watchdog, started only when
// armed, wakes every min(1 s, timeout/10) and, when one operation has been pending longer
// than timeout_s, prints what and where (step, operation, group) to stderr and ends the
// process with std::_Exit(2), so mpirun or srun tears the job down. It never calls MPI
// (initialised MPI_THREAD_FUNNELED: only the main thread may).
//
// One Watchdog per process, owned by its ParallelContext; every MpiCommunicator of it
// gets a pointer. The main thread is the only one that communicates, so one slot holds
// the operation in progress. No global.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace loom {

class Watchdog {
public:
  // Describes the pending operation as "<operation> (<MPI call>) on group '<name>'
  // (world ranks ...; this is its rank i of n)". Called on the watchdog's thread only when
  // it fires, after claiming the operation: the main thread then cannot leave it (leave()
  // waits for the end), so `context` may point into its stack.
  using Describe = std::string (*)(const void* context);

  // timeout_s <= 0: disarmed, no thread, Pending scopes cost one branch. world_rank: the
  // MPI_COMM_WORLD rank named in the message (the thread cannot ask MPI).
  explicit Watchdog(double timeout_s = 0, int world_rank = 0);
  ~Watchdog();  // stops and joins the thread
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  double timeout_s() const { return timeout_s_; }
  bool armed() const { return timeout_s_ > 0; }
  // The training step in progress, 1-based; 0 before the first (the trainer sets it).
  void set_step(std::int64_t step) { step_.store(step, std::memory_order_relaxed); }
  std::int64_t step() const { return step_.load(std::memory_order_relaxed); }
  // "step 17" or "before the first training step": where the job was when it stalled.
  std::string where() const;

  // Marks the calling (main) thread as blocked in one communication operation for its
  // lifetime. `describe` (a callable returning std::string) must outlive the scope; it
  // is only called if the watchdog fires. A null or disarmed watchdog: nothing.
  class Pending {
  public:
    template <class F>
    Pending(Watchdog* w, const F& describe) : w_(w != nullptr && w->armed() ? w : nullptr) {
      if (w_) w_->enter([](const void* f) { return (*static_cast<const F*>(f))(); }, &describe);
    }
    ~Pending() {
      if (w_) w_->leave();
    }
    Pending(const Pending&) = delete;
    Pending& operator=(const Pending&) = delete;

  private:
    Watchdog* w_;
  };

  // The message the thread prints when it fires, without the "loom: rank R: error: "
  // prefix: "watchdog: step S: world rank R waited X s in <description>, more than
  // parallel.timeout = T s: ...\nHINT: ...". Public for tests.
  std::string message(double waited_s, const std::string& description) const;

private:
  void enter(Describe describe, const void* context);
  void leave();
  void run();  // the thread: wake, check the slot, fire or sleep again
  [[noreturn]] void fire(double waited_s);

  using clock = std::chrono::steady_clock;
  const double timeout_s_;
  const int world_rank_;
  std::atomic<std::int64_t> step_{0};

  // The slot, lock-free so that enter/leave cost a few ns: state_ = (operation number << 2)
  // | phase. The main thread numbers each operation (seq_) and publishes describe_ and
  // context_ before the state that says it is pending. The thread times an operation from
  // the first wake that sees it pending (so a call costs no clock read, and it fires
  // between timeout_s and timeout_s + 2 periods after the call began; the wait it reports
  // is from that first sighting) and, to fire, claims it by moving that exact state to
  // kFiring: leave() then sees kFiring and never returns (the process is ending), so what
  // the description reads stays alive.
  static constexpr std::uint64_t kIdle = 0, kPending = 1, kFiring = 2, kPhase = 3;
  std::uint64_t seq_ = 0;  // main thread only
  std::atomic<std::uint64_t> state_{kIdle};
  std::atomic<Describe> describe_{nullptr};
  std::atomic<const void*> context_{nullptr};

  std::mutex stop_mutex_;  // with stop_ and wake_: lets the destructor end the thread's sleep
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;  // last: started after everything it reads is initialised
};

}  // namespace loom
