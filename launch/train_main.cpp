// launch/train_main.cpp — loom-train: pretrain a GPT model on any dp x tp x pp layout.
//
// Only configures: reads options (launch/train_options.h), opens the datasets, builds
// this rank's GPT stage and the Trainer (launch/trainer.h: everything allocated before
// step 1, the memory plan printed), runs it, and writes checkpoint.dir/weights.h5.
// Exit codes: 0 done, 2 bad options or input (a loom::Error), 1 anything else.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <ranges>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "backend/registry.h"
#include "io/data_loader.h"
#include "io/mlm_masker.h"
#include "io/span_corruption.h"
#include "io/token_dataset.h"
#include "launch/checkpoint.h"
#include "launch/gemm_peak.h"
#include "launch/live_plan.h"
#include "launch/model_io.h"
#include "launch/model_tokenizer.h"
#include "launch/process_memory.h"
#include "launch/rank_agreement.h"
#include "launch/run_data.h"
#include "launch/run_dir.h"
#include "launch/stop_signal.h"
#include "launch/trainer.h"
#include "launch/train_options.h"
#include "layers/gpt.h"
#include "layers/t5.h"
#include "parallel/device_comm.h"
#include "parallel/parallel_context.h"
#include "parallel/timed_communicator.h"

namespace loom {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Keeps the records of steps before `step` (a resumed run writes the later ones again).
void keep_metrics_before(const std::string& path, std::int64_t step) {
  std::ifstream in(path);
  std::string kept, line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.contains("step") && j["step"].get<std::int64_t>() < step) kept += line + "\n";
  }
  in.close();
  std::ofstream(path, std::ios::trunc) << kept;
}

// checkpoint.resume: the progress to start from (none: a new run). "auto" tries the
// checkpoint `latest` names, then older ones, each verified (checksums) before loading;
// an explicit path must verify. Collective: every rank lists the same directory.
std::optional<TrainProgress> resume(const RunConfig& cfg, ParallelContext& ctx, Checkpointer& ckpt) {
  const std::string& how = cfg.checkpoint.resume;
  const bool lead = ctx.world_rank == 0;
  if (how.empty()) return std::nullopt;
  const bool automatic = how == "auto";
  std::vector<std::string> candidates;
  if (automatic) {
    candidates = resume_candidates(cfg.checkpoint.dir);
  } else {
    const std::string found = find_checkpoint(how);
    LOOM_CHECK(!found.empty(), "give a checkpoint directory (step_N) or a run directory holding one, or auto",
               "checkpoint.resume '{}' is not a checkpoint", how);
    candidates = {found};
  }
  if (candidates.empty()) {
    if (lead) fmt::print("checkpoint.resume auto: no checkpoint in {} yet; starting at step 0\n", cfg.checkpoint.dir);
    return std::nullopt;
  }
  for (const std::string& c : candidates) {
    const std::string problem = ckpt.verify(c);
    if (problem.empty()) {
      const TrainProgress p = ckpt.load(c);
      if (lead) fmt::print("resumed from {} at step {} ({} tokens so far)\n", c, p.step, p.tokens);
      return p;
    }
    LOOM_CHECK(automatic, "run loom-ckpt verify on it, or resume from another checkpoint", "cannot resume: {}",
               problem);
    if (lead) fmt::print("checkpoint.resume auto: skipping {}: {}; trying the previous checkpoint\n", c, problem);
  }
  throw Error(fmt::format("checkpoint.resume auto: no usable checkpoint in {} (all {} are damaged)", cfg.checkpoint.dir,
                          candidates.size()),
              "run loom-ckpt verify on them; start over with --checkpoint.overwrite");
}

// `given`: the options set explicitly (parse_train_options).
int train(RunConfig cfg, ParallelContext& ctx, const std::set<std::string>& given) {
  const auto t_start = std::chrono::steady_clock::now();
  const bool lead = ctx.world_rank == 0;  // prints, logs and writes files
  LOOM_CHECK(ctx.shape.dp == cfg.parallel.dp && ctx.shape.tp == cfg.parallel.tp && ctx.shape.pp == cfg.parallel.pp, "",
             "internal: the process grid does not match the parallel.* options");
  // The backend and the GEMM roof first: the resident memory measured after them
  // (code, libraries, BLAS buffers) is the base the memory plan adds to.
  // train.device: the backend, and for cuda one GPU per rank (its index on the node) and
  // NCCL communicators for device tensors (parallel/device_comm.h).
  const Device device = cfg.train.device == "cuda" ? Device::cuda : Device::cpu;
  BackendOptions backend_opts;
  if (device == Device::cuda) {
    LOOM_CHECK(cuda_backend_compiled(), "reconfigure with -DLOOM_CUDA=ON on a machine with nvcc, or use --train.device cpu",
               "train.device cuda: this loom was built without the CUDA backend");
    const int gpus = cuda_device_count();
    LOOM_CHECK(gpus > 0, "check nvidia-smi and CUDA_VISIBLE_DEVICES, or use --train.device cpu",
               "train.device cuda: no CUDA device is visible to this process");
    backend_opts.cuda_device = node_local_rank(MPI_COMM_WORLD);
    LOOM_CHECK(backend_opts.cuda_device < gpus, "run at most one rank per GPU on each node",
               "train.device cuda: this rank is number {} on its node but the node shows {} GPU(s)",
               backend_opts.cuda_device, gpus);
  }
  auto be = make_backend(device, backend_opts);
  use_device_communicators(ctx, device, backend_opts.cuda_device, cuda_stream_of(*be));
  const DType dtype = parse_dtype(cfg.train.precision);  // the working precision
  const double peak = measure_gemm_peak_flops(*be, dtype);
  const double baseline_rss = current_rss_bytes();

  LOOM_CHECK(!cfg.data.train.empty(), "make one with loom-data --input FILE --output data.h5",
             "data.train is required (an HDF5 token dataset or a Megatron pair)");
  // finetune.from plays model.init's part; a new head is initialised from train.seed.
  if (!cfg.finetune.from.empty()) cfg.model.init = std::exchange(cfg.finetune.from, "");
  RunData data = open_run_data(cfg, MPI_COMM_WORLD);  // token streams, or a labelled dataset (model.head)
  const EmbeddedTokenizer& data_tok = data.tokenizer;
  const std::map<std::string, std::string> tok_attrs = tokenizer_attrs(data_tok);
  if (!cfg.model.init.empty())
    check_model_tokenizer("model.init", cfg.model.init, read_model_tokenizer(cfg.model.init), data_tok);
  if (!cfg.model.init.empty()) {
    // The architecture comes from the weights file (transfer learning keeps the model).
    const std::string init = cfg.model.init, arch = read_architecture(init);
    LOOM_CHECK(arch == "gpt2" || arch == "t5" || arch.empty(), "start from weights of a GPT or T5 model",
               "model.init '{}' holds a '{}' model; loom-train builds 'gpt2' and 't5'", init, arch);
    const ModelConfig from_file =
        arch == "t5" ? T5::from_json(read_config_json(init)) : Gpt::from_json(read_config_json(init));
    check_init_matches_options(cfg.model, from_file, given, init);
    const std::string head = cfg.model.head;  // the head is this run's choice (fine-tuning swaps it)
    const std::int64_t classes = cfg.model.classes;
    cfg.model = from_file;
    cfg.model.init = init;
    cfg.model.head = head;
    cfg.model.classes = classes;
  }
  // Masked LM (model.family bert): the mask token and the specials come from the data's
  // tokenizer; the byte tokenizer's [MASK] is appended after eod, growing the vocabulary.
  if (cfg.model.bert()) {
    LOOM_CHECK(data_tok.known(), "re-tokenise the data with this version of loom-data",
               "model.family bert needs the data's tokenizer (for its mask token), but '{}' records none",
               data.train_path);
    data.mlm = MlmMasker{.tokens = mlm_tokens(tokenizer_info(data_tok)), .seed = cfg.train.seed};
    if (cfg.model.vocab == 0) cfg.model.vocab = data.mlm->tokens.vocab;
    LOOM_CHECK(cfg.model.vocab >= data.mlm->tokens.vocab, "raise model.vocab (or leave it 0)",
               "model.family bert: the mask token is id {}, outside model.vocab = {}", data.mlm->tokens.mask,
               cfg.model.vocab);
  }
  // Span corruption (model.family t5): the encoder length is the sequence length, the
  // window and the decoder length follow (io/span_corruption.h); the sentinels come from
  // the data's tokenizer (the byte tokenizer's are appended after eod).
  if (cfg.model.t5()) {
    LOOM_CHECK(data_tok.known(), "re-tokenise the data with this version of loom-data",
               "model.family t5 needs the data's tokenizer (for its sentinels), but '{}' records none",
               data.train_path);
    const SpanLayout layout = span_layout(cfg.train.sequence(cfg.model));
    data.spans = SpanCorruptor{
        .tokens = span_tokens(tokenizer_info(data_tok), layout.spans), .layout = layout, .seed = cfg.train.seed};
    if (cfg.model.vocab == 0) cfg.model.vocab = data.spans->tokens.vocab;
    LOOM_CHECK(cfg.model.vocab >= data.spans->tokens.vocab, "raise model.vocab (or leave it 0)",
               "model.family t5: the sentinels reach id {}, outside model.vocab = {}",
               data.spans->tokens.vocab - 1, cfg.model.vocab);
  }
  if (cfg.model.vocab == 0) cfg.model.vocab = data.vocab;
  LOOM_CHECK(data.vocab <= cfg.model.vocab, "raise model.vocab or re-tokenise the data",
             "the dataset's vocabulary ({}) exceeds the model's model.vocab = {}", data.vocab, cfg.model.vocab);
  validate(cfg);
  Gpt::check_tp(cfg.model, ctx.shape.tp);  // heads, ffn, padded vocabulary divisible by tp
  if (lead)
    for (const std::string& w : config_warnings(cfg)) fmt::print("warning: {}\n", w);

  const ModelConfig& mc = cfg.model;
  const std::int64_t T = cfg.train.sequence(mc), MB = cfg.train.micro_batch;
  make_batches(data, cfg, T, pooling_for(mc));  // decoder: the last real token; encoder: the first

  // The run directory, now that options and data are valid: rank 0 creates it, checks
  // that it is writable, locks it for this run, and refuses (or with checkpoint.overwrite
  // clears) an earlier run's checkpoints. The other ranks wait, then read it.
  std::unique_ptr<RunDirLock> lock;
  if (lead) {
    prepare_run_dir(cfg.checkpoint.dir);
    lock = std::make_unique<RunDirLock>(cfg.checkpoint.dir);
    if (auto parent = std::filesystem::path(cfg.log.metrics).parent_path(); !parent.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(parent, ec);
      LOOM_CHECK(!ec, "choose a log.metrics path you can write to", "log.metrics: cannot create '{}': {}",
                 parent.string(), ec.message());
    }
    if (cfg.checkpoint.resume.empty())
      for (const std::string& gone : claim_run_dir(cfg.checkpoint.dir, cfg.checkpoint.overwrite))
        fmt::print("checkpoint.overwrite: deleted {}/{}\n", cfg.checkpoint.dir, gone);
  }
  ctx.world->barrier();

  // This rank's layers (one chunk per virtual stage it holds) and its plan for one step.
  const int chunks = cfg.parallel.virtual_stages;
  // T5 splits its encoder's then its decoder's layers as one run (layers/t5.h).
  ModelConfig split_cfg = mc;
  if (mc.t5()) split_cfg.layers = mc.layers + mc.decoder_layer_count();
  const GptStage stage = make_gpt_stage(split_cfg, ctx.shape.pp, ctx.coord.pp, chunks, cfg.parallel.stages);
  const PipePlan plan = Trainer::plan_for(cfg, ctx);
  const std::vector<int> slots = Trainer::slots_for(plan, chunks);
  TimedCommunicator tp(*ctx.tp);  // the model's tp traffic, timed for t_tp
  TimedCommunicator pp(*ctx.pp);  // pipeline sends/receives, waits included: t_pp
  // The family's stage model: the encoder-decoder (one stage; validate refuses what it
  // lacks) or GPT (every other family).
  std::unique_ptr<StageModel> built;
  if (mc.t5())
    built = std::make_unique<T5>(*be, mc, MB, T, data.spans->layout.dec, &tp,
                                 T5Options{.dtype = dtype, .slots = slots.at(0)},
                                 make_t5_stage(mc, ctx.shape.pp, ctx.coord.pp, cfg.parallel.stages));
  else
    built = std::make_unique<Gpt>(*be, mc, MB, T, tp, stage, slots,
                                  GptOptions{.recompute = parse_recompute(cfg.train.recompute),
                                             .dtype = dtype,
                                             .sequence_parallel = cfg.parallel.sequence_parallel,
                                             .freeze_backbone = cfg.finetune.freeze_backbone,
                                             .attention = parse_attention_kernel(cfg.train.attention_kernel())});
  StageModel& model = *built;
  model.params().init(cfg.train.seed);
  if (!mc.init.empty()) {
    // Fine-tuning: a classification head the file lacks keeps its fresh init; the file's
    // tensors the model does not hold (another head's) are not read.
    const bool new_head = mc.head == "classify";
    load_weights(model, mc.init, [&](const ParamSpec& p) { return new_head && p.name.starts_with("cls."); });
    if (lead) fmt::print("initialised from {}{}\n", mc.init, new_head ? " (its backbone; the classification head from train.seed unless the file has one)" : "");
  }
  const bool writer_pipeline = ctx.coord.dp == 0 && ctx.coord.tp == 0;
  if (cfg.checkpoint.save_init) save_weights(model, tp, cfg.checkpoint.dir + "/init.h5", lead, &pp, writer_pipeline, tok_attrs);
  Trainer trainer(cfg, ctx, *be, model, tp, pp, *data.train, *data.val);
  Checkpointer checkpointer(cfg, ctx, *be, model, trainer.optimizer_state(), [&] { trainer.params_from_master(); },
                            [&] {  // the index's attributes: the tokenizer's and the run's configuration
                              auto attrs = tok_attrs;
                              attrs["run_config"] = to_ini(cfg);
                              return attrs;
                            }());
  const std::optional<TrainProgress> resumed = resume(cfg, ctx, checkpointer);
  if (resumed) trainer.restore(*resumed);
  const TrainProgress start = trainer.progress();
  if (lead) {
    fmt::print("loom-train: effective configuration\n{}\n", to_ini(cfg));
    std::ofstream(cfg.checkpoint.dir + "/config.ini") << to_ini(cfg);
  }

  MemoryPlan plan_bytes = trainer.memory_plan();
  plan_bytes.add(checkpointer.memory_plan());
  plan_bytes.add(data.labelled ? "labelled dataset (host)" : "token datasets (host)", std::size_t(data.resident_bytes));
  // The weights file's host copy is gathered after the checkpoint snapshot is freed
  // (release_snapshot below): it adds to the peak only what it holds beyond the snapshot.
  plan_bytes.add(kWeightsFilePlanName,
                 weights_file_beyond_snapshot(
                     save_weights_host_bytes(model, ctx.shape.pp, ctx.coord.pp, writer_pipeline),
                     checkpointer.memory_plan().total()));
  if (lead) {
    const std::int64_t local = cfg.train.global_batch / ctx.shape.dp;
    fmt::print("layout: {} ranks = dp {} x tp {} x pp {}; per rank {} sequences per step in {} micro-batches of {}\n",
               ctx.shape.size(), ctx.shape.dp, ctx.shape.tp, ctx.shape.pp, local, local / MB, MB);
    if (ctx.shape.pp > 1) {
      const double m = double(local / MB), p = double(ctx.shape.pp), v = double(chunks);
      auto ranges = stage.chunks | std::views::transform([](auto c) { return fmt::format("[{}, {})", c.first, c.second); });
      fmt::print("pipeline: {}{}; stage 0 holds layers {} with {} activation slot(s) per chunk; ideal bubble {:.1f}% "
                 "of the step\n",
                 cfg.parallel.schedule,
                 chunks > 1 ? fmt::format(" interleaved, {} model chunks per rank ({} virtual stages)", chunks,
                                          chunks * ctx.shape.pp)
                            : "",
                 fmt::join(ranges, " "), fmt::join(slots, ","),
                 100.0 * (p - 1) / (v * m + p - 1));
    }
    fmt::print("parameters on rank 0: {} ({:.2f} M)\nmemory plan per rank ({} backend):\n", model.params().numel(),
               double(model.params().numel()) / 1e6, device_name(be->device()));
    for (auto& [name, bytes] : plan_bytes.items) fmt::print("  {:<42} {:>10.1f} MiB\n", name, double(bytes) / (1 << 20));
    fmt::print("  {:<42} {:>10.1f} MiB   (allocated by the backend: {:.1f} MiB)\n", "total",
               double(plan_bytes.total()) / (1 << 20), double(be->live_bytes()) / (1 << 20));
    fmt::print("{} gemm peak measured now: {:.1f} GFLOP/s per rank (OpenBLAS kernels: {}); model FLOPs per token: "
               "{:.3g}\n\n",
               dtype_name(dtype), peak / 1e9, blas_core_name(), model.flops_per_token());
  }
  // plan.cluster: the performance model's view of this very run, before step 1 (every rank
  // computes it, so a bad file stops every rank alike).
  std::optional<LivePrediction> predicted;
  if (!cfg.plan.cluster.empty()) {
    predicted = predict_run(cfg, ctx.shape.size(), model.flops_per_token(), double(data.resident_bytes));
    if (lead) {
      fmt::print("{}\n", describe_prediction(*predicted, peak));
      std::ofstream(cfg.checkpoint.dir + "/prediction.json") << prediction_json(cfg, *predicted, peak);
    }
  }

  std::ofstream metrics;
  if (lead) {
    if (start.step > 0) keep_metrics_before(cfg.log.metrics, start.step);  // steps after the checkpoint run again
    metrics.open(cfg.log.metrics, start.step > 0 ? std::ios::app : std::ios::trunc);
    LOOM_CHECK(metrics.good(), "check log.metrics", "cannot write the metrics file '{}'", cfg.log.metrics);
  }
  StopSignal signal;
  std::string stopped;  // why this invocation ended before train.steps
  const auto after_step = [&, steps_run = std::int64_t(0)](const TrainProgress& p, bool last) mutable -> bool {
    ++steps_run;
    // One all-reduce carries both verdicts every rank must share: stop now (a signal or
    // the time limit, seen by any rank), and whether every rank's shard is written.
    const bool time_up = cfg.train.exit_after_minutes > 0 && seconds_since(t_start) >= 60 * cfg.train.exit_after_minutes;
    float flags[2] = {float(signal.received() != 0 || time_up), float(checkpointer.writing())};
    ctx.world->all_reduce(host_tensor(flags, Shape{2}), ReduceOp::max);
    if (checkpointer.pending() && flags[1] == 0) checkpointer.commit();
    const bool steps_up = cfg.train.exit_after_steps > 0 && steps_run >= cfg.train.exit_after_steps;
    const bool stop = !last && (flags[0] != 0 || steps_up);
    if (stop)
      stopped = signal.received() ? fmt::format("signal {}", signal.received())
                : time_up         ? fmt::format("train.exit_after_minutes = {}", cfg.train.exit_after_minutes)
                : steps_up        ? fmt::format("train.exit_after_steps = {}", cfg.train.exit_after_steps)
                                  : "a stop signal on another rank";
    if (last || stop || (cfg.checkpoint.interval > 0 && p.step % cfg.checkpoint.interval == 0)) checkpointer.save(p);
    if (last || stop) checkpointer.commit();
    return stop;
  };
  double last_val = -1;
  StepRecord last;
  try {
    last = trainer.run(lead ? &metrics : nullptr, peak, last_val, after_step);
  } catch (const Diverged&) {
    // Every rank stopped at the same step: a save of an earlier, good step may still be in
    // flight; commit it (it refuses non-finite values itself) so it becomes `latest`.
    checkpointer.commit();
    throw;
  }
  if (!stopped.empty()) {
    if (lead)
      fmt::print("\nstopped after step {} of {} ({}); continue with --checkpoint.resume auto\n", last.step + 1,
                 cfg.train.steps, stopped);
    return 0;
  }

  checkpointer.release_snapshot();  // committed, no save follows: the weights file reuses its memory
  const std::string weights = cfg.checkpoint.dir + "/weights.h5";
  save_weights(model, tp, weights, lead, &pp, writer_pipeline, tok_attrs);  // tp shards and pp stages gathered; rank 0 writes
  if (!lead) return 0;
  if (start.step >= cfg.train.steps)
    fmt::print("\nnothing left to train: the checkpoint is at step {} of train.steps = {}; wrote {}\n", start.step,
               cfg.train.steps, weights);
  else
    fmt::print("\nwrote {}\nfinal train loss {:.4f}, val loss {:.4f} (nats per token)\n", weights, last.loss, last_val);
  const double mib = 1 << 20, planned = double(plan_bytes.total()) + baseline_rss;
  fmt::print("memory: plan {:.1f} MiB + {:.1f} MiB resident before allocating (code, libraries, BLAS buffers)"
             " = {:.1f} MiB; measured peak RSS {:.1f} MiB ({:+.1f}%); backend peak {:.1f} MiB\n",
             double(plan_bytes.total()) / mib, baseline_rss / mib, planned / mib, peak_rss_bytes() / mib,
             100.0 * (peak_rss_bytes() / planned - 1.0), double(be->peak_bytes()) / mib);
  if (predicted) {
    fmt::print("{}", compare_to_prediction(trainer.history(), *predicted));
    const double pred = predicted->rank0_memory.total();
    fmt::print("memory predicted by the performance model for rank 0: {:.1f} MiB; measured peak RSS {:.2f}x that\n",
               pred / mib, peak_rss_bytes() / pred);
  }
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
    std::set<std::string> given;
    auto cfg = loom::parse_train_options(argc, argv, rank == 0, &given);
    if (!cfg) return 0;
    loom::check_ranks_agree(mpi.world(), loom::to_ini(*cfg), "options");  // before anything depends on them
    {
      // Options are checked before any file is touched (the vocabulary may still come
      // from the dataset or the weights file, so a placeholder stands in for it here).
      loom::RunConfig early = *cfg;
      if (early.model.vocab == 0) early.model.vocab = 1;
      if (early.model.classes == 0) early.model.classes = 2;  // or from the labelled dataset
      if (early.model.init.empty()) loom::validate(early);
    }
    loom::validate_layout(*cfg, world);  // before any work, on every rank
    loom::ParallelContext ctx = loom::make_mpi_context(mpi.world(), {cfg->parallel.dp, cfg->parallel.tp, cfg->parallel.pp},
                                                           cfg->parallel.timeout);
    return loom::train(*cfg, ctx, given);
  });
}
