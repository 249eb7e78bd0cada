// tests/unit/test_optim_schedule.cpp — AdamW one step against hand-computed values
// (PyTorch semantics), clipping by the global norm, and the LR schedule at step 0,
// the end of warmup, midway and the last step.
#include <cmath>

#include <gtest/gtest.h>

#include "backend/registry.h"
#include "optimizer/adamw.h"
#include "schedule/lr_schedule.h"

using namespace loom;

namespace {
struct Fixture {
  std::unique_ptr<Backend> be = make_backend(Device::cpu);
  ParamStore ps{*be, {{"w", {2}, 0, 1, Decay::yes}, {"b", {1}, 0, 1, Decay::no}}};
  void set_grads(std::vector<float> g) { be->copy(ps.flat_grads(), host_tensor(g.data(), Shape{3})); }
  std::vector<float> params() {
    std::vector<float> p(3);
    be->copy(host_tensor(p.data(), Shape{3}), ps.flat_params());
    return p;
  }
};
}  // namespace

TEST(AdamW, OneStepMatchesHandComputedValues) {
  Fixture f;
  f.ps.init(0);  // all ones (init_value 1)
  OptimConfig o;
  o.lr = 0.1f, o.beta1 = 0.9f, o.beta2 = 0.999f, o.eps = 1e-8f, o.weight_decay = 0.01f, o.clip_grad = 0;
  AdamW opt(*f.be, f.ps, o);
  f.set_grads({0.5f, -2.0f, 0.5f});
  const double norm = opt.step(o.lr, 1);
  EXPECT_NEAR(norm, std::sqrt(0.25 + 4.0 + 0.25), 1e-6);
  // Step 1: m_hat = g, v_hat = g^2, so the Adam step is lr * sign(g) (up to eps).
  // Decayed weights first shrink by lr * wd * p = 0.001; the bias does not decay.
  const auto p = f.params();
  EXPECT_NEAR(p[0], 1.0 - 0.001 - 0.1, 1e-6);
  EXPECT_NEAR(p[1], 1.0 - 0.001 + 0.1, 1e-6);
  EXPECT_NEAR(p[2], 1.0 - 0.1, 1e-6);
  // Second step with the same gradient: m = 0.19 g, v = 0.001999 g^2;
  // m_hat = 0.19 / 0.19 g = g, v_hat = g^2 -> another lr * sign(g).
  opt.step(o.lr, 2);
  const auto q = f.params();
  EXPECT_NEAR(q[2], 0.9 - 0.1, 1e-6);
  EXPECT_NEAR(q[0], p[0] - 0.1 * 0.01 * p[0] - 0.1, 1e-6);
}

TEST(AdamW, ClippingScalesTheGradientBeforeTheMoments) {
  Fixture f;
  f.ps.init(0);
  OptimConfig o;
  o.lr = 0.1f, o.beta1 = 0.9f, o.beta2 = 0.999f, o.weight_decay = 0, o.clip_grad = 1.0f;
  AdamW opt(*f.be, f.ps, o);
  f.set_grads({3.0f, 4.0f, 0.0f});  // norm 5 -> scale 1/5
  EXPECT_NEAR(opt.step(o.lr, 1), 5.0, 1e-6);
  std::vector<float> m(3);
  f.be->copy(host_tensor(m.data(), Shape{3}), opt.m());
  EXPECT_NEAR(m[0], 0.1 * 3.0 / 5.0, 1e-6);
  EXPECT_NEAR(m[1], 0.1 * 4.0 / 5.0, 1e-6);
  EXPECT_EQ(m[2], 0.0f);
}

TEST(LrSchedule, WarmupThenCosineToMin) {
  OptimConfig o;
  o.lr = 1.0f, o.min_lr = 0.1f, o.warmup_steps = 10, o.decay = "cosine";
  const std::int64_t steps = 111;  // decay over steps 10..110
  EXPECT_NEAR(learning_rate(o, steps, 0), 0.1, 1e-7);   // (0 + 1) / 10
  EXPECT_NEAR(learning_rate(o, steps, 9), 1.0, 1e-7);   // end of warmup
  EXPECT_NEAR(learning_rate(o, steps, 10), 1.0, 1e-7);  // decay starts at the peak
  EXPECT_NEAR(learning_rate(o, steps, 60), 0.55, 1e-6);  // midway: (lr + min) / 2
  EXPECT_NEAR(learning_rate(o, steps, 35), 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.25)), 1e-6);
  EXPECT_NEAR(learning_rate(o, steps, 110), 0.1, 1e-7);  // last step
  EXPECT_THROW(learning_rate(o, steps, 111), Error);
}

TEST(LrSchedule, LinearAndConstant) {
  OptimConfig o;
  o.lr = 1.0f, o.min_lr = 0.0f, o.warmup_steps = 0, o.decay = "linear";
  EXPECT_NEAR(learning_rate(o, 11, 0), 1.0, 1e-7);
  EXPECT_NEAR(learning_rate(o, 11, 5), 0.5, 1e-7);
  EXPECT_NEAR(learning_rate(o, 11, 10), 0.0, 1e-7);
  o.decay = "constant";
  EXPECT_NEAR(learning_rate(o, 11, 10), 1.0, 1e-7);
  EXPECT_NEAR(learning_rate(o, 1, 0), 1.0, 1e-7);  // a single step
}
