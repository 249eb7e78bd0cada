// plan/model_cost.cpp — see model_cost.h.
#include "plan/model_cost.h"

#include <algorithm>

#include "core/dtype.h"
#include "layers/gpt.h"
#include "plan/bubble.h"

namespace loom::plan {

namespace {

struct Dims {
  double b, s, h, a, l, V, F, t;
  double keys;         // keys each query scores: s, or min(s, model.window)
  double qkv;          // rows of c_attn: (heads + 2 kv_heads) x head size (grouped-query attention)
  double mlp_mats;     // weight matrices of the MLP: 3 for SwiGLU (gate, up, down), else 2
};

Dims dims(const RunConfig& c) {
  const ModelConfig& m = c.model;
  return {double(c.train.micro_batch),
          double(c.train.sequence(m)),
          double(m.channels),
          double(m.heads),
          double(m.layers),
          double(m.padded_vocab()),
          double(m.ffn_size()),
          double(c.parallel.tp),
          m.window > 0 ? double(std::min(c.train.sequence(m), m.window)) : double(c.train.sequence(m)),
          double(m.qkv_size()),
          m.mlp == "swiglu" ? 3.0 : 2.0};
}

double act_bytes(const RunConfig& c) { return double(dtype_size(parse_dtype(c.train.precision))); }

// Forward FLOPs of one layer for one sequence: the weight GEMMs (qkv, proj, the MLP's two
// or three) and the attention core. GPT-2: 2s(4h^2 + 2hF).
double layer_gemm_flops(const Dims& d) { return 2 * d.s * (d.h * d.qkv + d.h * d.h + d.mlp_mats * d.h * d.F); }
double layer_attention_flops(const Dims& d) { return 4 * d.s * d.keys * d.h; }

bool tiled(const RunConfig& c) { return c.train.attention_kernel() == "tiled"; }
// What train.recompute does: `attention` recomputes nothing with the tiled kernel (it keeps
// no probabilities to drop), so it is `none` there.
std::string recompute_mode(const RunConfig& c) {
  return tiled(c) && c.train.recompute == "attention" ? "none" : c.train.recompute;
}

std::int64_t micro_batches(const RunConfig& c) {
  const int dp = std::max(c.parallel.dp, 1);
  return c.train.global_batch / dp / c.train.micro_batch;
}

double in_flight(const RunConfig& c, int stage) {
  const int p = c.parallel.pp, v = c.parallel.virtual_stages;
  const int m = int(micro_batches(c));
  if (stage == 0) return stage0_in_flight(p, m, v, c.parallel.schedule == "gpipe");
  if (c.parallel.schedule == "gpipe") return m;
  if (v == 1) return std::min(p - stage, m);
  return double(std::min(2 * (p - stage - 1) + (v - 1) * p + 1, v * m)) / v;
}

}  // namespace

double model_flops_per_step(const RunConfig& c) {
  const Dims d = dims(c);
  const double seqs = double(c.train.global_batch);
  return 3 * seqs * (d.l * (layer_gemm_flops(d) + layer_attention_flops(d)) + 2 * d.s * d.h * d.V);
}

double hardware_flops_per_step(const RunConfig& c) {
  const Dims d = dims(c);
  const double seqs = double(c.train.global_batch);
  const std::string rc = recompute_mode(c);
  double extra = 0;
  if (rc == "full") extra = d.l * (layer_gemm_flops(d) + layer_attention_flops(d));
  if (rc == "attention") extra = d.l * layer_attention_flops(d);
  // The tiled backward recomputes the scores Q K^T (half the core's forward) from lse.
  if (tiled(c)) extra += d.l * layer_attention_flops(d) / 2;
  return model_flops_per_step(c) + seqs * extra;
}

double layer_activation_bytes(const RunConfig& c) {
  const Dims d = dims(c);
  const bool sp = c.parallel.sequence_parallel;
  const std::string rc = recompute_mode(c);
  // The dense core's s x s tensors (scores, probabilities, ...): Korthikanti's 5as/h in units
  // of sbh. The tiled kernel keeps none of them, only lse: a s b / t f32 values.
  const double sbh = d.s * d.b * d.h, attn = tiled(c) ? 0 : 5 * d.a * d.s / d.h;
  const double lse = rc != "full" && tiled(c) ? 4 * d.a * d.s * d.b / d.t : 0;  // f32 whatever the dtype
  double bytes = 0;
  if (rc == "full")
    bytes = sp ? 2 * sbh / d.t : 2 * sbh;
  else if (rc == "attention")
    bytes = sp ? 34 * sbh / d.t : sbh * (10 + 24 / d.t);
  else
    bytes = sp ? sbh / d.t * (34 + attn) : sbh * (10 + 24 / d.t + attn / d.t);
  return bytes * act_bytes(c) / 2 + lse;
}

std::int64_t stage_parameters(const RunConfig& c, int stage) {
  const GptStage st =
      c.parallel.pp == 1 && c.parallel.virtual_stages == 1
          ? GptStage{}
          : make_gpt_stage(c.model, c.parallel.pp, stage, c.parallel.virtual_stages, c.parallel.stages);
  std::int64_t n = 0;
  for (const ParamSpec& s : Gpt::param_specs(c.model, c.parallel.tp, 0, st)) n += s.shape.numel();
  return n;
}

MemoryEstimate stage_memory(const RunConfig& c, int stage) {
  const Dims d = dims(c);
  const int p = c.parallel.pp, dp = std::max(c.parallel.dp, 1);
  const DType dtype = parse_dtype(c.train.precision);
  const double n = double(stage_parameters(c, stage));
  MemoryEstimate e;
  e.stage = stage;
  e.parameters = n * double(dtype_size(dtype));
  e.gradients = n * 4;  // f32 gradients, accumulated over micro-batches
  const double opt = n * ((dtype == DType::f32 ? 0 : 4) + 8);  // master weights, m, v
  e.optimizer = c.optim.zero == 1 ? opt / dp : opt;
  // Layers this stage holds, times the micro-batches in flight at its peak.
  double layers = d.l;
  if (p > 1 || c.parallel.virtual_stages > 1) {
    layers = 0;
    for (auto [b, en] :
         make_gpt_stage(c.model, p, stage, c.parallel.virtual_stages, c.parallel.stages).chunks)
      layers += double(en - b);
  }
  const double flight = in_flight(c, stage), ab = act_bytes(c) / 2;
  e.activations = layers * layer_activation_bytes(c) * flight;
  const double stream = d.s * d.b * d.h * (c.parallel.sequence_parallel ? 1 / d.t : 1);
  // Full recompute reruns one layer at a time into one working set of a layer's activations.
  if (recompute_mode(c) == "full") {
    RunConfig none = c;
    none.train.recompute = "none";
    e.activations += layer_activation_bytes(none);
  }
  if (stage == 0) e.activations += 3 * stream * ab * flight;  // embedding output and its dropout mask
  if (stage == p - 1)  // final layernorm input, f32 logits of the tp shard for the loss (one micro-batch)
    e.activations += 2 * stream * ab + 4 * d.s * d.b * d.V / d.t;
  return e;
}

MemoryEstimate memory_per_device(const RunConfig& c) {
  MemoryEstimate first = stage_memory(c, 0);
  if (c.parallel.pp == 1) return first;
  MemoryEstimate last = stage_memory(c, c.parallel.pp - 1);
  return last.total() > first.total() ? last : first;
}

}  // namespace loom::plan
