// parallel/watchdog.cpp — see watchdog.h.
#include "parallel/watchdog.h"

#include <fmt/format.h>

namespace loom {

std::string Watchdog::where() const {
  return step > 0 ? fmt::format("step {}", step) : std::string("before the first training step");
}

}  // namespace loom
