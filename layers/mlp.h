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

  // GELU rides in the GEMMs (Backend::matmul_gelu / matmul_dgelu: one cuBLASLt call each
  // on CUDA, the same two ops as before on the CPU); ReLU and SwiGLU are separate ops.
  void forward(Backend& be, Tensor out, Tensor x, const Saved& s) const {
    switch (kind) {
      case MlpKind::gelu: c_fc.forward_gelu(be, s.h, s.g, x); break;
      case MlpKind::relu:
        c_fc.forward(be, s.h, x);
        be.relu_forward(s.g, s.h);
        break;
      case MlpKind::swiglu:
        c_fc.forward(be, s.h, x);
        be.swiglu_forward(s.g, s.h);
        break;
    }
    c_proj.forward(be, out, s.g);
  }

  // dh: swiglu's (N, 2F) scratch (unused otherwise).
  void backward(Backend& be, Tensor dx, Tensor dout, Tensor x, const Saved& s, Tensor dg, Tensor dh = {}) const {
    switch (kind) {
      case MlpKind::gelu: c_proj.backward(be, dg, dout, s.g, s.h); break;  // dg: the gradient of h
      case MlpKind::relu:
        c_proj.backward(be, dg, dout, s.g);
        be.relu_backward(dg, dg, s.h);  // in place: dg becomes dh
        break;
      case MlpKind::swiglu:
        c_proj.backward(be, dg, dout, s.g);
        be.swiglu_backward(dh, dg, s.h);
        break;
    }
    c_fc.backward(be, dx, kind == MlpKind::swiglu ? dh : dg, x);
  }
};

}  // namespace loom
