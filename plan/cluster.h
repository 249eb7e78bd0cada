// plan/cluster.h — a cluster description for the performance model: what one device
// computes and holds, and the two links between devices (inside a node, between nodes).
//
// Units inside the struct are SI (FLOP/s, bytes/s, seconds, bytes); the JSON files in
// plan/clusters/ use readable units (TFLOP/s, GB/s, microseconds, GiB) and name their
// sources. Published figures (peaks, link speeds) and calibrated constants (achieved
// GEMM efficiency, kernel overhead, link efficiency: one each per cluster, never per
// model) are kept apart in the file so a reader sees which is which (docs/scaling.md).
#pragma once

#include <string>
#include <vector>

#include "core/dtype.h"

namespace loom::plan {

// One link class: time of a message of n bytes = latency + n / (bandwidth * efficiency).
struct Link {
  double bandwidth = 0;   // bytes/s per device, one direction
  double latency = 0;     // seconds (alpha)
  double efficiency = 1;  // achieved fraction of `bandwidth` (calibrated)
  double beta() const { return 1.0 / (bandwidth * efficiency); }  // seconds per byte
};

// Which pass of a weight GEMM y = x W^T + b a rate was measured as, in the layout loom runs
// it (layers/linear.h): forward A B^T with the bias; the data gradient dX = dY W, A B; the
// weight gradient dW += dY^T X, A^T B accumulated. Libraries run the three layouts at
// different rates (oneDNN here: up to 15 % apart at one shape), so each is measured as itself.
enum class GemmPass { forward, data_grad, weight_grad };
const char* to_string(GemmPass p);               // "forward", "dx", "dw" (the JSON's "pass")
GemmPass parse_gemm_pass(const std::string& s);  // throws loom::Error on another name

// A measured GEMM rate (calibrated machines): C(M,N) = op(A) op(B), inner size K, in `pass`'s
// layout, ran at `flops` FLOP/s.
struct GemmRate {
  double m = 0, n = 0, k = 0, flops = 0;
  GemmPass pass = GemmPass::forward;
};

// A measured rate of the backend's tiled attention kernel (calibrated machines) at sequence
// s and head size d, causal or not, over the FLOPs the model counts for it per (sequence,
// head): forward 4 s k d, backward 8 s k d (k = keys a query scores: plan/predictor.h
// attention_keys). The kernel's own costs (softmax, the backward's recomputed scores, its
// tile GEMMs on whichever library) are inside the rate; that is why it is measured.
struct AttentionRate {
  double s = 0, d = 0;
  bool causal = true;
  double forward = 0, backward = 0;  // FLOP/s
};

struct Cluster {
  std::string name;
  std::string sources;  // where the published figures come from
  int devices_per_node = 8;
  double device_memory = 0;      // bytes usable per device
  double peak_16bit = 0;         // dense bf16/fp16 FLOP/s
  double peak_fp32 = 0;          // FLOP/s of the f32 GEMMs loom runs
  double memory_bandwidth = 0;   // HBM (or DRAM) bytes/s
  double memory_efficiency = 1;  // achieved fraction of memory_bandwidth by elementwise kernels
  double gemm_efficiency = 1;    // achieved fraction of the peak by large GEMMs (calibrated)
  double kernel_overhead = 0;    // seconds per kernel (launch + tail), calibrated
  // A CPU "cluster" (loom-plan calibrate): the device memory is the host's, so host-side
  // buffers (checkpoint snapshot, datasets) and the process's resident memory before it
  // allocates (code, libraries, BLAS buffers: `process_resident`, measured) count in it.
  bool host_is_device = false;
  double process_resident = 0;  // bytes per rank
  // What libraries add on their first use, measured the way loom-train incurs it
  // (launch/library_memory.h); 0 when not measured. Counted only where host_is_device.
  double hdf5_resident = 0;             // bytes per rank HDF5 keeps after loom's write and read
  double iallreduce_temp_per_byte = 0;  // MPI_Iallreduce's temporaries per byte in flight
  // What the tiled attention kernel keeps after its first use at one model's shape (measured
  // when calibrate is given that model's options; it belongs to that model).
  double attention_resident = 0;
  Link intra_node, inter_node;
  // When present, GEMM times in gemm_rates_dtype come from these (nearest shape); other
  // dtypes use the roofline.
  std::vector<GemmRate> gemm_rates;
  std::string gemm_rates_dtype = "fp32";
  // When present (same dtype), the tiled attention core's time comes from these (nearest
  // (s, d) with the same mask) instead of its GEMMs and bytes.
  std::vector<AttentionRate> attention_rates;

  double peak(DType dtype) const { return dtype == DType::f32 ? peak_fp32 : peak_16bit; }
};

// Reads / writes the JSON form (plan/clusters/*.json). Throws loom::Error naming the
// missing or bad field.
Cluster load_cluster(const std::string& path);
Cluster parse_cluster(const std::string& json_text, const std::string& origin = "cluster");
std::string to_json(const Cluster& c);

}  // namespace loom::plan
