// layers/layernorm.h — LayerNorm over channels (eps 1e-5, as GPT-2), forward and backward.
//
// x, out (N, C). Saved: mean, rstd (N) f32. Backward accumulates dx (+=): the
// input of every layernorm in GPT-2 is the residual stream, whose gradient
// buffer already holds the gradient arriving through the skip connection.
// Sequence parallel (sp set): x, out, dx, dout are this rank's N/tp rows, so backward
// sums the weight and bias gradients of this micro-batch over tp before adding them.
#pragma once

#include "backend/backend.h"
#include "layers/sequence_parallel.h"

namespace loom {

struct LayerNorm {
  Tensor w, b, dw, db;
  const SequenceParallel* sp = nullptr;
  static constexpr float kEps = 1e-5f;

  struct Saved {
    Tensor mean, rstd;
  };

  void forward(Backend& be, Tensor out, Tensor x, const Saved& s) const {
    be.layernorm_forward(out, s.mean, s.rstd, x, w, b, kEps);
  }
  void backward(Backend& be, Tensor dx, Tensor dout, Tensor x, const Saved& s) const {
    if (!sp) return be.layernorm_backward(dx, dw, db, dout, x, w, s.mean, s.rstd, Accumulate::yes);
    // This rank's rows give part of this micro-batch's dw, db: sum the part over tp, then add it.
    const std::int64_t C = w.numel();
    const Tensor part = sp->norm_grads, pw = part.slice_rows(0, 1).view({C}), pb = part.slice_rows(1, 2).view({C});
    be.fill(part, 0.0f);
    be.layernorm_backward(dx, pw, pb, dout, x, w, s.mean, s.rstd, Accumulate::yes);
    sp->tp->all_reduce(part);
    be.axpy(dw, 1.0f, pw);
    be.axpy(db, 1.0f, pb);
  }
};

}  // namespace loom
