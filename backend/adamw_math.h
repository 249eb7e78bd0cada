// backend/adamw_math.h — the AdamW update of one element, shared by the CPU and CUDA backends.
//
// PyTorch semantics (torch.optim.AdamW): decoupled weight decay applied to the
// parameter before the Adam step, bias-corrected moments, eps added to
// sqrt(v_hat). Kept as one inline function so both backends compute the same
// thing; LOOM_HOST_DEVICE is defined by backend/cuda before including this.
#pragma once

#include <cmath>

#ifndef LOOM_HOST_DEVICE
#define LOOM_HOST_DEVICE
#endif

namespace loom {

struct AdamWScalars {
  float lr, beta1, beta2, eps, weight_decay, grad_scale;
  float bias_correction1, bias_correction2;  // 1 - beta^step
};

LOOM_HOST_DEVICE inline void adamw_element(float& param, float grad, float& m, float& v,
                                           const AdamWScalars& s) {
  const float g = grad * s.grad_scale;
  m = s.beta1 * m + (1.0f - s.beta1) * g;
  v = s.beta2 * v + (1.0f - s.beta2) * g * g;
  const float m_hat = m / s.bias_correction1;
  const float v_hat = v / s.bias_correction2;
  param -= s.lr * s.weight_decay * param;
  param -= s.lr * m_hat / (sqrtf(v_hat) + s.eps);
}

}  // namespace loom
