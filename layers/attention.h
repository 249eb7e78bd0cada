// layers/attention.h — causal multi-head self-attention: qkv projection, attention, output projection.
//
// x, out (B,T,C) with C = H*D; qkv (B,T,(H + 2 Hkv) D) = x W_qkv^T + b, W_qkv ((H + 2 Hkv) D, C)
// rows ordered [q heads | k heads | v heads] (the canonical unfused order); Hkv = H
// (GPT-2) or fewer key/value heads, each shared by H / Hkv query heads (grouped-query
// attention); probs (B,H,T,T); att (B,T,C) is the attention output before c_proj.
// Positions inside attention: RoPE rotates q and k in place in qkv after c_attn (so the
// saved qkv is the rotated one, which is what the attention backward needs) and rotates
// their gradients back before c_attn's backward; ALiBi adds per-head biases to the scores.
// Backward: dx (=); parameter grads +=; `scratch` holds what backward may
// overwrite (dqkv, datt, dprobs) and is shared by all layers.
// Tensor parallel: each tp rank holds `heads` = H / tp query heads and `kv_heads` = Hkv / tp
// key/value heads (its query heads' groups, whole): c_attn is column-parallel (its q, k and v
// rows for those heads), c_proj row-parallel, so qkv, probs and att hold only this rank's
// heads and `out` is complete after c_proj. ALiBi's slopes are those of this rank's global heads.
#pragma once

#include "layers/parallel_linear.h"

namespace loom {

struct Attention {
  ColumnParallelLinear c_attn;
  RowParallelLinear c_proj;
  int heads = 0;      // query heads on this tp rank
  int kv_heads = 0;   // key/value heads on this tp rank (0: heads)
  float rope_base = 0;  // > 0: rotary positions with this base
  Tensor alibi_slopes;  // (heads) f32, this rank's heads; empty: no ALiBi

  struct Saved {
    Tensor qkv, probs, att;
  };
  struct Scratch {
    Tensor dqkv, datt, dprobs;
  };

  void forward(Backend& be, Tensor out, Tensor x, const Saved& s) const {
    c_attn.forward(be, s.qkv, x);
    if (rope_base > 0) be.rope_forward(s.qkv, heads, kv(), rope_base);
    core_forward(be, s);
    c_proj.forward(be, out, s.att);
  }

  // Selective recompute (Korthikanti et al.): the probabilities were not kept; redo the
  // attention core from the saved (rotated) qkv (att is rewritten with the same values).
  void recompute(Backend& be, const Saved& s) const { core_forward(be, s); }

  void backward(Backend& be, Tensor dx, Tensor dout, Tensor x, const Saved& s, const Scratch& k) const {
    c_proj.backward(be, k.datt, dout, s.att);
    if (plain())
      be.attention_backward(k.dqkv, k.dprobs, k.datt, s.qkv, s.probs, heads);
    else
      be.grouped_attention_backward(k.dqkv, k.dprobs, k.datt, s.qkv, s.probs, {heads, kv(), alibi_slopes});
    if (rope_base > 0) be.rope_backward(k.dqkv, heads, kv(), rope_base);  // d(pre-rotation q, k)
    c_attn.backward(be, dx, k.dqkv, x);
  }

private:
  int kv() const { return kv_heads > 0 ? kv_heads : heads; }
  // GPT-2's attention keeps the kernel it always ran.
  bool plain() const { return kv() == heads && alibi_slopes.empty(); }
  void core_forward(Backend& be, const Saved& s) const {
    if (plain())
      be.attention_forward(s.att, s.probs, s.qkv, heads);
    else
      be.grouped_attention_forward(s.att, s.probs, s.qkv, {heads, kv(), alibi_slopes});
  }
};

}  // namespace loom
