// layers/attention.h — causal multi-head self-attention: qkv projection, attention, output projection.
//
// x, out (B,T,C) with C = H*D; qkv (B,T,3C) = x W_qkv^T + b, W_qkv (3C, C)
// rows ordered [q heads | k heads | v heads] (the canonical unfused order);
// probs (B,H,T,T); att (B,T,C) is the attention output before c_proj.
// Backward: dx (=); parameter grads +=; `scratch` holds what backward may
// overwrite (dqkv, datt, dprobs) and is shared by all layers.
// Tensor parallel: each tp rank holds `heads` = H / tp heads: c_attn is column-
// parallel (its q, k and v rows for those heads), c_proj row-parallel, so qkv,
// probs and att hold only this rank's heads and `out` is complete after c_proj.
#pragma once

#include "layers/parallel_linear.h"

namespace loom {

struct Attention {
  ColumnParallelLinear c_attn;
  RowParallelLinear c_proj;
  int heads = 0;  // on this tp rank

  struct Saved {
    Tensor qkv, probs, att;
  };
  struct Scratch {
    Tensor dqkv, datt, dprobs;
  };

  void forward(Backend& be, Tensor out, Tensor x, const Saved& s) const {
    c_attn.forward(be, s.qkv, x);
    be.attention_forward(s.att, s.probs, s.qkv, heads);
    c_proj.forward(be, out, s.att);
  }

  // Selective recompute (Korthikanti et al.): the probabilities were not kept; redo the
  // attention core from the saved qkv (att is rewritten with the same values).
  void recompute(Backend& be, const Saved& s) const { be.attention_forward(s.att, s.probs, s.qkv, heads); }

  void backward(Backend& be, Tensor dx, Tensor dout, Tensor x, const Saved& s, const Scratch& k) const {
    c_proj.backward(be, k.datt, dout, s.att);
    be.attention_backward(k.dqkv, k.dprobs, k.datt, s.qkv, s.probs, heads);
    c_attn.backward(be, dx, k.dqkv, x);
  }
};

}  // namespace loom
