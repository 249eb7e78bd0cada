// layers/linear.h — y = x W^T + b, the nn.Linear convention: W is (out, in), b is (out).
//
// x (N, in), y (N, out). Backward: dx (=) = dy W, dW += dy^T x, db += colsum(dy);
// pass an empty dx to skip it. The GELU variants fuse the MLP's activation (Backend::
// matmul_gelu / matmul_dgelu): forward_gelu writes h = x W^T + b and g = gelu(h); backward
// given `gelu_h` (the h of the layer before the activation) writes dx = (dy W) * gelu'(h),
// the gradient of that h, instead of dy W. Column/row-parallel variants (tensor
// parallelism) wrap this with the communication at their call sites.
#pragma once

#include "backend/backend.h"

namespace loom {

struct Linear {
  Tensor w, b, dw, db;  // b/db may be empty (no bias)

  void forward(Backend& be, Tensor y, Tensor x) const { be.matmul(y, x, w, b, {.trans_b = Trans::yes}); }
  void forward_gelu(Backend& be, Tensor h, Tensor g, Tensor x) const {
    be.matmul_gelu(h, g, x, w, b, {.trans_b = Trans::yes});
  }

  void backward(Backend& be, Tensor dx, Tensor dy, Tensor x, Tensor gelu_h = {}) const {
    if (!dx.empty() && !gelu_h.empty())
      be.matmul_dgelu(dx, dy, w, gelu_h, {});
    else if (!dx.empty())
      be.matmul(dx, dy, w, {}, {});
    be.matmul(dw, dy, x, {}, {.trans_a = Trans::yes, .accumulate = Accumulate::yes});
    if (!db.empty()) be.bias_backward(db, dy);
  }
};

}  // namespace loom
