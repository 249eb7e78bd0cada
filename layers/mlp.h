// layers/mlp.h — the GPT-2 MLP: fc (C -> F), GELU (tanh form), proj (F -> C).
//
// x, out (N, C); saved h = fc(x) and g = gelu(h), both (N, F). Backward: dx (=),
// parameter grads +=; scratch dg (N, F) is overwritten (reused for dh in place).
// Tensor parallel: c_fc column-parallel, c_proj row-parallel; h, g, dg hold this
// rank's F / tp columns.
#pragma once

#include "layers/parallel_linear.h"

namespace loom {

struct Mlp {
  ColumnParallelLinear c_fc;
  RowParallelLinear c_proj;

  struct Saved {
    Tensor h, g;
  };

  void forward(Backend& be, Tensor out, Tensor x, const Saved& s) const {
    c_fc.forward(be, s.h, x);
    be.gelu_forward(s.g, s.h);
    c_proj.forward(be, out, s.g);
  }

  void backward(Backend& be, Tensor dx, Tensor dout, Tensor x, const Saved& s, Tensor dg) const {
    c_proj.backward(be, dg, dout, s.g);
    be.gelu_backward(dg, dg, s.h);  // in place: dg becomes dh
    c_fc.backward(be, dx, dg, x);
  }
};

}  // namespace loom
