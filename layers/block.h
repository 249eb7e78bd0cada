// layers/block.h — the transformer block, pre-LN (GPT-2, Llama) or post-LN (BERT,
// model.ln_placement):
//     pre:  x1 = x  + attn(ln_1(x))          post: x1 = ln_1(x  + attn(x))
//           y  = x1 + mlp(ln_2(x1))                y  = ln_2(x1 + mlp(x1))
// x, y (B,T,C). Backward takes dresid = dL/dy and turns it, in place, into
// dL/dx. Pre-LN: each branch's input gradient is added onto the residual gradient by
// the layernorm backward (which accumulates). Post-LN: every path to x goes through a
// norm, so each norm's input gradient is formed in dln and the branch's added to it.
// Parameter grads +=.
// Post-LN reuses the pre-LN Saved fields (no extra memory): x1 holds the first sum
// x + attn(x), ln_1_out the block's x1 = ln_1(that sum), ln_2_out the second sum.
// Sequence parallel (the layers' sp set): x, y, x1, the ln outputs and dresid are this tp
// rank's N/tp rows, (N/tp, C); the linears gather and reduce-scatter (layers/sequence_parallel.h).
#pragma once

#include "layers/attention.h"
#include "layers/layernorm.h"
#include "layers/mlp.h"

namespace loom {

struct Block {
  LayerNorm ln_1;
  Attention attn;
  LayerNorm ln_2;
  Mlp mlp;

  struct Saved {
    Tensor ln_1_out, ln_2_out, x1;  // (B,T,C)
    LayerNorm::Saved ln_1, ln_2;
    Attention::Saved attn;
    Mlp::Saved mlp;
  };
  struct Scratch {
    Attention::Scratch attn;  // dqkv (B,T,(H + 2 Hkv) D), datt (B,T,C), dense only: dprobs (B,H,T,T)
    Tensor dln;               // (B,T,C): gradient at a layernorm output (SP: (N/tp, C))
    Tensor dbig;              // (B,T,F): MLP hidden gradient
    Tensor dh;                // (B,T,2F): SwiGLU's [gate | up] gradient (empty otherwise)
  };

  bool post_ln = false;

  void forward(Backend& be, Tensor y, Tensor x, const Saved& s) const {
    if (post_ln) return forward_post(be, y, x, s);
    ln_1.forward(be, s.ln_1_out, x, s.ln_1);
    attn.forward(be, s.x1, s.ln_1_out, s.attn);
    be.add(s.x1, s.x1, x);
    ln_2.forward(be, s.ln_2_out, s.x1, s.ln_2);
    mlp.forward(be, y, s.ln_2_out, s.mlp);
    be.add(y, y, s.x1);
  }

  void backward(Backend& be, Tensor dresid, Tensor x, const Saved& s, const Scratch& k) const {
    if (post_ln) return backward_post(be, dresid, x, s, k);
    // dresid = dL/dy; the skip connection passes it to x1 unchanged.
    mlp.backward(be, k.dln, dresid, s.ln_2_out, s.mlp, k.dbig, k.dh);
    ln_2.backward(be, dresid, k.dln, s.x1, s.ln_2);  // dresid = dL/dx1
    attn.backward(be, k.dln, dresid, s.ln_1_out, s.attn, k.attn);
    ln_1.backward(be, dresid, k.dln, x, s.ln_1);  // dresid = dL/dx
  }

  // Post-LN, a1 = x + attn(x) (in s.x1), h = ln_1(a1) (s.ln_1_out), a2 = h + mlp(h) (s.ln_2_out).
  void forward_post(Backend& be, Tensor y, Tensor x, const Saved& s) const {
    attn.forward(be, s.x1, x, s.attn);
    be.add(s.x1, s.x1, x);
    ln_1.forward(be, s.ln_1_out, s.x1, s.ln_1);
    mlp.forward(be, s.ln_2_out, s.ln_1_out, s.mlp);
    be.add(s.ln_2_out, s.ln_2_out, s.ln_1_out);
    ln_2.forward(be, y, s.ln_2_out, s.ln_2);
  }

  void backward_post(Backend& be, Tensor dresid, Tensor x, const Saved& s, const Scratch& k) const {
    // The norms accumulate their input gradient: start dln from zero.
    be.fill(k.dln, 0.0f);
    ln_2.backward(be, k.dln, dresid, s.ln_2_out, s.ln_2);        // dln = dL/da2
    mlp.backward(be, dresid, k.dln, s.ln_1_out, s.mlp, k.dbig, k.dh);
    be.add(dresid, dresid, k.dln);                                // dresid = dL/dh: mlp branch + skip
    be.fill(k.dln, 0.0f);
    ln_1.backward(be, k.dln, dresid, s.x1, s.ln_1);              // dln = dL/da1
    attn.backward(be, dresid, k.dln, x, s.attn, k.attn);
    be.add(dresid, dresid, k.dln);                                // dresid = dL/dx: attention branch + skip
  }
};

}  // namespace loom
