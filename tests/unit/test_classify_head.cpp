// tests/unit/test_classify_head.cpp — GPT with the classification head (model.head
// classify, layers/class_head.h) against central finite differences, and the frozen
// backbone (finetune.freeze_backbone): only the head's gradients, only the head changes.
// The encoder (model.family bert, post-LN): the head on the first token of the last block's
// output, gradients by finite differences under the padding mask (MicroBatch::lengths), and
// the loss unchanged by the padding's content (bit for bit) and amount (T 5 vs 8, 1e-6).
//
// Tiny config (2 layers, C=16, 2 heads, vocab 37, K=3 classes, T=5, B=2); one target per
// sequence at its pooled position (the last real token; a padded sequence's padding
// follows it), -1 elsewhere. For a sample of elements of EVERY parameter tensor the
// backward gradient of the mean loss is compared with (L(p+h) - L(p-h)) / 2h.
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "backend/registry.h"
#include "core/rng.h"
#include "layers/gpt.h"
#include "optimizer/adamw.h"
#include "parallel/local_communicator.h"
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
  m.head = "classify";
  m.classes = 3;
  return m;
}

constexpr std::int64_t B = 2, T = 5, N = B * T;

struct Batch {
  std::vector<std::int32_t> tokens, targets;
};

// Sequence 0 is 5 real tokens (label at t = 4), sequence 1 three and two of padding (t = 2).
Batch batch() {
  Batch b{std::vector<std::int32_t>(N), std::vector<std::int32_t>(N, -1)};
  for (std::int64_t i = 0; i < N; ++i) b.tokens[std::size_t(i)] = std::int32_t(rng_u64(5, 1, i) % 36);
  b.tokens[8] = b.tokens[9] = 36;  // padding after the last real token
  b.targets[4] = 2;
  b.targets[7] = 1;
  return b;
}

void perturb(Gpt& model) {  // non-trivial biases and norms, so their gradients are generic
  for (std::size_t i = 0; i < model.params().size(); ++i) {
    std::vector<float> p = model.params().read(i);
    for (std::size_t j = 0; j < p.size(); ++j) p[j] += 0.1f * rng_normal(9, i, j);
    model.params().write(i, p);
  }
}

std::vector<float> grad_of(Backend& be, Gpt& model, std::size_t i) {
  std::vector<float> g(static_cast<std::size_t>(model.params().spec(i).shape.numel()));
  be.copy(host_tensor(g.data(), model.params().spec(i).shape), model.params().grad(i));
  return g;
}

}  // namespace

TEST(ClassifyHead, EveryParameterMatchesFiniteDifferences) {
  auto be = make_backend(Device::cpu);
  Gpt model(*be, tiny(), B, T);
  model.params().init(42);
  perturb(model);
  const Batch b = batch();
  const double targets = 2;  // one per sequence
  // The head replaces the tied LM head: wte only for the embedding, cls.* after ln_f.
  EXPECT_EQ(model.params().spec(model.params().size() - 2).name, "cls.weight");
  EXPECT_EQ(model.params().spec(model.params().size() - 1).name, "cls.bias");

  model.params().zero_grads();
  model.forward(0, {b.tokens.data(), b.targets.data()}, 0);
  model.take_loss_sum();
  model.backward(0, 0, float(1.0 / targets));
  std::vector<std::vector<float>> grads;
  for (std::size_t i = 0; i < model.params().size(); ++i) grads.push_back(grad_of(*be, model, i));

  auto loss = [&] {
    model.forward(0, {b.tokens.data(), b.targets.data()}, 0);
    return model.take_loss_sum() / targets;
  };
  const float h = 1e-2f;
  std::mt19937 pick(3);
  int checked = 0;
  for (std::size_t i = 0; i < model.params().size(); ++i) {
    std::vector<float> p = model.params().read(i);
    const std::string& name = model.params().spec(i).name;
    std::vector<std::size_t> idx;
    for (int k = 0; k < 6; ++k) idx.push_back(pick() % p.size());
    if (name == "wte") idx.push_back(std::size_t(b.tokens[4]) * 16);  // a row the pooled token uses
    checked += test::expect_param_gradients(model.params(), i, p, grads[i], idx, h, loss);
  }
  EXPECT_GE(checked, 6 * int(model.params().size()));
  // Causal attention: what follows the pooled token (sequence 1's padding) changes nothing.
  Batch other = b;
  other.tokens[8] = 3;
  other.tokens[9] = 4;
  const double original = loss();
  model.forward(0, {other.tokens.data(), other.targets.data()}, 0);
  EXPECT_EQ(model.take_loss_sum() / targets, original);
}

TEST(ClassifyHead, CountsCorrectPredictionsAtTargets) {
  auto be = make_backend(Device::cpu);
  Gpt model(*be, tiny(), B, T);
  model.params().init(1);
  const Batch b = batch();
  // The bias decides alone when the weight is zero: class 2 wins everywhere.
  const std::size_t w = model.params().size() - 2, bias = w + 1;
  model.params().write(w, std::vector<float>(std::size_t(3 * 16), 0.0f));
  model.params().write(bias, {0.0f, 0.5f, 1.0f});
  model.forward(0, {b.tokens.data(), b.targets.data()}, 0);
  EXPECT_EQ(model.take_correct(), 1.0);  // sequence 0 (label 2) right, sequence 1 (label 1) wrong
  EXPECT_EQ(model.take_correct(), 0.0);  // reset by the call
  model.take_loss_sum();
}

TEST(ClassifyHead, FrozenBackboneTrainsOnlyTheHead) {
  auto be = make_backend(Device::cpu);
  const ModelConfig cfg = tiny();
  LocalCommunicator one;
  Gpt full(*be, cfg, B, T), frozen(*be, cfg, B, T, one, {}, {}, {.freeze_backbone = true});
  full.params().init(42);
  frozen.params().init(42);
  const Batch b = batch();
  for (Gpt* m : {&full, &frozen}) {
    m->params().zero_grads();
    m->forward(0, {b.tokens.data(), b.targets.data()}, 0);
    m->backward(0, 0, 0.5f);
  }
  std::vector<std::vector<float>> before;
  for (std::size_t i = 0; i < frozen.params().size(); ++i) {
    const ParamSpec& s = frozen.params().spec(i);
    const bool head = s.name.starts_with("cls.");
    EXPECT_EQ(s.frozen, head ? Frozen::no : Frozen::yes) << s.name;
    const std::vector<float> g = grad_of(*be, frozen, i);
    if (head) {
      EXPECT_EQ(g, grad_of(*be, full, i)) << s.name;  // the head's gradient does not depend on freezing
    } else {
      for (float v : g) ASSERT_EQ(v, 0.0f) << s.name;  // backward stopped after the head
    }
    before.push_back(frozen.params().read(i));
  }
  OptimConfig oc;
  oc.weight_decay = 0.1f;  // decay would move frozen matrices: it must not
  AdamW opt(*be, frozen.params().specs(), frozen.params().flat_params(), frozen.params().flat_grads(), oc);
  opt.step(1e-2f, 1);
  for (std::size_t i = 0; i < frozen.params().size(); ++i) {
    const bool head = frozen.params().spec(i).name.starts_with("cls.");
    if (head)
      EXPECT_NE(frozen.params().read(i), before[i]) << frozen.params().spec(i).name;
    else
      EXPECT_EQ(frozen.params().read(i), before[i]) << frozen.params().spec(i).name;
  }
}

// ---- the encoder (model.family bert, post-LN): first-token pooling and the padding mask

namespace {

ModelConfig tiny_encoder() {
  ModelConfig m = tiny();
  m.family = "bert";
  m.ln_placement = "post";
  return m;
}

// Sequence 0 has 5 real tokens, sequence 1 three (then T - 3 of padding `pad`, a real
// vocabulary id, so a model that attended to it would see it). Label at t = 0 (pooled).
struct Padded {
  std::vector<std::int32_t> tokens, targets, lengths;
};
Padded padded(std::int64_t T_, std::int32_t pad, std::uint64_t junk_seed) {
  Padded b{std::vector<std::int32_t>(std::size_t(B * T_)), std::vector<std::int32_t>(std::size_t(B * T_), -1), {5, 3}};
  for (std::int64_t bi = 0; bi < B; ++bi)
    for (std::int64_t t = 0; t < T_; ++t) {
      const bool real = t < b.lengths[std::size_t(bi)];
      b.tokens[std::size_t(bi * T_ + t)] = real ? std::int32_t(rng_u64(5, bi, t) % 36)
                                         : pad >= 0 ? pad : std::int32_t(rng_u64(junk_seed, bi, t) % 37);
    }
  b.targets[0] = 2;
  b.targets[std::size_t(T_)] = 1;
  return b;
}

double encoder_loss(Gpt& model, const Padded& b) {
  model.forward(0, {b.tokens.data(), b.targets.data(), b.lengths.data()}, 0);
  return model.take_loss_sum();
}

}  // namespace

TEST(ClassifyHead, EncoderEveryParameterMatchesFiniteDifferences) {
  auto be = make_backend(Device::cpu);
  Gpt model(*be, tiny_encoder(), B, T);
  model.params().init(42);
  perturb(model);
  const Padded b = padded(T, 36, 0);
  const double targets = 2;
  model.params().zero_grads();
  encoder_loss(model, b);
  model.backward(0, 0, float(1.0 / targets));
  std::vector<std::vector<float>> grads;
  for (std::size_t i = 0; i < model.params().size(); ++i) grads.push_back(grad_of(*be, model, i));
  const float h = 1e-2f;
  std::mt19937 pick(4);
  for (std::size_t i = 0; i < model.params().size(); ++i) {
    std::vector<float> p = model.params().read(i);
    const std::string& name = model.params().spec(i).name;
    std::vector<std::size_t> idx;
    for (int k = 0; k < 6; ++k) idx.push_back(pick() % p.size());
    if (name == "wte") idx.push_back(std::size_t(b.tokens[2]) * 16);  // a real token's row
    for (std::size_t j : idx) {
      const float orig = p[j];
      p[j] = orig + h;
      model.params().write(i, p);
      const double lp = encoder_loss(model, b) / targets;
      p[j] = orig - h;
      model.params().write(i, p);
      const double lm = encoder_loss(model, b) / targets;
      p[j] = orig;
      model.params().write(i, p);
      const double fd = (lp - lm) / (2.0 * h);
      EXPECT_NEAR(grads[i][j], fd, 2e-3 * std::max(std::abs(fd), 1e-2) + 5e-5) << name << "[" << j << "]";
    }
  }
  // The padding gets no gradient: the pad token's embedding row is not used by a real
  // position (36 is only padding here), so its gradient is exactly zero.
  const std::vector<float> dwte = grads[model.params().index("wte")];
  for (std::int64_t c = 0; c < 16; ++c) EXPECT_EQ(dwte[std::size_t(36 * 16 + c)], 0.0f) << c;
}

TEST(ClassifyHead, EncoderIgnoresThePaddingContentAndAmount) {
  auto be = make_backend(Device::cpu);
  const ModelConfig cfg = tiny_encoder();
  Gpt short_model(*be, cfg, B, T), long_model(*be, cfg, B, 8);  // T 5 and 8: the same parameters
  short_model.params().init(42);
  long_model.params().init(42);
  perturb(short_model);
  perturb(long_model);
  const double reference = encoder_loss(short_model, padded(T, 36, 0));
  EXPECT_TRUE(std::isfinite(reference));
  // Other junk in the padding: bit for bit (the masked keys are never read).
  EXPECT_EQ(encoder_loss(short_model, padded(T, -1, 7)), reference);
  EXPECT_EQ(encoder_loss(short_model, padded(T, -1, 8)), reference);
  // Padded to T = 8 instead of 5: the same function; summation order may differ by rounding.
  EXPECT_NEAR(encoder_loss(long_model, padded(8, -1, 9)), reference, 1e-6 * std::abs(reference));
  EXPECT_NEAR(encoder_loss(long_model, padded(8, 36, 0)), reference, 1e-6 * std::abs(reference));
  // Without the lengths the encoder attends to the padding: the mask is what makes this hold.
  const Padded junk = padded(T, -1, 7);
  short_model.forward(0, {junk.tokens.data(), junk.targets.data()}, 0);
  EXPECT_NE(short_model.take_loss_sum(), reference);
}
