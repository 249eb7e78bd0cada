// parallel/nccl/nccl_communicator.h — a Communicator whose device tensors move over NCCL.
//
// One object per group (tp, dp, pp, ...). Device (cuda) tensors go through an
// NCCL communicator on this object's own CUDA stream, ordered after the
// backend's compute stream with events (the comm stream waits for everything the
// compute stream had queued at the call) and the compute stream ordered after the
// collective; host tensors go to the MpiCommunicator of the same group, which this
// object owns, so code that reduces a host scalar keeps working. Blocking calls
// return when the collective has completed (the comm stream is synchronised), as
// MpiCommunicator's do, so TimedCommunicator measures completed communication;
// all_reduce_start / reduce_scatter_start only enqueue and wait_all completes them.
// Those waits are marked in the MpiCommunicator's watchdog (watchdog.h), if it has one.
// bf16/f16 reduce in NCCL's own way (f32 arithmetic per combine, rounded to the
// dtype). Only parallel/device_comm.cpp includes this (it alone sees LOOM_WITH_NCCL).
#pragma once

#include <memory>
#include <string>

#include "parallel/mpi_communicator.h"

namespace loom {

// Collective over host->comm(): rank 0 of the group makes the NCCL unique id and
// MPI_Bcasts it; every rank joins on CUDA device `device`. compute_stream is the
// backend's cudaStream_t (as void*, so this header needs no CUDA). Throws
// loom::Error naming the group and NCCL's message on failure.
std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<MpiCommunicator> host, int device,
                                                     void* compute_stream);

}  // namespace loom
