// plan/predictor.h — step time, throughput, MFU, memory and the time split of one layout.
//
// Per micro-batch and layer on one tp rank (b micro-batch, s sequence, h channels, F ffn):
//   GEMMs     qkv (bs, 3h/t, h), proj (bs, h, h/t), fc1 (bs, F/t, h), fc2 (bs, h, F/t) and
//             the attention core, b a/t heads of (s, k, h/a) and (s, h/a, k), k = s keys
//             ((s + 128) / 2 for the tiled kernel under a causal mask: it skips tiles); each
//             max(flops / (peak gemm_efficiency), bytes / memory bandwidth) [roofline] or
//             the nearest measured rate (calibrated clusters), + kernel_overhead. A
//             calibrated CPU measures the tiled attention kernel itself (softmax, tile
//             GEMMs and the backward's recompute inside): its rate replaces the core's terms.
//   memory-bound ops (layernorms, bias-dropout-add, gelu, softmax, dropout) in bytes read +
//             written, 16-bit: 22 sbh (/t with sp) + 4 sbF/t + 9 a s^2 b / t.
//   backward: each weight GEMM's dX (bs, K, N) and dW (N, K, bs), the same FLOPs as its
//             forward (twice it on the roofline); the rest 2 x forward (tiled: + one core
//             GEMM, the recomputed scores); recompute full adds a forward, attention the attention core.
//   tp: 2 all-reduces of sbh (sp: 2 all-gathers + 2 reduce-scatters) per forward, as many per
//             backward and per recomputed forward; not overlapped (SoftwareModel::tp_overlap:
//             only what the pass's weight GEMMs cannot cover).
// Stage time per micro-batch T_s = its layers (+ embedding on stage 0, + logits and loss
// on the last) + 2 v p2p messages. Step = m max_s T_s + (p-1)/v mean_s T_s (the bubble)
// + dp gradient reduction not hidden behind the last micro-batch's backward + optimizer.
#pragma once

#include <string>

#include "core/config.h"
#include "plan/cluster.h"
#include "plan/model_cost.h"

namespace loom::plan {

// What the software being modelled does (loom's behaviour by default).
struct SoftwareModel {
  // Pipeline messages split over tp and gathered after (Megatron's scatter-gather);
  // loom splits them only with sequence parallelism.
  bool p2p_split_over_tp = false;
  // The dp gradient reduction overlaps the last micro-batch's backward (loom: yes).
  bool dp_overlap = true;
  // Memory: Korthikanti et al.'s activation formulas (Megatron's 16-bit buffers with dropout
  // masks: plan/model_cost.h) instead of loom's own allocations (plan/loom_memory.h).
  bool megatron_memory = false;
  // Megatron-Core of 2024 (its H100 scaling runs) overlaps what loom and Megatron-LM of 2022
  // leave exposed: tp collectives run in chunks under the layer's GEMMs (--tp-comm-overlap,
  // Transformer Engine's userbuffers), so only what a pass's GEMMs cannot cover is exposed;
  // pipeline sends and receives run beside the next chunk's compute; and the ZeRO-1
  // parameter all-gather runs under the next step's first forward (--overlap-param-gather).
  bool tp_overlap = false;
  bool p2p_overlap = false;
  bool param_gather_overlap = false;
  // Megatron-Core's interleaved schedule (v > 1; schedules.py and distrib_optimizer.py at
  // f2e5db40): chunk k's gradients are reduced once its last micro-batch's backward is done
  // (launched in step across the pipeline ranks), so the reductions queue through the
  // cooldown, chunk 0's last; and the parameter all-gathers run as a chain, chunk j's launched
  // when chunk j-1's first forward starts (chunk 0's before the step, exposed). Without it
  // (loom, and the 1F1B / unpipelined cases) the whole stage's reduction overlaps the last
  // micro-batch's backward.
  bool chunk_grad_sync = false;
};

struct TimeSplit {
  double compute = 0;    // GEMMs, memory-bound ops and kernel overhead, steady state
  double tp_comm = 0;    // tensor/sequence-parallel collectives, steady state
  double pp_bubble = 0;  // pipeline fill and drain
  double pp_p2p = 0;     // pipeline messages, steady state
  double dp_comm = 0;    // exposed data-parallel reduction (and ZeRO all-gather)
  double optimizer = 0;  // AdamW step (memory-bound)
  double total() const { return compute + tp_comm + pp_bubble + pp_p2p + dp_comm + optimizer; }
};

struct Prediction {
  double step_time = 0;  // seconds per optimizer step
  double tokens_per_s = 0;
  double mfu = 0;  // model FLOPs / (step time x devices x peak)
  double hfu = 0;  // the same with recompute FLOPs
  TimeSplit split;
  MemoryEstimate memory;
};

// `c` holds a checked layout (core/config.h validate_layout: parallel.dp filled in).
Prediction predict(const RunConfig& c, const Cluster& cluster, const SoftwareModel& sw = {});

// loom's memory on pipeline stage `stage` (tp rank 0, dp rank 0) from its own allocation
// list (plan/loom_memory.h), in MemoryEstimate's terms: activations hold every other
// device buffer (scratch, staging, tied gradients); host is the checkpoint snapshot, the
// datasets (`dataset_bytes`, which the config alone does not give) and the process's
// resident memory before allocating, counted only where the host is the device.
MemoryEstimate loom_memory(const RunConfig& c, int stage, const Cluster& cluster, double dataset_bytes = 0);
// The more loaded of the first and last stage.
MemoryEstimate loom_memory_per_device(const RunConfig& c, const Cluster& cluster, double dataset_bytes = 0);

// Keys one query scores on average under the run's attention: s, a window's w, or with the
// tiled kernel under a causal mask (s + kAttentionTile) / 2, the key tiles wholly above the
// diagonal being skipped (loom's CPU kernel, 128 keys a tile, and FlashAttention alike).
constexpr double kAttentionTile = 128;  // loom's kBc (backend/cpu/flash_attention.cpp)
double attention_keys(const RunConfig& c, double s);

// One GEMM (M, K) x (K, N), `batch` of them in one kernel, on this cluster in `dtype`; on a
// calibrated cluster at the nearest measured shape of the same pass (any pass where the file
// has none of that pass: files from before passes were measured apart).
double gemm_time(const Cluster& cl, DType dtype, double m, double n, double k, double batch = 1,
                 GemmPass pass = GemmPass::forward);

}  // namespace loom::plan
