// layers/attention.h — multi-head self-attention: qkv projection, attention, output projection.
//
// x, out (B,T,C) with C = H*D; qkv (B,T,(H + 2 Hkv) D) = x W_qkv^T + b, W_qkv ((H + 2 Hkv) D, C)
// rows ordered [q heads | k heads | v heads] (the canonical unfused order); Hkv = H
// (GPT-2) or fewer key/value heads, each shared by H / Hkv query heads (grouped-query
// attention); att (B,T,C) is the attention output before c_proj.
// The attention core runs one of two kernels (train.attention; docs/attention.md):
//   tiled  Backend::flash_attention_*: online softmax over tiles, saves lse (B,H,T) f32;
//          backward recomputes the probabilities tile by tile. Any mask: causal or not
//          (`causal`), a sliding window of `window` keys, padding (Saved::key_lengths).
//          Memory O(T), work O(T * window).
//   dense  attention_* / grouped_attention_*: saves probs (B,H,T,T) f32 and needs a
//          (B,H,T,T) dprobs scratch; causal only, no window. The reference in tests.
// Positions inside attention: RoPE rotates q and k in place in qkv after c_attn (so the
// saved qkv is the rotated one, which is what the attention backward needs) and rotates
// their gradients back before c_attn's backward; ALiBi adds per-head biases to the scores
// (tiled: -slope |t - s|, dense: -slope (t - s); the same under the causal mask); T5's
// relative bias (tiled only) adds rel_bias[s - t + T - 1][h], a table shared by the layers
// (layers/relative_bias.h), and backward adds this layer's d rel_bias into drel_bias.
// Backward: dx (=); parameter grads +=; `scratch` holds what backward may
// overwrite (dqkv, datt, and dense's dprobs) and is shared by all layers.
// Tensor parallel: each tp rank holds `heads` = H / tp query heads and `kv_heads` = Hkv / tp
// key/value heads (its query heads' groups, whole): c_attn is column-parallel (its q, k and v
// rows for those heads), c_proj row-parallel, so qkv, probs/lse and att hold only this rank's
// heads and `out` is complete after c_proj. ALiBi's slopes are those of this rank's global heads.
#pragma once

#include "core/error.h"
#include "layers/parallel_linear.h"

namespace loom {

// Which kernel computes the attention core (train.attention). Both compute the same
// function; they differ in float summation order, memory and speed.
enum class AttentionKernel : std::uint8_t { tiled, dense };
AttentionKernel parse_attention_kernel(const std::string& name);  // layers/gpt.cpp

struct Attention {
  ColumnParallelLinear c_attn;
  RowParallelLinear c_proj;
  int heads = 0;      // query heads on this tp rank
  int kv_heads = 0;   // key/value heads on this tp rank (0: heads)
  float rope_base = 0;  // > 0: rotary positions with this base
  Tensor alibi_slopes;  // (heads) f32, this rank's heads; empty: no ALiBi
  bool causal = true;        // position t sees keys s <= t (false: an encoder, every key)
  std::int64_t window = 0;   // > 0: only the last `window` keys (t - window < s), tiled only
  AttentionKernel kernel = AttentionKernel::tiled;
  Tensor rel_bias;   // (2T - 1, heads) f32, shared by the layers; empty: none (tiled only)
  Tensor drel_bias;  // (B, 2T - 1, heads) f32, +=: the shared accumulator; empty: not computed

  struct Saved {
    Tensor qkv, att;
    Tensor lse;    // tiled: (B,H,T) f32
    Tensor probs;  // dense: (B,H,T,T) f32
    // (B) int32 on the device, or empty: keys s >= key_lengths[b] (a labelled sequence's
    // padding) are masked. Set by the model per micro-batch; tiled kernel only.
    TokenView key_lengths;
  };
  struct Scratch {
    Tensor dqkv, datt;
    Tensor dprobs;  // dense only: (B,H,T,T) f32
  };

  void forward(Backend& be, Tensor out, Tensor x, const Saved& s) const {
    c_attn.forward(be, s.qkv, x);
    if (rope_base > 0) be.rope_forward(s.qkv, heads, kv(), rope_base);
    core_forward(be, s);
    c_proj.forward(be, out, s.att);
  }

  // Selective recompute (Korthikanti et al.): dense did not keep the probabilities; redo
  // the attention core from the saved (rotated) qkv (att is rewritten with the same values).
  // Tiled keeps only lse and recomputes the probabilities inside its backward anyway:
  // nothing to do.
  void recompute(Backend& be, const Saved& s) const {
    if (kernel == AttentionKernel::dense) core_forward(be, s);
  }

  void backward(Backend& be, Tensor dx, Tensor dout, Tensor x, const Saved& s, const Scratch& k) const {
    c_proj.backward(be, k.datt, dout, s.att);
    if (kernel == AttentionKernel::tiled)
      be.flash_attention_backward(q_of(k.dqkv), k_of(k.dqkv), v_of(k.dqkv), k.datt, q_of(s.qkv), k_of(s.qkv),
                                  v_of(s.qkv), s.att, s.lse, spec(s));
    else if (plain())
      be.attention_backward(k.dqkv, k.dprobs, k.datt, s.qkv, s.probs, heads);
    else
      be.grouped_attention_backward(k.dqkv, k.dprobs, k.datt, s.qkv, s.probs, {heads, kv(), alibi_slopes});
    if (rope_base > 0) be.rope_backward(k.dqkv, heads, kv(), rope_base);  // d(pre-rotation q, k)
    c_attn.backward(be, dx, k.dqkv, x);
  }

  // Throws naming the option when the dense kernel is asked for a mask it does not have.
  void check() const {
    LOOM_CHECK(kernel == AttentionKernel::tiled || (causal && window == 0 && rel_bias.empty()),
               "use --train.attention tiled (the default)",
               "the dense attention kernel is causal without a window or relative bias; this model has causal = {}, "
               "model.window = {}, relative bias {}",
               causal, window, rel_bias.empty() ? "none" : "t5_relative");
  }

private:
  int kv() const { return kv_heads > 0 ? kv_heads : heads; }
  std::int64_t head_dim(const Tensor& qkv) const { return qkv.shape[2] / (heads + 2 * kv()); }
  // q, k and v read in place inside the fused qkv (or dqkv): [q heads | k heads | v heads].
  HeadsView q_of(Tensor qkv) const { return HeadsView::in(qkv, 0, heads, head_dim(qkv)); }
  HeadsView k_of(Tensor qkv) const { return HeadsView::in(qkv, heads * head_dim(qkv), kv(), head_dim(qkv)); }
  HeadsView v_of(Tensor qkv) const {
    return HeadsView::in(qkv, (heads + kv()) * head_dim(qkv), kv(), head_dim(qkv));
  }
  AttentionSpec spec(const Saved& s) const {
    return {.causal = causal, .window = window, .key_lengths = s.key_lengths, .alibi_slopes = alibi_slopes,
            .rel_bias = rel_bias, .drel_bias = drel_bias};
  }
  // GPT-2's attention keeps the dense kernel it always ran.
  bool plain() const { return kv() == heads && alibi_slopes.empty(); }
  void core_forward(Backend& be, const Saved& s) const {
    if (kernel == AttentionKernel::tiled) {
      be.flash_attention_forward(s.att, s.lse, q_of(s.qkv), k_of(s.qkv), v_of(s.qkv), spec(s));
      return;
    }
    check();  // never a silently causal "bidirectional" layer
    LOOM_CHECK(s.key_lengths.ptr == nullptr, "use --train.attention tiled (the default)",
               "the dense attention kernel has no padding mask (key lengths)");
    if (plain())
      be.attention_forward(s.att, s.probs, s.qkv, heads);
    else
      be.grouped_attention_forward(s.att, s.probs, s.qkv, {heads, kv(), alibi_slopes});
  }
};

}  // namespace loom
