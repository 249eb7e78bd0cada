// core/config.cpp — validate(): every check names the option and says how to fix it.
#include "core/config.h"

#include "core/error.h"

namespace loom {

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
  LOOM_CHECK(t.precision == "fp32", "mixed precision (bf16/fp16) comes with its own issue; use fp32",
             "train.precision '{}' is not supported yet", t.precision);
  LOOM_CHECK(t.device == "cpu" || t.device == "cuda", "", "train.device must be cpu or cuda, got '{}'", t.device);
  LOOM_CHECK(t.eval_interval >= 0 && t.eval_batches > 0, "",
             "train.eval_interval must be >= 0 and train.eval_batches > 0");
  LOOM_CHECK(t.log_interval > 0, "", "train.log_interval must be > 0, got {}", t.log_interval);
  const OptimConfig& o = c.optim;
  LOOM_CHECK(o.lr > 0 && o.min_lr >= 0 && o.min_lr <= o.lr, "", "optim.lr must be > 0 and 0 <= optim.min_lr <= optim.lr");
  LOOM_CHECK(o.warmup_steps >= 0, "", "optim.warmup_steps must be >= 0");
  LOOM_CHECK(o.decay == "cosine" || o.decay == "linear" || o.decay == "constant", "",
             "optim.decay must be cosine, linear or constant, got '{}'", o.decay);
  LOOM_CHECK(0 <= o.beta1 && o.beta1 < 1 && 0 <= o.beta2 && o.beta2 < 1 && o.eps > 0, "",
             "optim.beta1 and optim.beta2 must be in [0, 1) and optim.eps > 0");
  LOOM_CHECK(o.weight_decay >= 0 && o.clip_grad >= 0, "", "optim.weight_decay and optim.clip_grad must be >= 0");
}

void validate_layout(RunConfig& c, int world) {
  ParallelConfig& p = c.parallel;
  LOOM_CHECK(p.tp >= 1 && p.pp >= 1 && p.dp >= 0, "", "parallel.tp and parallel.pp must be >= 1 and parallel.dp >= 0");
  LOOM_CHECK(c.model.layers >= p.pp, "use at most as many pipeline stages as layers",
             "model.layers ({}) is fewer than the pipeline stages parallel.pp ({})", c.model.layers, p.pp);
  LOOM_CHECK(p.schedule == "1f1b" || p.schedule == "gpipe", "", "parallel.schedule must be 1f1b or gpipe, got '{}'",
             p.schedule);
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
  const TrainConfig& t = c.train;
  LOOM_CHECK(t.global_batch % p.dp == 0, "make train.global_batch a multiple of the data-parallel size",
             "train.global_batch ({}) does not split evenly over parallel.dp = {} ranks", t.global_batch, p.dp);
  LOOM_CHECK((t.global_batch / p.dp) % t.micro_batch == 0, "pick a micro_batch that divides global_batch / dp",
             "train.micro_batch ({}) must divide the per-rank batch train.global_batch / parallel.dp = {}",
             t.micro_batch, t.global_batch / p.dp);
}

}  // namespace loom
