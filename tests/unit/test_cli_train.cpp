// tests/unit/test_cli_train.cpp — loom-train and loom-generate as a user runs them:
// bad input gets a clear message and exit code 2 (before any training), a tiny
// run trains, writes weights and metrics, and --model.init / loom-generate read them.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io/weights_file.h"
#include "programs.h"

namespace fs = std::filesystem;
using loom::test::run_program;
using testing::AllOf;
using testing::HasSubstr;

namespace {

// A small dataset made with loom-data, shared by the tests of this file.
class TrainCli : public testing::Test {
protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("loom_cli_" + std::to_string(::getpid()));
    const auto r = loom::test::make_small_dataset(dir_);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string data() { return (dir_ / "data.h5").string(); }
  // A tiny run's options, with `changes` ("--option value" pairs) replacing or adding to them.
  static std::string tiny(std::map<std::string, std::string> changes = {}) {
    std::map<std::string, std::string> o = {
        {"--data.train", data()},           {"--model.layers", "1"},        {"--model.channels", "16"},
        {"--model.heads", "2"},             {"--model.seq_len", "16"},      {"--train.global_batch", "4"},
        {"--train.micro_batch", "2"},       {"--train.eval_batches", "1"},  {"--checkpoint.dir", (dir_ / "run").string()}};
    for (auto& [k, v] : changes) o[k] = v;
    std::string args;
    for (auto& [k, v] : o) args += " " + k + "=" + v;
    return args;
  }
  // Exit code 2 and every fragment in the output.
  static void expect_rejected(std::map<std::string, std::string> changes, std::initializer_list<const char*> fragments) {
    const std::string args = tiny(changes);
    const auto r = run_program("loom-train", args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
    for (const char* f : fragments) EXPECT_THAT(r.output, HasSubstr(f)) << args;
    EXPECT_THAT(r.output, testing::Not(HasSubstr("step "))) << "trained despite bad input: " << args;
  }
  static inline fs::path dir_;
};

}  // namespace

TEST_F(TrainCli, UnknownOptionIsRejected) { expect_rejected({{"--model.layer", "3"}}, {"model.layer", "--help"}); }

TEST_F(TrainCli, NonPositiveSizesAreRejected) {
  expect_rejected({{"--model.layers", "0"}}, {"model.layers must be > 0"});
  expect_rejected({{"--model.channels", "-16"}}, {"model.channels must be > 0"});
  expect_rejected({{"--train.steps", "0"}}, {"train.steps must be > 0"});
  expect_rejected({{"--train.global_batch", "0"}}, {"train.global_batch"});
}

TEST_F(TrainCli, HeadsMustDivideChannels) {
  expect_rejected({{"--model.heads", "3"}}, {"model.heads (3) must divide model.channels (16)", "HINT"});
}

TEST_F(TrainCli, SequenceLongerThanTheModelsMaximum) {
  expect_rejected({{"--train.seq_len", "32"}}, {"train.seq_len (32) exceeds", "model.seq_len = 16"});
}

TEST_F(TrainCli, MicroBatchMustDivideGlobalBatch) {
  expect_rejected({{"--train.micro_batch", "3"}},
                  {"train.micro_batch (3) must divide the per-rank batch train.global_batch / parallel.dp = 4"});
}

TEST_F(TrainCli, MissingDatasetFile) {
  const auto r = run_program("loom-train", "--data.train /nonexistent/data.h5 --train.steps 1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("/nonexistent/data.h5"));
}

TEST_F(TrainCli, TruncatedDatasetFile) {
  const fs::path cut = dir_ / "cut.h5";
  fs::copy_file(data(), cut, fs::copy_options::overwrite_existing);
  fs::resize_file(cut, fs::file_size(cut) / 2);
  const auto r = run_program("loom-train", tiny({{"--data.train", cut.string()}}));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr(cut.string()));
}

TEST_F(TrainCli, SequenceParallelNeedsTensorParallelism) {
  expect_rejected({{"--parallel.sequence_parallel", "true"}},
                  {"sequence parallelism splits over tp; it needs parallel.tp > 1", "HINT"});
}

TEST_F(TrainCli, DatasetVocabularyLargerThanTheModels) {
  expect_rejected({{"--model.vocab", "100"}}, {"vocabulary (257) exceeds", "model.vocab = 100"});
}

TEST_F(TrainCli, TrainsWritesWeightsAndMetricsAndRestartsFromThem) {
  const auto r = run_program("loom-train", tiny({{"--train.steps", "4"}, {"--train.eval_interval", "2"}}));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("memory plan"));
  EXPECT_THAT(r.output, HasSubstr("MFU"));
  const fs::path run = dir_ / "run";
  ASSERT_TRUE(fs::exists(run / "weights.h5"));
  std::ifstream metrics(run / "metrics.jsonl");
  std::string line;
  int lines = 0, with_val = 0;
  while (std::getline(metrics, line)) {
    ++lines;
    for (const char* key : {"\"step\"", "\"loss\"", "\"lr\"", "\"grad_norm\"", "\"tokens_per_s\"", "\"mfu\"",
                            "\"t_compute\"", "\"t_tp\"", "\"t_pp\"", "\"t_dp\""})
      EXPECT_THAT(line, HasSubstr(key));
    with_val += line.find("\"val_loss\"") != std::string::npos;
    // The time split adds up: communication never exceeds the step (evaluation is timed apart).
    const auto rec = nlohmann::json::parse(line);
    const double comm = rec["t_tp"].get<double>() + rec["t_pp"].get<double>() + rec["t_dp"].get<double>();
    EXPECT_LE(comm, rec["t_step"].get<double>()) << line;
    EXPECT_GE(rec["t_compute"].get<double>(), 0.0) << line;
  }
  EXPECT_EQ(lines, 4);
  EXPECT_EQ(with_val, 2);

  // Transfer: start from those weights; the architecture comes from the file.
  const auto again = run_program("loom-train", "--data.train " + data() + " --model.init " + (run / "weights.h5").string() +
                                                   " --train.steps 1 --train.global_batch 2 --train.micro_batch 2"
                                                   " --checkpoint.dir " + (dir_ / "run2").string());
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_THAT(again.output, HasSubstr("initialised from"));
  EXPECT_THAT(again.output, HasSubstr("channels = 16"));

  const auto gen = run_program("loom-generate", "--weights " + (run / "weights.h5").string() + " --prompt In --tokens 20");
  ASSERT_EQ(gen.exit_code, 0) << gen.output;
  EXPECT_GE(gen.output.size(), 20u);
}

TEST_F(TrainCli, WeightsOfAnotherArchitectureAreRefusedByName) {
  const fs::path other = dir_ / "other.h5";
  const std::vector<float> w(4, 0.5f);
  loom::write_weights(other.string(), {{"encoder.weight", {2, 2}, w.data()}},
                R"({"architecture": "bert", "layers": 1, "channels": 16, "heads": 2, "ffn": 64, "vocab": 257,
                    "seq_len": 16})");
  const auto train = run_program("loom-train", tiny({{"--model.init", other.string()}}));
  EXPECT_EQ(train.exit_code, 2) << train.output;
  EXPECT_THAT(train.output, AllOf(HasSubstr("'bert'"), HasSubstr("gpt2")));
  const auto gen = run_program("loom-generate", "--weights " + other.string() + " --prompt In --tokens 2");
  EXPECT_EQ(gen.exit_code, 2) << gen.output;
  EXPECT_THAT(gen.output, AllOf(HasSubstr("'bert'"), HasSubstr("gpt2")));
}

TEST_F(TrainCli, ConfigFileSectionsAndCommandLineOverrides) {
  const fs::path ini = dir_ / "run.ini";
  std::ofstream(ini) << "[model]\nlayers = 1\nchannels = 16\nheads = 4\nseq_len = 16\n\n"
                        "[train]\nsteps = 1\nglobal_batch = 2\nmicro_batch = 2\neval_batches = 1\n\n"
                        "[optim]\nlr = 0.005\n";
  const auto r = run_program("loom-train", "--config " + ini.string() + " --model.heads 2 --data.train " + data() +
                                               " --checkpoint.dir " + (dir_ / "run3").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("heads = 2"));       // the command line wins
  EXPECT_THAT(r.output, HasSubstr("channels = 16"));   // from the file
  EXPECT_THAT(r.output, HasSubstr("lr = 0.005"));
  std::ifstream saved(dir_ / "run3" / "config.ini");
  const std::string text((std::istreambuf_iterator<char>(saved)), std::istreambuf_iterator<char>());
  EXPECT_THAT(text, HasSubstr("[model]"));
  EXPECT_THAT(text, HasSubstr("heads = 2"));

  const auto bad = run_program("loom-train", "--config " + (dir_ / "missing.ini").string());
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.output, HasSubstr("missing.ini"));
}

TEST_F(TrainCli, HelpListsOptionsBySection) {
  const auto r = run_program("loom-train", "--help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* s : {"[model]", "[train]", "[optim]", "[data]", "[checkpoint]", "[log]", "--model.layers",
                        "--optim.warmup_steps", "--train.micro_batch"})
    EXPECT_THAT(r.output, HasSubstr(s));
}

namespace {
std::vector<nlohmann::json> read_metrics(const fs::path& file) {
  std::ifstream in(file);
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}
}  // namespace

TEST_F(TrainCli, PrecisionAndLossScaleOptionsAreChecked) {
  expect_rejected({{"--train.precision", "fp8"}}, {"train.precision must be fp32, bf16 or fp16", "fp8"});
  expect_rejected({{"--parallel.grad_reduce_dtype", "int8"}}, {"parallel.grad_reduce_dtype", "int8"});
  expect_rejected({{"--optim.loss_scale_backoff", "2"}}, {"optim.loss_scale_backoff", "(0, 1)"});
  expect_rejected({{"--optim.min_loss_scale", "1e9"}}, {"optim.min_loss_scale", "min <= initial"});
}

// fp16 with a loss scale far too large: every gradient overflows, each step is skipped
// (the weights stay exactly the initial ones), the scale halves per step; once it fits,
// training proceeds, the scale grows back after loss_scale_window good steps, and the
// loss falls.
TEST_F(TrainCli, Fp16OverflowSkipsStepsLowersTheScaleAndRecovers) {
  const fs::path run = dir_ / "fp16";
  const auto all_skipped = run_program(
      "loom-train", tiny({{"--train.precision", "fp16"}, {"--optim.initial_loss_scale", "1e30"},
                          {"--train.steps", "3"}, {"--checkpoint.dir", run.string()}}) +
                     " --checkpoint.save_init");
  ASSERT_EQ(all_skipped.exit_code, 0) << all_skipped.output;
  EXPECT_THAT(all_skipped.output, HasSubstr("skipped (inf/NaN gradient)"));
  for (const auto& rec : read_metrics(run / "metrics.jsonl")) EXPECT_TRUE(rec["skipped"].get<bool>()) << rec.dump();
  const auto init = loom::WeightsReader::open((run / "init.h5").string());
  const auto last = loom::WeightsReader::open((run / "weights.h5").string());
  for (const std::string& name : init.names()) {
    std::int64_t n = 1;
    for (auto d : init.shape(name)) n *= d;
    std::vector<float> a(static_cast<std::size_t>(n)), b(static_cast<std::size_t>(n));
    init.read(name, a.data(), n);
    last.read(name, b.data(), n);
    EXPECT_EQ(a, b) << name << " changed although every step was skipped";
  }

  const auto recovers = run_program(
      "loom-train", tiny({{"--train.precision", "fp16"}, {"--optim.initial_loss_scale", "1e12"},
                          {"--optim.loss_scale_window", "5"}, {"--train.steps", "60"}, {"--optim.lr", "3e-3"},
                          {"--train.log_interval", "100"}, {"--checkpoint.dir", run.string()}}) +
                     " --checkpoint.overwrite");  // the same directory again: start over
  ASSERT_EQ(recovers.exit_code, 0) << recovers.output;
  const auto rows = read_metrics(run / "metrics.jsonl");
  ASSERT_EQ(rows.size(), 60u);
  EXPECT_TRUE(rows[0]["skipped"].get<bool>());
  EXPECT_EQ(rows[0]["loss_scale"].get<double>(), double(1e12f));  // the scale is an f32
  int skipped = 0, grown = 0;
  std::vector<double> applied;
  for (std::size_t i = 0; i + 1 < rows.size(); ++i) {
    const double s = rows[i]["loss_scale"].get<double>(), next = rows[i + 1]["loss_scale"].get<double>();
    if (rows[i]["skipped"].get<bool>()) {
      ++skipped;
      EXPECT_EQ(next, s * 0.5) << "step " << i << ": a skipped step halves the scale";
    } else {
      applied.push_back(rows[i]["loss"].get<double>());
      EXPECT_TRUE(next == s || next == 2 * s) << "step " << i;
      grown += next == 2 * s;
    }
  }
  EXPECT_GE(skipped, 10);  // 1e12 down to below ~1e7 takes many halvings
  EXPECT_GE(grown, 1);     // and after 5 good steps it doubles again
  ASSERT_GE(applied.size(), 20u);
  EXPECT_LT(applied.back(), applied.front() - 0.5) << "the loss keeps falling after the overflow";
}

TEST_F(TrainCli, Bf16TrainsAndPrintsThePrecisionInThePlan) {
  // Its own run directory: a run directory belongs to one run, and other tests train in `run`.
  const auto r = run_program("loom-train", tiny({{"--train.precision", "bf16"}, {"--train.steps", "2"},
                                                 {"--checkpoint.dir", (dir_ / "bf16").string()}}));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, AllOf(HasSubstr("parameters (bf16)"), HasSubstr("master weights (f32)"),
                              HasSubstr("gradients (f32)"), HasSubstr("bf16 gemm peak")));
}

// The issue's acceptance check for mixed precision: a small model on real text (the King
// James Bible's Genesis, from Debian's bible-kjv, which launch/install-deps.sh installs for
// the quickstart) trained 300 steps in fp32 and in bf16 from the same seed and batches: the
// bf16 loss curve stays within 2% of the fp32 one, and both learn. Curves, not single steps:
// both runs see the same batches, but in the first 40 steps (the loss falls 5.6 -> 3.1 with
// spikes) a spike can come a step earlier in one run, and single steps then differ by up to
// 11%; the 20-step running means differ by at most ~1% (measured when written).
TEST_F(TrainCli, Bf16TracksTheFp32LossOnRealTextOver300Steps) {
  const fs::path text = dir_ / "genesis.txt";
  ASSERT_EQ(std::system(("bible Gen1:1-Gen50:26 > " + text.string() + " 2>/dev/null").c_str()), 0)
      << "needs the `bible` program (Debian package bible-kjv)";
  ASSERT_GT(fs::file_size(text), 100000u);
  const fs::path h5 = dir_ / "genesis.h5";
  const auto made = run_program("loom-data", "--quiet --input " + text.string() + " --output " + h5.string());
  ASSERT_EQ(made.exit_code, 0) << made.output;
  std::vector<double> loss[2];
  const char* precision[2] = {"fp32", "bf16"};
  for (int k = 0; k < 2; ++k) {
    const fs::path run = dir_ / (std::string("track_") + precision[k]);
    const auto r = run_program(
        "loom-train", "--data.train " + h5.string() + " --model.layers 2 --model.channels 64 --model.heads 4" +
                          " --model.seq_len 64 --train.steps 300 --train.global_batch 8 --train.micro_batch 8" +
                          " --train.eval_interval 0 --train.log_interval 1000 --optim.lr 3e-3 --optim.warmup_steps 20" +
                          " --train.precision " + precision[k] + " --checkpoint.dir " + run.string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    for (const auto& rec : read_metrics(run / "metrics.jsonl")) loss[k].push_back(rec["loss"].get<double>());
    ASSERT_EQ(loss[k].size(), 300u);
  }
  auto running_mean = [](const std::vector<double>& v, std::size_t s) {
    const std::size_t first = s >= 19 ? s - 19 : 0;
    double sum = 0;
    for (std::size_t i = first; i <= s; ++i) sum += v[i];
    return sum / double(s - first + 1);
  };
  double worst = 0;
  std::size_t at = 0;
  for (std::size_t s = 0; s < 300; ++s) {
    const double a = running_mean(loss[0], s), b = running_mean(loss[1], s);
    const double d = std::abs(b - a) / a;
    if (d > worst) worst = d, at = s;
  }
  EXPECT_LE(worst, 0.02) << "bf16's 20-step mean loss drifts from fp32's at step " << at;
  EXPECT_LT(loss[0].back(), loss[0].front() - 1.5) << "fp32 did not learn";
  EXPECT_LT(loss[1].back(), loss[1].front() - 1.5) << "bf16 did not learn";
  std::printf("bf16 vs fp32 over 300 steps: worst relative difference of the 20-step mean loss %.4f at step %zu; "
              "final %.4f vs %.4f\n",
              worst, at, loss[1].back(), loss[0].back());
}
