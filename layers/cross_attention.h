// layers/cross_attention.h — encoder-decoder attention (Vaswani et al. 2017, T5): the
// decoder's queries attend to every position of the encoder output, no mask.
//
// x, out (B,Td,C) the decoder stream (x normed); enc (B,Te,C) the final encoder output
// (after the encoder's final norm); q (B,Td,C) = x Wq^T + bq; kv (B,Te,2C) = enc Wkv^T + bkv,
// rows [k heads | v heads]; att (B,Td,C) before c_proj. The core is the tiled kernel
// (Backend::flash_attention_*, Tq != Tk, causal = false), saving lse (B,H,Td) f32.
// Backward: dx (=); denc (+=: every decoder layer's cross-attention reads the same encoder
// output, so their gradients add up); parameter grads +=. Scratch (dq, dkv, datt, denc_part)
// is overwritten and shared by the layers.
// Tensor parallel: each tp rank holds H / tp heads: c_q and c_kv column-parallel (c_kv's
// rows split inside each of the k and v blocks), c_proj row-parallel, so q, kv, att and lse
// hold this rank's heads and `out` is complete after c_proj; the column-parallel backward
// all-reduces dx and this layer's part of denc over tp.
#pragma once

#include "layers/parallel_linear.h"

namespace loom {

struct CrossAttention {
  ColumnParallelLinear c_q;   // C -> C / tp
  ColumnParallelLinear c_kv;  // C -> 2 C / tp
  RowParallelLinear c_proj;   // C / tp -> C
  int heads = 0;              // on this tp rank

  struct Saved {
    Tensor q, kv, att;  // (B,Td,Cl), (B,Te,2Cl), (B,Td,Cl)
    Tensor lse;         // (B,Hl,Td) f32
  };
  struct Scratch {
    Tensor dq, dkv, datt;  // like q, kv, att
    Tensor denc;           // (B,Te,C): this layer's part of d enc, before it is added
  };

  void forward(Backend& be, Tensor out, Tensor x, Tensor enc, const Saved& s) const {
    c_q.forward(be, s.q, x);
    c_kv.forward(be, s.kv, enc);
    be.flash_attention_forward(s.att, s.lse, HeadsView::of(s.q, heads), k_of(s.kv), v_of(s.kv), spec());
    c_proj.forward(be, out, s.att);
  }

  void backward(Backend& be, Tensor dx, Tensor denc, Tensor dout, Tensor x, Tensor enc, const Saved& s,
                const Scratch& k) const {
    c_proj.backward(be, k.datt, dout, s.att);
    be.flash_attention_backward(HeadsView::of(k.dq, heads), k_of(k.dkv), v_of(k.dkv), k.datt,
                                HeadsView::of(s.q, heads), k_of(s.kv), v_of(s.kv), s.att, s.lse, spec());
    c_kv.backward(be, k.denc, k.dkv, enc);
    be.add(denc, denc, k.denc);
    c_q.backward(be, dx, k.dq, x);
  }

 private:
  std::int64_t head_dim(const Tensor& kv) const { return kv.shape[2] / (2 * heads); }
  HeadsView k_of(Tensor kv) const { return HeadsView::in(kv, 0, heads, head_dim(kv)); }
  HeadsView v_of(Tensor kv) const { return HeadsView::in(kv, heads * head_dim(kv), heads, head_dim(kv)); }
  static AttentionSpec spec() { return {.causal = false}; }
};

}  // namespace loom
