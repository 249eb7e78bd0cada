// tests/unit/test_model_grad.cpp — the whole GPT stage against central finite differences,
// and a tiny model overfitting one batch.
//
// Gradient check: a tiny config (2 layers, C=16, 2 heads, odd vocab 37 padded
// to 128, T=5, B=2); for a sample of elements of EVERY parameter tensor, the
// backward gradient of the mean loss is compared with (L(p+h) - L(p-h)) / 2h
// computed from forward passes, accumulated in double.
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "backend/registry.h"
#include "core/rng.h"
#include "layers/gpt.h"
#include "optimizer/adamw.h"
#include "tests/unit/param_gradcheck.h"

using namespace loom;

namespace {

ModelConfig tiny() {
  ModelConfig m;
  m.layers = 2;
  m.channels = 16;
  m.heads = 2;
  m.vocab = 37;
  m.seq_len = 8;
  return m;
}

std::vector<std::int32_t> random_tokens(std::int64_t n, std::int64_t vocab, std::uint64_t stream) {
  std::vector<std::int32_t> t(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) t[std::size_t(i)] = std::int32_t(rng_u64(5, stream, i) % std::uint64_t(vocab));
  return t;
}

}  // namespace

TEST(ModelGrad, EveryParameterMatchesFiniteDifferences) {
  auto be = make_backend(Device::cpu);
  const ModelConfig cfg = tiny();
  const std::int64_t B = 2, T = 5, N = B * T;
  Gpt model(*be, cfg, B, T);
  model.params().init(42);
  // Give biases and layernorm parameters non-trivial values so their gradients are generic.
  for (std::size_t i = 0; i < model.params().size(); ++i) {
    std::vector<float> p = model.params().read(i);
    for (std::size_t j = 0; j < p.size(); ++j) p[j] += 0.1f * rng_normal(9, i, j);
    model.params().write(i, p);
  }
  const auto tokens = random_tokens(N, cfg.vocab, 1), targets = random_tokens(N, cfg.vocab, 2);

  model.params().zero_grads();
  model.forward(0, {tokens.data(), targets.data()}, 0);
  model.take_loss_sum();
  model.backward(0, 0, 1.0f / float(N));
  std::vector<std::vector<float>> grads;
  for (std::size_t i = 0; i < model.params().size(); ++i) {
    std::vector<float> g(static_cast<std::size_t>(model.params().spec(i).shape.numel()));
    be->copy(host_tensor(g.data(), model.params().spec(i).shape), model.params().grad(i));
    grads.push_back(g);
  }

  auto loss = [&] {
    model.forward(0, {tokens.data(), targets.data()}, 0);
    return model.take_loss_sum() / double(N);
  };
  const float h = 1e-2f;
  std::mt19937 pick(3);
  int checked = 0;
  for (std::size_t i = 0; i < model.params().size(); ++i) {
    std::vector<float> p = model.params().read(i);
    const std::string& name = model.params().spec(i).name;
    std::vector<std::size_t> idx;
    for (int k = 0; k < 6; ++k) idx.push_back(pick() % p.size());
    if (name == "wte") idx.push_back(std::size_t(targets[0]) * std::size_t(cfg.channels));  // a row the loss uses
    checked += test::expect_param_gradients(model.params(), i, p, grads[i], idx, h, loss);
  }
  EXPECT_GT(checked, 6 * int(model.params().size()) - 1);
}

TEST(ModelGrad, TargetsBelowZeroAreNotTargets) {
  // Ignored positions (padding, unmasked tokens of a masked LM) add no loss and no gradient:
  // the model with targets -1 at some positions equals the loss over the others alone.
  auto be = make_backend(Device::cpu);
  const ModelConfig cfg = tiny();
  const std::int64_t B = 2, T = 5, N = B * T;
  Gpt model(*be, cfg, B, T);
  model.params().init(4);
  const auto tokens = random_tokens(N, cfg.vocab, 7);
  auto targets = random_tokens(N, cfg.vocab, 8);
  auto run = [&](const std::vector<std::int32_t>& y, float dloss) {
    model.params().zero_grads();
    model.forward(0, {tokens.data(), y.data()}, 0);
    const double sum = model.take_loss_sum();
    model.backward(0, 0, dloss);
    return sum;
  };
  std::vector<std::int32_t> masked = targets;
  for (std::int64_t i = 0; i < N; i += 3) masked[std::size_t(i)] = -1;
  const double all_sum = run(targets, 1.0f), masked_sum = run(masked, 1.0f);
  EXPECT_LT(masked_sum, all_sum);
  // Per-position loss: with one target kept at a time the sums add up to the masked sum.
  double parts = 0;
  for (std::int64_t i = 0; i < N; ++i) {
    if (masked[std::size_t(i)] < 0) continue;
    std::vector<std::int32_t> one(std::size_t(N), -1);
    one[std::size_t(i)] = masked[std::size_t(i)];
    parts += run(one, 1.0f);
  }
  EXPECT_NEAR(parts, masked_sum, 1e-4 * std::abs(masked_sum));
  // All targets ignored: zero loss and zero gradient everywhere.
  const std::vector<std::int32_t> none(std::size_t(N), -1);
  model.params().zero_grads();
  model.forward(0, {tokens.data(), none.data()}, 0);
  EXPECT_EQ(model.take_loss_sum(), 0.0);
  model.backward(0, 0, 1.0f);
  EXPECT_EQ(be->sum_squares(model.params().flat_grads()), 0.0);
}

TEST(ModelGrad, PaddedVocabularyRowsGetNoGradientFromTheLoss) {
  auto be = make_backend(Device::cpu);
  const ModelConfig cfg = tiny();
  Gpt model(*be, cfg, 1, 4);
  model.params().init(1);
  const auto tokens = random_tokens(4, cfg.vocab, 3), targets = random_tokens(4, cfg.vocab, 4);
  model.params().zero_grads();
  model.forward(0, {tokens.data(), targets.data()}, 0);
  model.backward(0, 0, 0.25f);
  std::vector<float> g(static_cast<std::size_t>(cfg.padded_vocab() * cfg.channels));
  be->copy(host_tensor(g.data(), Shape{cfg.padded_vocab(), cfg.channels}), model.params().grad("wte"));
  for (std::int64_t r = cfg.vocab; r < cfg.padded_vocab(); ++r)
    for (std::int64_t c = 0; c < cfg.channels; ++c) ASSERT_EQ(g[std::size_t(r * cfg.channels + c)], 0.0f);
}

TEST(ModelTraining, TinyModelOverfitsOneBatch) {
  auto be = make_backend(Device::cpu);
  ModelConfig cfg = tiny();
  cfg.channels = 32;
  cfg.heads = 4;
  const std::int64_t B = 4, T = 8, N = B * T;
  Gpt model(*be, cfg, B, T);
  model.params().init(7);
  OptimConfig o;
  o.lr = 1e-2f;
  o.weight_decay = 0.0f;
  AdamW opt(*be, model.params().specs(), model.params().flat_params(), model.params().flat_grads(), o);
  const auto tokens = random_tokens(N, cfg.vocab, 5), targets = random_tokens(N, cfg.vocab, 6);
  double first = 0, last = 0;
  for (int step = 1; step <= 300; ++step) {
    model.params().zero_grads();
    model.forward(0, {tokens.data(), targets.data()}, 0);
    last = model.take_loss_sum() / double(N);
    if (step == 1) first = last;
    model.backward(0, 0, 1.0f / float(N));
    opt.step(o.lr, step);
  }
  EXPECT_NEAR(first, std::log(37.0), 0.3);  // starts near uniform over the real vocabulary
  EXPECT_LT(last, 0.05);
}
