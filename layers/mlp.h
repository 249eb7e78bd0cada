// layers/mlp.h — the feed-forward block: fc (C -> F, or C -> 2F for SwiGLU), an
// activation, proj (F -> C).
//
//   gelu    GPT-2: g = gelu(h) (tanh form), h = fc(x) (N, F)
//   relu    g = max(h, 0)
//   swiglu  Llama (Shazeer 2020): h = fc(x) (N, 2F) holds [gate | up] on each row (the
//           gate and up projections fused into one matrix), g = silu(gate) * up (N, F)
// x, out (N, C); saved h and g. Backward: dx (=), parameter grads +=; scratch dg (N, F) is
// overwritten (reused for dh in place, except for swiglu, whose dh (N, 2F) is a second
// scratch).
// Tensor parallel: c_fc column-parallel, c_proj row-parallel; h, g, dg hold this rank's
// F / tp columns (swiglu: this rank's F / tp gate columns, then the same F / tp up columns,
// so silu(gate) * up needs no communication).
#pragma once

#include "layers/parallel_linear.h"

namespace loom {

enum class MlpKind : std::uint8_t { gelu, relu, swiglu };

struct Mlp {
  ColumnParallelLinear c_fc;
  RowParallelLinear c_proj;
  MlpKind kind = MlpKind::gelu;

  struct Saved {
    Tensor h, g;
  };

  void forward(Backend& be, Tensor out, Tensor x, const Saved& s) const {
    c_fc.forward(be, s.h, x);
    switch (kind) {
      case MlpKind::gelu: be.gelu_forward(s.g, s.h); break;
      case MlpKind::relu: be.relu_forward(s.g, s.h); break;
      case MlpKind::swiglu: be.swiglu_forward(s.g, s.h); break;
    }
    c_proj.forward(be, out, s.g);
  }

  // dh: swiglu's (N, 2F) scratch (unused otherwise).
  void backward(Backend& be, Tensor dx, Tensor dout, Tensor x, const Saved& s, Tensor dg, Tensor dh = {}) const {
    c_proj.backward(be, dg, dout, s.g);
    switch (kind) {
      case MlpKind::gelu: be.gelu_backward(dg, dg, s.h); break;  // in place: dg becomes dh
      case MlpKind::relu: be.relu_backward(dg, dg, s.h); break;
      case MlpKind::swiglu: be.swiglu_backward(dh, dg, s.h); break;
    }
    c_fc.backward(be, dx, kind == MlpKind::swiglu ? dh : dg, x);
  }
};

}  // namespace loom
