// tests/unit/test_cli_checkpoint.cpp — checkpoints as a user meets them: a run directory
// belongs to one run (refused, overwritten, locked, unwritable), damaged checkpoints are
// found and skipped, a model that does not fit is refused by field, SIGTERM / SIGUSR1 and
// a kill in the middle of a save, pruning, loom-ckpt, and h5py reading the index without loom.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "io/checkpoint_files.h"
#include "io/weights_file.h"
#include "launch/run_dir.h"
#include "programs.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using loom::test::run_program;
using testing::HasSubstr;
using testing::Not;

extern char** environ;

namespace {

// A process started in the background, its output going to a file.
struct Background {
  pid_t pid = -1;
  std::string log;

  Background(const std::vector<std::string>& argv, const std::string& log_path) : log(log_path) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    if (posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ) != 0) pid = -1;
    posix_spawn_file_actions_destroy(&fa);
  }
  // The exit code (128 + signal when killed by one), or -1 after killing it when it did
  // not end within `seconds`.
  int wait(double seconds) {
    const auto t0 = std::chrono::steady_clock::now();
    while (running()) {
      if (std::chrono::steady_clock::now() - t0 > std::chrono::duration<double>(seconds)) {
        stop(SIGKILL);
        while (running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
  }
  void stop(int sig) {
    if (!exited_ && pid > 0) kill(pid, sig);  // never kill(-1, ...)
  }
  std::string output() const { return loom::test::read_file(log); }
  bool running() {
    if (exited_ || pid <= 0) return false;
    exited_ = waitpid(pid, &status_, WNOHANG) == pid;
    return !exited_;
  }
  ~Background() {
    stop(SIGKILL);
    while (running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }

private:
  bool exited_ = false;
  int status_ = 0;
};

// Polls `pred` every millisecond for up to `seconds`, while `job` runs.
template <class P>
bool eventually(Background& job, P pred, double seconds) {
  const auto t0 = std::chrono::steady_clock::now();
  while (!pred()) {
    if (!job.running() || std::chrono::steady_clock::now() - t0 > std::chrono::duration<double>(seconds)) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

std::size_t metric_lines(const fs::path& p) {
  std::ifstream in(p);
  std::size_t n = 0;
  for (std::string l; std::getline(in, l);) n += !l.empty();
  return n;
}

std::string latest(const fs::path& run) {
  std::ifstream in(run / "latest");
  std::string s;
  std::getline(in, s);
  return s;
}

class CheckpointCli : public testing::Test {
protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("loom_ckpt_cli_" + std::to_string(::getpid()));
    const auto r = loom::test::make_small_dataset(dir_);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string data() { return (dir_ / "data.h5").string(); }
  static fs::path run_dir(const std::string& name) { return dir_ / name; }
  // A tiny run's options in `run`, plus `more`; `model` replaces the model and batch.
  static std::string tiny(const fs::path& run, const std::string& more = "",
                          const std::string& model = "--model.layers 1 --model.channels 16 --model.heads 2 "
                                                     "--train.global_batch 4 --train.micro_batch 2") {
    return "--data.train " + data() + " " + model +
           " --model.seq_len 16 --train.eval_batches 1 --train.log_interval 100 --checkpoint.dir " + run.string() + " " +
           more;
  }
  static inline fs::path dir_;
};

}  // namespace

TEST_F(CheckpointCli, ARunDirectoryBelongsToOneRun) {
  const fs::path run = run_dir("owned");
  const auto first = run_program("loom-train", tiny(run, "--train.steps 4 --checkpoint.interval 2"));
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_EQ(latest(run), "step_00000004");
  const std::string weights = loom::test::read_file((run / "weights.h5").string());

  const auto second = run_program("loom-train", tiny(run, "--train.steps 4"));
  EXPECT_EQ(second.exit_code, 2) << second.output;
  EXPECT_THAT(second.output, HasSubstr("holds an earlier run: step_00000002, step_00000004, latest, weights.h5"));
  EXPECT_THAT(second.output, HasSubstr("--checkpoint.resume auto"));
  EXPECT_THAT(second.output, Not(HasSubstr("step     1")));
  EXPECT_EQ(loom::test::read_file((run / "weights.h5").string()), weights) << "the earlier run's weights changed";

  // Resuming a finished run: nothing left to train; the directory is kept as it was.
  const auto resumed = run_program("loom-train", tiny(run, "--train.steps 4 --checkpoint.resume auto"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_THAT(resumed.output, HasSubstr("resumed from " + (run / "step_00000004").string() + " at step 4"));

  const auto over = run_program("loom-train", tiny(run, "--train.steps 1 --checkpoint.overwrite"));
  ASSERT_EQ(over.exit_code, 0) << over.output;
  EXPECT_THAT(over.output, HasSubstr("checkpoint.overwrite: deleted"));
  EXPECT_FALSE(fs::exists(run / "step_00000002"));
  EXPECT_EQ(latest(run), "step_00000001");
}

TEST_F(CheckpointCli, ASecondConcurrentRunIsRefusedByTheLock) {
  const fs::path run = run_dir("locked");
  fs::create_directories(run);
  loom::RunDirLock held(run.string());  // as a running loom-train holds it
  const auto r = run_program("loom-train", tiny(run, "--train.steps 1"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("is in use by another run (pid " + std::to_string(getpid())));
}

TEST_F(CheckpointCli, AnUnwritableDirectoryIsNamedAndNothingIsWrittenBeforeValidation) {
  loom::test::write_file((dir_ / "plain").string(), "a file, not a directory");
  const auto r = run_program("loom-train", tiny(dir_ / "plain" / "run", "--train.steps 1"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("checkpoint.dir '" + (dir_ / "plain" / "run").string() + "' cannot be created"));
  // Bad data: refused before the run directory (or its config.ini) exists.
  const fs::path fresh = run_dir("never");
  const auto bad = run_program("loom-train", "--data.train " + (dir_ / "missing.h5").string() +
                                                 " --checkpoint.dir " + fresh.string());
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_FALSE(fs::exists(fresh / "config.ini"));
}

TEST_F(CheckpointCli, AModelThatDoesNotFitIsRefusedByField) {
  const fs::path run = run_dir("fit");
  ASSERT_EQ(run_program("loom-train", tiny(run, "--train.steps 2")).exit_code, 0);
  const auto r = run_program("loom-train", "--data.train " + data() +
                                               " --model.layers 1 --model.channels 32 --model.heads 2 --model.seq_len 16"
                                               " --train.steps 4 --train.global_batch 4 --train.micro_batch 2"
                                               " --checkpoint.dir " + run.string() + " --checkpoint.resume auto");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("model.channels: the checkpoint has 16, this run 32"));
  EXPECT_THAT(r.output, HasSubstr("model.ffn: the checkpoint has 64, this run 128"));
}

// A checkpoint written before the decoder options existed (its config has no norm, mlp,
// positions, ... and still the old "tokenizer": "bytes" key) resumes as the GPT-2 it is,
// and a run that asks for another part is refused by that field. Needs h5py (installed by
// launch/test.sh) to age the index.
TEST_F(CheckpointCli, AnOlderCheckpointConfigResumesWithTheDefaultsOfItsMissingFields) {
  const fs::path run = run_dir("older");
  ASSERT_EQ(run_program("loom-train", tiny(run, "--train.steps 2")).exit_code, 0);
  const std::string age =
      "python3 -c \"import h5py, json, sys\n"
      "f = h5py.File(sys.argv[1], 'r+')\n"
      "c = json.loads(f.attrs['config'])\n"
      "for k in ('norm', 'mlp', 'positions', 'rope_base', 'norm_eps', 'kv_heads'): c.pop(k)\n"
      "c['tokenizer'] = 'bytes'\n"
      "f.attrs['config'] = json.dumps(c)\" " +
      (run / "step_00000002" / "index.h5").string() + " 2>&1";
  ASSERT_EQ(std::system(age.c_str()), 0) << "needs python3 with h5py: " << age;
  const auto other = run_program("loom-train", tiny(run, "--train.steps 4 --checkpoint.resume auto --model.positions rope"));
  EXPECT_EQ(other.exit_code, 2) << other.output;
  EXPECT_THAT(other.output, HasSubstr("model.positions: the checkpoint has \"learned\", this run \"rope\""));
  const auto resumed = run_program("loom-train", tiny(run, "--train.steps 4 --checkpoint.resume auto"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_THAT(resumed.output, HasSubstr("at step 2"));
}

TEST_F(CheckpointCli, DamagedCheckpointsAreFoundAndAutoResumeFallsBack) {
  const fs::path run = run_dir("damaged");
  ASSERT_EQ(run_program("loom-train", tiny(run, "--train.steps 6 --checkpoint.interval 2")).exit_code, 0);
  const std::string shard = (run / "step_00000006" / "rank_00000.h5").string();
  std::string bytes = loom::test::read_file(shard);
  bytes[bytes.size() / 2] ^= 0x01;  // one bit
  loom::test::write_file(shard, bytes);
  const std::string truncated = (run / "step_00000004" / "rank_00000.h5").string();
  loom::test::write_file(truncated, loom::test::read_file(truncated).substr(0, 1000));

  const auto verify = run_program("loom-ckpt", "verify " + (run / "step_00000006").string());
  EXPECT_EQ(verify.exit_code, 1) << verify.output;
  EXPECT_THAT(verify.output, HasSubstr("shard '" + shard + "' is corrupt: CRC-32"));
  const auto verify4 = run_program("loom-ckpt", "verify " + (run / "step_00000004").string());
  EXPECT_EQ(verify4.exit_code, 1);
  EXPECT_THAT(verify4.output, HasSubstr("is 1000 bytes, the index says"));
  EXPECT_THAT(verify4.output, Not(HasSubstr("lock")));

  const auto explicit_path = run_program("loom-train", tiny(run_dir("damaged2"), "--train.steps 8 --checkpoint.resume " +
                                                                                     (run / "step_00000006").string()));
  EXPECT_EQ(explicit_path.exit_code, 2) << explicit_path.output;
  EXPECT_THAT(explicit_path.output, HasSubstr("cannot resume: shard '" + shard + "' is corrupt"));

  const auto fallback = run_program("loom-train", tiny(run, "--train.steps 8 --checkpoint.resume auto"));
  ASSERT_EQ(fallback.exit_code, 0) << fallback.output;
  EXPECT_THAT(fallback.output, HasSubstr("skipping " + (run / "step_00000006").string() + ": shard"));
  EXPECT_THAT(fallback.output, HasSubstr("skipping " + (run / "step_00000004").string()));
  EXPECT_THAT(fallback.output, HasSubstr("resumed from " + (run / "step_00000002").string() + " at step 2"));
  EXPECT_EQ(metric_lines(run / "metrics.jsonl"), 8u);  // steps 2..5 written again, not twice
}

// A diverging run stops naming the step; the save of the last good step (still being
// written in the background when the next step diverged) is committed and stays `latest`.
// Weights that are already inf are never saved at all.
TEST_F(CheckpointCli, DivergenceLeavesTheLastGoodCheckpointAsLatest) {
  const fs::path run = run_dir("diverged");
  const auto r = run_program("loom-train", tiny(run, "--train.steps 20 --checkpoint.interval 1 --optim.lr 1e30 "
                                                     "--optim.warmup_steps 0"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("step 2/20: the gradient norm is -nan: training diverged"));
  EXPECT_EQ(latest(run), "step_00000001");
  EXPECT_EQ(run_program("loom-ckpt", "verify " + run.string()).exit_code, 0);
  EXPECT_FALSE(fs::exists(run / "weights.h5"));

  const fs::path inf = run_dir("inf_weights");  // the first update overflows the weights to inf
  const auto r2 = run_program("loom-train", tiny(inf, "--train.steps 20 --checkpoint.interval 1 --optim.lr 3.4e38 "
                                                      "--optim.warmup_steps 0"));
  EXPECT_EQ(r2.exit_code, 2) << r2.output;
  EXPECT_THAT(r2.output, HasSubstr("holds inf at step 1: training diverged; this checkpoint is not saved"));
  EXPECT_FALSE(fs::exists(inf / "latest"));
  EXPECT_FALSE(fs::exists(inf / "step_00000001"));
  EXPECT_FALSE(fs::exists(inf / "step_00000001.tmp"));
}

TEST_F(CheckpointCli, KeepDeletesOlderCheckpointsOnlyAfterANewerOneIsComplete) {
  const fs::path run = run_dir("keep");
  const auto r = run_program("loom-train", tiny(run, "--train.steps 9 --checkpoint.interval 2 --checkpoint.keep 2"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<std::string> names;
  for (const auto& p : loom::list_checkpoints(run.string())) names.push_back(fs::path(p).filename().string());
  EXPECT_EQ(names, (std::vector<std::string>{"step_00000008", "step_00000009"}));
  EXPECT_EQ(latest(run), "step_00000009");
}

TEST_F(CheckpointCli, SigtermSavesACompleteCheckpointAndExitsCleanly) {
  const fs::path run = run_dir("sigterm");
  fs::create_directories(run);
  std::vector<std::string> argv = {loom::test::program("loom-train").string()};
  std::istringstream words(tiny(run, "--train.steps 100000 --checkpoint.interval 0 --train.eval_interval 0"));
  for (std::string w; words >> w;) argv.push_back(w);
  Background job(argv, (run / "log.txt").string());
  ASSERT_GT(job.pid, 0);
  ASSERT_TRUE(eventually(job, [&] { return metric_lines(run / "metrics.jsonl") >= 5; }, 60)) << job.output();
  job.stop(SIGTERM);
  EXPECT_EQ(job.wait(60), 0) << job.output();
  EXPECT_THAT(job.output(), HasSubstr("(signal 15); continue with --checkpoint.resume auto"));
  const std::string name = latest(run);
  ASSERT_FALSE(name.empty()) << job.output();
  const auto verify = run_program("loom-ckpt", "verify " + (run / name).string());
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_FALSE(fs::exists(run / "weights.h5"));  // not finished: only the checkpoint
  // Its step is the last step logged: nothing after it was lost, nothing half-done saved.
  EXPECT_EQ("step_" + fmt::format("{:08d}", metric_lines(run / "metrics.jsonl")), name);
}

// Jobs with a time limit: end cleanly with a checkpoint, and the next invocation continues
// the same schedule (train.steps is the whole run's).
TEST_F(CheckpointCli, ExitAfterMinutesOrStepsEndsWithACheckpointAndTheScheduleGoesOn) {
  const fs::path run = run_dir("exit_after");
  const auto first = run_program("loom-train", tiny(run, "--train.steps 6 --train.exit_after_minutes 0.00001"));
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_THAT(first.output, HasSubstr("stopped after step 1 of 6 (train.exit_after_minutes = 1e-05)"));
  EXPECT_EQ(latest(run), "step_00000001");
  EXPECT_FALSE(fs::exists(run / "weights.h5"));
  const auto second = run_program("loom-train", tiny(run, "--train.steps 6 --train.exit_after_steps 2 --checkpoint.resume auto"));
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_THAT(second.output, HasSubstr("stopped after step 3 of 6 (train.exit_after_steps = 2)"));
  const auto third = run_program("loom-train", tiny(run, "--train.steps 6 --train.exit_after_steps 2 --checkpoint.resume auto"));
  ASSERT_EQ(third.exit_code, 0) << third.output;
  EXPECT_THAT(third.output, HasSubstr("stopped after step 5 of 6"));
  const auto last = run_program("loom-train", tiny(run, "--train.steps 6 --train.exit_after_steps 2 --checkpoint.resume auto"));
  ASSERT_EQ(last.exit_code, 0) << last.output;  // the run's last step: it finishes, with weights
  EXPECT_THAT(last.output, Not(HasSubstr("stopped after")));
  EXPECT_TRUE(fs::exists(run / "weights.h5"));
  EXPECT_EQ(metric_lines(run / "metrics.jsonl"), 6u);
}

TEST_F(CheckpointCli, Sigusr1ThroughMpirunStopsEveryRank) {
  const fs::path run = run_dir("sigusr1");
  fs::create_directories(run);
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);  // as tests/mpi does (CI runs as root)
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  setenv("OMP_NUM_THREADS", "1", 1);
  std::vector<std::string> argv = {LOOM_MPIEXEC, "--oversubscribe", "-n", "2",
                                   loom::test::program("loom-train").string(), "--parallel.dp", "2"};
  std::istringstream words(tiny(run, "--train.steps 100000 --checkpoint.interval 0 --train.eval_interval 0"));
  for (std::string w; words >> w;) argv.push_back(w);
  Background job(argv, (run / "log.txt").string());
  ASSERT_GT(job.pid, 0);
  ASSERT_TRUE(eventually(job, [&] { return metric_lines(run / "metrics.jsonl") >= 3; }, 90)) << job.output();
  job.stop(SIGUSR1);  // to mpirun, which forwards it to the ranks
  EXPECT_EQ(job.wait(60), 0) << job.output();
  EXPECT_THAT(job.output(), HasSubstr("(signal 10)"));
  const auto verify = run_program("loom-ckpt", "verify " + run.string());
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_THAT(verify.output, HasSubstr("rank_00000.h5"));  // ZeRO-0: dp rank 0 writes everything
}

// SIGKILL while a save is being written (step_N.tmp exists): the previous checkpoint stays
// `latest`, intact, and auto-resume continues from it. A larger model makes each save
// take long enough to be caught in the act.
TEST_F(CheckpointCli, AKillInTheMiddleOfASaveLeavesThePreviousCheckpointIntact) {
  const fs::path run = run_dir("killed");
  fs::create_directories(run);
  const std::string model = "--model.layers 2 --model.channels 256 --model.heads 4 --train.global_batch 2 "
                            "--train.micro_batch 2";
  const std::string more = "--train.steps 100000 --checkpoint.interval 1 --train.eval_interval 0";
  std::vector<std::string> argv = {loom::test::program("loom-train").string()};
  std::istringstream words(tiny(run, more, model));
  for (std::string w; words >> w;) argv.push_back(w);
  Background job(argv, (run / "log.txt").string());
  ASSERT_GT(job.pid, 0);
  auto saving = [&] {
    std::error_code ec;
    if (!fs::exists(run / "latest", ec)) return false;  // at least one complete checkpoint first
    for (const auto& e : fs::directory_iterator(run, ec))
      if (e.path().extension() == ".tmp" && e.path().filename().string().rfind("step_", 0) == 0) return true;
    return false;
  };
  const bool caught = eventually(job, saving, 120);
  job.stop(SIGKILL);
  job.wait(30);
  ASSERT_TRUE(caught) << "never saw a save in progress\n" << job.output();
  const std::string name = latest(run);
  const auto verify = run_program("loom-ckpt", "verify " + (run / name).string());
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  const auto resumed =
      run_program("loom-train", tiny(run, more + " --checkpoint.resume auto --train.exit_after_steps 1", model));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_THAT(resumed.output, HasSubstr("resumed from " + (run / name).string()));
}

TEST_F(CheckpointCli, LoomCkptInspectsExportsAndGenerateAndInitReadCheckpoints) {
  const fs::path run = run_dir("tools");
  ASSERT_EQ(run_program("loom-train", tiny(run, "--train.steps 3")).exit_code, 0);
  const auto inspect = run_program("loom-ckpt", "inspect " + run.string() + " --all");
  ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
  for (const char* s : {"step 3 (updates applied 3)", "\"precision\":\"fp32\"", "h.0.attn.c_attn.weight", "[48, 16]",
                        "exp_avg_sq: 16 tensors"})
    EXPECT_THAT(inspect.output, HasSubstr(s));
  const std::string exported = (run / "exported.h5").string();
  ASSERT_EQ(run_program("loom-ckpt", "export " + run.string() + " --output " + exported).exit_code, 0);
  // The final checkpoint's master weights are the final weights file, bit for bit.
  const auto ra = loom::WeightsReader::open(exported), rb = loom::WeightsReader::open((run / "weights.h5").string());
  ASSERT_EQ(ra.names().size(), rb.names().size());
  for (const std::string& n : rb.names()) {
    std::int64_t count = 1;
    for (auto d : rb.shape(n)) count *= d;
    std::vector<float> x(static_cast<std::size_t>(count)), y(static_cast<std::size_t>(count));
    ra.read(n, rb.shape(n), x.data());
    rb.read(n, y.data(), count);
    EXPECT_EQ(x, y) << n;
  }
  const auto again = run_program("loom-ckpt", "export " + run.string() + " --output " + exported);
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_THAT(again.output, HasSubstr("already exists"));

  const auto gen = run_program("loom-generate", "--weights " + run.string() + " --prompt In --tokens 5 --seed 3");
  const auto gen_w = run_program("loom-generate", "--weights " + (run / "weights.h5").string() + " --prompt In --tokens 5 --seed 3");
  ASSERT_EQ(gen.exit_code, 0) << gen.output;
  EXPECT_EQ(gen.output, gen_w.output);
  const auto init = run_program("loom-train", "--data.train " + data() + " --model.init " + (run / "step_00000003").string() +
                                                  " --train.steps 1 --train.global_batch 2 --train.micro_batch 2"
                                                  " --checkpoint.dir " + run_dir("tools2").string());
  ASSERT_EQ(init.exit_code, 0) << init.output;
  EXPECT_THAT(init.output, HasSubstr("initialised from"));

  // Without loom: h5py reads the index's virtual datasets and they equal the weights file.
  const std::string py = "python3 " LOOM_SOURCE_DIR "/tests/unit/checkpoint_reference.py " + (run / "step_00000003").string() +
                         " " + (run / "weights.h5").string() + " 2>&1";
  FILE* p = popen(py.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  const int rc = pclose(p);
  if (std::getenv("CI") == nullptr && out.find("No module named") != std::string::npos) GTEST_SKIP() << out;
  EXPECT_EQ(WEXITSTATUS(rc), 0) << out;
  EXPECT_THAT(out, HasSubstr("h5py: 16 params equal weights.h5; exp_avg, exp_avg_sq present; step 3"));
}
