// core/config.h — the run configuration as plain structs, and the one validate().
//
// Only launch/ knows argv and INI files; it fills these structs (option names
// are `section.field`, e.g. model.layers) and calls validate(), which throws a
// loom::Error naming the option and how to fix it. Everything else reads the
// structs. Derived sizes (padded vocab, head size) are functions, not fields.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace loom {

struct ModelConfig {
  std::int64_t layers = 6;
  std::int64_t channels = 384;
  std::int64_t heads = 6;
  std::int64_t ffn = 0;        // 0: 4 * channels
  std::int64_t vocab = 0;      // 0: the dataset's vocabulary
  std::int64_t seq_len = 256;  // maximum sequence length (rows of wpe)
  std::string init;            // weights file to start from (empty: random init)
  // The decoder's parts (docs/models.md has each formula and its tensor-parallel split).
  // The defaults are GPT-2's; every other value is a Llama-style choice.
  std::string norm = "layernorm";     // layernorm | rmsnorm (weight only, no bias)
  std::string mlp = "gelu";           // gelu | relu | swiglu (gate and up projections, silu(gate) * up)
  std::string positions = "learned";  // learned (wpe) | sinusoidal | rope | alibi | t5_relative
  double rope_base = 10000;           // rope: the frequencies are rope_base^(-2i/D)
  // t5_relative (Raffel et al.): one learned (rel_buckets, heads) bias table shared by every
  // layer; offsets up to rel_max_distance get log-spaced buckets (layers/positions.h). T5's defaults.
  std::int64_t rel_buckets = 32;
  std::int64_t rel_max_distance = 128;
  double norm_eps = 1e-5;             // both norms
  std::int64_t kv_heads = 0;          // key/value heads (grouped-query attention); 0: heads
  // The family (docs/models.md): gpt, a causal decoder trained on the next token; or bert,
  // a bidirectional encoder trained on masked tokens (the batches are masked by
  // io/mlm_masker.h), its head tied to the embedding like GPT's.
  std::string family = "gpt";       // gpt | bert
  std::string ln_placement = "pre";  // pre: x + f(ln(x)) (GPT-2); post: ln(x + f(x)) (BERT), no final ln_f
  // Sliding-window (local) attention: position t sees only the last `window` keys
  // t - window < s <= t (Longformer / Mistral style); 0: all of them. Needs train.attention
  // tiled, whose work is then O(T * window).
  std::int64_t window = 0;
  // What the last stage computes (docs/finetuning.md): lm (the tied LM head, next-token
  // cross-entropy) or classify (one label per sequence: the pooled position's final-norm
  // output -> linear C -> classes, cross-entropy over the classes).
  std::string head = "lm";
  std::int64_t classes = 0;  // classify: number of labels; 0: the labelled dataset's

  // ffn = 0: 4 * channels, or for swiglu Llama's 2/3 of it (8C/3) rounded up to a multiple
  // of 64 (Llama rounds to 256; give model.ffn to match a particular Llama).
  std::int64_t ffn_size() const {
    if (ffn > 0) return ffn;
    return mlp == "swiglu" ? (8 * channels / 3 + 63) / 64 * 64 : 4 * channels;
  }
  bool bert() const { return family == "bert"; }
  bool post_ln() const { return ln_placement == "post"; }
  std::int64_t head_size() const { return channels / heads; }
  std::int64_t kv_head_count() const { return kv_heads > 0 ? kv_heads : heads; }
  // Rows of c_attn: q (heads * D), then k and v (kv_heads * D each).
  std::int64_t qkv_size() const { return (heads + 2 * kv_head_count()) * head_size(); }
  // GPT-2 itself: the parts `loom-ckpt export --hf` (a Hugging Face GPT-2) can write.
  bool is_gpt2() const {
    return family == "gpt" && ln_placement == "pre" && norm == "layernorm" && mlp == "gelu" &&
           positions == "learned" && kv_head_count() == heads && window == 0 && head == "lm";
  }
  // Vocabulary padded to a multiple of 128 (GPT-2: 50257 -> 50304) for GEMM
  // efficiency and tensor-parallel splits; padded logits are excluded from the loss.
  std::int64_t padded_vocab() const { return (vocab + 127) / 128 * 128; }
};

struct TrainConfig {
  std::int64_t steps = 100;
  std::int64_t global_batch = 8;  // sequences per optimizer step
  std::int64_t micro_batch = 8;   // sequences per forward/backward (gradient accumulation)
  std::int64_t seq_len = 0;       // tokens per training sequence; 0: model.seq_len
  std::uint64_t seed = 1337;
  // Working precision: fp32, or bf16 / fp16 mixed precision (16-bit parameters, activations
  // and activation gradients; f32 master weights, moments, gradients, statistics and loss).
  std::string precision = "fp32";
  // Activation recompute: none; attention (Korthikanti et al.'s selective recompute: the
  // attention core's probabilities are recomputed in backward, not stored); full (only each
  // block's input is kept; the block is recomputed in backward).
  std::string recompute = "none";
  // The attention core's kernel: tiled (online softmax over tiles; saves (B,H,T) statistics,
  // memory linear in T; any mask), dense (saves the (B,H,T,T) probabilities; causal only,
  // no window), or auto: tiled on cpu, dense on cuda (whose tiled kernel is compiled but has
  // not run on a GPU yet). Same function up to float summation order. docs/attention.md.
  std::string attention = "auto";
  std::string device = "cpu";
  std::int64_t eval_interval = 50;  // 0: never
  std::int64_t eval_batches = 4;
  std::int64_t log_interval = 1;
  // End this invocation cleanly, with a checkpoint, after this many steps or minutes
  // (0: off), keeping the whole run's schedule (train.steps): for jobs with a time limit,
  // which resume with checkpoint.resume auto.
  std::int64_t exit_after_steps = 0;
  double exit_after_minutes = 0;

  std::int64_t sequence(const ModelConfig& m) const { return seq_len > 0 ? seq_len : m.seq_len; }
  // train.attention with auto resolved for train.device: "tiled" or "dense".
  std::string attention_kernel() const {
    if (attention != "auto") return attention;
    return device == "cuda" ? "dense" : "tiled";
  }
};

// The schedules optim.decay accepts (schedule/lr_schedule.h has their formulas).
inline constexpr const char* kDecaySchedules = "constant, linear, cosine, exponential, inverse_sqrt, wsd";

struct OptimConfig {
  float lr = 6e-4f;      // peak learning rate, reached at the last warmup step
  float min_lr = 6e-5f;  // floor after warmup; linear/cosine/wsd end here
  std::int64_t warmup_steps = 10;
  float warmup_start_lr = 0.0f;       // warmup ramps linearly from here to lr
  std::string decay = "cosine";       // one of kDecaySchedules
  float gamma = 0.1f;                 // exponential: factor per decay_steps steps
  std::int64_t decay_steps = 0;       // exponential: 0 = steps - 1 - warmup_steps (last step: lr * gamma)
  float decay_fraction = 0.1f;        // wsd: share of all steps spent annealing at the end
  std::string wsd_anneal = "linear";  // wsd: anneal shape, linear or cosine
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
  float weight_decay = 0.1f;
  bool decay_embeddings = true;  // weight decay also on the embedding tables (wte, wpe)
  float clip_grad = 1.0f;  // 0: no clipping
  int zero = 0;            // 1: ZeRO-1, AdamW state sharded over data parallelism
  // Loss scaling (fp16's small range): 0 = dynamic under fp16, off otherwise; > 0 = this
  // fixed scale. Dynamic: start at initial_loss_scale; a step whose gradients hold an
  // inf/NaN (on any rank) is skipped and the scale multiplied by loss_scale_backoff (not
  // below min_loss_scale); after loss_scale_window steps without one it doubles.
  float loss_scale = 0;
  float initial_loss_scale = 65536;
  std::int64_t loss_scale_window = 1000;
  float loss_scale_backoff = 0.5f;
  float min_loss_scale = 1;

  // wsd: the first annealing step, max(warmup_steps, steps - round(decay_fraction * steps)).
  std::int64_t wsd_anneal_start(std::int64_t steps) const;
};

// The process grid (dp x tp x pp ranks; parallel/process_grid.h).
struct ParallelConfig {
  int tp = 1;
  int pp = 1;
  int dp = 0;                      // 0: world size / (tp * pp)
  std::string schedule = "1f1b";   // pipeline schedule: 1f1b or gpipe
  std::string stages;              // layers per pipeline stage, e.g. "3,3,2" (empty: even split)
  int virtual_stages = 1;          // model chunks per pipeline rank (interleaved 1F1B); 1: plain
  std::string grad_reduce_dtype = "fp32";  // the data-parallel gradient reduction: fp32, bf16 or fp16
  bool sequence_parallel = false;  // Megatron's sequence parallelism over the tp group (needs tp > 1)
  // Watchdog: seconds a collective or pipeline transfer may wait for its peers before the
  // job stops naming the step, group and operation; 0: wait forever.
  double timeout = 600;
};

struct DataConfig {
  std::string train;  // HDF5 token dataset (split "train")
  std::string val;    // default: the same file (split "val")
  // Only for a Megatron pair (io/megatron_source.h), which records no eod id and no
  // val split: the eod appended after each document, and the stream's tail held out as val.
  std::int32_t eod_id = -1;
  double val_fraction = 0.05;
  // The tokenizer of data that records none (a Megatron pair): bytes, PATH.json or
  // PATH.model. It travels into the model, and gives model.vocab and eod_id when they are
  // not set. With a loom dataset it must be the one the dataset embeds.
  std::string tokenizer;
};

struct CheckpointConfig {
  std::string dir = "runs/latest";  // the run directory (launch/run_dir.h); final weights: dir/weights.h5
  bool save_init = false;           // also write dir/init.h5 before step 1
  std::int64_t interval = 1000;     // save every N steps (0: only at the end and on a stop)
  std::int64_t keep = 0;            // keep the newest N checkpoints (0: all)
  std::string resume;               // "": a new run; "auto": the newest good checkpoint in dir; or a checkpoint path
  bool overwrite = false;           // a new run may delete an earlier run's checkpoints and weights in dir
};

// Fine-tuning (docs/finetuning.md): where the backbone comes from and whether it trains.
struct FinetuneConfig {
  std::string from;  // weights file or checkpoint whose backbone starts the run (as model.init; heads may differ)
  bool freeze_backbone = false;  // only the classification head trains (feature extraction)
};

struct LogConfig {
  std::string metrics;  // JSONL path; default dir/metrics.jsonl
};

// loom-train --plan.cluster: the performance model's prediction for this run (plan/,
// docs/scaling.md "Live comparison"), printed next to the measured split.
struct PlanConfig {
  std::string cluster;  // cluster description (plan/clusters/*.json, loom-plan calibrate); empty: off
};

struct RunConfig {
  ModelConfig model;
  TrainConfig train;
  OptimConfig optim;
  ParallelConfig parallel;
  DataConfig data;
  CheckpointConfig checkpoint;
  FinetuneConfig finetune;
  LogConfig log;
  PlanConfig plan;
};

// Throws loom::Error for the first invalid option, naming it ("model.heads ...").
void validate(const ModelConfig& m);
void validate(const RunConfig& c);
// Settings that are legal but probably not meant (warmup longer than the run, ...), one
// sentence each naming the options; loom-train prints them. Empty when there is nothing to say.
std::vector<std::string> config_warnings(const RunConfig& c);
// The layout against the job: world == dp * tp * pp, and the global batch splits
// into dp slices of whole micro-batches. Fills in parallel.dp when it is 0.
void validate_layout(RunConfig& c, int world_size);

}  // namespace loom
