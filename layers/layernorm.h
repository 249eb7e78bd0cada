// layers/layernorm.h — the norm over channels, forward and backward: LayerNorm (GPT-2's,
// eps 1e-5) or RMSNorm (Llama's: x / rms(x) * weight, no mean, no bias).
//
// x, out (N, C). Saved: mean (layernorm only; empty for rmsnorm), rstd (N) f32. Backward
// accumulates dx (+=): the input of every norm in the model is the residual stream, whose
// gradient buffer already holds the gradient arriving through the skip connection.
// Sequence parallel (sp set): x, out, dx, dout are this rank's N/tp rows, so backward
// sums the weight (and bias) gradients of this micro-batch over tp before adding them.
#pragma once

#include "backend/backend.h"
#include "layers/sequence_parallel.h"

namespace loom {

enum class NormKind : std::uint8_t { layernorm, rmsnorm };

struct LayerNorm {
  Tensor w, b, dw, db;  // b, db empty for rmsnorm
  const SequenceParallel* sp = nullptr;
  NormKind kind = NormKind::layernorm;
  float eps = kEps;
  static constexpr float kEps = 1e-5f;

  struct Saved {
    Tensor mean, rstd;
  };

  void forward(Backend& be, Tensor out, Tensor x, const Saved& s) const {
    if (kind == NormKind::rmsnorm) return be.rmsnorm_forward(out, s.rstd, x, w, eps);
    be.layernorm_forward(out, s.mean, s.rstd, x, w, b, eps);
  }
  void backward(Backend& be, Tensor dx, Tensor dout, Tensor x, const Saved& s) const {
    const bool rms = kind == NormKind::rmsnorm;
    if (!sp) {
      if (rms) return be.rmsnorm_backward(dx, dw, dout, x, w, s.rstd, Accumulate::yes);
      return be.layernorm_backward(dx, dw, db, dout, x, w, s.mean, s.rstd, Accumulate::yes);
    }
    // This rank's rows give part of this micro-batch's dw (, db): sum the part over tp, then add it.
    const std::int64_t C = w.numel();
    const Tensor part = rms ? sp->norm_grads.slice_rows(0, 1) : sp->norm_grads;
    const Tensor pw = part.slice_rows(0, 1).view({C});
    be.fill(part, 0.0f);
    if (rms) {
      be.rmsnorm_backward(dx, pw, dout, x, w, s.rstd, Accumulate::yes);
    } else {
      be.layernorm_backward(dx, pw, sp->norm_grads.slice_rows(1, 2).view({C}), dout, x, w, s.mean, s.rstd,
                            Accumulate::yes);
    }
    sp->tp->all_reduce(part);
    be.axpy(dw, 1.0f, pw);
    if (!rms) be.axpy(db, 1.0f, sp->norm_grads.slice_rows(1, 2).view({C}));
  }
};

}  // namespace loom
