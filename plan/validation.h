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

}  // namespace loom::plan
