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

// Called first thing by loom-train and loom-plan (so a calibration measures under the same
// policy): allocations of 1 MiB and more get their own mapping and go back to the system
// when freed (glibc M_MMAP_THRESHOLD, fixed). glibc's default raises that threshold to the
// size of every large block freed (up to 32 MiB), after which transient buffers of that
// size (MPI's all-reduce temporaries, HDF5's, the weights file's tensors) are carved from
// the heap and stay resident after their free, under every later peak: 12.8 MiB on a dp 2
// rank of the default model. loom's own large buffers are allocated once, so the extra
// mmap/munmap pairs are a few per step. A no-op outside glibc.
void return_large_frees_to_the_system();

}  // namespace loom
