// launch/plan_calibrate.h — `loom-plan calibrate`: a cluster file (plan/cluster.h) for the
// machine at hand, from measurements: GEMM rates per shape and pass (the backend's matmul in
// the layout loom-train runs each pass, operands cold, the median of repetitions; every rank
// at once), the memory bandwidth of a large copy, and the
// alpha/beta of MPI point-to-point messages between ranks 0 and 1 (under mpirun -np 2), and
// the rate of the backend's tiled attention kernel (forward, backward) over a grid of
// sequence lengths and head sizes, causal and not.
#pragma once

#include <optional>
#include <string>

#include "core/config.h"
#include "plan/cluster.h"

namespace loom {

struct CalibrateOptions {
  std::string precision = "fp32";  // dtype of the measured GEMM rates
  int ranks = 1;                   // MPI world size (1: links are not measured)
  int rank = 0;
  bool print = true;
  // When given (loom-plan calibrate with loom-train's model options), also the GEMM shapes of
  // this model's layers at tp 1, 2 and 4 (forward, dX, dW) and its attention shape, so the
  // nearest measured shape of each GEMM is itself.
  std::optional<RunConfig> model;
};

// Collective over MPI_COMM_WORLD when ranks > 1 (MPI already initialised).
plan::Cluster calibrate_this_machine(const CalibrateOptions& o);

}  // namespace loom
