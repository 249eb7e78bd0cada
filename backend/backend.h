// backend/backend.h — the Backend interface: every op the GPT model calls, forward and backward.
//
// Layers never touch raw memory; they call these ops on Tensor views. The CPU
// backend (backend/cpu) is the numerical reference; backend/cuda implements
// the same interface. backend/registry.cpp picks one by Device.
//
// Conventions (one rule, stated once):
//   * outputs are written (`=`) unless the op takes an `Accumulate` argument or
//     its name says so; parameter gradients (dweight, dbias, dwte, ...) are
//     always accumulated (`+=`) so that microbatches sum without extra copies.
//   * shapes: B batch, T sequence, C channels, H heads, D = C/H, Vp padded vocab,
//     N = any row count (usually B*T). "rows" means every dim but the last.
//   * any float tensor may be f32, bf16 or f16; arithmetic is f32 inside every
//     op. Parameter gradients (dweight, dbias, dwte, dwpe) may be f32 while the
//     activations and weights are 16-bit: mixed precision accumulates them in f32
//     (Megatron's main_grad). Statistics saved for backward (layernorm mean/rstd, attention probs,
//     per-position losses) are always f32. Token ids are int32 (TokenView).
//   * ops never allocate; scratch memory is passed in by the caller (planned).
//   * bad shapes or dtypes throw loom::Error naming the op and the shapes.
#pragma once

#include <cstdint>

#include "core/buffer.h"
#include "core/tensor.h"

namespace loom {

enum class Accumulate : bool { no = false, yes = true };
enum class Trans : bool { no = false, yes = true };

struct MatmulOpts {
  Trans trans_a = Trans::no;       // use a^T
  Trans trans_b = Trans::no;       // use b^T
  Accumulate accumulate = Accumulate::no;  // out += ... instead of out = ...
  float alpha = 1.0f;              // out (+)= alpha * op(a) op(b) + bias
};

// Attention's heads (backend.h, grouped_attention_*): `heads` query heads share `kv_heads`
// key/value heads (query head h uses kv head h / (heads / kv_heads)); `alibi_slopes`
// (heads) f32, when not empty, adds -slope_h * (t - s) to the score of query t, key s.
struct AttentionHeads {
  int heads = 0, kv_heads = 0;
  Tensor alibi_slopes;
};

struct AdamWArgs {
  float lr = 0;
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
  float weight_decay = 0;   // decoupled: param -= lr * wd * param
  std::int64_t step = 1;    // 1-based, for bias correction
  float grad_scale = 1.0f;  // grad is multiplied by this first (clipping, loss-scale undo)
};

// ---- memory-efficient tiled attention: operands and options (ops in Backend below) ----
// Glossary: Tq query positions, Tk key positions (Tq == Tk for self-attention), Hq
// query heads, Hkv key/value heads (Hq a multiple of Hkv: grouped-query attention;
// query head h uses kv head h / (Hq / Hkv)), D head size.
//
// One of q, k, v (or dq, dk, dv), read or written in place: element (b, t, h, d) is
// base[(b * T + t) * W + offset + h * D + d], W = the elements of one (b, t) row of
// base. So the layer's fused qkv (B,T,(Hq+2*Hkv)*D) = [q heads | k heads | v heads]
// is used without copies:
//   q = HeadsView::in(qkv, 0, Hq, D), k = HeadsView::in(qkv, Hq*D, Hkv, D),
//   v = HeadsView::in(qkv, (Hq+Hkv)*D, Hkv, D)
// and a plain (B,T,H,D) or (B,T,H*D) tensor x is HeadsView::of(x, H).
struct HeadsView {
  Tensor base;              // (B, T, ...): contiguous; its (b, t) rows hold these heads
  std::int64_t offset = 0;  // element offset of head 0 inside each (b, t) row
  std::int64_t heads = 0;
  std::int64_t head_dim = 0;

  static HeadsView in(Tensor base, std::int64_t offset, std::int64_t heads, std::int64_t head_dim) {
    return {base, offset, heads, head_dim};
  }
  static HeadsView of(Tensor x, std::int64_t heads) {
    std::int64_t row = 1;
    for (int i = 2; i < x.shape.rank(); ++i) row *= x.shape[i];
    return {x, 0, heads, heads > 0 ? row / heads : 0};
  }
};

// Which keys s a query row t sees, and the scores. Every mask is an interval of s per
// row, so work is O(Tq * visible keys): O(T * w) for a window w.
struct AttentionSpec {
  bool causal = true;        // s <= t
  std::int64_t window = 0;   // 0 = none; else t - window < s (and, when not causal, s < t + window)
  TokenView key_lengths;     // empty = no padding mask; else int32 (B): keys s >= len[b] are masked
  Tensor alibi_slopes;       // empty = none; else f32 (Hq), this rank's heads: score -= slope[h] * |t - s|
  float scale = 0.0f;        // score = scale * q_t . k_s (+ ALiBi + rel_bias); 0 = 1/sqrt(D)
  // A learned additive bias per head and relative offset (T5's relative position buckets,
  // gathered by the model; layers/positions.h): empty = none; else f32 (Tq + Tk - 1, Hq),
  // this rank's heads, and score(t, s) += rel_bias[s - t + Tq - 1][h] (row o = s - t + Tq - 1
  // is offset s - t: row 0 is s - t = -(Tq - 1), row Tq - 1 is s = t).
  Tensor rel_bias;
  // Backward only, with rel_bias: d loss / d rel_bias per sequence, f32 (B, Tq + Tk - 1, Hq),
  // accumulated (+=) like a parameter gradient: drel_bias[b][o][h] += sum over the visible
  // (t, s) of sequence b on diagonal o of d loss / d score(t, s). Per b so that no two
  // threads or blocks ever add into one element (the same bits for any thread count, no
  // float atomics); the caller sums over b (and over layers sharing one table) itself.
  // Empty: not computed (a frozen table).
  Tensor drel_bias;
};

class Backend : public Allocator {
public:
  // ---- memory -------------------------------------------------------------
  // dst and src have equal byte sizes; either may live on the host.
  virtual void copy(Tensor dst, Tensor src) = 0;
  // dst (this backend's memory) = src (host memory), possibly asynchronously: on CUDA,
  // when src lies in a Memory::staging Buffer (page-locked), the copy is enqueued on the
  // stream every op runs on and this returns at once; later ops see the data. The caller
  // must not write src before the next synchronize() (or another call that waits for the
  // device: a copy to the host, sum). Any other src is copied as copy() does. CPU: copy().
  virtual void upload_async(Tensor dst, Tensor src) { copy(dst, src); }
  virtual void synchronize() = 0;

  // ---- elementwise and reductions -------------------------------------------
  virtual void fill(Tensor x, float value) = 0;
  virtual void scale(Tensor x, float alpha) = 0;               // x *= alpha
  virtual void axpy(Tensor y, float alpha, Tensor x) = 0;      // y += alpha * x
  virtual void add(Tensor out, Tensor a, Tensor b) = 0;        // out = a + b (out may alias a or b)
  virtual void cast(Tensor dst, Tensor src) = 0;               // dtype conversion, same shape
  // The two reductions accumulate in double, in a fixed order (the same bits run to
  // run), and return to the host, so they wait for the device.
  virtual double sum(Tensor x) = 0;          // sum x
  virtual double sum_squares(Tensor x) = 0;  // sum x^2

  // ---- matmul ---------------------------------------------------------------
  // out (M,N) (+)= alpha * op(a) op(b) + bias,  op(a): (M,K), op(b): (K,N),
  // bias (N) or empty. Leading dims of a/b/out are taken from their shapes (rows).
  virtual void matmul(Tensor out, Tensor a, Tensor b, Tensor bias, MatmulOpts opts) = 0;
  // dbias (N) += column sums of dout (rows, N).
  virtual void bias_backward(Tensor dbias, Tensor dout) = 0;
  // The MLP's fc with its GELU (tanh form, below) fused: h (M,N) = op(a) op(b) + bias and
  // g = gelu(h), both written (=); opts.accumulate must be no. And the matching backward:
  // dh (M,N) = (op(a) op(b)) * gelu'(h) (=). The defaults are matmul then gelu_forward, and
  // matmul then gelu_backward (the CPU's: the same bits as the two ops). CUDA fuses them in
  // cuBLASLt's GELU_AUX(_BIAS) and DGELU epilogues (the tanh form too, as PyTorch's
  // addmm-with-GELU relies on), which apply GELU to the f32 accumulator: in 16 bits g and dh
  // may differ from the unfused ops by one rounding.
  virtual void matmul_gelu(Tensor h, Tensor g, Tensor a, Tensor b, Tensor bias, MatmulOpts opts) {
    check_no_accumulate("matmul_gelu", opts);
    matmul(h, a, b, bias, opts);
    gelu_forward(g, h);
  }
  virtual void matmul_dgelu(Tensor dh, Tensor a, Tensor b, Tensor h, MatmulOpts opts) {
    check_no_accumulate("matmul_dgelu", opts);
    matmul(dh, a, b, Tensor{}, opts);
    gelu_backward(dh, dh, h);
  }

  // ---- layernorm over the last dim: out = (x - mean) * rstd * weight + bias ------
  virtual void layernorm_forward(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor weight,
                                 Tensor bias, float eps) = 0;
  // dx (=|+=) ; dweight += ; dbias +=.
  virtual void layernorm_backward(Tensor dx, Tensor dweight, Tensor dbias, Tensor dout, Tensor x,
                                  Tensor weight, Tensor mean, Tensor rstd, Accumulate dx_acc) = 0;

  // ---- GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) --------
  virtual void gelu_forward(Tensor out, Tensor x) = 0;
  virtual void gelu_backward(Tensor dx, Tensor dout, Tensor x) = 0;  // dx may alias dout

  // ---- softmax over the last dim -------------------------------------------------
  virtual void softmax_forward(Tensor out, Tensor x) = 0;
  virtual void softmax_backward(Tensor dx, Tensor dout, Tensor y) = 0;  // y = forward output

  // ---- causal self-attention --------------------------------------------------
  // qkv (B,T,3*H*D): q, k, v concatenated on the last dim, heads contiguous
  // inside each; out (B,T,H*D); probs (B,H,T,T) f32 saved for backward, with
  // scale 1/sqrt(D) and a causal mask (position t sees 0..t).
  virtual void attention_forward(Tensor out, Tensor probs, Tensor qkv, int heads) = 0;
  // dqkv (=) (B,T,3*H*D); scratch (B,H,T,T) f32, overwritten.
  virtual void attention_backward(Tensor dqkv, Tensor scratch, Tensor dout, Tensor qkv, Tensor probs,
                                  int heads) = 0;

  // ---- the modern decoder's parts (Llama-style; docs/models.md) ------------------
  // RMSNorm over the last dim (Zhang & Sennrich): out = x * rstd * weight,
  // rstd (N) f32 = 1 / sqrt(mean(x^2) + eps), saved for backward.
  virtual void rmsnorm_forward(Tensor out, Tensor rstd, Tensor x, Tensor weight, float eps) = 0;
  // dx (=|+=) ; dweight +=.
  virtual void rmsnorm_backward(Tensor dx, Tensor dweight, Tensor dout, Tensor x, Tensor weight, Tensor rstd,
                                Accumulate dx_acc) = 0;
  // ReLU: out = max(x, 0); backward's dx may alias dout.
  virtual void relu_forward(Tensor out, Tensor x) = 0;
  virtual void relu_backward(Tensor dx, Tensor dout, Tensor x) = 0;
  // SwiGLU (Shazeer 2020): h (N, 2F) holds [gate | up] per row; out (N, F) = silu(gate) * up,
  // silu(g) = g / (1 + exp(-g)). Backward: dh (N, 2F) (=) from dout (N, F) and h.
  virtual void swiglu_forward(Tensor out, Tensor h) = 0;
  virtual void swiglu_backward(Tensor dh, Tensor dout, Tensor h) = 0;
  // Rotary positions (RoPE, Su et al.), in place on the q and k heads of a fused
  // qkv (B,T,(H + 2 Hkv) D) (v untouched): at position t, channels (i, i + D/2) of each
  // head are rotated by the angle t * base^(-2i/D), i < D/2 (the "rotate half" pairing
  // of GPT-NeoX and Hugging Face Llama). Backward rotates dq and dk back (the inverse,
  // angle -t * ...), in place on dqkv.
  virtual void rope_forward(Tensor qkv, int heads, int kv_heads, float base) = 0;
  virtual void rope_backward(Tensor dqkv, int heads, int kv_heads, float base) = 0;
  // Causal attention with grouped key/value heads and optional ALiBi (AttentionHeads):
  // qkv (B,T,(H + 2 Hkv) D) = [q heads | k heads | v heads]; out (B,T,H D); probs
  // (B,H,T,T) f32 as attention_forward. With kv_heads == heads and no slopes it computes
  // what attention_forward does. Backward: dqkv (=); a kv head's gradient is the sum
  // over its query heads; scratch (B,H,T,T) f32, overwritten.
  virtual void grouped_attention_forward(Tensor out, Tensor probs, Tensor qkv, const AttentionHeads& a) = 0;
  virtual void grouped_attention_backward(Tensor dqkv, Tensor scratch, Tensor dout, Tensor qkv, Tensor probs,
                                          const AttentionHeads& a) = 0;

  // ---- memory-efficient tiled attention (FlashAttention-2 loop order) -------------------
  // Online softmax over tiles of keys: the (Tq x Tk) scores are never stored. Forward
  // saves only lse; backward recomputes every tile from q, k, v and lse. The dense
  // attention_forward/backward above stay as the reference. docs/attention.md.
  // q (B,Tq,Hq,D), k and v (B,Tk,Hkv,D) as HeadsView (above).
  // out (B,Tq,Hq*D) (=); lse (B,Hq,Tq) f32 (=) = log sum_s exp(score(t, s)) over the
  // keys row t sees: -inf for a row that sees none (its out row is 0).
  // Backward: dq, dk, dv (=) with the shapes of q, k, v (dk, dv summed over the query
  // heads of a group); they may be parts of one dqkv, and must not overlap q, k, v,
  // out, dout. All of q, k, v, out, dout, dq, dk, dv have one dtype: f32, bf16 or f16;
  // arithmetic is f32.
  virtual void flash_attention_forward(Tensor out, Tensor lse, HeadsView q, HeadsView k, HeadsView v,
                                       const AttentionSpec& spec) = 0;
  virtual void flash_attention_backward(HeadsView dq, HeadsView dk, HeadsView dv, Tensor dout,
                                        HeadsView q, HeadsView k, HeadsView v, Tensor out, Tensor lse,
                                        const AttentionSpec& spec) = 0;

  // ---- token + position embedding ---------------------------------------------
  // out (B,T,C) = wte[tok - vocab_start] + wpe[t]; a token outside this shard's
  // rows [vocab_start, vocab_start + rows(wte)) contributes zeros (vocab-parallel
  // embedding); an empty wpe adds no position term.
  virtual void embedding_forward(Tensor out, TokenView tokens, Tensor wte, Tensor wpe,
                                 std::int64_t vocab_start) = 0;
  // dwte += , dwpe += (either may be empty to skip it).
  virtual void embedding_backward(Tensor dwte, Tensor dwpe, Tensor dout, TokenView tokens,
                                  std::int64_t vocab_start) = 0;

  // ---- vocabulary-parallel cross-entropy (tensor parallelism) -------------------
  // logits (N, Vs) hold columns [vocab_start, vocab_start + Vs) of the padded
  // vocabulary; only global columns below `vocab` are real (padding is excluded
  // from the softmax and gets gradient 0). One rank (tp = 1) is the case
  // vocab_start = 0, Vs = Vp. targets (N) are global ids below `vocab`; a target
  // < 0 means "not a target" (padding, ignore_index): its row adds no loss and
  // gets an all-zero gradient. Per micro-batch, on device tensors only:
  //   cross_entropy_shard_max     max            -> tp.all_reduce(max, ReduceOp::max)
  //   cross_entropy_shard_sumexp  stats          -> tp.all_reduce(stats)
  //   cross_entropy_loss          lse, losses += (identical on every tp rank)
  //   cross_entropy_shard_backward (with lse)
  // max (N) f32 = row max over this shard's real columns (-inf if it has none).
  virtual void cross_entropy_shard_max(Tensor max, Tensor logits, std::int64_t vocab_start,
                                       std::int64_t vocab) = 0;
  // stats (2, N) f32, planar: stats[0] = sum of exp(x - max) over this shard's
  // real columns (max is the GLOBAL row max, so shards add up); stats[1] = the
  // target's logit if this shard holds it, else 0.
  virtual void cross_entropy_shard_sumexp(Tensor stats, Tensor logits, Tensor max, TokenView targets,
                                          std::int64_t vocab_start, std::int64_t vocab) = 0;
  // From the tp-reduced max and stats: lse (N) f32 (=) = max + log(stats[0]);
  // losses (N) f32 (+=) lse - stats[1] where target >= 0 (+0 elsewhere), so a
  // caller can sum several micro-batches on the device and read the total once.
  virtual void cross_entropy_loss(Tensor lse, Tensor losses, Tensor max, Tensor stats, TokenView targets) = 0;
  // dlogits (=) = dloss * (exp(x - lse) - onehot(target)) on real columns, 0 on
  // padding and on rows whose target < 0; lse (N) f32 is the combined
  // log-sum-exp. dlogits may alias logits (saves the (N, Vs) buffer).
  virtual void cross_entropy_shard_backward(Tensor dlogits, Tensor logits, TokenView targets,
                                            std::int64_t vocab_start, std::int64_t vocab, Tensor lse,
                                            float dloss) = 0;

  // ---- optimizer ----------------------------------------------------------------
  // AdamW on f32 param/grad/m/v of equal shape (PyTorch semantics).
  virtual void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWArgs& args) = 0;

protected:
  static void check_no_accumulate(const char* op, const MatmulOpts& opts) {
    LOOM_CHECK(opts.accumulate == Accumulate::no, "write to a scratch tensor and add it",
               "{}: its outputs are written (=), accumulate must be no", op);
  }
};

}  // namespace loom
