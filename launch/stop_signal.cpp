// launch/stop_signal.cpp — see stop_signal.h.
#include "launch/stop_signal.h"

#include <csignal>

namespace loom {

namespace {

// A signal handler can reach nothing but static storage: this flag is the one piece of
// process-wide state, written only by the handler and read by StopSignal::received().
volatile std::sig_atomic_t g_received = 0;
struct sigaction g_previous[2];
constexpr int kSignals[2] = {SIGTERM, SIGUSR1};

extern "C" void on_stop_signal(int sig) { g_received = sig; }

}  // namespace

StopSignal::StopSignal() {
  g_received = 0;
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int i = 0; i < 2; ++i) sigaction(kSignals[i], &sa, &g_previous[i]);
}

StopSignal::~StopSignal() {
  for (int i = 0; i < 2; ++i) sigaction(kSignals[i], &g_previous[i], nullptr);
}

int StopSignal::received() const { return int(g_received); }

}  // namespace loom
