// parallel/watchdog.h — the deadline on loom's blocking communication, and the step
// a stalled rank names when it gives up.
//
// One Watchdog per process, owned by its ParallelContext and read by every
// MpiCommunicator of it; the trainer writes the step it is in, so a rank that waits
// longer than timeout_s in a collective or pipeline transfer can say where it was
// ("step 17, all_reduce on group 'dp'"). No global: communicators get a pointer.
#pragma once

#include <cstdint>
#include <string>

namespace loom {

struct Watchdog {
  double timeout_s = 0;   // seconds a blocking communication may take; 0: wait forever
  std::int64_t step = 0;  // the training step in progress, 1-based; 0 before the first

  bool armed() const { return timeout_s > 0; }
  // "step 17" or "before the first training step": where the job was when it stalled.
  std::string where() const;
};

}  // namespace loom
