// tests/unit/test_decoder_model.cpp — the GPT stage built from the modern decoder's parts
// (model.norm / mlp / positions / kv_heads): whole-model finite-difference gradients, the
// config JSON round trip (and an old JSON loading as GPT-2), the parameter shapes, FLOPs
// and a llama-style model overfitting one batch.
//
// Gradient check as test_model_grad.cpp: for a sample of elements of EVERY parameter
// tensor, the backward gradient of the mean loss against (L(p+h) - L(p-h)) / 2h.
#include <algorithm>
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

ModelConfig tiny(const std::string& norm, const std::string& mlp, const std::string& positions, std::int64_t heads,
                 std::int64_t kv_heads) {
  ModelConfig m;
  m.layers = 2;
  m.channels = 24;
  m.heads = heads;
  m.kv_heads = kv_heads;
  m.ffn = 40;
  m.vocab = 37;
  m.seq_len = 8;
  m.norm = norm;
  m.mlp = mlp;
  m.positions = positions;
  return m;
}

ModelConfig llama_tiny() { return tiny("rmsnorm", "swiglu", "rope", 4, 2); }

std::vector<std::int32_t> random_tokens(std::int64_t n, std::int64_t vocab, std::uint64_t stream) {
  std::vector<std::int32_t> t(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) t[std::size_t(i)] = std::int32_t(rng_u64(5, stream, i) % std::uint64_t(vocab));
  return t;
}

void check_gradients(const ModelConfig& cfg) {
  auto be = make_backend(Device::cpu);
  const std::int64_t B = 2, T = 5, N = B * T;
  Gpt model(*be, cfg, B, T);
  model.params().init(42);
  for (std::size_t i = 0; i < model.params().size(); ++i) {  // generic values for biases and norm weights
    std::vector<float> p = model.params().read(i);
    for (std::size_t j = 0; j < p.size(); ++j) p[j] += 0.1f * rng_normal(9, i, j);
    model.params().write(i, p);
  }
  const auto tokens = random_tokens(N, cfg.vocab, 1), targets = random_tokens(N, cfg.vocab, 2);
  model.params().zero_grads();
  model.forward(0, {tokens.data(), targets.data()}, 0);
  model.take_loss_sum();
  model.backward(0, 0, 1.0f / float(N));
  auto loss = [&] {
    model.forward(0, {tokens.data(), targets.data()}, 0);
    return model.take_loss_sum() / double(N);
  };
  const float h = 1e-2f;
  std::mt19937 pick(3);
  int checked = 0;
  for (std::size_t i = 0; i < model.params().size(); ++i) {
    const std::vector<float> g = [&] {
      std::vector<float> v(static_cast<std::size_t>(model.params().spec(i).shape.numel()));
      be->copy(host_tensor(v.data(), model.params().spec(i).shape), model.params().grad(i));
      return v;
    }();
    std::vector<float> p = model.params().read(i);
    const std::string& name = model.params().spec(i).name;
    std::vector<std::size_t> idx;
    for (int k = 0; k < 8; ++k) idx.push_back(pick() % p.size());
    if (name == "wte") idx.push_back(std::size_t(targets[0]) * std::size_t(cfg.channels));
    checked += test::expect_param_gradients(model.params(), i, p, g, idx, h, loss);
  }
  EXPECT_GT(checked, 8 * int(model.params().size()) - 1);
}

}  // namespace

TEST(DecoderModelGrad, LlamaStyleRopeRmsnormSwigluGqa) { check_gradients(llama_tiny()); }
// ReLU is checked by its op test (test_decoder_ops) and in the mpi suite (decoder_*alibi*):
// a whole-model finite difference of step 1e-2 crosses its kinks.
TEST(DecoderModelGrad, AlibiLayernormGeluOddHeads) { check_gradients(tiny("layernorm", "gelu", "alibi", 3, 3)); }
TEST(DecoderModelGrad, SinusoidalRmsnormGeluMultiQuery) { check_gradients(tiny("rmsnorm", "gelu", "sinusoidal", 4, 1)); }
// Sliding-window attention (model.window, the tiled kernel): T = 5 with a window of 2, so
// every row past the first masks keys.
TEST(DecoderModelGrad, SlidingWindowRopeGqa) {
  ModelConfig m = llama_tiny();
  m.window = 2;
  check_gradients(m);
}

// Post-LN (model.ln_placement post, BERT's block): every path to the input passes through
// a norm, and the head reads the last block's output (no ln_f).
TEST(DecoderModelGrad, PostLnLayernormGelu) {
  ModelConfig m = tiny("layernorm", "gelu", "learned", 3, 3);
  m.ln_placement = "post";
  check_gradients(m);
}
TEST(DecoderModelGrad, PostLnRmsnormSwigluRope) {
  ModelConfig m = llama_tiny();
  m.ln_placement = "post";
  check_gradients(m);
}

// model.family bert: bidirectional attention (and BERT's post-LN block, learned positions, GELU).
TEST(DecoderModelGrad, BertPostLnBidirectional) {
  ModelConfig m = tiny("layernorm", "gelu", "learned", 3, 3);
  m.family = "bert";
  m.ln_placement = "post";
  check_gradients(m);
}

// The loss at position 0 depends on the last token in an encoder (bert) and not in a
// decoder (gpt): attention is bidirectional exactly when the family says so.
TEST(DecoderModel, BertSeesLaterTokensGptDoesNot) {
  auto be = make_backend(Device::cpu);
  const std::int64_t B = 1, T = 6;
  for (const char* family : {"gpt", "bert"}) {
    ModelConfig m = tiny("layernorm", "gelu", "learned", 3, 3);
    m.family = family;
    Gpt model(*be, m, B, T);
    model.params().init(3);
    std::vector<std::int32_t> tokens = random_tokens(T, m.vocab, 4), targets(std::size_t(T), -1);
    targets[0] = 1;  // only position 0 is a target
    auto loss = [&] {
      model.forward(0, {tokens.data(), targets.data()}, 0);
      return model.take_loss_sum();
    };
    const double before = loss();
    tokens[T - 1] = (tokens[T - 1] + 1) % std::int32_t(m.vocab);
    const double after = loss();
    if (m.bert())
      EXPECT_NE(before, after) << "bert's position 0 ignores the last token";
    else
      EXPECT_EQ(before, after) << "gpt's position 0 sees a later token";
  }
}

TEST(DecoderModel, ParametersFollowTheParts) {
  const ModelConfig m = llama_tiny();  // C 24, H 4 (D 6), Hkv 2, F 40
  std::vector<std::string> names;
  for (const ParamSpec& s : Gpt::param_specs(m)) names.push_back(s.name);
  auto has = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  EXPECT_FALSE(has("wpe")) << "rope has no position table";
  EXPECT_FALSE(has("h.0.ln_1.bias")) << "rmsnorm has no bias";
  EXPECT_FALSE(has("ln_f.bias"));
  for (const ParamSpec& s : Gpt::param_specs(m)) {
    if (s.name == "h.0.attn.c_attn.weight") {
      EXPECT_EQ(s.shape, (Shape{(4 + 2 * 2) * 6, 24}));
    }
    if (s.name == "h.0.mlp.c_fc.weight") {
      EXPECT_EQ(s.shape, (Shape{2 * 40, 24})) << "[gate | up]";
    }
    if (s.name == "h.0.mlp.c_proj.weight") {
      EXPECT_EQ(s.shape, (Shape{24, 40}));
    }
  }
  // tp 2: each rank holds half of every block.
  for (const ParamSpec& s : Gpt::param_specs(m, 2, 1)) {
    if (s.name == "h.1.attn.c_attn.weight") {
      EXPECT_EQ(s.shape, (Shape{(4 + 2 * 2) * 6 / 2, 24}));
    }
  }
  // The default ffn of swiglu: 8C/3 rounded up to a multiple of 64.
  ModelConfig d = m;
  d.ffn = 0;
  d.channels = 96;
  EXPECT_EQ(d.ffn_size(), 256);
  d.mlp = "gelu";
  EXPECT_EQ(d.ffn_size(), 384);
}

TEST(DecoderModel, FlopsCountTheMatrices) {
  auto be = make_backend(Device::cpu);
  const ModelConfig m = llama_tiny();
  Gpt model(*be, m, 1, 8);
  const double C = 24, F = 40, L = 2, T = 8, QKV = (4 + 2 * 2) * 6;
  const double weights = L * (C * QKV + C * C + 3 * C * F) + C * 128;
  EXPECT_DOUBLE_EQ(model.flops_per_token(), 6 * weights + 12 * L * T * C);
}

TEST(DecoderModel, TpSplitNeedsWholeKvHeads) {
  ModelConfig m = llama_tiny();
  m.kv_heads = 1;
  try {
    Gpt::check_tp(m, 2);
    FAIL() << "kv_heads 1 over tp 2 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.kv_heads (1) is not divisible by parallel.tp (2)"), std::string::npos)
        << e.what();
  }
  m.kv_heads = 3;
  try {
    validate(m);
    FAIL() << "kv_heads 3 of 4 heads was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.kv_heads (3) must divide model.heads (4)"), std::string::npos)
        << e.what();
  }
}

// The memory plan is the allocation list: equal to the allocator's bytes, and its block
// activations are the llama shapes (qkv (H + 2 Hkv) D wide, the MLP hidden [gate | up] 2F
// wide, rmsnorm's rstd without a mean) in closed form.
TEST(DecoderModel, MemoryPlanCountsTheNewShapes) {
  auto be = make_backend(Device::cpu);
  const ModelConfig m = llama_tiny();  // L 2, C 24, H 4, Hkv 2, D 6, F 40
  const std::int64_t B = 2, T = 5, N = B * T, C = 24, L = 2, H = 4, QKV = (4 + 2 * 2) * 6, F = 40;
  for (const char* positions : {"rope", "alibi", "sinusoidal"}) {
    ModelConfig c = m;
    c.positions = positions;
    const std::size_t before = be->live_bytes();
    Gpt gpt(*be, c, B, T);
    EXPECT_EQ(gpt.memory_plan().total(), be->live_bytes() - before) << positions;
  }
  // Per block: the attention statistics are lse (B,H,T) with the tiled kernel (the default)
  // and the probabilities (B,H,T,T) with the dense one; the dense one also needs a (B,H,T,T)
  // dprobs scratch.
  for (AttentionKernel kernel : {AttentionKernel::tiled, AttentionKernel::dense}) {
    LocalCommunicator tp;
    Gpt gpt(*be, m, B, T, tp, {}, {}, {.attention = kernel});
    std::size_t blocks = 0, scratch = 0;
    for (const auto& [name, bytes] : gpt.memory_plan().items) {
      if (name == "activations: blocks") blocks = bytes;
      if (name == "backward scratch (shared by all layers)") scratch = bytes;
    }
    const bool dense = kernel == AttentionKernel::dense;
    const std::int64_t stats = dense ? B * H * T * T : B * H * T;
    const std::int64_t per_block = 3 * N * C + N * C + N * QKV + N * 2 * F + N * F + stats + 2 * N;
    EXPECT_EQ(blocks, std::size_t((L + 1) * N * C + L * per_block) * sizeof(float)) << dense;
    // dqkv, datt, dln, dbig, dh (+ dprobs)
    const std::int64_t scratch_floats = N * QKV + N * C + N * C + N * F + N * 2 * F + (dense ? B * H * T * T : 0);
    EXPECT_EQ(scratch, std::size_t(scratch_floats) * sizeof(float)) << dense;
  }
}

TEST(DecoderModel, ConfigJsonRoundTripsAndOldFilesLoadAsGpt2) {
  ModelConfig m = llama_tiny();
  m.rope_base = 500000;
  m.norm_eps = 1e-6;
  const ModelConfig back = Gpt::from_json(Gpt::to_json(m));
  EXPECT_EQ(back.norm, "rmsnorm");
  EXPECT_EQ(back.mlp, "swiglu");
  EXPECT_EQ(back.positions, "rope");
  EXPECT_EQ(back.kv_heads, 2);
  EXPECT_EQ(back.rope_base, 500000);
  EXPECT_EQ(back.norm_eps, 1e-6);
  EXPECT_EQ(back.ffn_size(), 40);
  EXPECT_EQ(Gpt::to_json(back), Gpt::to_json(m));
  EXPECT_FALSE(back.is_gpt2());
  // A weights file from before the decoder's parts existed.
  const ModelConfig old = Gpt::from_json(R"({"layers":1,"channels":8,"heads":2,"ffn":32,"vocab":13,"seq_len":4})");
  EXPECT_TRUE(old.is_gpt2());
  EXPECT_EQ(old.norm, "layernorm");
  EXPECT_EQ(old.positions, "learned");
  EXPECT_EQ(old.kv_head_count(), 2);
  EXPECT_EQ(old.family, "gpt");
  EXPECT_EQ(old.ln_placement, "pre");
  // The family and the block placement travel; either makes it no GPT-2.
  ModelConfig bert = tiny("layernorm", "gelu", "learned", 2, 2);
  bert.family = "bert";
  bert.ln_placement = "post";
  const ModelConfig bert_back = Gpt::from_json(Gpt::to_json(bert));
  EXPECT_EQ(bert_back.family, "bert");
  EXPECT_EQ(bert_back.ln_placement, "post");
  EXPECT_FALSE(bert_back.is_gpt2());
}

namespace {
// 200 AdamW steps on one batch of random tokens: from log(V) to nearly 0.
void expect_overfits(const ModelConfig& cfg) {
  auto be = make_backend(Device::cpu);
  const std::int64_t B = 4, T = 8, N = B * T;
  Gpt model(*be, cfg, B, T);
  model.params().init(7);
  OptimConfig o;
  o.lr = 1e-2f;
  o.weight_decay = 0.0f;
  AdamW opt(*be, model.params().specs(), model.params().flat_params(), model.params().flat_grads(), o);
  const auto tokens = random_tokens(N, cfg.vocab, 5), targets = random_tokens(N, cfg.vocab, 6);
  double first = 0, last = 0;
  for (int step = 1; step <= 200; ++step) {
    model.params().zero_grads();
    model.forward(0, {tokens.data(), targets.data()}, 0);
    last = model.take_loss_sum() / double(N);
    if (step == 1) first = last;
    model.backward(0, 0, 1.0f / float(N));
    opt.step(o.lr, step);
  }
  EXPECT_NEAR(first, std::log(37.0), 0.3);
  EXPECT_LT(last, 0.1);
}
}  // namespace

TEST(DecoderModel, LlamaStyleOverfitsOneBatch) { expect_overfits(llama_tiny()); }
TEST(DecoderModel, PostLnOverfitsOneBatch) {
  ModelConfig m = tiny("layernorm", "gelu", "learned", 3, 3);
  m.ln_placement = "post";
  expect_overfits(m);
  m.family = "bert";
  expect_overfits(m);
}

// model.positions t5_relative: one learned (rel_buckets, H) table shared by both blocks,
// gathered into the tiled attention's relative bias. Few buckets, so that T = 5 reaches the
// log-spaced ones: causal (gpt) 6 buckets (3 exact distances), bidirectional (bert) 8
// buckets (2 exact distances a side). The table's gradient sums both blocks' diagonals.
ModelConfig t5_tiny(const std::string& family) {
  ModelConfig m = tiny("layernorm", "gelu", "t5_relative", 3, 3);
  m.family = family;
  m.rel_buckets = family == "bert" ? 8 : 6;
  m.rel_max_distance = 4;
  if (family == "bert") m.ln_placement = "post";
  return m;
}
TEST(DecoderModelGrad, T5RelativeGptCausalBuckets) { check_gradients(t5_tiny("gpt")); }
TEST(DecoderModelGrad, T5RelativeBertBidirectionalBuckets) { check_gradients(t5_tiny("bert")); }
TEST(DecoderModelGrad, T5RelativeGqaRmsnorm) {
  ModelConfig m = t5_tiny("gpt");
  m.heads = 4, m.kv_heads = 2, m.norm = "rmsnorm";
  check_gradients(m);
}

TEST(DecoderModel, T5RelativeTableIsSharedSplitByHeadsAndValidated) {
  ModelConfig m = t5_tiny("gpt");
  m.heads = m.kv_heads = 4;
  // one table, no wpe, split by heads (columns) over tp, tied over the pipeline stages
  const auto specs = Gpt::param_specs(m, 2, 1);
  const auto rel = std::find_if(specs.begin(), specs.end(), [](const ParamSpec& s) { return s.name == "rel_bias"; });
  ASSERT_NE(rel, specs.end());
  EXPECT_EQ(std::count_if(specs.begin(), specs.end(), [](const ParamSpec& s) { return s.name == "rel_bias"; }), 1);
  EXPECT_EQ(rel->shape, (Shape{6, 2}));
  EXPECT_EQ(global_shape(*rel), (Shape{6, 4}));
  EXPECT_EQ(rel->shard.split, Shard::Split::cols);
  EXPECT_EQ(rel->tied, "rel_bias");
  EXPECT_TRUE(std::none_of(specs.begin(), specs.end(), [](const ParamSpec& s) { return s.name == "wpe"; }));
  for (int stage = 0; stage < 2; ++stage) {
    const auto st = Gpt::param_specs(m, 1, 0, make_gpt_stage(m, 2, stage));
    EXPECT_EQ(std::count_if(st.begin(), st.end(), [](const ParamSpec& s) { return s.name == "rel_bias"; }), 1)
        << "stage " << stage;
  }
  auto be = make_backend(Device::cpu);
  LocalCommunicator tp;
  Gpt last(*be, m, 1, 4, tp, make_gpt_stage(m, 2, 1));
  EXPECT_EQ(last.tied_stages("rel_bias"), (std::vector<int>{0, 1}));
  // the config travels in weights files
  const ModelConfig back = Gpt::from_json(Gpt::to_json(m));
  EXPECT_EQ(back.positions, "t5_relative");
  EXPECT_EQ(back.rel_buckets, 6);
  EXPECT_EQ(back.rel_max_distance, 4);
  // refusals: too few buckets, a max distance inside the exact part, the dense kernel
  ModelConfig few = m;
  few.rel_buckets = 1;
  EXPECT_THROW(validate(few), Error);
  ModelConfig near = m;
  near.rel_max_distance = 3;
  EXPECT_THROW(validate(near), Error);
  RunConfig run;
  run.model = m;
  run.train.attention = "dense";
  try {
    validate(run);
    FAIL() << "t5_relative with the dense kernel was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.attention tiled"), std::string::npos) << e.what();
  }
  run.train.attention = "tiled";
  EXPECT_NO_THROW(validate(run));
}
