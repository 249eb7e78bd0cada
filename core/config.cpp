// core/config.cpp — validate(): every check names the option and says how to fix it.
#include "core/config.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/error.h"

namespace loom {

namespace {

// An option's value for a message, "0.0006, the default" when it equals the default.
template <class T>
std::string shown(T value, T default_value) {
  return value == default_value ? fmt::format("{}, the default", value) : fmt::format("{}", value);
}

bool is_decay_schedule(const std::string& d) {
  for (const char* s : {"constant", "linear", "cosine", "exponential", "inverse_sqrt", "wsd"})
    if (d == s) return true;
  return false;
}

// inf and NaN pass some range checks (inf >= 0) and would reach the optimizer: refuse them
// first, by name, for every floating-point option.
void check_finite(const OptimConfig& o) {
  const std::pair<const char*, float> values[] = {
      {"optim.lr", o.lr},
      {"optim.min_lr", o.min_lr},
      {"optim.warmup_start_lr", o.warmup_start_lr},
      {"optim.gamma", o.gamma},
      {"optim.decay_fraction", o.decay_fraction},
      {"optim.beta1", o.beta1},
      {"optim.beta2", o.beta2},
      {"optim.eps", o.eps},
      {"optim.weight_decay", o.weight_decay},
      {"optim.clip_grad", o.clip_grad},
      {"optim.loss_scale", o.loss_scale},
      {"optim.initial_loss_scale", o.initial_loss_scale},
      {"optim.loss_scale_backoff", o.loss_scale_backoff},
      {"optim.min_loss_scale", o.min_loss_scale}};
  for (const auto& [name, v] : values)
    LOOM_CHECK(std::isfinite(v), "give a finite number", "{} must be a finite number, got {}", name, v);
}

void check_optim(const OptimConfig& o) {
  const OptimConfig def;
  check_finite(o);
  // Written so that NaN fails every check.
  LOOM_CHECK(o.lr > 0, "", "optim.lr must be > 0, got {}", o.lr);
  LOOM_CHECK(o.min_lr >= 0, "use 0 to decay all the way", "optim.min_lr must be >= 0, got {}", o.min_lr);
  LOOM_CHECK(o.min_lr <= o.lr, "lower optim.min_lr or raise optim.lr; min_lr is the floor after warmup",
             "optim.min_lr ({}) is above optim.lr ({})", shown(o.min_lr, def.min_lr), shown(o.lr, def.lr));
  LOOM_CHECK(o.warmup_steps >= 0, "use 0 for no warmup", "optim.warmup_steps must be >= 0, got {}",
             o.warmup_steps);
  LOOM_CHECK(o.warmup_start_lr >= 0, "", "optim.warmup_start_lr must be >= 0, got {}", o.warmup_start_lr);
  LOOM_CHECK(o.warmup_start_lr <= o.lr, "warmup ramps up from optim.warmup_start_lr to optim.lr; lower it",
             "optim.warmup_start_lr ({}) is above optim.lr ({})",
             shown(o.warmup_start_lr, def.warmup_start_lr), shown(o.lr, def.lr));
  LOOM_CHECK(is_decay_schedule(o.decay), std::string("use one of ") + kDecaySchedules,
             "optim.decay '{}' is not a learning-rate schedule", o.decay);
  LOOM_CHECK(o.gamma > 0 && o.gamma <= 1,
             "the exponential decay multiplies the rate by optim.gamma, e.g. 0.1",
             "optim.gamma ({}) must be in (0, 1]", shown(o.gamma, def.gamma));
  LOOM_CHECK(o.decay_steps >= 0, "use 0 for the steps after warmup", "optim.decay_steps must be >= 0, got {}",
             o.decay_steps);
  LOOM_CHECK(o.decay_fraction >= 0 && o.decay_fraction <= 1,
             "wsd anneals over this share of the steps, e.g. 0.1",
             "optim.decay_fraction ({}) must be in [0, 1]", shown(o.decay_fraction, def.decay_fraction));
  LOOM_CHECK(o.wsd_anneal == "linear" || o.wsd_anneal == "cosine", "use linear or cosine",
             "optim.wsd_anneal '{}' is not an anneal shape", o.wsd_anneal);
  LOOM_CHECK(0 <= o.beta1 && o.beta1 < 1 && 0 <= o.beta2 && o.beta2 < 1 && o.eps > 0, "",
             "optim.beta1 ({}) and optim.beta2 ({}) must be in [0, 1) and optim.eps ({}) > 0", o.beta1,
             o.beta2, o.eps);
  LOOM_CHECK(o.zero == 0 || o.zero == 1, "0: every dp rank holds the whole optimizer state; 1: ZeRO-1 shards it",
             "optim.zero must be 0 or 1, got {}", o.zero);
  LOOM_CHECK(o.loss_scale >= 0 && o.initial_loss_scale > 0 && o.min_loss_scale > 0 &&
                 o.min_loss_scale <= o.initial_loss_scale,
             "e.g. optim.initial_loss_scale 65536, optim.min_loss_scale 1; optim.loss_scale 0 means dynamic",
             "optim.loss_scale ({}) must be >= 0, optim.initial_loss_scale ({}) and optim.min_loss_scale ({}) > 0 "
             "with min <= initial", o.loss_scale, o.initial_loss_scale, o.min_loss_scale);
  LOOM_CHECK(o.loss_scale_window > 0 && o.loss_scale_backoff > 0 && o.loss_scale_backoff < 1,
             "e.g. optim.loss_scale_window 1000, optim.loss_scale_backoff 0.5",
             "optim.loss_scale_window ({}) must be > 0 and optim.loss_scale_backoff ({}) in (0, 1)",
             o.loss_scale_window, o.loss_scale_backoff);
  LOOM_CHECK(o.weight_decay >= 0 && o.clip_grad >= 0, "",
             "optim.weight_decay ({}) and optim.clip_grad ({}) must be >= 0", o.weight_decay, o.clip_grad);
}

}  // namespace

std::int64_t OptimConfig::wsd_anneal_start(std::int64_t steps) const {
  const auto anneal =
      std::clamp<std::int64_t>(std::llround(double(decay_fraction) * double(steps)), 0, steps);
  return std::max(warmup_steps, steps - anneal);
}

void validate(const ModelConfig& m) {
  LOOM_CHECK(m.layers > 0, "use a positive number of layers", "model.layers must be > 0, got {}", m.layers);
  LOOM_CHECK(m.channels > 0, "", "model.channels must be > 0, got {}", m.channels);
  LOOM_CHECK(m.heads > 0, "", "model.heads must be > 0, got {}", m.heads);
  LOOM_CHECK(m.channels % m.heads == 0, "pick heads that divide channels (e.g. channels=768 heads=12)",
             "model.heads ({}) must divide model.channels ({})", m.heads, m.channels);
  LOOM_CHECK(m.ffn >= 0, "", "model.ffn must be >= 0 (0 means 4 * channels), got {}", m.ffn);
  LOOM_CHECK(m.vocab > 0, "set model.vocab or give a dataset (data.train) to take it from",
             "model.vocab must be > 0, got {}", m.vocab);
  LOOM_CHECK(m.seq_len > 0, "", "model.seq_len must be > 0, got {}", m.seq_len);
  LOOM_CHECK(m.head == "lm" || m.head == "classify", "use lm (language modelling) or classify (one label per sequence)",
             "model.head must be lm or classify, got '{}'", m.head);
  LOOM_CHECK(m.head != "classify" || m.classes >= 2, "set model.classes >= 2, or give a labelled dataset to take it from",
             "model.head classify needs model.classes >= 2, got {}", m.classes);
  LOOM_CHECK(m.norm == "layernorm" || m.norm == "rmsnorm", "use layernorm (GPT-2) or rmsnorm (Llama)",
             "model.norm must be layernorm or rmsnorm, got '{}'", m.norm);
  LOOM_CHECK(m.mlp == "gelu" || m.mlp == "relu" || m.mlp == "swiglu", "use gelu (GPT-2), relu or swiglu (Llama)",
             "model.mlp must be gelu, relu or swiglu, got '{}'", m.mlp);
  LOOM_CHECK(m.positions == "learned" || m.positions == "sinusoidal" || m.positions == "rope" ||
                 m.positions == "alibi" || m.positions == "t5_relative",
             "use learned (GPT-2), sinusoidal, rope (Llama), alibi or t5_relative (T5's relative buckets)",
             "model.positions must be learned, sinusoidal, rope, alibi or t5_relative, got '{}'", m.positions);
  // Bidirectional buckets (bert, and t5's encoder) split rel_buckets in two halves, each with
  // rel_buckets / 4 exact distances; causal ones have rel_buckets / 2. Both need at least
  // one, and a rel_max_distance beyond them (else the log part divides by log(<= 1)).
  const std::int64_t exact = m.bert() || m.t5() ? m.rel_buckets / 4 : m.rel_buckets / 2;
  LOOM_CHECK(m.positions != "t5_relative" || (exact >= 1 && m.rel_max_distance > exact),
             "e.g. T5's model.rel_buckets 32, model.rel_max_distance 128",
             "model.positions t5_relative: model.rel_buckets = {} ({} exact distances for model.family {}) needs at "
             "least 4 buckets (2 causal) and model.rel_max_distance ({}) above the exact distances",
             m.rel_buckets, exact, m.family, m.rel_max_distance);
  LOOM_CHECK(std::isfinite(m.rope_base) && m.rope_base > 1, "e.g. 10000, the RoFormer / Llama value",
             "model.rope_base must be a finite number > 1, got {}", m.rope_base);
  LOOM_CHECK(std::isfinite(m.norm_eps) && m.norm_eps > 0, "e.g. 1e-5", "model.norm_eps must be > 0, got {}",
             m.norm_eps);
  LOOM_CHECK(m.positions != "rope" || m.head_size() % 2 == 0, "pick channels / heads even",
             "model.positions rope rotates pairs of channels: the head size channels / heads = {} must be even",
             m.head_size());
  LOOM_CHECK(m.kv_heads >= 0, "0 means as many as model.heads", "model.kv_heads must be >= 0, got {}", m.kv_heads);
  LOOM_CHECK(m.heads % m.kv_head_count() == 0, "pick model.kv_heads dividing model.heads (e.g. heads 8, kv_heads 2)",
             "model.kv_heads ({}) must divide model.heads ({}): each key/value head serves heads / kv_heads query "
             "heads",
             m.kv_head_count(), m.heads);
  LOOM_CHECK(m.family == "gpt" || m.family == "bert" || m.family == "t5",
             "use gpt (causal decoder, next token), bert (bidirectional encoder, masked tokens) or t5 "
             "(encoder-decoder, span corruption)",
             "model.family must be gpt, bert or t5, got '{}'", m.family);
  LOOM_CHECK(m.decoder_layers >= 0, "0 means as many as model.layers", "model.decoder_layers must be >= 0, got {}",
             m.decoder_layers);
  LOOM_CHECK(m.decoder_layers == 0 || m.t5(), "leave model.decoder_layers 0, or set model.family t5",
             "model.decoder_layers = {} is for the encoder-decoder (model.family t5), not model.family {}",
             m.decoder_layers, m.family);
  if (m.t5()) {  // layers/t5.h: pre-LN stacks, full-head attention, T5's or absolute positions, the LM head
    LOOM_CHECK(m.ln_placement == "pre", "T5 is pre-LN: use model.ln_placement pre",
               "model.family t5 needs model.ln_placement pre, got '{}'", m.ln_placement);
    LOOM_CHECK(m.head == "lm", "fine-tune a gpt-family model (model.head classify needs model.family gpt)",
               "model.family t5 has no classification head: model.head must be lm, got '{}'", m.head);
    LOOM_CHECK(m.positions == "t5_relative" || m.positions == "learned" || m.positions == "sinusoidal",
               "use model.positions t5_relative (T5's own), learned or sinusoidal",
               "model.family t5 takes T5's relative buckets (t5_relative) or absolute positions (learned or "
               "sinusoidal), got model.positions '{}'",
               m.positions);
    LOOM_CHECK(m.kv_head_count() == m.heads && m.window == 0, "leave model.kv_heads and model.window 0",
               "model.family t5 attends with every head over every key: model.kv_heads = {}, model.window = {}",
               m.kv_heads, m.window);
  }
  LOOM_CHECK(m.ln_placement == "pre" || m.ln_placement == "post",
             "use pre (GPT-2, Llama: x + f(norm(x))) or post (BERT: norm(x + f(x)))",
             "model.ln_placement must be pre or post, got '{}'", m.ln_placement);
  LOOM_CHECK(m.window >= 0, "0 means every earlier position (no window)",
             "model.window must be >= 0, got {}", m.window);
}

void validate(const RunConfig& c) {
  validate(c.model);
  const TrainConfig& t = c.train;
  LOOM_CHECK(t.steps > 0, "", "train.steps must be > 0, got {}", t.steps);
  LOOM_CHECK(t.global_batch > 0, "", "train.global_batch must be > 0, got {}", t.global_batch);
  LOOM_CHECK(t.micro_batch > 0, "", "train.micro_batch must be > 0, got {}", t.micro_batch);
  LOOM_CHECK(t.seq_len >= 0, "", "train.seq_len must be >= 0 (0: model.seq_len), got {}", t.seq_len);
  LOOM_CHECK(t.sequence(c.model) <= c.model.seq_len, "lower train.seq_len or raise model.seq_len",
             "train.seq_len ({}) exceeds the model's maximum sequence length model.seq_len = {}", t.seq_len,
             c.model.seq_len);
  LOOM_CHECK(t.recompute == "none" || t.recompute == "attention" || t.recompute == "full",
             "use none, attention (recompute the attention core) or full (recompute each block)",
             "train.recompute must be none, attention or full, got '{}'", t.recompute);
  LOOM_CHECK(t.attention == "auto" || t.attention == "tiled" || t.attention == "dense",
             "use auto (the default: tiled on cpu, dense on cuda), tiled or dense",
             "train.attention must be auto, tiled or dense, got '{}'", t.attention);
  LOOM_CHECK(c.model.window == 0 || t.attention_kernel() == "tiled",
             "use train.attention tiled (auto is dense on cuda), or model.window 0",
             "model.window = {} needs train.attention tiled: the dense kernel (train.attention {}, train.device {}) has "
             "no window mask",
             c.model.window, t.attention, t.device);
  LOOM_CHECK(c.model.positions != "t5_relative" || t.attention_kernel() == "tiled",
             "use train.attention tiled (auto is dense on cuda)",
             "model.positions t5_relative needs train.attention tiled: the dense kernel (train.attention {}, "
             "train.device {}) has no relative bias",
             t.attention, t.device);
  LOOM_CHECK(t.precision == "fp32" || t.precision == "bf16" || t.precision == "fp16",
             "use fp32, bf16 or fp16 (mixed precision with f32 master weights)",
             "train.precision must be fp32, bf16 or fp16, got '{}'", t.precision);
  if (c.model.t5()) {  // layers/t5.h: one chunk per pipeline stage, every activation kept, tiled attention
    LOOM_CHECK(c.parallel.virtual_stages == 1, "use parallel.virtual_stages 1 (plain 1F1B or GPipe stages work)",
               "model.family t5 holds one chunk of layers per pipeline stage: parallel.virtual_stages = {}",
               c.parallel.virtual_stages);
    LOOM_CHECK(!c.parallel.sequence_parallel && t.recompute == "none" && !c.finetune.freeze_backbone,
               "turn off parallel.sequence_parallel, train.recompute and finetune.freeze_backbone",
               "model.family t5 has no sequence parallelism, activation recompute or frozen backbone yet");
    LOOM_CHECK(c.plan.cluster.empty(), "drop plan.cluster (loom-plan models decoder-only stacks)",
               "model.family t5: the performance model (plan.cluster) does not know the encoder-decoder yet");
    LOOM_CHECK(t.attention_kernel() == "tiled", "use train.attention tiled",
               "model.family t5 attends bidirectionally and across stacks: it needs the tiled kernel, not "
               "train.attention {} on train.device {}",
               t.attention, t.device);
  }
  const std::string& g = c.parallel.grad_reduce_dtype;
  LOOM_CHECK(g == "fp32" || g == "bf16" || g == "fp16", "fp32 (the default) keeps the reduction exact to f32",
             "parallel.grad_reduce_dtype must be fp32, bf16 or fp16, got '{}'", g);
  LOOM_CHECK(c.parallel.timeout >= 0 && std::isfinite(c.parallel.timeout), "seconds, e.g. 600; 0 turns the watchdog off",
             "parallel.timeout must be a finite number >= 0, got {}", c.parallel.timeout);
  LOOM_CHECK(t.device == "cpu" || t.device == "cuda", "", "train.device must be cpu or cuda, got '{}'", t.device);
  LOOM_CHECK(t.eval_interval >= 0 && t.eval_batches > 0, "",
             "train.eval_interval must be >= 0 and train.eval_batches > 0");
  LOOM_CHECK(t.exit_after_steps >= 0 && t.exit_after_minutes >= 0 && std::isfinite(t.exit_after_minutes), "0 turns it off",
             "train.exit_after_steps and train.exit_after_minutes must be >= 0");
  LOOM_CHECK(!c.finetune.freeze_backbone || c.model.head == "classify",
             "add --model.head classify, or drop finetune.freeze_backbone",
             "finetune.freeze_backbone trains only the classification head; model.head is '{}'", c.model.head);
  LOOM_CHECK(c.finetune.from.empty() || c.model.init.empty(), "give one of them: both name the starting weights",
             "finetune.from and model.init are both set");
  const CheckpointConfig& k = c.checkpoint;
  LOOM_CHECK(!k.dir.empty(), "name the run directory", "checkpoint.dir must not be empty");
  LOOM_CHECK(k.interval >= 0, "0 saves only at the end and on a stop signal",
             "checkpoint.interval must be >= 0, got {}", k.interval);
  LOOM_CHECK(k.keep >= 0, "0 keeps every checkpoint", "checkpoint.keep must be >= 0, got {}", k.keep);
  LOOM_CHECK(!(k.overwrite && !k.resume.empty()), "resume the earlier run, or start over with checkpoint.overwrite",
             "checkpoint.overwrite and checkpoint.resume '{}' contradict each other", k.resume);
  LOOM_CHECK(t.log_interval > 0, "", "train.log_interval must be > 0, got {}", t.log_interval);
  check_optim(c.optim);
}

std::vector<std::string> config_warnings(const RunConfig& c) {
  std::vector<std::string> w;
  const OptimConfig& o = c.optim;
  const std::int64_t steps = c.train.steps;
  if (o.warmup_steps > steps) {
    const double top =
        o.warmup_start_lr + double(o.lr - o.warmup_start_lr) * double(steps) / double(o.warmup_steps);
    w.push_back(
        fmt::format("optim.warmup_steps ({}) is longer than the run (train.steps = {}): the learning rate "
                    "peaks at {:.3g} instead of optim.lr = {} and never decays",
                    o.warmup_steps, steps, top, o.lr));
  } else if (o.decay == "wsd" && o.decay_fraction > 0) {
    const std::int64_t wanted = std::llround(double(o.decay_fraction) * double(steps));
    const std::int64_t start = o.wsd_anneal_start(steps);
    if (steps - start < wanted)
      w.push_back(
          fmt::format("optim.decay_fraction ({}) asks for {} anneal steps but only {} follow the warmup "
                      "(optim.warmup_steps = {}): wsd anneals over those, with no stable phase",
                      o.decay_fraction, wanted, steps - start, o.warmup_steps));
  }
  if (c.train.recompute == "attention" && c.train.attention_kernel() == "tiled")
    w.push_back(
        "train.recompute attention does nothing with train.attention tiled: the tiled kernel keeps no attention "
        "probabilities (only (B,H,T) statistics) and recomputes them in its backward anyway; the run is as with "
        "train.recompute none");
  return w;
}

void validate_layout(RunConfig& c, int world) {
  ParallelConfig& p = c.parallel;
  LOOM_CHECK(p.tp >= 1 && p.pp >= 1 && p.dp >= 0, "", "parallel.tp and parallel.pp must be >= 1 and parallel.dp >= 0");
  LOOM_CHECK(c.model.layers >= p.pp, "use at most as many pipeline stages as layers",
             "model.layers ({}) is fewer than the pipeline stages parallel.pp ({})", c.model.layers, p.pp);
  LOOM_CHECK(p.schedule == "1f1b" || p.schedule == "gpipe", "", "parallel.schedule must be 1f1b or gpipe, got '{}'",
             p.schedule);
  LOOM_CHECK(p.virtual_stages >= 1, "use 1 for one model chunk per pipeline rank",
             "parallel.virtual_stages must be >= 1, got {}", p.virtual_stages);
  if (p.virtual_stages > 1) {
    const int v = p.virtual_stages;
    LOOM_CHECK(p.pp > 1, "set parallel.pp > 1 or parallel.virtual_stages = 1",
               "parallel.virtual_stages ({}) needs pipeline parallelism, but parallel.pp is {}", v, p.pp);
    LOOM_CHECK(
        p.schedule == "1f1b", "use parallel.schedule = 1f1b or parallel.virtual_stages = 1",
        "parallel.virtual_stages ({}) needs the interleaved 1F1B schedule, but parallel.schedule is '{}'", v,
        p.schedule);
    LOOM_CHECK(c.model.layers >= std::int64_t(p.pp) * v, "lower parallel.virtual_stages or parallel.pp",
               "model.layers ({}) is fewer than the model chunks parallel.pp * parallel.virtual_stages = {} "
               "* {} = {}",
               c.model.layers, p.pp, v, p.pp * v);
  }
  if (p.dp == 0) {
    LOOM_CHECK(world % (p.tp * p.pp) == 0, "launch a multiple of tp * pp ranks",
               "the job has {} ranks, not a multiple of parallel.tp * parallel.pp = {}", world, p.tp * p.pp);
    p.dp = world / (p.tp * p.pp);
  }
  LOOM_CHECK(p.dp * p.tp * p.pp == world, fmt::format("launch with mpirun -np {} or change the parallel.* options",
                                                       p.dp * p.tp * p.pp),
             "the job has {} ranks but parallel.dp * parallel.tp * parallel.pp = {} * {} * {} = {}", world, p.dp, p.tp,
             p.pp, p.dp * p.tp * p.pp);
  const ModelConfig& m = c.model;
  LOOM_CHECK(m.heads % p.tp == 0, "pick parallel.tp dividing model.heads",
             "model.heads ({}) is not divisible by parallel.tp ({})", m.heads, p.tp);
  LOOM_CHECK(m.ffn_size() % p.tp == 0, "pick parallel.tp dividing model.ffn",
             "model.ffn ({}) is not divisible by parallel.tp ({})", m.ffn_size(), p.tp);
  LOOM_CHECK(m.kv_head_count() % p.tp == 0, "pick parallel.tp dividing model.kv_heads (or more kv_heads)",
             "model.kv_heads ({}) is not divisible by parallel.tp ({}): each tp rank holds whole key/value heads",
             m.kv_head_count(), p.tp);
  const TrainConfig& t = c.train;
  if (p.sequence_parallel) {
    LOOM_CHECK(p.tp > 1, "set parallel.tp > 1 or turn parallel.sequence_parallel off",
               "sequence parallelism splits over tp; it needs parallel.tp > 1");
    const std::int64_t rows = t.micro_batch * t.sequence(m);
    LOOM_CHECK(rows % p.tp == 0, "pick train.micro_batch * train.seq_len divisible by parallel.tp",
               "sequence parallelism splits the micro_batch * seq_len = {} * {} = {} token rows over parallel.tp = {} "
               "ranks; they do not divide evenly",
               t.micro_batch, t.sequence(m), rows, p.tp);
  }
  LOOM_CHECK(t.global_batch % p.dp == 0, "make train.global_batch a multiple of the data-parallel size",
             "train.global_batch ({}) does not split evenly over parallel.dp = {} ranks", t.global_batch, p.dp);
  LOOM_CHECK((t.global_batch / p.dp) % t.micro_batch == 0, "pick a micro_batch that divides global_batch / dp",
             "train.micro_batch ({}) must divide the per-rank batch train.global_batch / parallel.dp = {}",
             t.micro_batch, t.global_batch / p.dp);
  const std::int64_t micro_batches = t.global_batch / p.dp / t.micro_batch;
  LOOM_CHECK(
      p.virtual_stages == 1 || micro_batches % p.pp == 0,
      fmt::format(
          "interleaved 1F1B runs micro-batches in groups of parallel.pp; e.g. train.global_batch = {}, "
          "or parallel.virtual_stages = 1",
          (micro_batches / p.pp + 1) * p.pp * p.dp * t.micro_batch),
      "the micro-batches per rank, train.global_batch / parallel.dp / train.micro_batch = {} / {} / {} = {}, "
      "are not a multiple of parallel.pp ({}) as parallel.virtual_stages ({}) > 1 needs",
      t.global_batch, p.dp, t.micro_batch, micro_batches, p.pp, p.virtual_stages);
}

}  // namespace loom
