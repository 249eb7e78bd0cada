// launch/process_memory.cpp — see process_memory.h.
#include "launch/process_memory.h"

#include <sys/resource.h>
#include <unistd.h>

#include <fstream>

namespace loom {

double current_rss_bytes() {
  std::ifstream statm("/proc/self/statm");
  double pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return pages_resident * double(sysconf(_SC_PAGESIZE));
}

double peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) * 1024.0;
}

}  // namespace loom
