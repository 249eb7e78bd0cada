// launch/library_memory.h — resident memory that libraries add to a loom rank on their first
// use, measured (by `loom-plan calibrate`) the way loom-train incurs it, for the cluster file
// of a CPU machine (plan/cluster.h: hdf5_resident_MiB, iallreduce_temp_per_byte). Neither is
// in loom's own memory plan: they are properties of the build (HDF5's, Open MPI's versions)
// and of the machine, like the resident memory before allocating (process_resident_MiB).
#pragma once

#include <mpi.h>

#include <string>

namespace loom {

// What HDF5 keeps resident after loom's own use of it: a checkpoint shard (ShardWriter, its
// CRC read-back) and a weights file written, the weights file read back, a token dataset
// read as loom-train reads its data (written first, here), then
// h5::release_free_memory() as loom-train calls it after a checkpoint. Mostly the library's
// code pages and its process-wide state. Writes into `scratch_dir` (removed after).
// Bytes; >= 0.
double hdf5_first_use_bytes(const std::string& scratch_dir);

// Collective over `comm` (>= 2 ranks): the peak resident bytes MPI's non-blocking in-place
// all-reduce (MPI_Iallreduce, what optimizer/grad_sync.cpp starts per gradient bucket) adds
// while four buckets of 4 MiB are in flight and waited for together, per byte in flight
// (Open MPI's libnbc holds a temporary the size of each message). Rank 0's, broadcast.
// Needs Linux's peak reset (/proc/self/clear_refs); returns -1 where it is missing.
double iallreduce_temp_per_byte(MPI_Comm comm);

}  // namespace loom
