// tests/unit/test_cli_scaling.cpp — the scaling tools around loom-train (docs/scaling.md):
// loom-train --plan.cluster prints the performance model's prediction and the
// measured/predicted ratios and writes prediction.json; launch/report.py turns a run's
// metrics.jsonl into PNGs and TensorBoard event files (read back by
// tests/unit/tb_events_reference.py through the TFRecord framing and the Event protobuf);
// launch/scaling.py sweeps np 1 and 2 through mpirun into a CSV, a markdown table and plots.
// Needs Python matplotlib and tensorboardX (launch/test.sh installs them).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "programs.h"
#include "temp_dir.h"

namespace loom {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kSource = LOOM_SOURCE_DIR;
const std::string kCluster = kSource + "/plan/clusters/a100-80gb.json";
const std::string kTiny =
    " --model.layers 2 --model.channels 64 --model.heads 2 --model.seq_len 32 --train.global_batch 4"
    " --train.micro_batch 2 --train.eval_batches 1";

test::RunResult shell(const std::string& cmd) {
  test::RunResult r;
  FILE* p = popen(("timeout 300 " + cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  while (fgets(buf, sizeof buf, p)) r.output += buf;
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Without the Python packages (launch/test.sh installs them) the test skips, saying so; never on CI.
bool python_missing(const test::RunResult& r) {
  return std::getenv("CI") == nullptr && r.output.find("No module named") != std::string::npos;
}

void expect_png(const fs::path& p) {
  ASSERT_TRUE(fs::exists(p)) << p;
  EXPECT_GT(fs::file_size(p), 2000u) << p;
  std::ifstream f(p, std::ios::binary);
  char magic[8] = {};
  f.read(magic, 8);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG") << p;
}

std::vector<std::map<std::string, std::string>> read_csv(const fs::path& p) {
  std::ifstream in(p);
  std::string line;
  std::vector<std::string> header;
  std::vector<std::map<std::string, std::string>> rows;
  auto split = [](const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string f;
    while (std::getline(ss, f, ',')) out.push_back(f);
    if (!s.empty() && s.back() == ',') out.push_back("");
    return out;
  };
  auto next = [&] {  // Python's csv module ends lines with \r\n
    if (!std::getline(in, line)) return false;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return true;
  };
  if (next()) header = split(line);
  while (next()) {
    const auto f = split(line);
    std::map<std::string, std::string> row;
    for (std::size_t i = 0; i < header.size(); ++i) row[header[i]] = i < f.size() ? f[i] : "";
    rows.push_back(row);
  }
  return rows;
}

TEST(CliScaling, TrainPrintsThePredictionAndTheReportPlotsTheRun) {
  test::TempDir dir("scaling");
  ASSERT_EQ(test::make_small_dataset(dir.path).exit_code, 0);
  const fs::path run = dir.path / "run";
  const auto r =
      test::run_program("loom-train", "--data.train " + (dir.path / "data.h5").string() + kTiny +
                                          " --train.steps 3 --train.eval_interval 2 --checkpoint.dir " +
                                          run.string() + " --plan.cluster " + kCluster);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("predicted by the performance model for this layout on 'DGX A100 80GB"));
  EXPECT_THAT(r.output, HasSubstr("measured / predicted ('DGX A100 80GB"));
  EXPECT_THAT(r.output, HasSubstr("median of 2 step(s) after the first"));
  EXPECT_THAT(r.output, HasSubstr("cluster = " + kCluster));  // in the effective configuration
  const auto pred = nlohmann::json::parse(test::read_file((run / "prediction.json").string()));
  EXPECT_GT(pred["t_step"].get<double>(), 0);
  EXPECT_GT(pred["tokens_per_s"].get<double>(), 0);
  EXPECT_EQ(pred["layout"].get<std::string>().rfind("dp 1 tp 1 pp 1", 0), 0u) << pred.dump();
  const double parts = pred["t_compute"].get<double>() + pred["t_tp"].get<double>() +
                       pred["t_pp"].get<double>() + pred["t_dp"].get<double>();
  EXPECT_NEAR(parts, pred["t_step"].get<double>(), 1e-9 + 1e-6 * parts);

  // A missing cluster file stops the run, naming the option.
  const auto bad =
      test::run_program("loom-train", "--data.train " + (dir.path / "data.h5").string() + kTiny +
                                          " --train.steps 1 --checkpoint.dir " + (dir.path / "bad").string() +
                                          " --plan.cluster " + (dir.path / "nope.json").string());
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_THAT(bad.output, HasSubstr("plan.cluster"));

  const auto rep = shell("python3 " + kSource + "/launch/report.py " + run.string() + " --tensorboard");
  if (python_missing(rep)) GTEST_SKIP() << rep.output;
  ASSERT_EQ(rep.exit_code, 0) << rep.output;
  for (const char* png :
       {"loss.png", "lr.png", "grad_norm.png", "tokens_per_s.png", "mfu.png", "time_split.png"})
    expect_png(run / "report" / png);
  // The event file read back: every step's loss, the evaluations' val loss, the last loss equal to
  // metrics.jsonl's.
  const auto ev =
      shell("python3 " + kSource + "/tests/unit/tb_events_reference.py " + (run / "tensorboard").string());
  ASSERT_EQ(ev.exit_code, 0) << ev.output;
  std::istringstream lines(test::read_file((run / "metrics.jsonl").string()));
  std::string line, last;
  while (std::getline(lines, line)) last = line;
  const auto rec = nlohmann::json::parse(last);
  EXPECT_THAT(ev.output, HasSubstr(fmt::format("train/loss 3 3 {:.6g}\n", float(rec["loss"].get<double>()))));
  EXPECT_THAT(ev.output,
              HasSubstr(fmt::format("val/loss 2 3 {:.6g}\n", float(rec["val_loss"].get<double>()))));
  EXPECT_THAT(ev.output, HasSubstr("time/pp_s 3 3 "));
  EXPECT_THAT(ev.output, HasSubstr("predicted/step_s 3 3 "));

  // Not a metrics file: a message with a hint, no plots.
  std::ofstream(dir.file("junk.jsonl")) << "not json\n";
  const auto junk = shell("python3 " + kSource + "/launch/report.py " + dir.file("junk.jsonl"));
  EXPECT_NE(junk.exit_code, 0);
  EXPECT_THAT(junk.output, HasSubstr("HINT"));
}

TEST(CliScaling, SweepWritesCsvMarkdownAndPlots) {
  test::TempDir dir("scaling");
  ASSERT_EQ(test::make_small_dataset(dir.path).exit_code, 0);
  const fs::path out = dir.path / "sweep";
  // Through `loom-bench scaling`: it runs launch/scaling.py with its own build's binaries (no
  // --build-dir here); the redraw below calls the script directly.
  const auto r = shell(test::program("loom-bench").string() + " scaling --output " + out.string() +
                       " --mpirun " LOOM_MPIEXEC " --data " + (dir.path / "data.h5").string() +
                       " --model '--model.layers 2 --model.channels 64 --model.heads 2 --model.seq_len 32"
                       " --train.micro_batch 2' --global-batch 4 --steps 2 --nps 1,2 --layouts dp1,dp2,pp2"
                       " --mode both --cores 2 --cluster " +
                       kCluster);
  if (python_missing(r)) GTEST_SKIP() << r.output;
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("[1/6] strong np 1 dp1"));
  // It ran this build's loom-train (each run's log starts with its command line).
  EXPECT_THAT(test::read_file((out / "runs" / "strong-np1-dp1.log").string()),
              HasSubstr(test::program("loom-train").string()));
  EXPECT_THAT(r.output, HasSubstr("[6/6] weak np 2 pp2"));
  const auto rows = read_csv(out / "scaling.csv");
  ASSERT_EQ(rows.size(), 6u);
  const std::vector<std::tuple<std::string, std::string, std::string, std::string>> want = {
      {"strong", "1", "dp1", "4"}, {"strong", "2", "dp2", "4"}, {"strong", "2", "pp2", "4"},
      {"weak", "1", "dp1", "4"},   {"weak", "2", "dp2", "8"},   {"weak", "2", "pp2", "8"}};
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& row = rows[i];
    const auto& [mode, np, layout, gb] = want[i];
    EXPECT_EQ(row.at("mode"), mode);
    EXPECT_EQ(row.at("np"), np);
    EXPECT_EQ(row.at("layout"), layout);
    EXPECT_EQ(row.at("global_batch"), gb);
    EXPECT_EQ(row.at("threads"), np == "1" ? "2" : "1");
    EXPECT_EQ(row.at("status"), "ok");
    EXPECT_GT(std::stod(row.at("t_step")), 0);
    EXPECT_GT(std::stod(row.at("pred_t_step")), 0);
    const double parts = std::stod(row.at("t_compute")) + std::stod(row.at("t_tp")) +
                         std::stod(row.at("t_pp")) + std::stod(row.at("t_dp"));
    EXPECT_NEAR(parts, std::stod(row.at("t_step")), 1e-6 + 1e-3 * parts);
    EXPECT_NEAR(std::stod(row.at("error")),
                std::stod(row.at("t_step")) / std::stod(row.at("pred_t_step")) - 1, 1e-9);
  }
  EXPECT_GT(std::stod(rows[2].at("t_pp")), 0);  // pipeline waits show in the split
  const std::string md = test::read_file((out / "scaling.md").string());
  EXPECT_THAT(md, HasSubstr("| weak | 2 | dp2 | 1 | 8 |"));
  EXPECT_THAT(md, HasSubstr("Prediction error"));
  for (const char* png : {"throughput.png", "efficiency.png", "time_split.png"}) expect_png(out / png);

  // The report of a recorded sweep is redrawn from its CSV alone.
  const fs::path again = dir.path / "again";
  const auto re = shell("python3 " + kSource + "/launch/scaling.py --output " + again.string() +
                        " --from-csv " + (out / "scaling.csv").string());
  ASSERT_EQ(re.exit_code, 0) << re.output;
  EXPECT_EQ(test::read_file((again / "scaling.md").string()), md);
  for (const char* png : {"throughput.png", "efficiency.png", "time_split.png"}) expect_png(again / png);
}

}  // namespace
}  // namespace loom
