// launch/plan_main.cpp — loom-plan: the performance model and layout planner (docs/scaling.md).
//
//   loom-plan predict   --cluster FILE [loom-train options]   one layout: time, MFU, memory, split
//   loom-plan search    --cluster FILE --world N [--top K] [--csv FILE] [--rejected] [loom-train options]
//   loom-plan validate  [--cluster FILE] [--h100-cluster FILE] the report card (Korthikanti et al. Table 5,
//                                                             Megatron-LM's H100 weak-scaling table)
//   mpirun -np 2 --bind-to none loom-plan calibrate --output FILE [--train.precision P] [model options]
// Every model, batch and layout option is loom-train's own (launch/train_options.h), so the
// same flags (or --config run.ini) describe the run to plan and the run to train.
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "launch/plan_calibrate.h"
#include "launch/train_options.h"
#include "plan/search.h"
#include "plan/validation.h"

namespace {

using namespace loom;
using namespace loom::plan;
constexpr double GiB = 1024.0 * 1024.0 * 1024.0;

const char* kUsage =
    "usage: loom-plan <command> [options]\n"
    "commands:\n"
    "  predict    one layout: step time, tokens/s, MFU, memory per device, the time split\n"
    "  search     every layout on --world N devices, ranked by predicted tokens/s under the memory limit,\n"
    "             with the reason each rejected layout fails\n"
    "  validate   the model against published runs (Korthikanti et al. 2022 Table 5; Megatron-LM's H100 table)\n"
    "  calibrate  write a cluster file for this machine from measurements (mpirun -np 2 --bind-to none);\n"
    "             one rank is one device: give it the OMP_NUM_THREADS each loom-train rank will have;\n"
    "             with loom-train's model and batch options it also measures that model's GEMM and\n"
    "             attention shapes\n"
    "options of loom-plan (the model, batch and layout use loom-train's options; 'loom-train --help'):\n"
    "  --cluster FILE   cluster description (plan/clusters/a100-80gb.json, h100-80gb.json, or from "
    "calibrate)\n"
    "  --world N        devices (search; predict: default dp x tp x pp, with parallel.dp 0 meaning 1)\n"
    "  --top K          search: rows of the table (default 20)\n"
    "  --csv FILE       search: every layout, valid and rejected, as CSV ('-': stdout)\n"
    "  --rejected       search: also list every rejected layout with its reason\n"
    "  --output FILE    calibrate: where to write the cluster file (default: stdout)\n"
    "  --h100-cluster FILE  validate: the cluster of the Megatron-LM H100 table (default plan/clusters/h100-80gb.json)\n";

struct PlanArgs {
  std::string cluster, csv, output, h100_cluster = "plan/clusters/h100-80gb.json";
  int world = 0, top = 20;
  bool rejected = false, help = false;
  std::vector<std::string> rest{"loom-plan"};  // for parse_train_options
};

PlanArgs split_args(int argc, char** argv) {
  PlanArgs a;
  for (int i = 2; i < argc; ++i) {
    const std::string s = argv[i];
    auto value = [&]() -> std::string {
      LOOM_CHECK(i + 1 < argc, "see loom-plan --help", "{} needs a value", s);
      return argv[++i];
    };
    if (s == "--cluster" || s == "--plan.cluster")  // loom-train's name for it, so its command line plans too
      a.cluster = value();
    else if (s == "--world")
      a.world = std::stoi(value());
    else if (s == "--top")
      a.top = std::stoi(value());
    else if (s == "--csv")
      a.csv = value();
    else if (s == "--output")
      a.output = value();
    else if (s == "--h100-cluster")
      a.h100_cluster = value();
    else if (s == "--rejected")
      a.rejected = true;
    else if (s == "--help" || s == "-h")
      a.help = true;
    else
      a.rest.push_back(s);
  }
  return a;
}

RunConfig run_config(PlanArgs& a) {
  std::vector<char*> av;
  for (auto& s : a.rest) av.push_back(s.data());
  auto c = parse_train_options(int(av.size()), av.data(), false);
  LOOM_CHECK(c.has_value(), "", "unexpected --help");
  LOOM_CHECK(c->model.vocab > 0, "loom-plan reads no dataset: give --model.vocab (e.g. 50257)",
             "model.vocab is 0 (loom-train takes it from the dataset)");
  validate(c->model);
  LOOM_CHECK(!c->model.t5(), "plan a gpt- or bert-family model (the same stack shape)",
             "loom-plan models decoder-only stacks; model.family t5 (encoder-decoder) is not modelled yet");
  return *c;
}

Cluster need_cluster(const PlanArgs& a) {
  LOOM_CHECK(!a.cluster.empty(),
             "e.g. --cluster plan/clusters/a100-80gb.json, or make one with loom-plan calibrate",
             "--cluster is required");
  return load_cluster(a.cluster);
}

void print_prediction(const RunConfig& c, const Cluster& cl, const Prediction& p) {
  const TimeSplit& s = p.split;
  const MemoryEstimate& m = p.memory;
  std::printf("cluster      %s\n", cl.name.c_str());
  std::printf("model        L=%lld C=%lld H=%lld F=%lld V=%lld (padded %lld), seq %lld\n",
              (long long)c.model.layers, (long long)c.model.channels, (long long)c.model.heads,
              (long long)c.model.ffn_size(), (long long)c.model.vocab, (long long)c.model.padded_vocab(),
              (long long)c.train.sequence(c.model));
  std::printf("layout       %s, global batch %lld, %s\n", describe(c).c_str(),
              (long long)c.train.global_batch, c.train.precision.c_str());
  std::printf("step time    %.4g s\ntokens/s     %.4g\nMFU          %.1f %% (HFU %.1f %%)\n", p.step_time,
              p.tokens_per_s, 100 * p.mfu, 100 * p.hfu);
  std::printf(
      "time split   compute %.4g s, tp comm %.4g s, pp bubble %.4g s, pp p2p %.4g s, dp comm %.4g s "
      "(exposed), "
      "optimizer %.4g s\n",
      s.compute, s.tp_comm, s.pp_bubble, s.pp_p2p, s.dp_comm, s.optimizer);
  std::printf(
      "memory       stage %d: %.2f GiB of %.1f GiB (parameters %.2f, gradients %.2f, optimizer state %.2f, "
      "activations and buffers %.2f%s)\n",
      m.stage, m.total() / GiB, cl.device_memory / GiB, m.parameters / GiB, m.gradients / GiB,
      m.optimizer / GiB, m.activations / GiB,
      cl.host_is_device ? fmt::format(", host {:.2f}", m.host / GiB).c_str() : "");
  // The same stage's activations under each recompute mode, without and with sp (tp > 1).
  std::string modes;
  for (const char* rc : {"none", "attention", "full"})
    for (int sp = 0; sp <= (c.parallel.tp > 1 ? 1 : 0); ++sp) {
      if (std::string(rc) == "attention" && c.train.attention_kernel() == "tiled") continue;  // = none
      RunConfig o = c;
      o.train.recompute = rc, o.parallel.sequence_parallel = sp == 1;
      modes += fmt::format("{}{}{} {:.2f}", modes.empty() ? "" : ", ", rc, sp ? "+sp" : "",
                           loom_memory(o, m.stage, cl).activations / GiB);
    }
  std::printf("activations  by recompute mode (GiB): %s\n", modes.c_str());
}

int predict_cmd(PlanArgs& a) {
  const Cluster cl = need_cluster(a);
  RunConfig c = run_config(a);
  const int world = a.world > 0 ? a.world : std::max(c.parallel.dp, 1) * c.parallel.tp * c.parallel.pp;
  Prediction p;
  const std::string why = check_layout(c, cl, world, {}, &p);
  if (why.rfind("divisibility", 0) == 0)
    throw Error(why, "change the layout; loom-plan search lists the valid ones");
  print_prediction(c, cl, p);
  if (!why.empty()) std::printf("DOES NOT FIT  %s\n", why.c_str());
  return 0;
}

void write_csv(std::ostream& o, const std::vector<Candidate>& all) {
  o << "dp,tp,pp,virtual_stages,micro_batch,recompute,sequence_parallel,zero,valid,step_time_s,tokens_per_s,"
       "mfu,"
       "memory_GiB,compute_s,tp_comm_s,pp_bubble_s,pp_p2p_s,dp_comm_s,optimizer_s,reason\n";
  for (const Candidate& k : all) {
    const RunConfig& c = k.config;
    const Prediction& p = k.prediction;
    std::string reason = k.rejected;
    for (char& ch : reason)
      if (ch == '"' || ch == '\n') ch = ch == '"' ? '\'' : ' ';
    o << fmt::format(
        "{},{},{},{},{},{},{},{},{},{:.6g},{:.6g},{:.4f},{:.3f},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},\"{"
        "}\"\n",
        c.parallel.dp, c.parallel.tp, c.parallel.pp, c.parallel.virtual_stages, c.train.micro_batch,
        c.train.recompute, c.parallel.sequence_parallel ? 1 : 0, c.optim.zero, k.rejected.empty() ? 1 : 0,
        p.step_time, p.tokens_per_s, p.mfu, p.memory.total() / GiB, p.split.compute, p.split.tp_comm,
        p.split.pp_bubble, p.split.pp_p2p, p.split.dp_comm, p.split.optimizer, reason);
  }
}

int search_cmd(PlanArgs& a) {
  const Cluster cl = need_cluster(a);
  LOOM_CHECK(a.world > 0, "e.g. --world 64", "search needs --world N, the devices to lay the model out on");
  const RunConfig base = run_config(a);
  const std::vector<Candidate> all = search_layouts(base, cl, a.world);
  std::size_t valid = 0;
  while (valid < all.size() && all[valid].rejected.empty()) ++valid;
  std::printf(
      "%zu layouts of L=%lld C=%lld on %d devices of %s (global batch %lld, %s): %zu fit, %zu rejected\n",
      all.size(), (long long)base.model.layers, (long long)base.model.channels, a.world, cl.name.c_str(),
      (long long)base.train.global_batch, base.train.precision.c_str(), valid, all.size() - valid);
  std::printf("%4s  %-48s %10s %12s %6s %8s  %s\n", "rank", "layout", "step s", "tokens/s", "MFU %",
              "mem GiB", "split: compute / tp / bubble / p2p / dp / optim (s)");
  for (std::size_t i = 0; i < valid && i < std::size_t(a.top); ++i) {
    const Prediction& p = all[i].prediction;
    const TimeSplit& s = p.split;
    std::printf("%4zu  %-48s %10.4g %12.4g %6.1f %8.2f  %.3g / %.3g / %.3g / %.3g / %.3g / %.3g\n", i + 1,
                describe(all[i].config).c_str(), p.step_time, p.tokens_per_s, 100 * p.mfu,
                p.memory.total() / GiB, s.compute, s.tp_comm, s.pp_bubble, s.pp_p2p, s.dp_comm, s.optimizer);
  }
  if (valid > 0) std::printf("best: loom-train %s\n", layout_flags(all[0].config).c_str());
  std::map<std::string, int> kinds;
  for (std::size_t i = valid; i < all.size(); ++i)
    ++kinds[all[i].rejected.substr(0, all[i].rejected.find(':'))];
  for (auto& [k, n] : kinds) std::printf("rejected for %s: %d\n", k.c_str(), n);
  if (a.rejected)
    for (std::size_t i = valid; i < all.size(); ++i)
      std::printf("  %-48s %s\n", describe(all[i].config).c_str(), all[i].rejected.c_str());
  else if (valid < all.size())
    std::printf("(--rejected lists each with its reason, e.g. %s: %s)\n", describe(all[valid].config).c_str(),
                all[valid].rejected.c_str());
  if (a.csv == "-")
    write_csv(std::cout, all);
  else if (!a.csv.empty()) {
    std::ofstream o(a.csv);
    LOOM_CHECK(o.good(), "check the directory exists", "cannot write '{}'", a.csv);
    write_csv(o, all);
  }
  return 0;
}

int validate_cmd(PlanArgs& a) {
  const Cluster cl = load_cluster(a.cluster.empty() ? "plan/clusters/a100-80gb.json" : a.cluster);
  std::printf("Korthikanti et al. 2022, Table 5 (A100 80GB, seconds per iteration) vs loom-plan on %s\n",
              cl.name.c_str());
  std::printf("%-5s %-16s %10s %10s %8s %7s %9s %9s\n", "model", "mode", "published", "predicted", "error",
              "MFU", "act GiB", "total GiB");
  double sum = 0, worst = 0;
  const auto rows = validate_table5(cl);
  for (const ValidationRow& r : rows) {
    std::printf("%-5s %-16s %10.2f %10.2f %+7.1f%% %6.1f%% %9.1f %9.1f\n", r.name.c_str(), r.mode.c_str(),
                r.published, r.predicted, 100 * r.error(), 100 * r.prediction.mfu,
                r.prediction.memory.activations / GiB, r.prediction.memory.total() / GiB);
    sum += std::abs(r.error()), worst = std::max(worst, std::abs(r.error()));
  }
  std::printf("mean |error| %.2f %%, worst %.2f %%\n", 100 * sum / double(rows.size()), 100 * worst);

  const Cluster h100 = load_cluster(a.h100_cluster);
  std::printf("\nMegatron-LM README, H100 weak scaling (MFU of 989 TFLOP/s; Megatron-Core r0.8) vs loom-plan on %s\n",
              h100.name.c_str());
  std::printf("%-5s %-28s %5s %10s %10s %8s %9s %9s\n", "model", "layout", "GPUs", "published", "predicted", "error",
              "act GiB", "total GiB");
  sum = 0, worst = 0;
  const auto mrows = validate_megatron_h100(h100);
  const auto runs = megatron_h100_weak_scaling();
  for (std::size_t i = 0; i < mrows.size(); ++i) {
    const ValidationRow& r = mrows[i];
    std::printf("%-5s %-28s %5d %9.1f%% %9.1f%% %+7.1f%% %9.1f %9.1f\n", r.name.c_str(),
                describe(planned_config(runs[i], h100)).c_str(), runs[i].dp * runs[i].tp * runs[i].pp,
                100 * r.published, 100 * r.predicted, 100 * r.error(), r.prediction.memory.activations / GiB,
                r.prediction.memory.total() / GiB);
    sum += std::abs(r.error()), worst = std::max(worst, std::abs(r.error()));
  }
  std::printf("mean |error| %.2f %%, worst %.2f %% (relative, of MFU)\n", 100 * sum / double(mrows.size()),
              100 * worst);
  return 0;
}

int calibrate_cmd(PlanArgs& a) {
  MPI_Init(nullptr, nullptr);
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  std::string precision = "fp32";
  for (std::size_t i = 1; i + 1 < a.rest.size(); ++i)
    if (a.rest[i] == "--train.precision") precision = a.rest[i + 1];
  CalibrateOptions o{.precision = precision, .ranks = ranks, .rank = rank, .print = rank == 0};
  bool model_given = false;  // loom-train's model options (or --config): measure its shapes too
  for (std::size_t i = 1; i < a.rest.size(); ++i)
    model_given = model_given || a.rest[i].rfind("--model.", 0) == 0 || a.rest[i] == "--config";
  if (model_given) o.model = run_config(a);
  if (rank == 0) std::printf("loom-plan calibrate: %d rank(s), GEMMs in %s\n", ranks, o.precision.c_str());
  const Cluster cl = calibrate_this_machine(o);
  if (rank == 0) {
    if (a.output.empty())
      std::cout << to_json(cl);
    else {
      std::ofstream out(a.output);
      LOOM_CHECK(out.good(), "check the directory exists", "cannot write '{}'", a.output);
      out << to_json(cl);
      std::printf("wrote %s\n", a.output.c_str());
    }
  }
  MPI_Finalize();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  try {
    PlanArgs a = split_args(argc, argv);
    if (a.help) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (cmd == "predict") return predict_cmd(a);
    if (cmd == "search") return search_cmd(a);
    if (cmd == "validate") return validate_cmd(a);
    if (cmd == "calibrate") return calibrate_cmd(a);
    std::fprintf(stderr, "loom-plan: unknown command '%s'\n%s", cmd.c_str(), kUsage);
    return 2;
  } catch (const loom::Error& e) {
    std::fprintf(stderr, "loom-plan: error: %s\n", e.full_message().c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "loom-plan: error: %s\n", e.what());
    return 2;
  }
}
