// launch/train_main.cpp — loom-train: pretrain a GPT model on one rank.
//
// Reads options (launch/train_options.h), opens the datasets, builds the model
// and optimizer (everything allocated here, before step 1, and the plan
// printed), then runs the steps: gradient accumulation over micro-batches,
// clipping, AdamW, the LR schedule, a log line + JSONL record per step and
// periodic validation; at the end writes checkpoint.dir/weights.h5.
// Exit codes: 0 done, 2 bad options or input (a loom::Error), 1 anything else.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "backend/registry.h"
#include "io/data_loader.h"
#include "io/token_dataset.h"
#include "launch/flops.h"
#include "launch/gemm_peak.h"
#include "launch/model_io.h"
#include "launch/pipeline_executor.h"
#include "launch/train_options.h"
#include "optimizer/adamw.h"
#include "parallel/parallel_context.h"
#include "parallel/timed_communicator.h"
#include "schedule/lr_schedule.h"

namespace loom {

namespace {

// Resident bytes now (/proc/self/statm), before the plan's allocations: code,
// libraries, thread stacks and OpenBLAS's buffers, which the plan does not count.
double current_rss_bytes() {
  std::ifstream statm("/proc/self/statm");
  double pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return pages_resident * double(sysconf(_SC_PAGESIZE));
}

double peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) * 1024.0;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Splits (B, T+1) windows into inputs tokens[:, :T] and targets tokens[:, 1:].
void split_windows(const std::vector<std::int32_t>& w, std::int64_t B, std::int64_t T, std::vector<std::int32_t>& x,
                   std::vector<std::int32_t>& y) {
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t t = 0; t < T; ++t) {
      x[std::size_t(b * T + t)] = w[std::size_t(b * (T + 1) + t)];
      y[std::size_t(b * T + t)] = w[std::size_t(b * (T + 1) + t + 1)];
    }
}

double all_reduce_sum(Communicator& c, double value) {
  float v = float(value);
  c.all_reduce(host_tensor(&v, Shape{1}));
  return v;
}

int train(RunConfig cfg, ParallelContext& ctx) {
  const auto t_start = std::chrono::steady_clock::now();
  const bool lead = ctx.world_rank == 0;  // prints, logs and writes files
  LOOM_CHECK(ctx.shape.dp == cfg.parallel.dp && ctx.shape.tp == cfg.parallel.tp && ctx.shape.pp == cfg.parallel.pp, "",
             "internal: the process grid does not match the parallel.* options");
  // The backend and the GEMM roof first: the resident memory measured after them
  // (code, libraries, BLAS buffers) is the base the memory plan adds to.
  auto be = make_backend(cfg.train.device == "cuda" ? Device::cuda : Device::cpu);
  const double peak = measure_gemm_peak_flops(*be);
  const double baseline_rss = current_rss_bytes();

  LOOM_CHECK(!cfg.data.train.empty(), "make one with loom-data --input FILE --output data.h5",
             "data.train is required (an HDF5 token dataset)");
  if (cfg.data.val.empty()) cfg.data.val = cfg.data.train;
  const TokenDataset train_set = TokenDataset::open(cfg.data.train, "train");
  const TokenDataset val_set = TokenDataset::open(cfg.data.val, "val");
  if (!cfg.model.init.empty()) {
    // The architecture comes from the weights file (transfer learning keeps the model).
    const std::string init = cfg.model.init;
    cfg.model = read_model_config(init);
    cfg.model.init = init;
  }
  if (cfg.model.vocab == 0) cfg.model.vocab = train_set.vocab_size();
  LOOM_CHECK(train_set.vocab_size() <= cfg.model.vocab && val_set.vocab_size() <= cfg.model.vocab,
             "raise model.vocab or re-tokenise the data",
             "the dataset's vocabulary ({}) exceeds the model's model.vocab = {}", train_set.vocab_size(),
             cfg.model.vocab);
  validate(cfg);
  Gpt::check_tp(cfg.model, ctx.shape.tp);  // heads, ffn, padded vocabulary divisible by tp

  const ModelConfig& mc = cfg.model;
  const std::int64_t T = cfg.train.sequence(mc), G = cfg.train.global_batch, MB = cfg.train.micro_batch;
  // This data-parallel rank's slice of every global batch: sequences [first, first + local).
  const std::int64_t local = G / ctx.shape.dp, first = ctx.coord.dp * local, accum = local / MB;
  std::filesystem::create_directories(cfg.checkpoint.dir);
  if (auto parent = std::filesystem::path(cfg.log.metrics).parent_path(); !parent.empty())
    std::filesystem::create_directories(parent);

  if (lead) {
    fmt::print("loom-train: effective configuration\n{}\n", to_ini(cfg));
    std::ofstream(cfg.checkpoint.dir + "/config.ini") << to_ini(cfg);
  }

  // The loaders check that each split holds at least one sequence: before any allocation.
  const DataLoader train_loader(train_set, T, cfg.train.seed);
  const DataLoader val_loader(val_set, T, cfg.train.seed);


  // This rank's pipeline stage and its plan for one step (micro-batches = accum).
  const Stage stage = make_stage(mc, ctx.shape.pp, ctx.coord.pp, cfg.parallel.stages);
  const PipePlan pipe_plan = make_pipeline_plan(
      cfg.parallel.schedule == "gpipe" ? PipeSchedule::gpipe : PipeSchedule::one_f_one_b, ctx.shape.pp, ctx.coord.pp,
      int(accum));
  const int slots = slots_needed(pipe_plan);

  TimedCommunicator tp(*ctx.tp);  // the model's tp traffic, timed for t_tp
  TimedCommunicator pp(*ctx.pp);  // pipeline sends/receives, waits included: t_pp
  Gpt model(*be, mc, MB, T, tp, stage, slots);
  if (mc.init.empty()) {
    model.params().init(cfg.train.seed);
  } else {
    load_weights(model, mc.init);
    if (lead) fmt::print("initialised from {}\n", mc.init);
  }
  if (cfg.checkpoint.save_init)
    save_weights(model, cfg.checkpoint.dir + "/init.h5", lead, &pp, ctx.coord.dp == 0 && ctx.coord.tp == 0,
                 cfg.parallel.stages);
  std::vector<float> norm_weights;
  for (std::size_t i = 0; i < model.params().size(); ++i) norm_weights.push_back(model.norm_weight(i));
  AdamW opt(*be, model.params(), cfg.optim, {&tp, &pp}, norm_weights);
  // The tied wte's gradient is summed between the first and last stage (each holds a copy).
  const bool tied_exchange = ctx.shape.pp > 1 && (stage.first() || stage.last());
  Buffer wte_peer_grad = tied_exchange ? Buffer(*be, model.wte_grad().shape, DType::f32) : Buffer();

  MemoryPlan plan = Gpt::memory_plan(mc, MB, T, ctx.shape.tp, stage, slots);
  if (tied_exchange) plan.items.push_back({"tied wte gradient from the other end stage", wte_peer_grad.bytes()});
  plan.items.push_back({"AdamW moments m, v (f32)", AdamW::state_bytes(model.params().numel())});
  plan.items.push_back({"token datasets (host)", std::size_t(train_set.resident_bytes() + val_set.resident_bytes())});
  if (lead) {
    fmt::print("layout: {} ranks = dp {} x tp {} x pp {}; per rank {} sequences per step in {} micro-batches of {}\n",
               ctx.shape.size(), ctx.shape.dp, ctx.shape.tp, ctx.shape.pp, local, accum, MB);
    if (ctx.shape.pp > 1)
      fmt::print("pipeline: {} schedule, stage 0 holds layers [{}, {}), {} micro-batch slot(s); ideal bubble {:.1f}%\n",
                 cfg.parallel.schedule, stage.layer_begin, stage.layer_end, slots,
                 100.0 * double(ctx.shape.pp - 1) / double(accum + ctx.shape.pp - 1));
    fmt::print("parameters on rank 0: {} ({:.2f} M)\nmemory plan per rank ({} backend):\n", model.params().numel(),
               double(model.params().numel()) / 1e6, device_name(be->device()));
    for (auto& [name, bytes] : plan.items) fmt::print("  {:<42} {:>10.1f} MiB\n", name, double(bytes) / (1 << 20));
    fmt::print("  {:<42} {:>10.1f} MiB   (allocated by the backend: {:.1f} MiB)\n", "total",
               double(plan.total()) / (1 << 20), double(be->live_bytes()) / (1 << 20));
    fmt::print("gemm peak measured now: {:.1f} GFLOP/s per rank; model FLOPs per token: {:.3g}\n\n", peak / 1e9,
               flops_per_token(mc, T));
  }

  std::vector<std::int32_t> window(static_cast<std::size_t>(MB * (T + 1))), x(static_cast<std::size_t>(MB * T)),
      y(static_cast<std::size_t>(MB * T));
  std::ofstream metrics;
  if (lead) {
    metrics.open(cfg.log.metrics);
    LOOM_CHECK(metrics.good(), "check log.metrics", "cannot write the metrics file '{}'", cfg.log.metrics);
  }

  const int s_id = stage.stage;
  std::int64_t current_step = 0;  // the step the io callbacks load data for
  auto evaluate = [&](std::int64_t) {
    // Forward only, micro-batch by micro-batch down the pipeline; the last stage has the loss.
    double sum = 0;
    for (std::int64_t e = 0; e < cfg.train.eval_batches; ++e)
      for (std::int64_t k = 0; k < accum; ++k) {
        val_loader.eval_batch(e, first + k * MB, MB, G, window.data());
        split_windows(window, MB, T, x, y);
        if (!stage.first()) pp.send_recv({}, -1, model.input(0), s_id - 1);
        sum += model.forward(x.data(), y.data(), 0);
        if (!stage.last()) pp.send_recv(model.output(0), s_id + 1, {}, -1);
      }
    const double mean = all_reduce_sum(pp, stage.last() ? sum / double(cfg.train.eval_batches * G * T) : 0.0);
    return all_reduce_sum(*ctx.dp, mean);
  };
  double loss_sum = 0;
  // Data-parallel gradient sum, overlapped with the backward: during the last
  // micro-batch's backward each block's gradients are final as soon as the block is
  // done, so its all-reduce starts right then (one bucket per block); the rest (the
  // embeddings, ln_f) after the pipeline finishes. Every micro-batch's loss gradient
  // is scaled by 1 / (global batch tokens), so the sum is the gradient of the mean.
  std::int64_t backwards_done = 0;
  model.set_block_backward_hook([&](std::size_t b) {
    if (backwards_done == accum - 1) ctx.dp->all_reduce_start(model.block_grads(b));
  });
  const StageIo io{
      .forward =
          [&](int mb, int slot) {
            train_loader.train_batch(current_step, first + mb * MB, MB, window.data());
            split_windows(window, MB, T, x, y);
            loss_sum += model.forward(x.data(), y.data(), slot);
          },
      .backward =
          [&](int, int slot) {
            model.backward(float(1.0 / (double(G) * double(T))), slot);
            ++backwards_done;
          },
      .input = [&](int slot) { return model.input(slot); },
      .output = [&](int slot) { return model.output(slot); },
      .grad = model.grad()};

  const double tokens_per_step = double(G * T);
  double last_loss = 0, last_val = -1;
  for (std::int64_t step = 0; step < cfg.train.steps; ++step) {
    const auto t0 = std::chrono::steady_clock::now();
    tp.reset();
    pp.reset();
    model.params().zero_grads();
    loss_sum = 0;
    current_step = step;
    backwards_done = 0;
    // Forward and backward of every micro-batch, in this stage's plan order; each
    // micro-batch's loss gradient is scaled by 1 / (global batch tokens).
    run_pipeline_plan(pipe_plan, s_id, slots, pp, io);
    if (tied_exchange) {  // first and last stage: both copies of wte get the summed gradient
      const int peer = stage.first() ? ctx.shape.pp - 1 : 0;
      pp.send_recv(model.wte_grad(), peer, wte_peer_grad, peer);
      be->axpy(model.wte_grad(), 1.0f, wte_peer_grad);
    }
    be->synchronize();
    const auto t_comm = std::chrono::steady_clock::now();  // the part of the dp reduction not hidden
    ctx.dp->all_reduce_start(model.grads_before_blocks());
    ctx.dp->all_reduce_start(model.grads_after_blocks());
    ctx.dp->wait_all();
    const double t_dp = seconds_since(t_comm);
    const float lr = learning_rate(cfg.optim, cfg.train.steps, step);
    const double norm = opt.step(lr, step + 1);
    be->synchronize();
    const double dt = seconds_since(t0);
    last_loss = all_reduce_sum(*ctx.dp, all_reduce_sum(pp, loss_sum / tokens_per_step));  // loss: last stage
    // Throughput of the whole job; MFU per rank against this rank's measured GEMM peak.
    const double tok_s = tokens_per_step / dt, flops = tok_s * flops_per_token(mc, T) / ctx.shape.size();
    const bool last = step + 1 == cfg.train.steps;
    nlohmann::json rec = {{"step", step},         {"loss", last_loss}, {"lr", lr},          {"grad_norm", norm},
                          {"tokens_per_s", tok_s}, {"tflops", flops / 1e12}, {"mfu", flops / peak}, {"t_step", dt},
                          {"t_compute", dt - t_dp - tp.seconds() - pp.seconds()}, {"t_tp", tp.seconds()},
                          {"t_pp", pp.seconds()}, {"t_dp", t_dp}};
    if ((cfg.train.eval_interval > 0 && (step + 1) % cfg.train.eval_interval == 0) || last) {
      last_val = evaluate(step);
      rec["val_loss"] = last_val;
    }
    if (lead) metrics << rec.dump() << "\n" << std::flush;
    if (lead && (step % cfg.train.log_interval == 0 || last || rec.contains("val_loss"))) {
      fmt::print(
          "step {:>5}/{} | loss {:.4f} | lr {:.2e} | norm {:.3f} | {:.0f} tok/s | {:.3f} TFLOP/s/rank | MFU {:.1f}% | "
          "{:.0f} ms (tp {:.0f}, pp {:.0f}, dp {:.0f}){}\n",
          step + 1, cfg.train.steps, last_loss, lr, norm, tok_s, flops / 1e12, 100 * flops / peak, dt * 1e3,
          tp.seconds() * 1e3, pp.seconds() * 1e3, t_dp * 1e3, rec.contains("val_loss") ? fmt::format(" | val {:.4f}", last_val) : "");
      std::fflush(stdout);
    }
  }

  const std::string weights = cfg.checkpoint.dir + "/weights.h5";
  // tp shards and pp stages gathered; world rank 0 writes
  save_weights(model, weights, lead, &pp, ctx.coord.dp == 0 && ctx.coord.tp == 0, cfg.parallel.stages);
  if (!lead) return 0;
  fmt::print("\nwrote {}\nfinal train loss {:.4f}, val loss {:.4f} (nats per token)\n", weights, last_loss, last_val);
  const double mib = 1 << 20, planned = double(plan.total()) + baseline_rss;
  fmt::print("memory: plan {:.1f} MiB + {:.1f} MiB resident before allocating (code, libraries, BLAS buffers)"
             " = {:.1f} MiB; measured peak RSS {:.1f} MiB ({:+.1f}%); backend peak {:.1f} MiB\n",
             double(plan.total()) / mib, baseline_rss / mib, planned / mib, peak_rss_bytes() / mib,
             100.0 * (peak_rss_bytes() / planned - 1.0), double(be->peak_bytes()) / mib);
  fmt::print("wall time {:.1f} s\n", seconds_since(t_start));
  return 0;
}

}  // namespace
}  // namespace loom

int main(int argc, char** argv) {
  loom::MpiSession mpi(argc, argv);
  return loom::run_guarded(mpi.world(), [&]() -> int {
    int world = 1, rank = 0;
    MPI_Comm_size(mpi.world(), &world);
    MPI_Comm_rank(mpi.world(), &rank);
    auto cfg = loom::parse_train_options(argc, argv, rank == 0);
    if (!cfg) return 0;
    {
      // Options are checked before any file is touched (the vocabulary may still come
      // from the dataset or the weights file, so a placeholder stands in for it here).
      loom::RunConfig early = *cfg;
      if (early.model.vocab == 0) early.model.vocab = 1;
      if (early.model.init.empty()) loom::validate(early);
    }
    loom::validate_layout(*cfg, world);  // before any work, on every rank
    loom::ParallelContext ctx = loom::make_mpi_context(mpi.world(), {cfg->parallel.dp, cfg->parallel.tp, cfg->parallel.pp});
    return loom::train(*cfg, ctx);
  });
}
