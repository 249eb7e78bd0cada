// layers/decoder_block.h — the encoder-decoder's decoder block, pre-LN (T5):
//     x1 = x  + self_attn(ln_1(x))          causal self-attention
//     x2 = x1 + cross(ln_2(x1), enc)        attention to the encoder output
//     y  = x2 + mlp(ln_3(x2))
// x, y, x1, x2 (B,Td,C); enc (B,Te,C). Backward takes dresid = dL/dy and turns it, in
// place, into dL/dx (each norm's backward adds its branch's input gradient onto the
// residual gradient); denc += this block's d enc; parameter grads +=.
#pragma once

#include "layers/attention.h"
#include "layers/cross_attention.h"
#include "layers/layernorm.h"
#include "layers/mlp.h"

namespace loom {

struct DecoderBlock {
  LayerNorm ln_1;
  Attention attn;  // causal
  LayerNorm ln_2;
  CrossAttention cross;
  LayerNorm ln_3;
  Mlp mlp;

  struct Saved {
    Tensor ln_1_out, x1, ln_2_out, x2, ln_3_out;  // (B,Td,C)
    LayerNorm::Saved ln_1, ln_2, ln_3;
    Attention::Saved attn;
    CrossAttention::Saved cross;
    Mlp::Saved mlp;
  };
  struct Scratch {
    Attention::Scratch attn;
    CrossAttention::Scratch cross;
    Tensor dln;   // (B,Td,C)
    Tensor dbig;  // (B,Td,F)
    Tensor dh;    // SwiGLU's (B,Td,2F); empty otherwise
  };

  void forward(Backend& be, Tensor y, Tensor x, Tensor enc, const Saved& s) const {
    ln_1.forward(be, s.ln_1_out, x, s.ln_1);
    attn.forward(be, s.x1, s.ln_1_out, s.attn);
    be.add(s.x1, s.x1, x);
    ln_2.forward(be, s.ln_2_out, s.x1, s.ln_2);
    cross.forward(be, s.x2, s.ln_2_out, enc, s.cross);
    be.add(s.x2, s.x2, s.x1);
    ln_3.forward(be, s.ln_3_out, s.x2, s.ln_3);
    mlp.forward(be, y, s.ln_3_out, s.mlp);
    be.add(y, y, s.x2);
  }

  void backward(Backend& be, Tensor dresid, Tensor denc, Tensor x, Tensor enc, const Saved& s,
                const Scratch& k) const {
    mlp.backward(be, k.dln, dresid, s.ln_3_out, s.mlp, k.dbig, k.dh);
    ln_3.backward(be, dresid, k.dln, s.x2, s.ln_3);  // dresid = dL/dx2
    cross.backward(be, k.dln, denc, dresid, s.ln_2_out, enc, s.cross, k.cross);
    ln_2.backward(be, dresid, k.dln, s.x1, s.ln_2);  // dresid = dL/dx1
    attn.backward(be, k.dln, dresid, s.ln_1_out, s.attn, k.attn);
    ln_1.backward(be, dresid, k.dln, x, s.ln_1);  // dresid = dL/dx
  }
};

}  // namespace loom
