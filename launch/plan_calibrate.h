// launch/plan_calibrate.h — `loom-plan calibrate`: a cluster file (plan/cluster.h) for the
// machine at hand, from measurements: GEMM rates per shape (the backend's matmul, as
// launch/gemm_peak.h measures the peak), the memory bandwidth of a large copy, and the
// alpha/beta of MPI point-to-point messages between ranks 0 and 1 (under mpirun -np 2).
#pragma once

#include <string>

#include "plan/cluster.h"

namespace loom {

struct CalibrateOptions {
  std::string precision = "fp32";  // dtype of the measured GEMM rates
  int ranks = 1;                   // MPI world size (1: links are not measured)
  int rank = 0;
  bool print = true;
};

// Collective over MPI_COMM_WORLD when ranks > 1 (MPI already initialised).
plan::Cluster calibrate_this_machine(const CalibrateOptions& o);

}  // namespace loom
