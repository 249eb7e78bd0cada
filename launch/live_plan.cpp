// launch/live_plan.cpp — see live_plan.h.
#include "launch/live_plan.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "plan/model_cost.h"
#include "plan/search.h"

namespace loom {

namespace {

double ms(double s) { return 1e3 * s; }

// "1.23x", or "-" when the prediction is ~0 (no such communication in this layout).
std::string ratio(double measured, double predicted) {
  if (predicted < 1e-6) return measured < 1e-3 ? "-" : fmt::format("{:.3g} ms, not predicted", ms(measured));
  return fmt::format("{:.2f}x", measured / predicted);
}

}  // namespace

LivePrediction predict_run(const RunConfig& cfg, int world, double flops_per_token, double dataset_bytes) {
  LivePrediction lp;
  try {
    lp.cluster = plan::load_cluster(cfg.plan.cluster);
  } catch (const Error& e) {
    throw Error(
        fmt::format("plan.cluster '{}': {}", cfg.plan.cluster, e.what()),
        "give a file from plan/clusters/ or one written by loom-plan calibrate, or drop --plan.cluster");
  }
  RunConfig c = cfg;
  // check_layout also rejects for memory; a run that is already allocated gets its prediction regardless.
  const std::string why = plan::check_layout(c, lp.cluster, world, {}, &lp.p);
  LOOM_CHECK(why.rfind("divisibility", 0) != 0, "drop --plan.cluster for this layout",
             "plan.cluster: the performance model cannot model this layout: {}", why);
  lp.flops_per_token = flops_per_token;
  lp.world = world;
  lp.p.memory = plan::loom_memory_per_device(c, lp.cluster, dataset_bytes);
  lp.rank0_memory = plan::loom_memory(c, 0, lp.cluster, dataset_bytes);
  return lp;
}

std::string describe_prediction(const LivePrediction& lp, double gemm_peak) {
  const plan::Prediction& p = lp.p;
  const plan::TimeSplit& s = p.split;
  const double mfu_here = p.tokens_per_s * lp.flops_per_token / lp.world / gemm_peak;
  return fmt::format(
      "predicted by the performance model for this layout on '{}': {:.4g} ms per step | {:.4g} tok/s | MFU "
      "{:.1f}% "
      "(of the cluster file's peak; {:.1f}% of the gemm peak measured now) | compute {:.4g} ms (optimizer "
      "{:.3g}), "
      "tp {:.3g}, pp {:.3g} (bubble {:.3g}, p2p {:.3g}), dp {:.3g} ms\n",
      lp.cluster.name, ms(p.step_time), p.tokens_per_s, 100 * p.mfu, 100 * mfu_here,
      ms(s.compute + s.optimizer), ms(s.optimizer), ms(s.tp_comm), ms(s.pp_bubble + s.pp_p2p),
      ms(s.pp_bubble), ms(s.pp_p2p), ms(s.dp_comm));
}

std::string prediction_json(const RunConfig& cfg, const LivePrediction& lp, double gemm_peak) {
  const plan::Prediction& p = lp.p;
  const plan::TimeSplit& s = p.split;
  nlohmann::json j = {{"cluster", lp.cluster.name},
                      {"cluster_file", cfg.plan.cluster},
                      {"layout", plan::describe(cfg)},
                      {"world", lp.world},
                      {"t_step", p.step_time},
                      {"tokens_per_s", p.tokens_per_s},
                      {"mfu_cluster_peak", p.mfu},
                      {"mfu", p.tokens_per_s * lp.flops_per_token / lp.world / gemm_peak},
                      {"t_compute", s.compute + s.optimizer},
                      {"t_tp", s.tp_comm},
                      {"t_pp", s.pp_bubble + s.pp_p2p},
                      {"t_dp", s.dp_comm},
                      {"split",
                       {{"compute", s.compute},
                        {"tp_comm", s.tp_comm},
                        {"pp_bubble", s.pp_bubble},
                        {"pp_p2p", s.pp_p2p},
                        {"dp_comm", s.dp_comm},
                        {"optimizer", s.optimizer}}},
                      {"memory_bytes", p.memory.total()},
                      {"memory_rank0_bytes", lp.rank0_memory.total()}};
  return j.dump(2) + "\n";
}

StepRecord representative_step(const std::vector<StepRecord>& steps) {
  LOOM_CHECK(!steps.empty(), "", "internal: no steps to compare with the prediction");
  std::vector<StepRecord> after(steps.size() > 1 ? steps.begin() + 1 : steps.begin(), steps.end());
  std::sort(after.begin(), after.end(),
            [](const StepRecord& a, const StepRecord& b) { return a.t_step < b.t_step; });
  return after[(after.size() - 1) / 2];
}

std::string compare_to_prediction(const std::vector<StepRecord>& steps, const LivePrediction& lp) {
  if (steps.empty()) return "";
  const StepRecord r = representative_step(steps);
  const plan::TimeSplit& s = lp.p.split;
  const double x = r.t_step / lp.p.step_time;
  const std::string verdict =
      std::abs(x - 1) <= 0.15 ? "within 15% of the prediction"
      : x > 1                 ? fmt::format(
                                    "{:.0f}% slower than predicted: check the load (uptime), OMP_NUM_THREADS per rank, "
                                                    "or recalibrate (loom-plan calibrate)",
                                    100 * (x - 1))
              : fmt::format("{:.0f}% faster than predicted: the cluster file is conservative for this run",
                            100 * (1 / x - 1));
  const std::size_t n = steps.size() > 1 ? steps.size() - 1 : 1;
  return fmt::format(
      "measured / predicted ('{}', median of {} step(s){}): step {:.4g} / {:.4g} ms = {:.2f}x | tok/s "
      "{:.2f}x | "
      "compute {}, tp {}, pp {}, dp {}: {}\n",
      lp.cluster.name, n, steps.size() > 1 ? " after the first" : "", ms(r.t_step), ms(lp.p.step_time), x,
      1 / x, ratio(r.t_step - r.t_tp - r.t_pp - r.t_dp, s.compute + s.optimizer), ratio(r.t_tp, s.tp_comm),
      ratio(r.t_pp, s.pp_bubble + s.pp_p2p), ratio(r.t_dp, s.dp_comm), verdict);
}

}  // namespace loom
