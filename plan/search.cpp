// plan/search.cpp — see search.h.
#include "plan/search.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/error.h"
#include "layers/gpt.h"

namespace loom::plan {

namespace {

constexpr double GiB = 1024.0 * 1024.0 * 1024.0;

std::vector<int> divisors(int n) {
  std::vector<int> d;
  for (int i = 1; i <= n; ++i)
    if (n % i == 0) d.push_back(i);
  return d;
}

}  // namespace

std::string describe(const RunConfig& c) {
  const ParallelConfig& p = c.parallel;
  return fmt::format("dp {} tp {} pp {} v {} mb {} recompute {}{}{}", p.dp, p.tp, p.pp, p.virtual_stages,
                     c.train.micro_batch, c.train.recompute, p.sequence_parallel ? " sp" : "",
                     c.optim.zero == 1 ? " zero1" : "");
}

std::string layout_flags(const RunConfig& c) {
  const ParallelConfig& p = c.parallel;
  std::string s = fmt::format("--parallel.tp {} --parallel.pp {}", p.tp, p.pp);
  if (p.virtual_stages > 1) s += fmt::format(" --parallel.virtual_stages {}", p.virtual_stages);
  s += fmt::format(" --train.micro_batch {} --train.recompute {}", c.train.micro_batch, c.train.recompute);
  if (p.sequence_parallel) s += " --parallel.sequence_parallel";
  if (c.optim.zero == 1) s += " --optim.zero 1";
  return s;
}

std::string check_layout(RunConfig& c, const Cluster& cl, int world, const SoftwareModel& sw,
                         Prediction* out) {
  try {
    validate_layout(c, world);
    Gpt::check_tp(c.model, c.parallel.tp);
    if (c.parallel.pp > 1 || c.parallel.virtual_stages > 1)  // the stage split itself (parallel.stages)
      make_gpt_stage(c.model, c.parallel.pp, 0, c.parallel.virtual_stages, c.parallel.stages);
  } catch (const Error& e) {
    return std::string("divisibility: ") + e.what();
  }
  const Prediction pr = predict(c, cl, sw);
  if (out) *out = pr;
  const MemoryEstimate& m = pr.memory;
  if (m.total() > cl.device_memory) {
    auto terms = m.terms();
    const auto big = *std::max_element(terms.begin(), terms.end(),
                                       [](const auto& x, const auto& y) { return x.second < y.second; });
    return fmt::format(
        "memory: stage {} needs {:.1f} GiB > {:.1f} GiB per device; largest term {} {:.1f} GiB", m.stage,
        m.total() / GiB, cl.device_memory / GiB, big.first, big.second / GiB);
  }
  return "";
}

std::vector<std::int64_t> candidate_micro_batches(std::int64_t global_batch, int dp) {
  std::vector<std::int64_t> mbs;
  for (std::int64_t mb = 1; mb <= 8; mb *= 2) mbs.push_back(mb);
  if (global_batch % dp == 0) {
    const std::int64_t per_rank = global_batch / dp;
    if (std::find(mbs.begin(), mbs.end(), per_rank) == mbs.end()) mbs.push_back(per_rank);
  }
  return mbs;
}

std::vector<Candidate> search_layouts(const RunConfig& base, const Cluster& cl, int world,
                                      const SoftwareModel& sw) {
  std::vector<Candidate> valid, rejected;
  const std::int64_t L = base.model.layers;
  for (int tp : divisors(world))
    for (int pp : divisors(world / tp)) {
      const int dp = world / tp / pp;
      std::vector<int> vs{1};
      for (int v = 2; pp > 1 && std::int64_t(pp) * v <= L; ++v)
        if (L % (std::int64_t(pp) * v) == 0) vs.push_back(v);
      const std::vector<std::int64_t> mbs = candidate_micro_batches(base.train.global_batch, dp);
      for (int v : vs)
        for (std::int64_t mb : mbs)
          for (const char* rc : {"none", "attention", "full"})
            for (int sp = 0; sp <= (tp > 1 ? 1 : 0); ++sp)
              for (int zero = 0; zero <= (dp > 1 ? 1 : 0); ++zero) {
                // Selective recompute is `none` with the tiled kernel: not a layout of its own.
                if (std::string(rc) == "attention" && base.train.attention_kernel() == "tiled") continue;
                Candidate cand{.config = base};
                RunConfig& c = cand.config;
                c.parallel.tp = tp, c.parallel.pp = pp, c.parallel.dp = dp, c.parallel.virtual_stages = v;
                c.parallel.sequence_parallel = sp == 1;
                c.train.micro_batch = mb;
                c.train.recompute = rc;
                c.optim.zero = zero;
                cand.rejected = check_layout(c, cl, world, sw, &cand.prediction);
                (cand.rejected.empty() ? valid : rejected).push_back(std::move(cand));
              }
    }
  std::stable_sort(valid.begin(), valid.end(), [](const Candidate& a, const Candidate& b) {
    return a.prediction.tokens_per_s > b.prediction.tokens_per_s;
  });
  valid.insert(valid.end(), std::make_move_iterator(rejected.begin()),
               std::make_move_iterator(rejected.end()));
  return valid;
}

}  // namespace loom::plan
