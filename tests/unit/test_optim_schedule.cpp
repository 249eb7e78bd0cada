// tests/unit/test_optim_schedule.cpp — AdamW one step against hand-computed values
// (PyTorch semantics), clipping by the global norm; every LR schedule at step 0, the end of
// warmup, the first decay step, the wsd stable/anneal boundary and the last step, its shape
// over a whole run; and the validation of the optim.* and parallel.virtual_stages options.
// Expected values are written out from the formulas in schedule/lr_schedule.h.
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "backend/registry.h"
#include "core/config.h"
#include "core/error.h"
#include "layers/param_store.h"
#include "optimizer/adamw.h"
#include "schedule/lr_schedule.h"

using namespace loom;

namespace {
struct Fixture {
  std::unique_ptr<Backend> be = make_backend(Device::cpu);
  ParamStore ps{*be, {{.name = "w", .shape = {2}, .init_value = 1, .role = ParamRole::matrix},
                      {.name = "b", .shape = {1}, .init_value = 1, .role = ParamRole::bias}}};
  AdamW adamw(const OptimConfig& o) { return AdamW(*be, ps.specs(), ps.flat_params(), ps.flat_grads(), o); }
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
  AdamW opt = f.adamw(o);
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
  AdamW opt = f.adamw(o);
  f.set_grads({3.0f, 4.0f, 0.0f});  // norm 5 -> scale 1/5
  EXPECT_NEAR(opt.step(o.lr, 1), 5.0, 1e-6);
  std::vector<float> m(3);
  f.be->copy(host_tensor(m.data(), Shape{3}), opt.m());
  EXPECT_NEAR(m[0], 0.1 * 3.0 / 5.0, 1e-6);
  EXPECT_NEAR(m[1], 0.1 * 4.0 / 5.0, 1e-6);
  EXPECT_EQ(m[2], 0.0f);
}

TEST(AdamW, WeightDecayGroupsFollowTheParameterRoles) {
  OptimConfig o;
  EXPECT_TRUE(decays(ParamRole::matrix, o));
  EXPECT_FALSE(decays(ParamRole::bias, o));
  EXPECT_FALSE(decays(ParamRole::norm, o));
  o.decay_embeddings = true;
  EXPECT_TRUE(decays(ParamRole::embedding, o));
  o.decay_embeddings = false;
  EXPECT_FALSE(decays(ParamRole::embedding, o));
  // An embedding table with a zero gradient only decays when the option says so.
  auto be = make_backend(Device::cpu);
  for (bool on : {true, false}) {
    ParamStore ps{*be, {{.name = "e", .shape = {2}, .init_value = 1, .role = ParamRole::embedding}}};
    ps.init(0);
    o.lr = 0.1f, o.weight_decay = 0.5f, o.clip_grad = 0, o.decay_embeddings = on;
    AdamW(*be, ps.specs(), ps.flat_params(), ps.flat_grads(), o).step(o.lr, 1);
    EXPECT_NEAR(ps.read(0)[0], on ? 1.0 - 0.1 * 0.5 : 1.0, 1e-6);
  }
}

TEST(AdamW, NormWeightsCountReplicatedAndTiedTensorsOnce) {
  const std::vector<ParamSpec> specs = {
      {.name = "sharded", .shape = {2}},
      {.name = "replicated", .shape = {2}, .tp_replicated = TpReplicated::yes},
      {.name = "wte", .shape = {2}, .tied = "wte"},
  };
  const auto first = norm_weights(specs, 4, [](const std::string&) { return true; });
  EXPECT_EQ(first, (std::vector<float>{1.0f, 0.25f, 1.0f}));
  const auto other = norm_weights(specs, 4, [](const std::string&) { return false; });
  EXPECT_EQ(other, (std::vector<float>{1.0f, 0.25f, 0.0f}));
}

TEST(LrSchedule, WarmupThenCosineToMin) {
  OptimConfig o;
  o.lr = 1.0f, o.min_lr = 0.1f, o.warmup_steps = 10, o.decay = "cosine";
  const std::int64_t steps = 111;                        // decay over steps 10..110
  EXPECT_NEAR(learning_rate(o, steps, 0), 0.1, 1e-7);    // (0 + 1) / 10
  EXPECT_NEAR(learning_rate(o, steps, 9), 1.0, 1e-7);    // end of warmup
  EXPECT_NEAR(learning_rate(o, steps, 10), 1.0, 1e-7);   // decay starts at the peak
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

namespace {
// lr 1, min_lr 0.1, 10 warmup steps from 0; 200 steps, so the decay spans steps 10..199.
OptimConfig schedule(const std::string& decay) {
  OptimConfig o;
  o.lr = 1.0f, o.min_lr = 0.1f, o.warmup_steps = 10, o.decay = decay;
  return o;
}
constexpr std::int64_t kSteps = 200;
const std::vector<std::string> kAll = {"constant", "linear", "cosine", "exponential", "inverse_sqrt", "wsd"};
}  // namespace

TEST(LrSchedule, WarmupIsSharedAndStartsFromWarmupStartLr) {
  for (const auto& d : kAll) {
    OptimConfig o = schedule(d);
    o.warmup_steps = 4;
    EXPECT_NEAR(learning_rate(o, kSteps, 0), 0.25, 1e-7) << d;  // 0 + (1 - 0) * 1 / 4
    EXPECT_NEAR(learning_rate(o, kSteps, 2), 0.75, 1e-7) << d;
    EXPECT_NEAR(learning_rate(o, kSteps, 3), 1.0, 1e-7) << d;
    o.warmup_start_lr = 0.2f;  // 0.2 + 0.8 * (s + 1) / 4
    EXPECT_NEAR(learning_rate(o, kSteps, 0), 0.4, 1e-7) << d;
    EXPECT_NEAR(learning_rate(o, kSteps, 1), 0.6, 1e-7) << d;
    EXPECT_NEAR(learning_rate(o, kSteps, 3), 1.0, 1e-7) << d;
  }
}

TEST(LrSchedule, ConstantLinearCosine) {
  OptimConfig o = schedule("constant");
  EXPECT_NEAR(learning_rate(o, kSteps, 0), 0.1, 1e-7);
  for (std::int64_t s : {9, 10, 73, 199}) EXPECT_NEAR(learning_rate(o, kSteps, s), 1.0, 1e-7) << s;
  o.decay = "linear";  // r = (s - 10) / 189
  EXPECT_NEAR(learning_rate(o, kSteps, 9), 1.0, 1e-7);
  EXPECT_NEAR(learning_rate(o, kSteps, 10), 1.0, 1e-7);
  EXPECT_NEAR(learning_rate(o, kSteps, 73), 0.7, 1e-6);   // r = 1/3
  EXPECT_NEAR(learning_rate(o, kSteps, 136), 0.4, 1e-6);  // r = 2/3
  EXPECT_NEAR(learning_rate(o, kSteps, 199), 0.1, 1e-7);
  o.decay = "cosine";
  EXPECT_NEAR(learning_rate(o, kSteps, 10), 1.0, 1e-7);
  EXPECT_NEAR(learning_rate(o, kSteps, 73), 0.775, 1e-6);  // 0.1 + 0.9 * (1 + cos(pi / 3)) / 2
  EXPECT_NEAR(learning_rate(o, kSteps, 199), 0.1, 1e-7);
}

TEST(LrSchedule, ExponentialDecaysByGammaAndStopsAtMinLr) {
  OptimConfig o = schedule("exponential");
  o.gamma = 0.5f;  // decay_steps 0: K = 189, so the last step gets lr * gamma
  EXPECT_NEAR(learning_rate(o, kSteps, 9), 1.0, 1e-7);
  EXPECT_NEAR(learning_rate(o, kSteps, 10), 1.0, 1e-7);
  EXPECT_NEAR(learning_rate(o, kSteps, 11), 0.99633927, 1e-6);  // 0.5^(1/189)
  EXPECT_NEAR(learning_rate(o, kSteps, 73), 0.79370053, 1e-6);  // 0.5^(1/3)
  EXPECT_NEAR(learning_rate(o, kSteps, 199), 0.5, 1e-6);
  o.gamma = 0.1f, o.decay_steps = 21;                           // a factor 10 every 21 steps
  EXPECT_NEAR(learning_rate(o, kSteps, 20), 0.33404850, 1e-6);  // 0.1^(10/21)
  EXPECT_NEAR(learning_rate(o, kSteps, 31), 0.1, 1e-6);
  EXPECT_NEAR(learning_rate(o, kSteps, 52), 0.1, 1e-7);  // 0.01 without the floor
  EXPECT_NEAR(learning_rate(o, kSteps, 199), 0.1, 1e-7);
}

TEST(LrSchedule, InverseSqrtMeetsTheWarmupAndStopsAtMinLr) {
  OptimConfig o = schedule("inverse_sqrt");
  o.warmup_steps = 16, o.min_lr = 0.3f;  // s >= 16: 4 / sqrt(s + 1)
  EXPECT_NEAR(learning_rate(o, kSteps, 0), 1.0 / 16, 1e-7);
  EXPECT_NEAR(learning_rate(o, kSteps, 15), 1.0, 1e-7);
  EXPECT_NEAR(learning_rate(o, kSteps, 16), 0.97014250, 1e-6);  // sqrt(16 / 17)
  EXPECT_NEAR(learning_rate(o, kSteps, 63), 0.5, 1e-7);
  EXPECT_NEAR(learning_rate(o, kSteps, 143), 1.0 / 3, 1e-7);
  EXPECT_NEAR(learning_rate(o, kSteps, 176), 0.30065841, 1e-6);  // 4 / sqrt(177)
  EXPECT_NEAR(learning_rate(o, kSteps, 177), 0.3, 1e-7);         // 4 / sqrt(178) = 0.2998 -> floor
  EXPECT_NEAR(learning_rate(o, kSteps, 199), 0.3, 1e-7);
  o.warmup_steps = 0;  // no warmup: lr / sqrt(s + 1)
  EXPECT_NEAR(learning_rate(o, kSteps, 0), 1.0, 1e-7);
  EXPECT_NEAR(learning_rate(o, kSteps, 3), 0.5, 1e-7);
}

TEST(LrSchedule, WsdHoldsThenAnnealsOverTheLastFraction) {
  OptimConfig o = schedule("wsd");  // decay_fraction 0.1: anneal over steps 180..199
  EXPECT_NEAR(learning_rate(o, kSteps, 0), 0.1, 1e-7);
  EXPECT_NEAR(learning_rate(o, kSteps, 9), 1.0, 1e-7);
  EXPECT_NEAR(learning_rate(o, kSteps, 10), 1.0, 1e-7);
  EXPECT_NEAR(learning_rate(o, kSteps, 179), 1.0, 1e-7);    // last stable step
  EXPECT_NEAR(learning_rate(o, kSteps, 180), 0.955, 1e-6);  // 1 - 0.9 * 1 / 20
  EXPECT_NEAR(learning_rate(o, kSteps, 189), 0.55, 1e-6);   // halfway
  EXPECT_NEAR(learning_rate(o, kSteps, 199), 0.1, 1e-7);
  o.wsd_anneal = "cosine";
  EXPECT_NEAR(learning_rate(o, kSteps, 179), 1.0, 1e-7);
  EXPECT_NEAR(learning_rate(o, kSteps, 180), 0.99445975, 1e-6);  // 0.1 + 0.45 * (1 + cos(pi / 20))
  EXPECT_NEAR(learning_rate(o, kSteps, 189), 0.55, 1e-6);
  EXPECT_NEAR(learning_rate(o, kSteps, 199), 0.1, 1e-7);
  o.wsd_anneal = "linear", o.decay_fraction = 0.0f;  // never anneals
  EXPECT_NEAR(learning_rate(o, kSteps, 199), 1.0, 1e-7);
  o.decay_fraction = 1.0f;  // anneals over all 190 steps after warmup
  EXPECT_NEAR(learning_rate(o, kSteps, 9), 1.0, 1e-7);
  EXPECT_NEAR(learning_rate(o, kSteps, 10), 1.0 - 0.9 / 190, 1e-6);
  EXPECT_NEAR(learning_rate(o, kSteps, 199), 0.1, 1e-7);
}

TEST(LrSchedule, EveryScheduleRisesThenNeverIncreasesNorDropsBelowMinLr) {
  for (const auto& d : kAll)
    for (std::int64_t warmup : {0, 10}) {
      OptimConfig o = schedule(d);
      o.warmup_steps = warmup, o.warmup_start_lr = 0.05f, o.min_lr = 0.2f;
      o.gamma = 0.5f, o.decay_steps = 30;
      std::vector<float> lr(kSteps);
      for (std::int64_t s = 0; s < kSteps; ++s) lr[s] = learning_rate(o, kSteps, s);
      for (std::int64_t s = 1; s < warmup; ++s) EXPECT_GT(lr[s], lr[s - 1]) << d << " step " << s;
      for (std::int64_t s = std::max<std::int64_t>(warmup, 1); s < kSteps; ++s)
        EXPECT_LE(lr[s], lr[s - 1]) << d << " step " << s;
      for (std::int64_t s = warmup; s < kSteps; ++s) EXPECT_GE(lr[s], 0.2f) << d << " step " << s;
      EXPECT_NEAR(lr[std::max<std::int64_t>(warmup - 1, 0)], 1.0, 1e-7) << d;  // the peak
    }
}

namespace {
RunConfig valid_run() {
  RunConfig c;
  c.model.vocab = 256;
  return c;
}
// The message and hint of the error validate() throws ("" when it throws none).
std::string error_of(const RunConfig& c) {
  try {
    validate(c);
  } catch (const Error& e) {
    return e.full_message();
  }
  return "";
}
std::string layout_error_of(RunConfig c, int world) {
  try {
    validate_layout(c, world);
  } catch (const Error& e) {
    return e.full_message();
  }
  return "";
}
}  // namespace

TEST(LrScheduleOptions, ImpossibleSettingsNameTheOptionAndValue) {
  RunConfig c = valid_run();
  EXPECT_EQ(error_of(c), "");
  c.optim.min_lr = 0.001f;  // above the default lr
  const std::string e = error_of(c);
  EXPECT_NE(e.find("optim.min_lr (0.001) is above optim.lr (0.0006, the default)"), std::string::npos) << e;
  c.optim.lr = 0.0005f;
  EXPECT_NE(error_of(c).find("optim.min_lr (0.001) is above optim.lr (0.0005)"), std::string::npos)
      << error_of(c);
  c = valid_run();
  c.optim.warmup_start_lr = 0.01f;
  EXPECT_NE(error_of(c).find("optim.warmup_start_lr (0.01) is above optim.lr (0.0006, the default)"),
            std::string::npos)
      << error_of(c);
  c = valid_run();
  c.optim.decay = "cosin";
  const std::string d = error_of(c);
  EXPECT_NE(d.find("optim.decay 'cosin'"), std::string::npos) << d;
  EXPECT_NE(d.find("constant, linear, cosine, exponential, inverse_sqrt, wsd"), std::string::npos) << d;
  for (float g : {0.0f, -0.5f, 1.5f}) {
    c = valid_run();
    c.optim.gamma = g;
    EXPECT_NE(error_of(c).find(fmt::format("optim.gamma ({}) must be in (0, 1]", g)), std::string::npos) << g;
  }
  c.optim.gamma = 1.0f;
  EXPECT_EQ(error_of(c), "");
  for (float f : {-0.1f, 1.5f}) {
    c = valid_run();
    c.optim.decay_fraction = f;
    EXPECT_NE(error_of(c).find(fmt::format("optim.decay_fraction ({}) must be in [0, 1]", f)),
              std::string::npos);
  }
  c = valid_run();
  c.optim.wsd_anneal = "sqrt";
  EXPECT_NE(error_of(c).find("optim.wsd_anneal 'sqrt'"), std::string::npos) << error_of(c);
}

TEST(LrScheduleOptions, WarmupLongerThanTheRunIsAWarning) {
  RunConfig c = valid_run();
  EXPECT_TRUE(config_warnings(c).empty());
  c.train.steps = 10;  // == warmup_steps: the last step reaches lr
  EXPECT_TRUE(config_warnings(c).empty());
  c.train.steps = 5;
  EXPECT_EQ(error_of(c), "");  // not an error
  const auto w = config_warnings(c);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("optim.warmup_steps (10)"), std::string::npos) << w[0];
  EXPECT_NE(w[0].find("train.steps = 5"), std::string::npos) << w[0];
  c.train.steps = 100, c.optim.decay = "wsd", c.optim.decay_fraction = 0.95f;  // 95 > 90 steps after warmup
  ASSERT_EQ(config_warnings(c).size(), 1u);
  EXPECT_NE(config_warnings(c)[0].find("optim.decay_fraction (0.95)"), std::string::npos);
}

TEST(ConfigLayout, VirtualStagesNeedPipelineOneF1BAndWholeMicroBatchGroups) {
  RunConfig c = valid_run();  // 6 layers, global_batch 8, micro_batch 8
  c.parallel.virtual_stages = 0;
  EXPECT_NE(layout_error_of(c, 1).find("parallel.virtual_stages must be >= 1, got 0"), std::string::npos);
  c.parallel.virtual_stages = 2;
  EXPECT_NE(layout_error_of(c, 1).find("parallel.pp is 1"), std::string::npos) << layout_error_of(c, 1);
  c.parallel.pp = 2, c.train.micro_batch = 2;  // 4 micro-batches per rank
  EXPECT_EQ(layout_error_of(c, 2), "");
  c.parallel.schedule = "gpipe";
  EXPECT_NE(layout_error_of(c, 2).find("parallel.schedule is 'gpipe'"), std::string::npos);
  c.parallel.schedule = "1f1b", c.parallel.virtual_stages = 4;  // 8 chunks > 6 layers
  EXPECT_NE(layout_error_of(c, 2).find("model.layers (6) is fewer than the model chunks"), std::string::npos);
  c.parallel.virtual_stages = 3, c.parallel.pp = 2, c.train.micro_batch = 8;  // 1 micro-batch per rank
  const std::string e = layout_error_of(c, 2);
  EXPECT_NE(e.find("8 / 1 / 8 = 1"), std::string::npos) << e;
  EXPECT_NE(e.find("parallel.pp (2)"), std::string::npos) << e;
  EXPECT_NE(e.find("HINT:"), std::string::npos) << e;
}
