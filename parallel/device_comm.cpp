// parallel/device_comm.cpp — see device_comm.h; the only file that sees LOOM_WITH_NCCL.
#include "parallel/device_comm.h"

#include <cstdlib>
#include <string>

#include "core/error.h"
#include "parallel/mpi_communicator.h"
#if LOOM_WITH_NCCL
#include "parallel/nccl/nccl_communicator.h"
#endif

namespace loom {

namespace {

// A non-negative integer from the environment, or -1.
int env_index(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return -1;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return (*end == '\0' && n >= 0 && n < 1 << 20) ? int(n) : -1;
}

}  // namespace

bool nccl_compiled() {
#if LOOM_WITH_NCCL
  return true;
#else
  return false;
#endif
}

int node_local_rank(MPI_Comm world) {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID"})
    if (const int r = env_index(name); r >= 0) return r;
  MPI_Comm node = MPI_COMM_NULL;
  LOOM_CHECK(MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS, "",
             "node_local_rank: MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) failed");
  int r = 0;
  MPI_Comm_rank(node, &r);
  MPI_Comm_free(&node);
  return r;
}

void use_device_communicators(ParallelContext& ctx, Device device, int cuda_device, void* compute_stream) {
  if (device == Device::cpu) return;
#if LOOM_WITH_NCCL
  for (std::unique_ptr<Communicator>* slot : {&ctx.world, &ctx.tp, &ctx.dp, &ctx.pp}) {
    auto* mpi = dynamic_cast<MpiCommunicator*>(slot->get());
    LOOM_CHECK(mpi != nullptr, "run under mpirun (make_mpi_context), even with one rank",
               "use_device_communicators: the context's communicators are not MPI ones");
    std::unique_ptr<MpiCommunicator> host(mpi);
    slot->release();
    *slot = make_nccl_communicator(std::move(host), cuda_device, compute_stream);
  }
#else
  (void)ctx;
  (void)cuda_device;
  (void)compute_stream;
  throw Error("this loom was built with the CUDA backend but without NCCL, so device tensors cannot be communicated",
              "install NCCL (it ships with the CUDA toolkit in /usr/local/cuda) and reconfigure with -DLOOM_CUDA=ON");
#endif
}

}  // namespace loom
