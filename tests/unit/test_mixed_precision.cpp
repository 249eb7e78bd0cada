// tests/unit/test_mixed_precision.cpp — the optimizer side of mixed precision: AdamW and
// ZeRO-1 with 16-bit working parameters keep f32 master weights that follow exactly the
// f32 run's parameters (same gradients), the working copy is their rounding; the loss
// scaler's decisions (none / fixed / dynamic: backoff, floor, growth window); and a bf16
// GPT's gradients checked against the f32 model's (the model-level check that every op's
// 16-bit path fits together: forward, loss, backward into f32 main_grad).
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "backend/registry.h"
#include "core/rng.h"
#include "layers/gpt.h"
#include "layers/param_store.h"
#include "optimizer/adamw.h"
#include "optimizer/loss_scaler.h"
#include "optimizer/zero_adamw.h"
#include "parallel/local_communicator.h"

using namespace loom;

namespace {

std::vector<ParamSpec> specs() {
  return {{.name = "w", .shape = {4, 8}, .init_std = 0.5f, .role = ParamRole::matrix},
          {.name = "b", .shape = {8}, .init_std = 0.1f, .role = ParamRole::bias},
          {.name = "g", .shape = {8}, .init_value = 1, .role = ParamRole::norm}};
}

std::vector<float> host(Backend& be, Tensor t) {
  std::vector<float> out(static_cast<std::size_t>(t.numel()));
  if (t.dtype == DType::f32) {
    be.copy(host_tensor(out.data(), Shape{t.numel()}), t);
  } else {
    Buffer wide(be, Shape{t.numel()}, DType::f32);
    be.cast(wide, t);
    be.copy(host_tensor(out.data(), Shape{t.numel()}), wide);
  }
  return out;
}

float round_to(DType t, float x) {
  return t == DType::bf16 ? to_float(from_float<bf16>(x)) : to_float(from_float<f16>(x));
}

}  // namespace

// The f32 reference starts from the rounded initial values (what the 16-bit run's master
// copy is made from) and gets the same gradients each step: its parameters and the 16-bit
// run's master weights must be the same bits; the working copy is their rounding.
TEST(MixedPrecision, AdamWMasterWeightsFollowTheF32RunAndTheWorkingCopyIsTheirRounding) {
  for (DType dt : {DType::bf16, DType::f16}) {
    SCOPED_TRACE(dtype_name(dt));
    auto be = make_backend(Device::cpu);
    ParamStore half(*be, specs(), dt), full(*be, specs(), DType::f32);
    half.init(7);
    for (std::size_t i = 0; i < half.size(); ++i) full.write(i, half.read(i));  // rounded values, exactly
    OptimConfig o;
    o.lr = 1e-2f, o.weight_decay = 0.1f;
    AdamW a(*be, half.specs(), half.flat_params(), half.flat_grads(), o);
    AdamW b(*be, full.specs(), full.flat_params(), full.flat_grads(), o);
    EXPECT_EQ(host(*be, a.master()), host(*be, full.flat_params()));
    for (int step = 1; step <= 5; ++step) {
      std::vector<float> g(static_cast<std::size_t>(half.numel()));
      fill_normal(g.data(), std::int64_t(g.size()), 3, std::uint64_t(step), 0, 0.0f, 1.0f);
      be->copy(half.flat_grads(), host_tensor(g.data(), Shape{half.numel()}));
      be->copy(full.flat_grads(), host_tensor(g.data(), Shape{full.numel()}));
      EXPECT_EQ(a.step(o.lr, step), b.step(o.lr, step));
    }
    const auto master = host(*be, a.master()), ref = host(*be, full.flat_params()), work = host(*be, half.flat_params());
    EXPECT_EQ(master, ref);
    for (std::size_t i = 0; i < work.size(); ++i) EXPECT_EQ(work[i], round_to(dt, master[i])) << i;
    MemoryPlan plan = a.memory_plan();
    EXPECT_EQ(plan.items.at(0).first, "master weights (f32)");
    EXPECT_EQ(plan.items.at(0).second, std::size_t(half.numel()) * 4);
  }
}

// ZeRO-1 on one dp rank owns everything: its master shard must match AdamW's master.
TEST(MixedPrecision, ZeroMasterShardMatchesAdamWMaster) {
  auto be = make_backend(Device::cpu);
  ParamStore x(*be, specs(), DType::bf16), y(*be, specs(), DType::bf16);
  x.init(3);
  y.init(3);
  OptimConfig o;
  LocalCommunicator dp;
  AdamW a(*be, x.specs(), x.flat_params(), x.flat_grads(), o);
  ZeroAdamW z(*be, y.specs(), y.flat_params(), y.flat_grads(), {y.grad_span(0, 1), y.grad_span(1, 3)}, o, dp, {},
              std::vector<float>(3, 1.0f));
  for (int step = 1; step <= 3; ++step) {
    std::vector<float> g(static_cast<std::size_t>(x.numel()));
    fill_normal(g.data(), std::int64_t(g.size()), 5, std::uint64_t(step), 0, 0.0f, 1.0f);
    be->copy(x.flat_grads(), host_tensor(g.data(), Shape{x.numel()}));
    be->copy(y.flat_grads(), host_tensor(g.data(), Shape{y.numel()}));
    z.begin_step(1);
    z.finish();
    a.step(o.lr, step);
    z.step(o.lr, step);
  }
  EXPECT_EQ(host(*be, a.master()), host(*be, z.master()));
  EXPECT_EQ(host(*be, x.flat_params()), host(*be, y.flat_params()));
}

TEST(LossScaler, NoneFixedAndDynamic) {
  OptimConfig o;
  LossScaler none("bf16", o);
  EXPECT_EQ(none.mode(), LossScaler::Mode::none);
  EXPECT_EQ(none.scale(), 1.0f);
  EXPECT_FALSE(none.update(false));  // nothing scaled: not an overflow, not skipped here

  o.loss_scale = 128;
  LossScaler fixed("fp32", o);
  EXPECT_EQ(fixed.mode(), LossScaler::Mode::fixed);
  EXPECT_TRUE(fixed.update(false));
  EXPECT_EQ(fixed.scale(), 128.0f);  // a fixed scale never moves
  EXPECT_FALSE(fixed.update(true));

  o.loss_scale = 0, o.initial_loss_scale = 1024, o.loss_scale_window = 3, o.loss_scale_backoff = 0.25f,
  o.min_loss_scale = 32;
  LossScaler s("fp16", o);
  EXPECT_EQ(s.mode(), LossScaler::Mode::dynamic);
  EXPECT_EQ(s.scale(), 1024.0f);
  EXPECT_TRUE(s.update(false));
  EXPECT_EQ(s.scale(), 256.0f);
  EXPECT_FALSE(s.update(true));
  EXPECT_FALSE(s.update(true));
  EXPECT_TRUE(s.update(false));  // an overflow resets the count of good steps
  EXPECT_EQ(s.scale(), 64.0f);
  EXPECT_TRUE(s.update(false));
  EXPECT_EQ(s.scale(), 32.0f);  // the floor
  EXPECT_TRUE(s.update(false));
  EXPECT_EQ(s.scale(), 32.0f);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(s.update(true));
  EXPECT_EQ(s.scale(), 64.0f);  // three good steps in a row double it
  EXPECT_EQ(s.skipped(), 4);
}

// Overflows that persist at min_loss_scale are divergence: exhausted() after
// kMaxSkipsAtMin of them in a row; a good step in between starts the count again.
TEST(LossScaler, OverflowsAtTheMinimumScaleExhaustIt) {
  OptimConfig o;
  o.initial_loss_scale = 4, o.min_loss_scale = 2, o.loss_scale_backoff = 0.5f;
  LossScaler s("fp16", o);
  EXPECT_TRUE(s.update(false));  // 4 -> 2: reaching the floor is not yet at it
  EXPECT_EQ(s.skipped_at_min(), 0);
  EXPECT_TRUE(s.update(false));
  EXPECT_TRUE(s.update(false));
  EXPECT_FALSE(s.exhausted());
  EXPECT_FALSE(s.update(true));  // a good step resets
  EXPECT_EQ(s.skipped_at_min(), 0);
  for (int i = 0; i < LossScaler::kMaxSkipsAtMin; ++i) {
    EXPECT_FALSE(s.exhausted());
    EXPECT_TRUE(s.update(false));
  }
  EXPECT_TRUE(s.exhausted());
  LossScaler none("bf16", o);  // nothing scaled: never exhausted (the trainer stops on the norm)
  for (int i = 0; i < 5; ++i) none.update(false);
  EXPECT_FALSE(none.exhausted());
}

// A bf16 / fp16 GPT from the same (rounded) weights as an f32 one: the same loss to the
// dtype's precision, and parameter gradients (f32 main_grad) close to the f32 model's.
// Tolerances: relative 3e-2 (bf16: 8-bit mantissa, errors grow through 2 blocks) and 5e-3
// (fp16: 11-bit), on each tensor's gradient norm of differences.
TEST(MixedPrecision, GptGradientsTrackTheF32Model) {
  ModelConfig cfg;
  cfg.layers = 2, cfg.channels = 32, cfg.heads = 4, cfg.vocab = 61, cfg.seq_len = 8;
  const std::int64_t B = 2, T = 8, N = B * T;
  std::vector<std::int32_t> x(N), y(N);
  for (std::int64_t i = 0; i < N; ++i) x[i] = std::int32_t((i * 7) % 61), y[i] = std::int32_t((i * 11 + 3) % 61);
  for (auto [dt, tol] : {std::pair{DType::bf16, 3e-2}, std::pair{DType::f16, 5e-3}}) {
    SCOPED_TRACE(dtype_name(dt));
    auto be = make_backend(Device::cpu);
    LocalCommunicator one;
    Gpt half(*be, cfg, B, T, one, {}, {}, {.dtype = dt});
    Gpt full(*be, cfg, B, T, one, {}, {}, {});
    half.params().init(11);
    for (std::size_t i = 0; i < half.params().size(); ++i) full.params().write(i, half.params().read(i));
    double loss[2];
    Gpt* models[2] = {&half, &full};
    for (int k = 0; k < 2; ++k) {
      models[k]->params().zero_grads();
      models[k]->forward(0, {x.data(), y.data()}, 0);
      models[k]->backward(0, 0, 1.0f / float(N));
      loss[k] = models[k]->take_loss_sum() / double(N);
    }
    EXPECT_NEAR(loss[0], loss[1], tol * loss[1]);
    for (std::size_t i = 0; i < full.params().size(); ++i) {
      const auto a = host(*be, half.params().grad(i)), b = host(*be, full.params().grad(i));
      double d2 = 0, n2 = 0;
      for (std::size_t j = 0; j < a.size(); ++j) d2 += (a[j] - b[j]) * double(a[j] - b[j]), n2 += double(b[j]) * b[j];
      if (n2 < 1e-20) continue;  // the key bias: an exact zero gradient
      EXPECT_LT(std::sqrt(d2 / n2), tol) << full.params().spec(i).name;
    }
  }
}
