// layers/block.h — the pre-LN transformer block of GPT-2 (and Llama, with its parts):
//     x1 = x  + attn(ln_1(x))
//     y  = x1 + mlp(ln_2(x1))
// x, y (B,T,C). Backward takes dresid = dL/dy and turns it, in place, into
// dL/dx: each branch's input gradient is added onto the residual gradient by
// the layernorm backward (which accumulates). Parameter grads +=.
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

  void forward(Backend& be, Tensor y, Tensor x, const Saved& s) const {
    ln_1.forward(be, s.ln_1_out, x, s.ln_1);
    attn.forward(be, s.x1, s.ln_1_out, s.attn);
    be.add(s.x1, s.x1, x);
    ln_2.forward(be, s.ln_2_out, s.x1, s.ln_2);
    mlp.forward(be, y, s.ln_2_out, s.mlp);
    be.add(y, y, s.x1);
  }

  void backward(Backend& be, Tensor dresid, Tensor x, const Saved& s, const Scratch& k) const {
    // dresid = dL/dy; the skip connection passes it to x1 unchanged.
    mlp.backward(be, k.dln, dresid, s.ln_2_out, s.mlp, k.dbig, k.dh);
    ln_2.backward(be, dresid, k.dln, s.x1, s.ln_2);  // dresid = dL/dx1
    attn.backward(be, k.dln, dresid, s.ln_1_out, s.attn, k.attn);
    ln_1.backward(be, dresid, k.dln, x, s.ln_1);  // dresid = dL/dx
  }
};

}  // namespace loom
