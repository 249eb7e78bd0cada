// plan/predictor.cpp — see predictor.h.
#include "plan/predictor.h"

#include <algorithm>
#include <cmath>

#include "core/dtype.h"
#include "layers/gpt.h"
#include "plan/collectives.h"
#include "plan/loom_memory.h"

namespace loom::plan {

namespace {

// Kernels per layer forward besides the GEMMs (two layernorms, softmax, dropout, two
// bias-dropout-adds, gelu, three qkv split / head transposes); backward runs twice as many.
constexpr double kElementwiseKernels = 10;

struct LayerCost {
  double forward = 0, backward = 0, recompute = 0;  // compute, seconds
  double tp_forward = 0;                            // tp collectives of one forward (backward alike)
  double linear_forward = 0;                        // the four weight GEMMs of one forward
};

// The entry of `rates` nearest in log space (`dist`: the squared log distance) among those
// `fits` accepts; none when it accepts none.
template <class R, class Fits, class Dist>
const R* nearest(const std::vector<R>& rates, Fits&& fits, Dist&& dist) {
  const R* best = nullptr;
  double d = 1e300;
  for (const R& r : rates)
    if (fits(r) && dist(r) < d) d = dist(r), best = &r;
  return best;
}

double log2d(double a, double b) { return std::pow(std::log(a / b), 2); }

// The measured attention rate nearest in s and d with the same mask, or none.
const AttentionRate* measured_attention(const Cluster& cl, DType dtype, double s, double d, bool causal) {
  if (parse_dtype(cl.gemm_rates_dtype) != dtype) return nullptr;
  return nearest(
      cl.attention_rates, [&](const AttentionRate& r) { return r.causal == causal; },
      [&](const AttentionRate& r) { return log2d(s, r.s) + log2d(d, r.d); });
}

LayerCost layer_cost(const RunConfig& c, const Cluster& cl) {
  const ModelConfig& m = c.model;
  const DType dt = parse_dtype(c.train.precision);
  const double b = double(c.train.micro_batch), s = double(c.train.sequence(m)), h = double(m.channels),
               a = double(m.heads), F = double(m.ffn_size()), t = double(c.parallel.tp), M = b * s;
  const double ab = double(dtype_size(dt)), bw = cl.memory_bandwidth * cl.memory_efficiency;
  const bool sp = c.parallel.sequence_parallel;
  // qkv has (heads + 2 kv_heads) x head size rows (GQA); SwiGLU's first GEMM is gate|up.
  const double qkv = double(m.qkv_size()), up = m.mlp == "swiglu" ? 2 * F : F;
  // A weight GEMM: forward (M, N, K); backward dX (M, K, N) and dW (N, K, M), the same FLOPs
  // in other shapes (which a calibrated machine runs at other rates; the roofline alike).
  double weights = 0, weights_backward = 0;
  for (auto [n, k] : {std::pair{qkv / t, h}, {h, h / t}, {up / t, h}, {h, F / t}}) {
    weights += gemm_time(cl, dt, M, n, k);
    weights_backward += gemm_time(cl, dt, M, k, n, 1, GemmPass::data_grad) +
                        gemm_time(cl, dt, n, k, M, 1, GemmPass::weight_grad);
  }
  const double heads = b * a / t, d = h / a;
  const double keys = attention_keys(c, s);
  const double core_gemm = gemm_time(cl, dt, s, keys, d, heads) + gemm_time(cl, dt, s, d, keys, heads);
  const double sbh = s * b * h * ab / 2;  // the 16-bit counts scaled to the working dtype
  // Dense: the s x s scores, probabilities and dropout pass through memory. Tiled: they stay
  // in cache; only lse (f32) is written, and the backward recomputes the scores (one more
  // core GEMM) instead.
  const bool tiled = c.train.attention_kernel() == "tiled";
  const double core_bytes = tiled ? 4 * a * s * b / t : 9 * a * s * keys * b / t * ab / 2;
  const double stream_bytes = 22 * sbh / (sp ? t : 1), gelu_bytes = 4 * s * b * F / t * ab / 2;
  const double core = core_gemm + core_bytes / bw + 2 * cl.kernel_overhead;  // softmax, dropout
  // The attention core of one forward and one backward: from the kernel's measured rate
  // where the machine was calibrated with it, else its GEMMs and bytes.
  double core_forward = core_gemm + core_bytes / bw, core_backward = 2 * core_forward + (tiled ? core_gemm / 2 : 0);
  if (const AttentionRate* r = tiled ? measured_attention(cl, dt, s, d, !m.bert()) : nullptr) {
    const double flops = heads * 4 * s * keys * d;
    core_forward = flops / r->forward, core_backward = 2 * flops / r->backward;
  }
  const double elementwise = (stream_bytes + gelu_bytes) / bw + kElementwiseKernels * cl.kernel_overhead;
  LayerCost lc;
  lc.linear_forward = weights;
  lc.forward = weights + core_forward + elementwise;
  lc.backward = weights_backward + core_backward + 2 * elementwise;
  if (c.train.recompute == "full") lc.recompute = lc.forward;
  if (c.train.recompute == "attention" && !tiled) lc.recompute = core;  // tiled: nothing to recompute
  const Link link = group_link(cl, c.parallel.tp, 1);
  const double msg = s * b * h * ab;
  lc.tp_forward =
      sp ? 2 * (all_gather_time(msg, c.parallel.tp, link) + reduce_scatter_time(msg, c.parallel.tp, link))
         : 2 * all_reduce_time(msg, c.parallel.tp, link);
  return lc;
}

// Parameters (one tp rank) of stage 0's first chunk: its layers and the embedding.
std::int64_t chunk0_parameters(const RunConfig& c) {
  GptStage st = make_gpt_stage(c.model, c.parallel.pp, 0, c.parallel.virtual_stages, c.parallel.stages);
  st.chunks.resize(1);
  std::int64_t n = 0;
  for (const ParamSpec& ps : Gpt::param_specs(c.model, c.parallel.tp, 0, st)) n += ps.shape.numel();
  return n;
}

std::int64_t layers_of(const RunConfig& c, int stage) {
  if (c.parallel.pp == 1 && c.parallel.virtual_stages == 1) return c.model.layers;
  std::int64_t n = 0;
  for (auto [b, e] :
       make_gpt_stage(c.model, c.parallel.pp, stage, c.parallel.virtual_stages, c.parallel.stages).chunks)
    n += e - b;
  return n;
}

}  // namespace

// Keys a query scores per row on average. A causal mask under the tiled kernel skips the
// key tiles wholly above the diagonal (loom's kernel and FlashAttention alike), so a row
// block of kAttentionTile queries scores the keys up to its end: (s + kAttentionTile) / 2.
// Bidirectional (bert) and windowed rows score their full range.
double attention_keys(const RunConfig& c, double s) {
  const ModelConfig& m = c.model;
  if (m.window > 0) return std::min(s, double(m.window));
  if (m.bert() || c.train.attention_kernel() != "tiled") return s;
  return std::min(s, (s + kAttentionTile) / 2);
}

double gemm_time(const Cluster& cl, DType dtype, double m, double n, double k, double batch, GemmPass pass) {
  const double flops = 2 * m * n * k * batch;
  if (!cl.gemm_rates.empty() && parse_dtype(cl.gemm_rates_dtype) == dtype) {
    const bool has_pass = std::any_of(cl.gemm_rates.begin(), cl.gemm_rates.end(),
                                      [&](const GemmRate& r) { return r.pass == pass; });
    const GemmRate* best = nearest(
        cl.gemm_rates, [&](const GemmRate& r) { return !has_pass || r.pass == pass; },
        [&](const GemmRate& r) { return log2d(m, r.m) + log2d(n, r.n) + log2d(k, r.k); });
    return flops / best->flops + cl.kernel_overhead;
  }
  const double bytes = (m * k + k * n + m * n) * batch * double(dtype_size(dtype));
  return std::max(flops / (cl.peak(dtype) * cl.gemm_efficiency),
                  bytes / (cl.memory_bandwidth * cl.memory_efficiency)) +
         cl.kernel_overhead;
}

Prediction predict(const RunConfig& c, const Cluster& cl, const SoftwareModel& sw) {
  const ModelConfig& md = c.model;
  const DType dt = parse_dtype(c.train.precision);
  const int p = c.parallel.pp, v = c.parallel.virtual_stages, tp = c.parallel.tp,
            dp = std::max(c.parallel.dp, 1);
  const double m = double(c.train.global_batch / dp / c.train.micro_batch);
  const double b = double(c.train.micro_batch), s = double(c.train.sequence(md)), h = double(md.channels),
               V = double(md.padded_vocab()), ab = double(dtype_size(dt));
  const double bw = cl.memory_bandwidth * cl.memory_efficiency;
  const LayerCost lc = layer_cost(c, cl);
  const Link tp_link = group_link(cl, tp, 1);
  const double stream_msg = s * b * h * ab;

  // Per-micro-batch time of each stage: compute, tp and p2p parts.
  const bool split_msg = c.parallel.sequence_parallel || sw.p2p_split_over_tp;
  const Link pp_link = p2p_link(cl, p, tp * dp);
  const double p2p =
      p > 1 && !sw.p2p_overlap ? 2 * v * p2p_time(stream_msg / (split_msg ? tp : 1), pp_link) : 0;
  double max_total = 0, sum_total = 0, max_compute = 0, max_tp = 0, last_backward = 0;
  for (int st = 0; st < p; ++st) {
    const double L = double(layers_of(c, st));
    double compute = L * (lc.forward + lc.backward + lc.recompute);
    // Per pass: forward, backward (twice the GEMMs: data and weight gradients), recomputed
    // forward; under tp_overlap only what the pass's weight GEMMs cannot cover is exposed.
    const double passes = c.train.recompute == "full" ? 3 : 2;
    double tpc = L * lc.tp_forward * passes;
    if (sw.tp_overlap)
      tpc = L * (std::max(0.0, lc.tp_forward - lc.linear_forward) * (passes - 1) +
                 std::max(0.0, lc.tp_forward - 2 * lc.linear_forward));
    if (st == 0)
      tpc += c.parallel.sequence_parallel ? reduce_scatter_time(stream_msg, tp, tp_link)
                                          : all_reduce_time(stream_msg, tp, tp_link);  // embedding
    if (st == p - 1) {  // the tied head: logits forward + 2 backward GEMMs, the loss over (s b, V/t) logits
      compute += gemm_time(cl, dt, b * s, V / tp, h) +
                 gemm_time(cl, dt, b * s, h, V / tp, 1, GemmPass::data_grad) +
                 gemm_time(cl, dt, V / tp, h, b * s, 1, GemmPass::weight_grad) +
                 3 * (4 + ab) * b * s * V / tp / bw + 6 * cl.kernel_overhead;
      tpc += 3 * all_reduce_time(4 * b * s, tp, tp_link);  // max, sum, target logit per row
    }
    const double total = compute + tpc + p2p;
    sum_total += total;
    if (total > max_total) max_total = total, max_compute = compute, max_tp = tpc;
    if (st == p - 1 || p == 1) last_backward = L * (lc.backward + lc.recompute);
  }
  const double mean_total = sum_total / p;

  Prediction out;
  TimeSplit& sp = out.split;
  sp.compute = m * max_compute;
  sp.tp_comm = m * max_tp;
  sp.pp_p2p = m * p2p;
  sp.pp_bubble = double(p - 1) / v * mean_total;

  // Data parallelism: the stage's gradients over dp ranks (stride tp), hidden behind the last
  // micro-batch's backward where the software overlaps it; ZeRO-1 then all-gathers parameters.
  const double n = double(stage_parameters(c, 0));
  const double grad_bytes = n * double(dtype_size(parse_dtype(c.parallel.grad_reduce_dtype)));
  const Link dp_link = group_link(cl, dp, tp);
  auto reduce = [&](double bytes) {
    return c.optim.zero == 1 ? reduce_scatter_time(bytes, dp, dp_link) : all_reduce_time(bytes, dp, dp_link);
  };
  double dp_time = reduce(grad_bytes);
  const bool chunked = sw.chunk_grad_sync && v > 1 && p > 1;
  if (chunked) {
    // Stage 0 (its chunk 0 also holds the embedding): chunk k's reduction is released k p
    // chunk-backwards before the end and the reductions run one after another, so the last
    // one to finish exposes max_k (r_0 + k r - k p b) = r_0 + max(0, (v-1)(r - p b)).
    const double L = double(layers_of(c, 0));
    const double n0 = double(chunk0_parameters(c)), r0 = reduce(n0 * grad_bytes / n);
    const double r = reduce((n - n0) / (v - 1) * grad_bytes / n);
    const double chunk_backward = L / v * (lc.backward + lc.recompute);
    dp_time = r0 + std::max(0.0, (v - 1) * (r - p * chunk_backward));
  } else if (sw.dp_overlap) {
    dp_time = std::max(dp_time - last_backward, dp_time / std::max(1.0, double(layers_of(c, 0))));
  }
  if (chunked && c.optim.zero == 1 && sw.param_gather_overlap) {
    // The chain: chunk 0's gather exposed before the first forward; chunk j's (j >= 1) runs
    // while stage 0's warm-up pushes p micro-batches through chunk j-1.
    const double n0 = double(chunk0_parameters(c));
    const double g0 = all_gather_time(n0 * ab, dp, dp_link), g = all_gather_time((n - n0) / (v - 1) * ab, dp, dp_link);
    const double chunk_forward = double(layers_of(c, 0)) / v * lc.forward;
    dp_time += g0 + (v - 1) * std::max(0.0, g - p * chunk_forward);
  } else if (c.optim.zero == 1) {
    // The 16-bit parameters, gathered after the step; under param_gather_overlap bucket by
    // bucket as the next step's first forward reaches them (at least one layer's exposed).
    const double gather = all_gather_time(n * ab, dp, dp_link);
    const double first_forward = double(layers_of(c, 0)) * lc.forward;
    dp_time += sw.param_gather_overlap
                   ? std::max(gather - first_forward, gather / std::max(1.0, double(layers_of(c, 0))))
                   : gather;
  }
  sp.dp_comm = dp > 1 ? dp_time : 0;

  // AdamW: reads gradient, master, m, v; writes master, m, v and the working copy; the
  // gradients are zeroed and their norm read once more.
  const double owned = c.optim.zero == 1 ? n / dp : n;
  const double per_param = 16 + 12 + (dt == DType::f32 ? 0 : ab);
  sp.optimizer = (owned * per_param + n * 8) / bw + 4 * cl.kernel_overhead;

  out.step_time = sp.total();
  const double tokens = double(c.train.global_batch) * s;
  const double devices = double(dp) * tp * p;
  out.tokens_per_s = tokens / out.step_time;
  out.mfu = model_flops_per_step(c) / (out.step_time * devices * cl.peak(dt));
  out.hfu = hardware_flops_per_step(c) / (out.step_time * devices * cl.peak(dt));
  out.memory = sw.megatron_memory ? memory_per_device(c) : loom_memory_per_device(c, cl);
  return out;
}

MemoryEstimate loom_memory(const RunConfig& c, int stage, const Cluster& cluster, double dataset_bytes) {
  MemoryEstimate e;
  e.stage = stage;
  const MemoryPlan plan = loom_rank_memory(c, stage);
  double gradient_bytes = 0;
  for (const auto& [name, bytes] : plan.items) {
    const double b = double(bytes);
    if (name == "gradients (f32)") gradient_bytes = b;
    if (name.rfind("parameters", 0) == 0) e.parameters += b;
    else if (name.rfind("gradients (f32)", 0) == 0) e.gradients += b;
    else if (name.rfind("AdamW", 0) == 0 || name.rfind("master weights", 0) == 0) e.optimizer += b;
    else if (name.find("(host") != std::string::npos) e.host += cluster.host_is_device ? b : 0;
    else e.activations += b;
  }
  if (cluster.host_is_device) {
    e.host += dataset_bytes + cluster.process_resident + cluster.hdf5_resident;
    if (c.train.attention_kernel() == "tiled")
      e.host += cluster.attention_resident;  // measured for the model
    // optimizer/grad_sync.cpp starts one MPI_Iallreduce per gradient bucket and waits for
    // them together: MPI's temporaries for every bucket are live at once (ZeRO-1's
    // reduce-scatter is not measured: not counted).
    const int dp = std::max(c.parallel.dp, 1);
    if (dp > 1 && c.optim.zero == 0) {
      const double reduced =
          gradient_bytes / 4 * double(dtype_size(parse_dtype(c.parallel.grad_reduce_dtype)));
      e.host += cluster.iallreduce_temp_per_byte * reduced;
    }
  }
  return e;
}

MemoryEstimate loom_memory_per_device(const RunConfig& c, const Cluster& cluster, double dataset_bytes) {
  MemoryEstimate first = loom_memory(c, 0, cluster, dataset_bytes);
  if (c.parallel.pp == 1) return first;
  MemoryEstimate last = loom_memory(c, c.parallel.pp - 1, cluster, dataset_bytes);
  return last.total() > first.total() ? last : first;
}

}  // namespace loom::plan
