// launch/process_memory.h — this process's resident memory, for the memory plan's comparison
// with what the operating system measured (loom-train) and for loom-plan calibrate, which
// records the resident memory a rank has before it allocates anything of its own.
#pragma once

namespace loom {

// Resident bytes now (/proc/self/statm): code, libraries, thread stacks, BLAS buffers and
// whatever is allocated.
double current_rss_bytes();
// The peak resident bytes of this process so far (getrusage's ru_maxrss).
double peak_rss_bytes();

}  // namespace loom
