// plan/loom_memory.cpp — see loom_memory.h. Each block below names the allocation site it
// mirrors; tests/unit/test_plan_loom_memory.cpp holds them equal to the real plan.
#include "plan/loom_memory.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "core/dtype.h"
#include "core/range.h"
#include "layers/gpt.h"
#include "schedule/pipeline_plan.h"

namespace loom::plan {

namespace {

using Bytes = std::size_t;

// One pipeline stage's chunks and the gradient buckets Gpt::build_chunk makes of them.
struct StageLayout {
  GptStage stage;
  std::vector<int> slots;                // per chunk (Trainer::slots_for)
  std::vector<std::int64_t> buckets;     // elements of each gradient bucket
  std::int64_t params = 0;               // elements on this rank
  std::int64_t tied_later_copy = 0;      // elements of a tied copy another stage writes
  std::int64_t tied_elements = 0;        // elements of the tied group held here (pp > 1)
};

StageLayout stage_layout(const RunConfig& c, int stage_index) {
  const int p = c.parallel.pp, V = c.parallel.virtual_stages;
  StageLayout s;
  s.stage = make_gpt_stage(c.model, p, stage_index, V, c.parallel.stages);
  const int dp = std::max(c.parallel.dp, 1);
  const int m = int(c.train.global_batch / dp / c.train.micro_batch);
  const PipePlan plan = make_pipeline_plan(pipe_schedule(c.parallel.schedule, V), p, stage_index, m, V);
  for (int v = 0; v < V; ++v) s.slots.push_back(slots_needed(plan, v));

  // Buckets: ln_f, the head's wte copy (loss chunk without the embedding), each block,
  // the embeddings (wte [+ wpe]) — by parameter name, as Gpt::build_chunk groups them.
  std::map<std::string, std::int64_t> block;  // "h.<l>" -> elements
  std::int64_t ln_f = 0, wte = 0, wpe = 0, rel = 0;
  for (const ParamSpec& spec : Gpt::param_specs(c.model, c.parallel.tp, 0, s.stage)) {
    const std::int64_t n = spec.shape.numel();
    s.params += n;
    if (spec.name.rfind("h.", 0) == 0)
      block[spec.name.substr(0, spec.name.find('.', 2))] += n;
    else if (spec.name.rfind("ln_f", 0) == 0)
      ln_f += n;
    else if (spec.name == "wte")
      wte = n;
    else if (spec.name == "wpe")
      wpe = n;
    else if (spec.name == "rel_bias")  // t5_relative: one table per stage, its own bucket
      rel = n;
  }
  for (auto& [name, n] : block) s.buckets.push_back(n);
  if (ln_f > 0) s.buckets.push_back(ln_f);
  const bool embeds = stage_index == 0, head_only = wte > 0 && !embeds;
  if (embeds) s.buckets.push_back(wte + wpe);
  if (head_only) s.buckets.push_back(wte), s.tied_later_copy = wte;
  if (p > 1 && wte > 0) s.tied_elements = wte;
  if (rel > 0) {  // tied over every stage: a buffer per other stage; stage 0's copy is the one written
    s.buckets.push_back(rel);
    s.tied_elements += std::int64_t(p - 1) * rel;
    if (stage_index > 0) s.tied_later_copy += rel;
  }
  return s;
}

struct Sizes {
  std::int64_t B, T, N, Nl, C, Cl, Fl, Hl, QKVl, Vl;
  Bytes ab;  // bytes of one activation element (train.precision)
  bool rms, swiglu;
  bool tiled;  // train.attention: tiled keeps lse (B,H,T), dense probs (B,H,T,T) + a dprobs scratch
  Bytes stream() const { return Bytes(Nl * C) * ab; }
  Bytes probs() const { return Bytes(B * Hl * T * T) * 4; }  // f32 softmax statistics (dense)
  Bytes lse() const { return Bytes(B * Hl * T) * 4; }        // f32 (tiled)
  Bytes norm_stats() const { return Bytes((rms ? 1 : 2) * Nl) * 4; }  // mean (layernorm) and rstd
  // Gpt::alloc_block_saved: what one block keeps for backward.
  Bytes block_saved(bool with_probs) const {
    const std::int64_t hidden = swiglu ? 2 * Fl : Fl;
    return 3 * stream() + Bytes(N * Cl + N * QKVl + N * hidden + N * Fl) * ab + 2 * norm_stats() +
           (tiled ? lse() : with_probs ? probs() : 0);
  }
};

Sizes sizes(const RunConfig& c) {
  const ModelConfig& m = c.model;
  const std::int64_t t = c.parallel.tp, B = c.train.micro_batch, T = c.train.sequence(m), N = B * T;
  return {B,
          T,
          N,
          c.parallel.sequence_parallel ? N / t : N,
          m.channels,
          m.channels / t,
          m.ffn_size() / t,
          m.heads / t,
          m.qkv_size() / t,
          m.padded_vocab() / t,
          dtype_size(parse_dtype(c.train.precision)),
          m.norm == "rmsnorm",
          m.mlp == "swiglu",
          c.train.attention_kernel() == "tiled"};
}

// Gpt's constructor and build_chunk: activations, scratch and constants.
void add_model_buffers(MemoryPlan& plan, const RunConfig& c, const StageLayout& s, const Sizes& z) {
  Recompute rc = parse_recompute(c.train.recompute);
  if (rc == Recompute::attention && z.tiled) rc = Recompute::none;  // as Gpt: nothing to recompute
  if (c.parallel.sequence_parallel)
    plan.add("sequence parallel: gathered tensors (shared)", 2 * Bytes(z.N * z.C) * z.ab + Bytes(2 * z.C) * 4);
  const std::string recomputed = "activations: recomputed in backward (shared)";
  if (rc == Recompute::full) plan.add(recomputed, z.block_saved(true));
  if (rc == Recompute::attention) plan.add(recomputed, z.probs());
  const int chunks = int(s.stage.chunks.size());
  bool embeds = false, loss = false;
  for (int v = 0; v < chunks; ++v) embeds |= s.stage.embeds(v), loss |= s.stage.has_loss(v);
  if (c.model.positions == "sinusoidal" && embeds) plan.add("position constants", Bytes(z.T * z.C) * z.ab);
  if (c.model.positions == "alibi") plan.add("position constants", Bytes(z.Hl) * 4);
  if (c.model.positions == "t5_relative") {  // RelativeBias: ids (B, 2T-1), bias f32 (+ gathered 16-bit), dbias (B, 2T-1, Hl)
    const std::int64_t offsets = 2 * z.T - 1;
    plan.add("token ids", Bytes(z.B * offsets) * 4);
    plan.add("relative position bias (shared)", Bytes(offsets * z.Hl) * (4 + (z.ab == 4 ? 0 : z.ab)) +
                                                    Bytes(z.B * offsets * z.Hl) * 4);
  }
  for (int v = chunks; v-- > 0;) {
    const auto [begin, end] = s.stage.chunks[std::size_t(v)];
    const std::int64_t L = end - begin;
    const bool e = s.stage.embeds(v), h = s.stage.has_loss(v);
    const Bytes per_layer = rc == Recompute::none ? z.block_saved(true)
                            : rc == Recompute::attention ? z.block_saved(false)
                                                         : 0;
    for (int k = 0; k < s.slots[std::size_t(v)]; ++k) {
      plan.add("activations: blocks", Bytes(L + 1) * z.stream() + Bytes(L) * per_layer);
      if (e) plan.add("token ids", Bytes(z.N) * 4);
      if (h) {
        plan.add("token ids", Bytes(z.N) * 4);
        plan.add("activations: final norm, logits, loss",
                 Bytes(z.Nl * z.C) * z.ab + z.norm_stats() + Bytes(z.N * z.Vl) * z.ab + Bytes(4 * z.N) * 4);
      }
    }
    plan.add("pipeline boundary gradients", (h ? 1 : 2) * z.stream());
  }
  const std::int64_t dh = z.swiglu ? 2 * z.N * z.Fl : 0;
  plan.add("backward scratch (shared by all layers)",
           Bytes(z.N * z.QKVl + z.N * z.Cl + z.N * z.Fl + dh) * z.ab + (z.tiled ? 0 : z.probs()) + z.stream());
  if (loss) plan.add("loss accumulator", Bytes(z.N) * 4);
}

// launch/model_io.cpp save_weights: the stored f32 tensors of the stage, tp shards gathered;
// stage 0 of the writer's pipeline receives every stage's (the whole model).
Bytes weights_file_bytes(const RunConfig& c, int stage_index) {
  const int p = c.parallel.pp;
  std::int64_t elements = 0;
  for (int s = 0; s < p; ++s) {
    if (s != stage_index && !(stage_index == 0 && p > 1)) continue;
    const GptStage st = make_gpt_stage(c.model, p, s, c.parallel.virtual_stages, c.parallel.stages);
    for (const ParamSpec& spec : Gpt::param_specs(c.model, 1, 0, st))
      if (spec.tied.empty() || s == 0) elements += stored_shape(spec).numel();  // tied: stage 0 writes it
  }
  return Bytes(elements) * 4;
}

}  // namespace

MemoryPlan loom_rank_memory(const RunConfig& c, int stage_index) {
  const StageLayout s = stage_layout(c, stage_index);
  const Sizes z = sizes(c);
  const DType dtype = parse_dtype(c.train.precision), reduce = parse_dtype(c.parallel.grad_reduce_dtype);
  const int dp = std::max(c.parallel.dp, 1);
  const Bytes n = Bytes(s.params);
  MemoryPlan plan;
  // ParamStore: the two flat buffers.
  plan.add(fmt::format("parameters ({})", dtype_name(dtype)), n * dtype_size(dtype));
  plan.add("gradients (f32)", n * 4);
  add_model_buffers(plan, c, s, z);
  // Trainer: tied gradients received from the other holder (optimizer/grad_sync.cpp).
  if (s.tied_elements > 0) plan.add("tied gradients from other stages", Bytes(s.tied_elements) * 4);
  const std::string staging = fmt::format("gradient reduction staging ({})", dtype_name(reduce));
  std::int64_t snapshot = s.params - s.tied_later_copy;
  if (c.optim.zero == 1) {  // optimizer/zero_adamw.cpp: this rank's part of every bucket
    std::int64_t owned = 0, owned_later_copy = 0;
    for (std::int64_t b : s.buckets) owned += shard_range(b, dp, 0).size();
    if (s.tied_later_copy > 0) owned_later_copy = shard_range(s.tied_later_copy, dp, 0).size();
    const Bytes shard = Bytes(std::max<std::int64_t>(owned, 1)) * 4;
    plan.add("AdamW moments m, v (f32, this rank's shard)", 2 * shard);
    if (dtype != DType::f32) plan.add("master weights (f32, this rank's shard)", shard);
    if (reduce != DType::f32) plan.add(staging, n * dtype_size(reduce));
    snapshot = owned - owned_later_copy;
  } else {
    if (dp > 1 && reduce != DType::f32) plan.add(staging, n * dtype_size(reduce));  // DataParallelGrads
    if (dtype != DType::f32) plan.add("master weights (f32)", n * 4);
    plan.add("AdamW moments m, v (f32)", 2 * n * 4);
  }
  // launch/checkpoint.cpp: the host snapshot of master weights, m and v this rank writes.
  plan.add("checkpoint snapshot (host: master, m, v)", 3 * Bytes(snapshot) * 4);
  // launch/train_main.cpp frees the snapshot before it gathers the weights file.
  plan.add(kWeightsFilePlanName,
           weights_file_beyond_snapshot(weights_file_bytes(c, stage_index), 3 * Bytes(snapshot) * 4));
  return plan;
}

std::size_t loom_weights_file_bytes(const RunConfig& c, int stage) { return weights_file_bytes(c, stage); }

std::pair<int, std::size_t> loom_peak_stage(const RunConfig& c) {
  const std::size_t first = loom_rank_memory(c, 0).total();
  if (c.parallel.pp == 1) return {0, first};
  const std::size_t last = loom_rank_memory(c, c.parallel.pp - 1).total();
  return last > first ? std::pair{c.parallel.pp - 1, last} : std::pair{0, first};
}

}  // namespace loom::plan
