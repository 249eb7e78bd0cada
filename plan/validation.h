// plan/validation.h — the performance model's report card: published iteration times it
// must reproduce (docs/scaling.md), as data, so loom-plan validate and the unit test
// recompute the same table.
//
// Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
// Models", Table 5 (A100 80GB, seconds per iteration): full recompute, and sequence
// parallelism + selective recompute. Model shapes from its Table 3 (sequence 2048, vocabulary
// 51200, micro-batch 1, bf16, Megatron-LM of 2022: pipeline messages split over tp, no dp).
#pragma once

#include <string>
#include <vector>

#include "core/config.h"
#include "plan/predictor.h"

namespace loom::plan {

struct PublishedRun {
  std::string name;  // "22B"
  ModelConfig model;
  int tp = 1, pp = 1, virtual_stages = 1;
  std::int64_t global_batch = 1;
  double full_recompute_s = 0;  // published: full recompute, no sp
  double sp_selective_s = 0;    // published: sp + selective (attention) recompute
};

std::vector<PublishedRun> korthikanti_table5();
// The RunConfig of one published run: `selective` picks sp + attention recompute over full.
RunConfig published_config(const PublishedRun& r, bool selective);
// What Megatron-LM of 2022 did that loom does not (pipeline messages split over tp).
SoftwareModel megatron_2022();

struct ValidationRow {
  std::string name, mode;
  double published = 0, predicted = 0;
  double error() const { return (predicted - published) / published; }  // signed, relative
  Prediction prediction;
};
std::vector<ValidationRow> validate_table5(const Cluster& a100);

// Megatron-LM's H100 weak-scaling table (NVIDIA/Megatron-LM README, "Training Speed and
// Scalability", the image images/model_table.png added in commit f2e5db40, 2024-07-15,
// Megatron-Core r0.8.0): GPT models of 1.7B..462B parameters, vocabulary 131072, sequence
// 4096, bf16, dp 48, the published per-GPU model TFLOP/s and MFU (of 989 TFLOP/s).
// Untied input and output embeddings (the parameter counts need them); loom ties them,
// which changes the parameters (and so the optimizer and dp times) but not the FLOPs.
// Not published, assumed (docs/scaling.md): the micro-batch loom's planner picks
// (planned_config), no recompute, sequence parallelism with tp, the distributed optimizer (ZeRO-1), f32
// gradient reduction (read from arguments.py: --bf16 forces accumulate_allreduce_grads_in_fp32),
// FlashAttention-style fused attention, and one layer per interleaved chunk (v = l / p).
struct PublishedScalingRun {
  std::string name;  // "1.7B"
  ModelConfig model;
  int tp = 1, pp = 1, dp = 1;
  std::int64_t global_batch = 1;
  double tflops_per_gpu = 0;  // published model TFLOP/s per GPU
  double mfu = 0;             // published, rounded to a percent
};
std::vector<PublishedScalingRun> megatron_h100_weak_scaling();
// The published layout with the assumptions above, micro-batch 1.
RunConfig published_config(const PublishedScalingRun& r);
// The same with the micro-batch loom's planner picks for it (the table does not publish it;
// its runs were tuned for throughput): the highest predicted tokens/s among search's
// micro-batches (1, 2, 4, 8, the per-rank batch) that pass check_layout (divisibility, the
// interleaved schedule's groups of pp, Megatron's memory account within the device memory).
// Ties go to the smaller. The rows validate_megatron_h100 predicts.
RunConfig planned_config(const PublishedScalingRun& r, const Cluster& h100);
// Megatron-Core of 2024: tp, pp and dp communication overlapped with compute; under the
// interleaved schedule the gradients are reduced chunk by chunk (chunk_grad_sync).
SoftwareModel megatron_core_2024();
// One row per run: published and predicted MFU (ValidationRow's error is relative).
std::vector<ValidationRow> validate_megatron_h100(const Cluster& h100);

}  // namespace loom::plan
