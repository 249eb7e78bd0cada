// layers/layernorm.h — LayerNorm over channels (eps 1e-5, as GPT-2), forward and backward.
//
// x, out (N, C). Saved: mean, rstd (N) f32. Backward accumulates dx (+=): the
// input of every layernorm in GPT-2 is the residual stream, whose gradient
// buffer already holds the gradient arriving through the skip connection.
#pragma once

#include "backend/backend.h"

namespace loom {

struct LayerNorm {
  Tensor w, b, dw, db;
  static constexpr float kEps = 1e-5f;

  struct Saved {
    Tensor mean, rstd;
  };

  void forward(Backend& be, Tensor out, Tensor x, const Saved& s) const {
    be.layernorm_forward(out, s.mean, s.rstd, x, w, b, kEps);
  }
  void backward(Backend& be, Tensor dx, Tensor dout, Tensor x, const Saved& s) const {
    be.layernorm_backward(dx, dw, db, dout, x, w, s.mean, s.rstd, Accumulate::yes);
  }
};

}  // namespace loom
