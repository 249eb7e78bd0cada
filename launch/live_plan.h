// launch/live_plan.h — loom-train --plan.cluster: the performance model's prediction for the
// run being trained (plan/predictor.h, nothing recomputed here), printed once before step 1,
// written to checkpoint.dir/prediction.json, and compared with the measured steps at the end.
//
// Measured and predicted splits are matched as: compute <-> compute + optimizer, tp <-> tp
// collectives, pp <-> bubble + p2p (loom's t_pp counts the pipeline's waits, which is where
// the bubble shows), dp <-> the exposed dp reduction. The measured step is the median step of
// the run after its first (warm-up: first touches, OpenBLAS buffers), with that step's split.
#pragma once

#include <string>
#include <vector>

#include "core/config.h"
#include "launch/trainer.h"
#include "plan/cluster.h"
#include "plan/predictor.h"

namespace loom {

struct LivePrediction {
  plan::Cluster cluster;
  plan::Prediction p;
  double flops_per_token = 0;  // the model's (Gpt::flops_per_token), for MFU against the measured peak
  int world = 1;
  // Rank 0's memory (pipeline stage 0, what loom-train's peak RSS measures), with the token
  // datasets this run holds; p.memory is the most loaded stage's.
  plan::MemoryEstimate rank0_memory;
};

// Loads cfg.plan.cluster and predicts cfg's layout (parallel.dp filled in by validate_layout).
// `dataset_bytes`: the host memory of the opened token datasets (counted on a CPU cluster).
// Throws loom::Error naming the file when it cannot be read or the layout cannot be modelled.
LivePrediction predict_run(const RunConfig& cfg, int world, double flops_per_token, double dataset_bytes = 0);

// The line printed before step 1; `gemm_peak` is loom-train's measured per-rank peak (its MFU).
std::string describe_prediction(const LivePrediction& lp, double gemm_peak);
// prediction.json: the prediction in the units of metrics.jsonl (seconds, tokens/s, fractions).
std::string prediction_json(const RunConfig& cfg, const LivePrediction& lp, double gemm_peak);

// The record compared with the prediction: the median t_step of `steps` after the first
// (the only one when there is one step).
StepRecord representative_step(const std::vector<StepRecord>& steps);
// The final summary: measured / predicted for step time, tokens/s and each part of the split,
// and a verdict (within 15 %, slower, faster).
// (loom-train prints the memory comparison itself: measured peak RSS / rank0_memory.)
std::string compare_to_prediction(const std::vector<StepRecord>& steps, const LivePrediction& lp);

}  // namespace loom
