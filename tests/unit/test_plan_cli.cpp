// tests/unit/test_plan_cli.cpp — the loom-plan program: predict takes loom-train's own
// options (and --config files), search prints a ranked table and a CSV of every layout with
// the reasons, validate prints the report card; bad layouts and missing options end with
// exit code 2 and a message naming the option.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "programs.h"
#include "temp_dir.h"

namespace loom {
namespace {

const std::string kA100 = std::string(" --cluster ") + LOOM_SOURCE_DIR + "/plan/clusters/a100-80gb.json";
const std::string kGpt3 =
    " --model.layers 96 --model.channels 12288 --model.heads 96 --model.vocab 51200 --model.seq_len 2048"
    " --train.precision bf16 --train.micro_batch 1";

TEST(PlanCli, PredictTakesLoomTrainOptions) {
  const auto r =
      test::run_program("loom-plan", "predict" + kA100 + kGpt3 +
                                         " --train.global_batch 64 --parallel.tp 8 --parallel.pp 8"
                                         " --parallel.sequence_parallel --train.recompute attention");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* want :
       {"step time", "tokens/s", "MFU", "time split", "pp bubble", "memory", "activations"})
    EXPECT_NE(r.output.find(want), std::string::npos) << want << "\n" << r.output;
}

TEST(PlanCli, PredictReadsAConfigFile) {
  test::TempDir dir("plan");
  const auto ini = dir.path / "run.ini";
  std::ofstream(ini) << "[model]\nlayers = 4\nchannels = 256\nheads = 4\nvocab = 1000\nseq_len = 128\n"
                        "[train]\nglobal_batch = 8\nmicro_batch = 2\n[parallel]\ntp = 2\n";
  const auto r = test::run_program("loom-plan", "predict" + kA100 + " --config " + ini.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("dp 1 tp 2 pp 1"), std::string::npos) << r.output;
}

TEST(PlanCli, TakesLoomTrainsPlanClusterOption) {  // a loom-train command line with --plan.cluster plans as is
  const auto r = test::run_program("loom-plan", std::string("predict --plan.cluster ") + LOOM_SOURCE_DIR +
                                                    "/plan/clusters/a100-80gb.json --model.vocab 1000 --model.layers 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("cluster      DGX A100 80GB"), std::string::npos) << r.output;
}

TEST(PlanCli, BadLayoutsAndMissingOptionsAreNamed) {
  auto r =
      test::run_program("loom-plan", "predict" + kA100 + kGpt3 + " --train.global_batch 64 --parallel.tp 7");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("model.heads (96) is not divisible by parallel.tp (7)"), std::string::npos)
      << r.output;
  r = test::run_program("loom-plan", "predict" + kA100 + " --model.layers 2");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("model.vocab"), std::string::npos) << r.output;
  r = test::run_program("loom-plan", "predict --model.vocab 100");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--cluster is required"), std::string::npos) << r.output;
  r = test::run_program("loom-plan", "search" + kA100 + " --model.vocab 100");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--world"), std::string::npos) << r.output;
}

TEST(PlanCli, SearchRanksAndWritesEveryLayoutAsCsv) {
  test::TempDir dir("plan");
  const auto csv = dir.path / "layouts.csv";
  const auto r =
      test::run_program("loom-plan", "search" + kA100 + kGpt3 +
                                         " --train.global_batch 64 --world 64 --top 5 --csv " + csv.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("best: loom-train --parallel.tp"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rejected for memory"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rejected for divisibility"), std::string::npos) << r.output;
  std::ifstream in(csv);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_EQ(line.rfind("dp,tp,pp,virtual_stages,micro_batch,recompute", 0), 0u) << line;
  int rows = 0, valid = 0, with_reason = 0;
  while (std::getline(in, line)) {
    ++rows;
    std::stringstream fields(line);
    std::string f;
    for (int i = 0; i < 9; ++i) std::getline(fields, f, ',');
    if (f == "1")
      ++valid;
    else if (line.find("divisibility: ") != std::string::npos || line.find("memory: ") != std::string::npos)
      ++with_reason;
  }
  EXPECT_GT(valid, 0);
  EXPECT_EQ(valid + with_reason, rows);
}

TEST(PlanCli, ValidatePrintsTheReportCard) {
  const auto r = test::run_program(
      "loom-plan", "validate" + kA100 + " --h100-cluster " + LOOM_SOURCE_DIR + "/plan/clusters/h100-80gb.json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("mean |error| 2.96 %, worst 6.25 %"), std::string::npos) << r.output;
  // Megatron-LM's H100 weak-scaling table (docs/scaling.md).
  EXPECT_NE(r.output.find("mean |error| 7.82 %, worst 27.45 % (relative, of MFU)"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace loom
