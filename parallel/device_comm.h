// parallel/device_comm.h — picks the communicators for the backend's device: the one
// place that sees LOOM_WITH_NCCL.
//
// The CPU backend trains with make_mpi_context's MpiCommunicators. The CUDA
// backend's tensors live on the GPU, so use_device_communicators replaces the
// context's world, tp, dp and pp communicators by NCCL ones (nccl/nccl_communicator.h)
// that keep their MpiCommunicator for host tensors. node_local_rank picks a rank's
// GPU: Open MPI's OMPI_COMM_WORLD_LOCAL_RANK, else Slurm's SLURM_LOCALID, else the
// rank within MPI_Comm_split_type(MPI_COMM_TYPE_SHARED).
#pragma once

#include <mpi.h>

#include "core/tensor.h"
#include "parallel/parallel_context.h"

namespace loom {

bool nccl_compiled();

// This rank's index among the ranks of its node (collective over world when neither
// environment variable is set).
int node_local_rank(MPI_Comm world);

// Device::cpu: nothing changes. Device::cuda: collective over the context's ranks;
// every group's communicator becomes an NCCL one on CUDA device `cuda_device`,
// ordered after `compute_stream` (the backend's cudaStream_t, backend/registry.h
// cuda_stream_of). Throws loom::Error when this loom has no NCCL or the context's
// communicators are not MPI ones (make_local_context).
void use_device_communicators(ParallelContext& ctx, Device device, int cuda_device, void* compute_stream);

}  // namespace loom
