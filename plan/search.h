// plan/search.h — every layout of a model on `world` devices, predicted and ranked.
//
// Enumerates tp (divisors of world), pp (divisors of world / tp), dp = the rest, virtual
// stages (1, or v > 1 splitting layers evenly into pp * v chunks), micro-batch (powers of two
// up to 8 and the per-rank batch), recompute (none, attention, full), sequence parallelism
// (tp > 1) and ZeRO-1 (dp > 1). A layout is rejected for divisibility (loom's own checks:
// core/config.h validate_layout, Gpt::check_tp, the message naming the constraint) or for
// memory (the most loaded stage over the device memory, naming the largest term); the rest
// are ranked by predicted tokens/s.
#pragma once

#include <string>
#include <vector>

#include "plan/predictor.h"

namespace loom::plan {

struct Candidate {
  RunConfig config;       // the layout (parallel.dp filled in)
  std::string rejected;   // empty: valid; else "divisibility: ..." or "memory: ..."
  Prediction prediction;  // valid ones, and memory rejections (their memory is filled)
};

// Valid layouts first, fastest first; then the rejected ones in enumeration order.
std::vector<Candidate> search_layouts(const RunConfig& base, const Cluster& cluster, int world,
                                      const SoftwareModel& sw = {});
// The micro-batches search tries at data parallelism dp: powers of two up to 8 and the
// per-rank batch (divisibility is check_layout's to judge).
std::vector<std::int64_t> candidate_micro_batches(std::int64_t global_batch, int dp);
// Why `c` cannot run on `world` devices of `cluster`, or "" when it can; fills *prediction when given.
std::string check_layout(RunConfig& c, const Cluster& cluster, int world, const SoftwareModel& sw = {},
                         Prediction* prediction = nullptr);
// "dp 2 tp 4 pp 2 v 1 mb 1 recompute attention sp zero 1" — the options in brief.
std::string describe(const RunConfig& c);
// The loom-train options of the layout: "--parallel.tp 4 --parallel.pp 2 ...".
std::string layout_flags(const RunConfig& c);

}  // namespace loom::plan
