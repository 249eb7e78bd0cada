// launch/train_options.cpp — the Boost.Program_options table behind loom-train.
#include "launch/train_options.h"

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <tuple>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "core/error.h"

namespace po = boost::program_options;

namespace loom {

namespace {

struct Table {
  po::options_description general{"General"}, model{"[model]"}, train{"[train]"}, optim{"[optim]"},
      parallel{"[parallel]"}, data{"[data]"}, checkpoint{"[checkpoint]"}, finetune{"[finetune]"}, log{"[log]"},
      plan{"[plan]"};
  std::string config_file;

  explicit Table(RunConfig& c) {
    general.add_options()("help,h", "show this help and exit")(
        "config", po::value(&config_file), "INI file with [section] key=value lines; the command line wins");
    model.add_options()
        ("model.layers", po::value(&c.model.layers)->default_value(c.model.layers), "transformer blocks")
        ("model.channels", po::value(&c.model.channels)->default_value(c.model.channels), "width C")
        ("model.heads", po::value(&c.model.heads)->default_value(c.model.heads), "attention heads (divide channels)")
        ("model.ffn", po::value(&c.model.ffn)->default_value(c.model.ffn), "MLP hidden size (0: 4 * channels)")
        ("model.vocab", po::value(&c.model.vocab)->default_value(c.model.vocab),
         "vocabulary (0: the dataset's); padded to a multiple of 128 internally")
        ("model.seq_len", po::value(&c.model.seq_len)->default_value(c.model.seq_len), "sequence length T")
        ("model.norm", po::value(&c.model.norm)->default_value(c.model.norm),
         "layernorm (GPT-2) or rmsnorm (Llama: x / rms(x) * weight, no bias)")
        ("model.mlp", po::value(&c.model.mlp)->default_value(c.model.mlp),
         "gelu (GPT-2), relu, or swiglu (Llama: down(silu(gate(x)) * up(x)), model.ffn the width of gate and up)")
        ("model.positions", po::value(&c.model.positions)->default_value(c.model.positions),
         "learned (GPT-2's wpe), sinusoidal (Vaswani et al., no parameter), rope (rotary, on q and k) or alibi "
         "(Press et al.'s linear biases per head) or t5_relative (T5's learned per-head biases of log-spaced relative "
         "position buckets, one table shared by all layers; needs train.attention tiled)")
        ("model.rel_buckets", po::value(&c.model.rel_buckets)->default_value(c.model.rel_buckets),
         "t5_relative: buckets of the relative bias table (T5: 32; bert splits them between earlier and later keys)")
        ("model.rel_max_distance", po::value(&c.model.rel_max_distance)->default_value(c.model.rel_max_distance),
         "t5_relative: distances beyond this share the last bucket (T5: 128)")
        ("model.rope_base", po::value(&c.model.rope_base)->default_value(c.model.rope_base),
         "rope: the base of the rotation frequencies, rope_base^(-2i/head_size)")
        ("model.norm_eps", po::value(&c.model.norm_eps)->default_value(c.model.norm_eps),
         "epsilon of the norms (layernorm and rmsnorm)")
        ("model.kv_heads", po::value(&c.model.kv_heads)->default_value(c.model.kv_heads),
         "key/value heads, grouped-query attention (0: model.heads; must divide model.heads, and parallel.tp must "
         "divide it)")
        ("model.family", po::value(&c.model.family)->default_value(c.model.family),
         "gpt (causal decoder, next-token loss) or bert (bidirectional encoder, masked-LM loss on 15% of the "
         "positions; docs/models.md)")
        ("model.ln_placement", po::value(&c.model.ln_placement)->default_value(c.model.ln_placement),
         "pre (GPT-2: x + f(norm(x)), a final norm) or post (BERT: norm(x + f(x)), no final norm)")
        ("model.window", po::value(&c.model.window)->default_value(c.model.window),
         "sliding-window attention: each position sees only the last N positions, itself included (0: all; needs "
         "train.attention tiled; attention work O(T * N))")
        ("model.head", po::value(&c.model.head)->default_value(c.model.head),
         "lm (next-token language modelling) or classify (one label per sequence from a labelled dataset made by "
         "loom-data classify; docs/finetuning.md)")
        ("model.classes", po::value(&c.model.classes)->default_value(c.model.classes),
         "model.head classify: number of labels (0: the labelled dataset's)")
        ("model.init", po::value(&c.model.init), "weights file (HDF5) or checkpoint (step_N/ or a run directory) to start from; fresh optimizer and step");
    train.add_options()
        ("train.steps", po::value(&c.train.steps)->default_value(c.train.steps), "optimizer steps")
        ("train.global_batch", po::value(&c.train.global_batch)->default_value(c.train.global_batch),
         "sequences per optimizer step")
        ("train.micro_batch", po::value(&c.train.micro_batch)->default_value(c.train.micro_batch),
         "sequences per forward/backward (global_batch / micro_batch accumulation steps)")
        ("train.seq_len", po::value(&c.train.seq_len)->default_value(c.train.seq_len),
         "tokens per training sequence (0: model.seq_len; at most model.seq_len)")
        ("train.seed", po::value(&c.train.seed)->default_value(c.train.seed), "seed of init and data order")
        ("train.precision", po::value(&c.train.precision)->default_value(c.train.precision),
         "fp32, or mixed precision bf16 / fp16: 16-bit weights, activations and activation gradients; f32 master "
         "weights, moments, parameter gradients, statistics and loss (fp16 adds dynamic loss scaling)")
        ("train.recompute", po::value(&c.train.recompute)->default_value(c.train.recompute),
         "activation recompute: none, attention (the attention core's probabilities; dense attention only) or full "
         "(each block)")
        ("train.attention", po::value(&c.train.attention)->default_value(c.train.attention),
         "attention kernel: tiled (memory linear in T, any mask), dense (stores (B,H,T,T) probabilities; causal "
         "only; the reference) or auto (tiled on cpu; dense on cuda, whose tiled kernel has not run on a GPU yet)")
        ("train.device", po::value(&c.train.device)->default_value(c.train.device), "cpu or cuda")
        ("train.eval_interval", po::value(&c.train.eval_interval)->default_value(c.train.eval_interval),
         "validation every N steps and at the end (0: only at the end)")
        ("train.eval_batches", po::value(&c.train.eval_batches)->default_value(c.train.eval_batches),
         "validation batches of global_batch sequences")
        ("train.log_interval", po::value(&c.train.log_interval)->default_value(c.train.log_interval),
         "print a step line every N steps")
        ("train.exit_after_steps", po::value(&c.train.exit_after_steps)->default_value(c.train.exit_after_steps),
         "end this invocation after N steps with a checkpoint, keeping train.steps' schedule; resume with "
         "checkpoint.resume auto (0: off)")
        ("train.exit_after_minutes",
         po::value(&c.train.exit_after_minutes)->default_value(c.train.exit_after_minutes),
         "end this invocation with a checkpoint after the step during which M minutes have passed (0: off)");
    optim.add_options()
        ("optim.lr", po::value(&c.optim.lr)->default_value(c.optim.lr), "peak learning rate")
        ("optim.min_lr", po::value(&c.optim.min_lr)->default_value(c.optim.min_lr),
         "floor of the learning rate after warmup; linear, cosine and wsd end here")
        ("optim.warmup_steps", po::value(&c.optim.warmup_steps)->default_value(c.optim.warmup_steps),
         "linear warmup steps (step s < warmup: start + (lr - start) * (s + 1) / warmup)")
        ("optim.warmup_start_lr", po::value(&c.optim.warmup_start_lr)->default_value(c.optim.warmup_start_lr),
         "learning rate the warmup ramps up from")
        ("optim.decay", po::value(&c.optim.decay)->default_value(c.optim.decay),
         "schedule after warmup: constant, linear, cosine, exponential, inverse_sqrt or wsd "
         "(warmup-stable-decay); formulas in docs/schedules.md")
        ("optim.gamma", po::value(&c.optim.gamma)->default_value(c.optim.gamma),
         "exponential: the rate is multiplied by gamma, in (0, 1], every optim.decay_steps steps")
        ("optim.decay_steps", po::value(&c.optim.decay_steps)->default_value(c.optim.decay_steps),
         "exponential: steps per factor gamma (0: steps - 1 - warmup_steps; the last step gets lr * gamma)")
        ("optim.decay_fraction", po::value(&c.optim.decay_fraction)->default_value(c.optim.decay_fraction),
         "wsd: share of all steps, in [0, 1], annealed to min_lr at the end; lr is held before that")
        ("optim.wsd_anneal", po::value(&c.optim.wsd_anneal)->default_value(c.optim.wsd_anneal),
         "wsd: anneal shape, linear or cosine")
        ("optim.beta1", po::value(&c.optim.beta1)->default_value(c.optim.beta1), "AdamW beta1")
        ("optim.beta2", po::value(&c.optim.beta2)->default_value(c.optim.beta2), "AdamW beta2")
        ("optim.eps", po::value(&c.optim.eps)->default_value(c.optim.eps), "AdamW epsilon")
        ("optim.weight_decay", po::value(&c.optim.weight_decay)->default_value(c.optim.weight_decay),
         "decoupled weight decay (not on biases and layernorms)")
        ("optim.decay_embeddings",
         po::value<bool>(&c.optim.decay_embeddings)
             ->default_value(c.optim.decay_embeddings, c.optim.decay_embeddings ? "true" : "false"),
         "apply weight decay to the embedding tables (wte, wpe) too: true or false")
        ("optim.zero", po::value(&c.optim.zero)->default_value(c.optim.zero),
         "ZeRO stage: 0 (every dp rank holds the AdamW state) or 1 (sharded over dp, Megatron's distributed optimizer)")
        ("optim.clip_grad", po::value(&c.optim.clip_grad)->default_value(c.optim.clip_grad),
         "clip the global gradient norm to this (0: off)")
        ("optim.loss_scale", po::value(&c.optim.loss_scale)->default_value(c.optim.loss_scale),
         "loss scale: 0 = dynamic with fp16 and none otherwise; > 0 = this fixed scale")
        ("optim.initial_loss_scale", po::value(&c.optim.initial_loss_scale)->default_value(c.optim.initial_loss_scale),
         "dynamic loss scaling: the first scale")
        ("optim.loss_scale_window", po::value(&c.optim.loss_scale_window)->default_value(c.optim.loss_scale_window),
         "dynamic loss scaling: steps without an inf/NaN gradient before the scale doubles")
        ("optim.loss_scale_backoff", po::value(&c.optim.loss_scale_backoff)->default_value(c.optim.loss_scale_backoff),
         "dynamic loss scaling: factor in (0, 1) applied to the scale when a step is skipped")
        ("optim.min_loss_scale", po::value(&c.optim.min_loss_scale)->default_value(c.optim.min_loss_scale),
         "dynamic loss scaling: the scale never drops below this");
    parallel.add_options()
        ("parallel.tp", po::value(&c.parallel.tp)->default_value(c.parallel.tp), "tensor-parallel ranks (split heads, ffn, vocab)")
        ("parallel.pp", po::value(&c.parallel.pp)->default_value(c.parallel.pp), "pipeline stages (split layers)")
        ("parallel.dp", po::value(&c.parallel.dp)->default_value(c.parallel.dp),
         "data-parallel replicas (0: world size / (tp * pp))")
        ("parallel.schedule", po::value(&c.parallel.schedule)->default_value(c.parallel.schedule),
         "pipeline schedule: 1f1b or gpipe")
        ("parallel.stages", po::value(&c.parallel.stages),
         "layers per pipeline stage, comma-separated (default: an even split)")
        ("parallel.virtual_stages",
         po::value(&c.parallel.virtual_stages)->default_value(c.parallel.virtual_stages),
         "model chunks per pipeline rank (interleaved 1F1B, Megatron's virtual pipeline stages); needs "
         "parallel.pp > 1 and micro-batches a multiple of pp")
        ("parallel.grad_reduce_dtype",
         po::value(&c.parallel.grad_reduce_dtype)->default_value(c.parallel.grad_reduce_dtype),
         "dtype of the data-parallel gradient reduction: fp32 (exact to f32), or bf16 / fp16 (half the bytes)")
        ("parallel.sequence_parallel",
         po::value<bool>(&c.parallel.sequence_parallel)->default_value(false, "false")->implicit_value(true, "true"),
         "Megatron's sequence parallelism: layernorms and the residual stream split over the tp group "
         "(reduce-scatter / all-gather instead of all-reduce); needs parallel.tp > 1 and micro_batch * seq_len "
         "divisible by tp")
        ("parallel.timeout", po::value(&c.parallel.timeout)->default_value(c.parallel.timeout),
         "watchdog: seconds a collective or pipeline transfer may wait for the other ranks before the job stops, "
         "naming the step, the group and the operation (0: wait forever)");
    data.add_options()
        ("data.train", po::value(&c.data.train), "HDF5 token dataset made by loom-data (its train split), a Megatron pair PREFIX (PREFIX.idx + PREFIX.bin; needs model.vocab and data.eod_id), or a blend \"W1 PATH1 W2 PATH2 ...\"")
        ("data.val", po::value(&c.data.val), "dataset for validation (default: data.train's val split; a blend's first dataset's)")
        ("data.eod_id", po::value(&c.data.eod_id), "Megatron pairs only (required for them): the tokenizer's end-of-document id")
        ("data.val_fraction", po::value(&c.data.val_fraction), "Megatron pairs only: the tail of the pair held out as its val split, as loom-data from-megatron (default 0.05)")
        ("data.tokenizer", po::value(&c.data.tokenizer), "the tokenizer a Megatron pair was made with (bytes, PATH.json, PATH.model): it travels into the model and gives model.vocab and data.eod_id; with a loom dataset it must be the one embedded");
    checkpoint.add_options()
        ("checkpoint.dir", po::value(&c.checkpoint.dir)->default_value(c.checkpoint.dir),
         "the run directory: checkpoints step_N/, latest, weights.h5, config.ini, metrics.jsonl")
        ("checkpoint.interval", po::value(&c.checkpoint.interval)->default_value(c.checkpoint.interval),
         "save a checkpoint every N steps (also at the end and on SIGTERM / SIGUSR1; 0: only then)")
        ("checkpoint.keep", po::value(&c.checkpoint.keep)->default_value(c.checkpoint.keep),
         "keep the newest N checkpoints, deleting older ones once a newer one is complete (0: keep all)")
        ("checkpoint.resume", po::value(&c.checkpoint.resume),
         "auto: continue from the newest complete checkpoint in checkpoint.dir (the previous one if it is "
         "damaged; a fresh start when there is none); or the path of a checkpoint (step_N) or run directory")
        ("checkpoint.overwrite", po::bool_switch(&c.checkpoint.overwrite),
         "start a new run in a checkpoint.dir that holds an earlier run's checkpoints and weights, deleting them")
        ("checkpoint.save_init", po::bool_switch(&c.checkpoint.save_init),
         "also write the initial weights to checkpoint.dir/init.h5 (layouts can be compared bit for bit)");
    finetune.add_options()
        ("finetune.from", po::value(&c.finetune.from),
         "weights file or checkpoint (step_N/ or a run directory) whose backbone starts this run; tensors of "
         "another head are ignored and the new head is initialised from train.seed (as model.init, whose role it takes)")
        ("finetune.freeze_backbone", po::bool_switch(&c.finetune.freeze_backbone),
         "model.head classify: train only the head (feature extraction); backward stops after the head");
    log.add_options()
        ("log.metrics", po::value(&c.log.metrics), "JSONL metrics file (default: checkpoint.dir/metrics.jsonl)");
    plan.add_options()
        ("plan.cluster", po::value(&c.plan.cluster),
         "cluster file (plan/clusters/*.json or one from loom-plan calibrate): print the performance model's "
         "prediction for this layout next to the measured split, the measured/predicted ratios at the end, and "
         "write checkpoint.dir/prediction.json");
  }

  po::options_description all() const {
    po::options_description a;
    a.add(general).add(model).add(train).add(optim).add(parallel).add(data).add(checkpoint).add(finetune).add(log).add(plan);
    return a;
  }
};

}  // namespace

std::optional<RunConfig> parse_train_options(int argc, char** argv, bool print, std::set<std::string>* given) {
  RunConfig c;
  Table t(c);
  const po::options_description all = t.all();
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, all), vm);
    if (vm.count("help")) {
      if (print) std::cout << "usage: loom-train [--config run.ini] [--section.key value ...]\n" << all << "\n";
      return std::nullopt;
    }
    if (vm.count("config")) {
      const std::string path = vm["config"].as<std::string>();
      // A directory opens as a stream that reads nothing: it would silently configure nothing.
      LOOM_CHECK(!std::filesystem::is_directory(path), "give the INI file itself, e.g. --config run.ini",
                 "--config '{}' is a directory, not a config file", path);
      std::ifstream in(path);
      LOOM_CHECK(in.good(), "check the path given to --config", "cannot open config file '{}'", path);
      // The command line was stored first, so its values win over the file's.
      po::store(po::parse_config_file(in, all), vm);
    }
    po::notify(vm);
    if (given)
      for (const auto& [name, value] : vm)
        if (!value.defaulted()) given->insert(name);
  } catch (const po::error& e) {
    throw Error(e.what(), "run 'loom-train --help' for the options");
  }
  if (c.log.metrics.empty()) c.log.metrics = c.checkpoint.dir + "/metrics.jsonl";
  return c;
}

void check_init_matches_options(const ModelConfig& options, const ModelConfig& file,
                                const std::set<std::string>& given, const std::string& path) {
  // An explicit 0 for ffn or vocab means "derive it", which the file then does.
  const std::tuple<const char*, std::int64_t, std::int64_t, bool> fields[] = {
      {"model.layers", options.layers, file.layers, false},  {"model.channels", options.channels, file.channels, false},
      {"model.heads", options.heads, file.heads, false},     {"model.ffn", options.ffn, file.ffn_size(), true},
      {"model.vocab", options.vocab, file.vocab, true},      {"model.seq_len", options.seq_len, file.seq_len, false}};
  for (const auto& [name, mine, theirs, zero_derives] : fields) {
    if (!given.contains(name) || mine == theirs || (zero_derives && mine == 0)) continue;
    throw Error(fmt::format("{} = {} was given, but model.init '{}' holds a model with {} = {}", name, mine, path, name,
                            theirs),
                fmt::format("the architecture comes from the weights file: drop --{} or start from other weights", name));
  }
  const std::tuple<const char*, std::string, std::string> parts[] = {
      {"model.norm", options.norm, file.norm},
      {"model.mlp", options.mlp, file.mlp},
      {"model.positions", options.positions, file.positions},
      {"model.kv_heads", std::to_string(options.kv_head_count()), std::to_string(file.kv_head_count())},
      {"model.window", std::to_string(options.window), std::to_string(file.window)},
      {"model.rel_buckets", std::to_string(options.rel_buckets), std::to_string(file.rel_buckets)},
      {"model.rel_max_distance", std::to_string(options.rel_max_distance), std::to_string(file.rel_max_distance)},
      {"model.rope_base", fmt::format("{}", options.rope_base), fmt::format("{}", file.rope_base)},
      {"model.norm_eps", fmt::format("{}", options.norm_eps), fmt::format("{}", file.norm_eps)},
      {"model.family", options.family, file.family},
      {"model.ln_placement", options.ln_placement, file.ln_placement}};
  for (const auto& [name, mine, theirs] : parts) {
    if (!given.contains(name) || mine == theirs) continue;
    throw Error(fmt::format("{} = {} was given, but model.init '{}' holds a model with {} = {}", name, mine, path, name,
                            theirs),
                fmt::format("the architecture comes from the weights file: drop --{} or start from other weights", name));
  }
}

std::string to_ini(const RunConfig& c) {
  std::ostringstream o;
  o << "[model]\nlayers = " << c.model.layers << "\nchannels = " << c.model.channels << "\nheads = " << c.model.heads
    << "\nffn = " << c.model.ffn_size() << "\nvocab = " << c.model.vocab << "\nseq_len = " << c.model.seq_len
    << "\nnorm = " << c.model.norm << "\nmlp = " << c.model.mlp << "\npositions = " << c.model.positions
    << "\nrope_base = " << c.model.rope_base << "\nnorm_eps = " << c.model.norm_eps
    << "\nkv_heads = " << c.model.kv_head_count() << "\nfamily = " << c.model.family
    << "\nln_placement = " << c.model.ln_placement << "\nwindow = " << c.model.window << "\nhead = " << c.model.head
    << "\n";
  if (c.model.head == "classify") o << "classes = " << c.model.classes << "\n";
  if (c.model.positions == "t5_relative")
    o << "rel_buckets = " << c.model.rel_buckets << "\nrel_max_distance = " << c.model.rel_max_distance << "\n";
  if (!c.model.init.empty()) o << "init = " << c.model.init << "\n";
  o << "\n[train]\nsteps = " << c.train.steps << "\nglobal_batch = " << c.train.global_batch
    << "\nmicro_batch = " << c.train.micro_batch << "\nseq_len = " << c.train.sequence(c.model) << "\nseed = " << c.train.seed << "\nprecision = " << c.train.precision << "\nrecompute = " << c.train.recompute
    << "\nattention = " << c.train.attention
    << "\ndevice = " << c.train.device << "\neval_interval = " << c.train.eval_interval
    << "\neval_batches = " << c.train.eval_batches << "\nlog_interval = " << c.train.log_interval << "\n";
  o << "exit_after_steps = " << c.train.exit_after_steps << "\nexit_after_minutes = " << c.train.exit_after_minutes
    << "\n";
  const OptimConfig& op = c.optim;
  o << "\n[optim]\nlr = " << op.lr << "\nmin_lr = " << op.min_lr << "\nwarmup_steps = " << op.warmup_steps
    << "\nwarmup_start_lr = " << op.warmup_start_lr << "\ndecay = " << op.decay << "\ngamma = " << op.gamma
    << "\ndecay_steps = " << op.decay_steps << "\ndecay_fraction = " << op.decay_fraction
    << "\nwsd_anneal = " << op.wsd_anneal << "\nbeta1 = " << op.beta1 << "\nbeta2 = " << op.beta2
    << "\neps = " << op.eps << "\nweight_decay = " << op.weight_decay
    << "\ndecay_embeddings = " << (op.decay_embeddings ? "true" : "false") << "\nclip_grad = " << op.clip_grad << "\nzero = " << op.zero
    << "\nloss_scale = " << op.loss_scale << "\ninitial_loss_scale = " << op.initial_loss_scale
    << "\nloss_scale_window = " << op.loss_scale_window << "\nloss_scale_backoff = " << op.loss_scale_backoff
    << "\nmin_loss_scale = " << op.min_loss_scale << "\n";
  o << "\n[parallel]\ntp = " << c.parallel.tp << "\npp = " << c.parallel.pp << "\ndp = " << c.parallel.dp
    << "\nschedule = " << c.parallel.schedule << "\nvirtual_stages = " << c.parallel.virtual_stages
    << "\ngrad_reduce_dtype = " << c.parallel.grad_reduce_dtype
    << "\nsequence_parallel = " << (c.parallel.sequence_parallel ? "true" : "false")
    << "\ntimeout = " << c.parallel.timeout << "\n";
  if (!c.parallel.stages.empty()) o << "stages = " << c.parallel.stages << "\n";
  o << "\n[data]\ntrain = " << c.data.train << "\nval = " << c.data.val << "\neod_id = " << c.data.eod_id
    << "\nval_fraction = " << c.data.val_fraction << "\ntokenizer = " << c.data.tokenizer << "\n";
  o << "\n[checkpoint]\ndir = " << c.checkpoint.dir << "\ninterval = " << c.checkpoint.interval
    << "\nkeep = " << c.checkpoint.keep << "\n";
  if (!c.checkpoint.resume.empty()) o << "resume = " << c.checkpoint.resume << "\n";
  if (!c.finetune.from.empty() || c.finetune.freeze_backbone)
    o << "\n[finetune]\n" << (c.finetune.from.empty() ? "" : "from = " + c.finetune.from + "\n")
      << "freeze_backbone = " << (c.finetune.freeze_backbone ? "true" : "false") << "\n";
  o << "\n[log]\nmetrics = " << c.log.metrics << "\n";
  if (!c.plan.cluster.empty()) o << "\n[plan]\ncluster = " << c.plan.cluster << "\n";
  return o.str();
}

}  // namespace loom
