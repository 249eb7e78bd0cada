// tests/unit/test_cli_faults.cpp — faults become messages: a diverging run stops naming
// its step (and writes no weights), non-finite options and weights are refused by name,
// and the smaller traps (a --config directory, a truncated HDF5 file, loom-data writing
// over its input, --model.init against explicit model options, nonsense sampling options)
// each get a message and exit code 2.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "io/weights_file.h"
#include "programs.h"

namespace fs = std::filesystem;
using loom::test::run_program;
using testing::AllOf;
using testing::HasSubstr;
using testing::Not;

namespace {

class Faults : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("loom_faults_" + std::to_string(::getpid()));
    const auto r = loom::test::make_small_dataset(dir_);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string data() { return (dir_ / "data.h5").string(); }
  static fs::path run_dir(const std::string& name) { return dir_ / name; }
  // A tiny run writing into run_dir(name), with `changes` replacing or adding options.
  static std::string tiny(const std::string& name, std::map<std::string, std::string> changes = {}) {
    std::map<std::string, std::string> o = {{"--data.train", data()},
                                            {"--model.layers", "1"},
                                            {"--model.channels", "16"},
                                            {"--model.heads", "2"},
                                            {"--model.seq_len", "16"},
                                            {"--train.global_batch", "4"},
                                            {"--train.micro_batch", "2"},
                                            {"--train.eval_batches", "1"},
                                            {"--checkpoint.dir", run_dir(name).string()}};
    for (auto& [k, v] : changes) o[k] = v;
    std::string args;
    for (auto& [k, v] : o) args += " " + k + "=" + v;
    return args;
  }
  // Exit code 2, every fragment in the output, and no step trained.
  static void expect_rejected(std::map<std::string, std::string> changes,
                              std::initializer_list<const char*> fragments) {
    const std::string args = tiny("rejected", changes);
    const auto r = run_program("loom-train", args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
    for (const char* f : fragments) EXPECT_THAT(r.output, HasSubstr(f)) << args;
    EXPECT_THAT(r.output, Not(HasSubstr("step "))) << "trained despite bad input: " << args;
  }
  static inline fs::path dir_;
};

}  // namespace

// A learning rate of 1e30 sends the weights to ~1e30 on the first update; the next
// forward overflows. The run must stop there, name the step and write no weights.
TEST_F(Faults, DivergedFp32RunStopsNamingTheStepAndWritesNoWeights) {
  for (const char* precision : {"fp32", "bf16"}) {
    SCOPED_TRACE(precision);
    const std::string name = std::string("diverge_") + precision;
    const auto r = run_program("loom-train", tiny(name, {{"--optim.lr", "1e30"},
                                                         {"--optim.warmup_steps", "0"},
                                                         {"--train.steps", "10"},
                                                         {"--train.precision", precision}}));
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_THAT(r.output, AllOf(HasSubstr("error: step "), HasSubstr("/10: the "),
                                HasSubstr("training diverged"), HasSubstr("lower optim.lr")));
    EXPECT_THAT(r.output, testing::ContainsRegex("the (loss|gradient norm) is -?(nan|inf)"));
    EXPECT_FALSE(fs::exists(run_dir(name) / "weights.h5")) << "a diverged run saved its weights";
    EXPECT_THAT(r.output, Not(HasSubstr("wrote ")));
  }
}

// fp16 with the dynamic scale already at its floor: the 16-bit weights overflow after the
// first update, every later step overflows at the minimum scale, and after
// LossScaler::kMaxSkipsAtMin (3) of them the run stops instead of skipping forever.
TEST_F(Faults, Fp16OverflowsAtTheMinimumScaleStopTheRun) {
  const auto r = run_program("loom-train", tiny("diverge_fp16", {{"--optim.lr", "1e30"},
                                                                 {"--optim.warmup_steps", "0"},
                                                                 {"--train.steps", "20"},
                                                                 {"--train.precision", "fp16"},
                                                                 {"--optim.initial_loss_scale", "1"},
                                                                 {"--optim.min_loss_scale", "1"}}));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, AllOf(HasSubstr("overflowed on 3 steps in a row at optim.min_loss_scale = 1"),
                              HasSubstr("training diverged"), HasSubstr("/20")));
  EXPECT_THAT(r.output, HasSubstr("skipped (inf/NaN gradient)"));  // skipping still comes first
  EXPECT_FALSE(fs::exists(run_dir("diverge_fp16") / "weights.h5"));
}

TEST_F(Faults, NonFiniteOptimizerOptionsAreRefusedByName) {
  expect_rejected({{"--optim.lr", "inf"}}, {"optim.lr must be a finite number, got inf"});
  expect_rejected({{"--optim.lr", "nan"}}, {"optim.lr must be a finite number, got nan"});
  expect_rejected({{"--optim.min_lr", "nan"}}, {"optim.min_lr must be a finite number"});
  expect_rejected({{"--optim.warmup_start_lr", "inf"}}, {"optim.warmup_start_lr must be a finite number"});
  expect_rejected({{"--optim.clip_grad", "inf"}}, {"optim.clip_grad must be a finite number"});
  expect_rejected({{"--optim.weight_decay", "inf"}}, {"optim.weight_decay must be a finite number"});
  expect_rejected({{"--optim.loss_scale", "inf"}}, {"optim.loss_scale must be a finite number"});
}

// A weights file holding a NaN (here: a good file with one element replaced) is refused
// before training, naming the parameter and the file.
TEST_F(Faults, NonFiniteInitialWeightsAreRefusedNamingTheParameterAndFile) {
  const auto good = run_program("loom-train", tiny("nan_src", {{"--train.steps", "1"}}));
  ASSERT_EQ(good.exit_code, 0) << good.output;
  const auto reader = loom::WeightsReader::open((run_dir("nan_src") / "weights.h5").string());
  std::vector<std::vector<float>> values;
  std::vector<loom::NamedArray> arrays;
  const std::vector<std::string> names = reader.names();
  for (const std::string& name : names) {
    std::int64_t n = 1;
    for (auto d : reader.shape(name)) n *= d;
    values.emplace_back(static_cast<std::size_t>(n));
    reader.read(name, values.back().data(), n);
  }
  std::string victim;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (victim.empty() && names[i].find("c_fc.weight") != std::string::npos) {
      victim = names[i];
      values[i][5] = std::numeric_limits<float>::quiet_NaN();
    }
    arrays.push_back({names[i], reader.shape(names[i]), values[i].data()});
  }
  ASSERT_FALSE(victim.empty());
  const fs::path bad = dir_ / "nan_weights.h5";
  loom::write_weights(bad.string(), arrays, reader.config_json());
  const auto r = run_program("loom-train", tiny("nan_init", {{"--model.init", bad.string()}}));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output,
              AllOf(HasSubstr(bad.string()), HasSubstr("parameter '" + victim + "' holds nan at element 5")));
  EXPECT_THAT(r.output, Not(HasSubstr("step ")));
}

TEST_F(Faults, ConfigNamingADirectoryIsAnError) {
  const auto r = run_program("loom-train", "--config " + dir_.string() + " --data.train " + data());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output,
              AllOf(HasSubstr("--config '" + dir_.string() + "' is a directory"), Not(HasSubstr("step "))));
}

// A file cut in half: HDF5 says "truncated file" (with "sblock" in it, which once
// matched the file-locking hint). The message says truncated, with both sizes.
TEST_F(Faults, TruncatedDatasetSaysTruncatedNotLocking) {
  const fs::path cut = dir_ / "cut.h5";
  fs::copy_file(data(), cut, fs::copy_options::overwrite_existing);
  const auto full = fs::file_size(cut);
  fs::resize_file(cut, full / 2);
  const auto r = run_program("loom-train", tiny("cut", {{"--data.train", cut.string()}}));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("'" + cut.string() + "' is truncated (" + std::to_string(full / 2) +
                                  " bytes, HDF5 expected " + std::to_string(full) + ")"));
  EXPECT_THAT(r.output, HasSubstr("re-create it"));
  EXPECT_THAT(r.output, Not(HasSubstr("lock")));
}

TEST_F(Faults, LoomDataRefusesToOverwriteItsInputEvenWithForce) {
  const fs::path in = dir_ / "own.txt";
  std::ofstream(in) << "some text that must survive\n";
  const auto r =
      run_program("loom-data", "--quiet --force --input " + in.string() + " --output " + in.string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("is the input"));
  std::ifstream still(in);
  std::string line;
  std::getline(still, line);
  EXPECT_EQ(line, "some text that must survive");
  // Another name for the same file (through a directory) is the same file.
  const auto via = run_program("loom-data", "--quiet --force --input " + in.string() + " --output " +
                                                (dir_ / "." / "own.txt").string());
  EXPECT_EQ(via.exit_code, 2) << via.output;
  // A directory input holding the output, too.
  const fs::path sub = dir_ / "corpus";
  fs::create_directories(sub);
  std::ofstream(sub / "a.txt") << "text\n";
  const auto dir_in = run_program(
      "loom-data", "--quiet --force --input " + sub.string() + " --output " + (sub / "a.txt").string());
  EXPECT_EQ(dir_in.exit_code, 2) << dir_in.output;
  EXPECT_THAT(dir_in.output, HasSubstr("is the input"));
}

// --model.init takes the architecture from the file: an explicit model option that
// disagrees is refused naming both values; one that agrees is fine.
TEST_F(Faults, ModelInitRefusesExplicitModelOptionsThatDiffer) {
  const auto src = run_program("loom-train", tiny("init_src", {{"--train.steps", "1"}}));
  ASSERT_EQ(src.exit_code, 0) << src.output;
  const std::string weights = (run_dir("init_src") / "weights.h5").string();
  const auto differ =
      run_program("loom-train", tiny("init_differ", {{"--model.init", weights}, {"--model.layers", "3"}}));
  EXPECT_EQ(differ.exit_code, 2) << differ.output;
  EXPECT_THAT(differ.output, AllOf(HasSubstr("model.layers = 3 was given"), HasSubstr("model.layers = 1"),
                                   HasSubstr(weights)));
  const auto same =
      run_program("loom-train", tiny("init_same", {{"--model.init", weights}, {"--train.steps", "1"}}));
  EXPECT_EQ(same.exit_code, 0) << same.output;  // tiny() gives layers 1, channels 16, ...: all agree
}

TEST_F(Faults, GenerateRefusesNonsenseSamplingOptions) {
  const auto src = run_program("loom-train", tiny("gen_src", {{"--train.steps", "1"}}));
  ASSERT_EQ(src.exit_code, 0) << src.output;
  const std::string w = "--weights " + (run_dir("gen_src") / "weights.h5").string() + " --prompt In";
  const std::pair<const char*, const char*> cases[] = {
      {"--tokens 2 --top_k -1", "--top_k must be >= 0, got -1"},
      {"--tokens 2 --temperature -1", "--temperature must be a finite number >= 0"},
      {"--tokens 2 --temperature nan", "--temperature must be a finite number >= 0"},
      {"--tokens 2 --temperature inf", "--temperature must be a finite number >= 0"},
      {"--tokens -3", "--tokens must be >= 0, got -3"}};
  for (const auto& [args, message] : cases) {
    const auto r = run_program("loom-generate", w + " " + args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
    EXPECT_THAT(r.output, HasSubstr(message)) << args;
  }
}
