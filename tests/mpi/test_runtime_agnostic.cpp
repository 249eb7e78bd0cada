// tests/mpi/test_runtime_agnostic.cpp — the runtime is model-agnostic: a second,
// deliberately different model (tests/mpi/mlp_lm.h: MLP-only, untied embeddings, no
// tied groups, one gradient bucket per chunk) trains through the same Trainer, executor,
// gradient synchronisation and AdamW as GPT, and every layout the world size allows
// (dp, tp, pp, interleaved virtual stages, combined) reproduces its own single-rank run:
// losses, grad norms and the val loss to 1e-5 relative, every final weight tensor to 1e-5
// relative in norm. Also: plan equals allocation for this model, to the byte.
#include <cmath>

#include <gtest/gtest.h>
#include <mpi.h>

#include "backend/registry.h"
#include "io/data_loader.h"
#include "io/token_dataset.h"
#include "launch/trainer.h"
#include "parallel/local_communicator.h"
#include "core/rng.h"
#include "mlp_lm.h"

using namespace loom;
using loom::test::MlpLm;
using loom::test::MlpLmConfig;

namespace {

constexpr std::int64_t kT = 8;
const MlpLmConfig kModel{.layers = 8, .channels = 16, .ffn = 32, .vocab = 50};

int world_size() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

// A token stream with structure to learn: t' = (3 t + 7 + noise) mod 50.
std::vector<std::int32_t> stream(std::int64_t n, std::uint64_t seed) {
  std::vector<std::int32_t> t(static_cast<std::size_t>(n));
  std::int64_t x = 1;
  for (std::int64_t i = 0; i < n; ++i) t[std::size_t(i)] = std::int32_t(x = (3 * x + 7 + std::int64_t(rng_u64(seed, 0, i) % 3)) % 50);
  return t;
}

std::string dataset() {
  const std::string path = fmt::format("mlp_lm_data_np{}.h5", world_size());
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) {
    const auto train = stream(4000, 1), val = stream(600, 2);
    const std::vector<std::uint64_t> offsets{0};
    DatasetMeta meta;
    meta.vocab_size = 50;
    meta.eod_token = 49;
    write_token_dataset(path, train, offsets, val, offsets, meta, {.overwrite = Overwrite::yes});
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return path;
}

RunConfig run_config(int dp, int tp, int pp, int virtual_stages) {
  RunConfig c;
  c.train.steps = 8;
  c.train.global_batch = 8;
  c.train.micro_batch = 1;
  c.train.eval_batches = 1;
  c.optim.lr = 3e-2f;
  c.optim.warmup_steps = 2;
  c.parallel.tp = tp;
  c.parallel.pp = pp;
  c.parallel.dp = dp;
  c.parallel.virtual_stages = virtual_stages;
  return c;
}

struct Result {
  std::vector<double> loss, norm;
  double val = 0;
};

// Trains the model in `ctx`'s layout for the config's steps; `model` is built by the caller.
Result train(const RunConfig& cfg, ParallelContext& ctx, Backend& be, MlpLm& model, TimedCommunicator& tp,
             TimedCommunicator& pp, const std::string& data) {
  const TokenDataset train_set = TokenDataset::open(data, "train"), val_set = TokenDataset::open(data, "val");
  const DataLoader train_loader(train_set, kT, cfg.train.seed), val_loader(val_set, kT, cfg.train.seed);
  model.params().init(cfg.train.seed);
  Trainer trainer(cfg, ctx, be, model, tp, pp, train_loader, val_loader);
  Result r;
  for (std::int64_t s = 0; s < cfg.train.steps; ++s) {
    const StepRecord rec = trainer.step(s);
    r.loss.push_back(rec.loss);
    r.norm.push_back(rec.grad_norm);
  }
  r.val = trainer.evaluate().loss;
  return r;
}

double rel(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-12); }

void expect_same_run(int dp, int tp, int pp, int V) {
  SCOPED_TRACE(fmt::format("dp {} tp {} pp {} virtual stages {}", dp, tp, pp, V));
  const std::string data = dataset();
  auto be = make_backend(Device::cpu);
  // The single-rank reference, run by every rank alone.
  const RunConfig ref_cfg = run_config(1, 1, 1, 1);
  ParallelContext local = make_local_context();
  TimedCommunicator ltp(*local.tp), lpp(*local.pp);
  MlpLm ref(*be, kModel, 1, kT, ltp, 1, 0, Trainer::slots_for(Trainer::plan_for(ref_cfg, local), 1));
  const Result want = train(ref_cfg, local, *be, ref, ltp, lpp, data);
  EXPECT_LT(want.loss.back(), want.loss.front() - 0.2) << "the reference must learn something";

  const RunConfig cfg = run_config(dp, tp, pp, V);
  ParallelContext ctx = make_mpi_context(MPI_COMM_WORLD, {dp, tp, pp});
  TimedCommunicator ttp(*ctx.tp), tpp(*ctx.pp);
  MlpLm model(*be, kModel, 1, kT, ttp, pp, ctx.coord.pp, Trainer::slots_for(Trainer::plan_for(cfg, ctx), V));
  EXPECT_EQ(model.memory_plan().total(), be->live_bytes() - ref.memory_plan().total()) << "plan equals allocation";
  const Result got = train(cfg, ctx, *be, model, ttp, tpp, data);
  for (std::size_t s = 0; s < want.loss.size(); ++s) {
    EXPECT_LT(rel(got.loss[s], want.loss[s]), 1e-5) << "loss at step " << s;
    EXPECT_LT(rel(got.norm[s], want.norm[s]), 1e-5) << "grad norm at step " << s;
  }
  EXPECT_LT(rel(got.val, want.val), 1e-5) << "val loss";
  // Every local tensor against the matching slice of the reference's whole tensor.
  for (std::size_t i = 0; i < model.params().size(); ++i) {
    const ParamSpec& spec = model.params().spec(i);
    const std::vector<float> mine = model.params().read(i), whole = ref.params().read(ref.params().index(spec.name));
    double diff = 0, norm = 0;
    for (std::int64_t j = 0; j < spec.shape.numel(); ++j) {
      const double w = whole[std::size_t(global_index(spec, j))];
      diff += (mine[std::size_t(j)] - w) * (mine[std::size_t(j)] - w);
      norm += w * w;
    }
    EXPECT_LT(std::sqrt(diff / std::max(norm, 1e-30)), 1e-5) << spec.name;
  }
}

}  // namespace

TEST(RuntimeIsModelAgnostic, EveryLayoutOfAnUntiedMlpModelEqualsItsSingleRankRun) {
  const int n = world_size();
  if (n == 2) {
    expect_same_run(2, 1, 1, 1);
    expect_same_run(1, 2, 1, 1);
    expect_same_run(1, 1, 2, 1);
    expect_same_run(1, 1, 2, 2);
  } else if (n == 4) {
    expect_same_run(2, 2, 1, 1);
    expect_same_run(1, 2, 2, 1);
    expect_same_run(2, 1, 2, 2);
    expect_same_run(1, 1, 4, 2);
  } else {
    expect_same_run(n, 1, 1, 1);
  }
}
