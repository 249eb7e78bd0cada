// tests/unit/test_watchdog.cpp — the communication watchdog's thread, without MPI.
//
// A Pending scope that outlives the timeout ends the process (exit code 2) with the
// message naming the step, the rank and the operation; scopes that end in time, and a
// disarmed watchdog, do nothing. Also measures what a Pending scope costs (the price
// every collective pays when the watchdog is armed).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "parallel/watchdog.h"

namespace {

using loom::Watchdog;
using namespace std::chrono_literals;

TEST(Watchdog, DisarmedDoesNothing) {
  Watchdog w;  // timeout 0
  EXPECT_FALSE(w.armed());
  const auto describe = [] { return std::string("never formatted"); };
  const Watchdog::Pending p(&w, describe);
  std::this_thread::sleep_for(50ms);
}

TEST(Watchdog, OperationsThatEndInTimeDoNotFire) {
  Watchdog w(0.2);
  int described = 0;
  const auto describe = [&] {
    ++described;
    return std::string("op");
  };
  for (int i = 0; i < 5; ++i) {
    const Watchdog::Pending p(&w, describe);
    std::this_thread::sleep_for(100ms);  // half the timeout, in a scope
  }
  std::this_thread::sleep_for(500ms);  // idle, out of any scope, past the timeout
  EXPECT_EQ(described, 0);
}

TEST(Watchdog, WhereNamesTheStep) {
  Watchdog w;
  EXPECT_EQ(w.where(), "before the first training step");
  w.set_step(17);
  EXPECT_EQ(w.where(), "step 17");
  EXPECT_THAT(w.message(1.25, "barrier (MPI_Barrier) on group 'tp'"),
              ::testing::StartsWith("watchdog: step 17: world rank 0 waited 1.2 s in barrier (MPI_Barrier) on group "
                                    "'tp', more than parallel.timeout = 0 s"));
}

// The thread fires while the main thread is still inside the scope: it prints, with the
// description formatted from the main thread's stack, and _Exits with code 2.
TEST(WatchdogDeathTest, AStuckOperationEndsTheProcessNamingIt) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        Watchdog w(0.3, 5);
        w.set_step(7);
        const std::string group = "dp";
        const auto describe = [&] { return "all_reduce of (4) f32 (MPI_Allreduce) on group '" + group + "'"; };
        const Watchdog::Pending p(&w, describe);
        std::this_thread::sleep_for(10s);
        std::fprintf(stderr, "the watchdog did not fire\n");
      },
      ::testing::ExitedWithCode(2),
      "loom: rank 5: error: watchdog: step 7: world rank 5 waited 0\\.. s in all_reduce of \\(4\\) f32 "
      "\\(MPI_Allreduce\\) on group 'dp', more than parallel.timeout = 0\\.3 s.*\nHINT: .*--parallel.timeout");
}

// The cost of marking an operation, armed (the default, 600 s) and disarmed. Reported,
// with a bound loose enough for a loaded machine: tens of ns are expected armed.
TEST(Watchdog, APendingScopeIsCheap) {
  Watchdog armed(600), off;
  const auto describe = [] { return std::string("op"); };
  constexpr int kCalls = 1'000'000;
  auto ns_per_scope = [&](Watchdog& w) {
    double best = 1e9;
    for (int rep = 0; rep < 5; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < kCalls; ++i) {
        const Watchdog::Pending p(&w, describe);
        asm volatile("" ::: "memory");  // keep the scopes from being merged
      }
      best = std::min(best, std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() /
                                kCalls);
    }
    return best;
  };
  const double on = ns_per_scope(armed), disarmed = ns_per_scope(off);
  std::printf("Pending scope (enter + leave): armed %.1f ns, disarmed %.1f ns (best of 5 x %d)\n", on, disarmed,
              kCalls);
  RecordProperty("armed_ns", std::to_string(on));
  EXPECT_LT(on, 1000.0);
}

}  // namespace
