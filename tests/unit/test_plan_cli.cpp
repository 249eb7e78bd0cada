// tests/unit/test_plan_cli.cpp — the loom-plan program: predict takes loom-train's own
// options (and --config files), search prints a ranked table and a CSV of every layout with
// the reasons, validate prints the report card, calibrate writes a cluster file of this
// machine that predict takes; bad layouts and missing options end with exit code 2 and a
// message naming the option.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

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
  EXPECT_NE(r.output.find("mean |error| 5.14 %, worst 9.00 % (relative, of MFU)"), std::string::npos)
      << r.output;
}

TEST(PlanCli, CalibrateMeasuresThisMachineAndPredictWithIt) {
  // One rank, one thread (no mpirun: the links are placeholders). Given a model, the file holds
  // that model's GEMM shapes (here qkv forward: micro-batch 2 x seq 64 = 128 rows, 192 = 3 x 64
  // columns, K 64) and its attention shape next to the fixed grids; every rate is positive.
  ::setenv("OMP_NUM_THREADS", "1", 1);
  test::TempDir dir("plan-calibrate");
  const std::string file = (dir.path / "this.json").string();
  const std::string model =
      " --model.layers 2 --model.channels 64 --model.heads 4 --model.vocab 256 --model.seq_len 64"
      " --train.micro_batch 2 --train.global_batch 4";
  auto r = test::run_program("loom-plan", "calibrate --output " + file + model);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(file);
  const auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j.at("device"), "cpu");
  // HDF5's first use is measured (its code alone is MiB); MPI_Iallreduce's needs two ranks.
  EXPECT_GT(j.at("hdf5_resident_MiB").get<double>(), 0.5);
  EXPECT_FALSE(j.contains("iallreduce_temp_per_byte"));
  EXPECT_GT(j.at("memory_efficiency").get<double>(), 0);
  EXPECT_LE(j.at("memory_efficiency").get<double>(), 1);
  // qkv's three passes: forward (128, 192, 64), dX (128, 64, 192), dW (192, 64, 128).
  bool qkv = false, qkv_dx = false, qkv_dw = false;
  for (const auto& g : j.at("gemm_rates")) {
    EXPECT_GT(g.at("TFLOP_per_s").get<double>(), 0);
    const std::string pass = g.at("pass");
    qkv = qkv || (g.at("m") == 128 && g.at("n") == 192 && g.at("k") == 64 && pass == "forward");
    qkv_dx = qkv_dx || (g.at("m") == 128 && g.at("n") == 64 && g.at("k") == 192 && pass == "dx");
    qkv_dw = qkv_dw || (g.at("m") == 192 && g.at("n") == 64 && g.at("k") == 128 && pass == "dw");
  }
  EXPECT_TRUE(qkv && qkv_dx && qkv_dw) << "the model's qkv GEMM was not measured in all three passes";
  int own = 0;
  for (const auto& a : j.at("attention_rates")) {
    EXPECT_GT(a.at("forward_TFLOP_per_s").get<double>(), 0);
    EXPECT_GT(a.at("backward_TFLOP_per_s").get<double>(), 0);
    own += a.at("s") == 64 && a.at("d") == 16 && a.at("causal") == true;
  }
  EXPECT_EQ(own, 1) << "the model's attention shape (s 64, d 16, causal) was not measured";
  EXPECT_EQ(j.at("attention_rates").size(), 19u);  // 3 s x 3 d x 2 masks + the model's
  r = test::run_program("loom-plan", "predict --cluster " + file + model);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("step time"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace loom
