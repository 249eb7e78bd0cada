// tests/unit/test_attention_layer.cpp — the attention layer's kernel choice and masks, at
// the model level (layers/attention.h, train.attention, model.window):
//   - the whole model with the tiled kernel equals it with the dense one (the reference)
//     to float error, in loss and every parameter gradient: GPT-2, RoPE + GQA + SwiGLU,
//     ALiBi, and bf16; and at T = 2048 (many tiles), where the memory plan is checked to be
//     linear in T with tiled and to carry dense's 2 H T^2 floats;
//   - model.window: a window covering the sequence is no window (bit for bit); a window
//     w gives L layers a receptive field of L (w - 1) earlier tokens, checked on the
//     logits (a property of the mask, independent of the kernel's arithmetic);
//   - Attention::causal reaches the kernel (false: row 0 sees the last token), and the dense
//     kernel refuses it rather than run causal;
//   - the config: model.window in the JSON (absent in old files), the errors.
// The window's gradients are finite-difference checked in test_decoder_model.cpp.
#include <cmath>

#include <gtest/gtest.h>

#include "backend/registry.h"
#include "core/buffer.h"
#include "core/error.h"
#include "core/rng.h"
#include "layers/gpt.h"
#include "parallel/local_communicator.h"

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
  m.seq_len = 16;
  m.norm = norm;
  m.mlp = mlp;
  m.positions = positions;
  return m;
}

std::vector<std::int32_t> tokens(std::int64_t n, std::int64_t vocab, std::uint64_t stream) {
  std::vector<std::int32_t> t(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) t[std::size_t(i)] = std::int32_t(rng_u64(7, stream, i) % std::uint64_t(vocab));
  return t;
}

struct Result {
  double loss = 0;
  std::vector<std::vector<float>> grads;  // per parameter tensor
};

// One forward + backward of the mean loss over B x T tokens, from init seed 5.
Result run(const ModelConfig& m, AttentionKernel kernel, DType dtype = DType::f32, std::int64_t B = 2,
           std::int64_t T = 16) {
  auto be = make_backend(Device::cpu);
  const std::int64_t N = B * T;
  LocalCommunicator tp;
  Gpt gpt(*be, m, B, T, tp, {}, {}, {.dtype = dtype, .attention = kernel});
  gpt.params().init(5);
  gpt.params().zero_grads();
  const auto x = tokens(N, m.vocab, 1), y = tokens(N, m.vocab, 2);
  gpt.forward(0, {x.data(), y.data()}, 0);
  Result r;
  r.loss = gpt.take_loss_sum() / double(N);
  gpt.backward(0, 0, 1.0f / float(N));
  for (std::size_t i = 0; i < gpt.params().size(); ++i) {
    std::vector<float> g(static_cast<std::size_t>(gpt.params().spec(i).shape.numel()));
    be->copy(host_tensor(g.data(), gpt.params().spec(i).shape), gpt.params().grad(i));  // f32 whatever the dtype
    r.grads.push_back(std::move(g));
  }
  return r;
}

// |a - b| / |b| over one gradient tensor.
double relative(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, n = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d += std::pow(double(a[i]) - b[i], 2), n += std::pow(double(b[i]), 2);
  return std::sqrt(d / std::max(n, 1e-30));
}

// Tiled against dense: the loss within `loss_tol` (relative), every gradient tensor within
// `grad_tol` (relative norm). f32: only the summation order differs; bf16: the attention
// output is rounded to 16 bits from two f32 values that differ in their last bits.
void expect_tiled_equals_dense(const ModelConfig& m, DType dtype, double loss_tol, double grad_tol) {
  const Result tiled = run(m, AttentionKernel::tiled, dtype), dense = run(m, AttentionKernel::dense, dtype);
  EXPECT_NEAR(tiled.loss, dense.loss, loss_tol * std::abs(dense.loss));
  ASSERT_EQ(tiled.grads.size(), dense.grads.size());
  for (std::size_t i = 0; i < dense.grads.size(); ++i)
    EXPECT_LT(relative(tiled.grads[i], dense.grads[i]), grad_tol) << "parameter " << i;
}

}  // namespace

TEST(AttentionLayer, TiledEqualsDenseGpt2) {
  expect_tiled_equals_dense(tiny("layernorm", "gelu", "learned", 4, 4), DType::f32, 1e-6, 1e-5);
}
TEST(AttentionLayer, TiledEqualsDenseRopeGqaSwiglu) {
  expect_tiled_equals_dense(tiny("rmsnorm", "swiglu", "rope", 4, 2), DType::f32, 1e-6, 1e-5);
}
TEST(AttentionLayer, TiledEqualsDenseAlibi) {
  expect_tiled_equals_dense(tiny("layernorm", "gelu", "alibi", 3, 3), DType::f32, 1e-6, 1e-5);
}
TEST(AttentionLayer, TiledEqualsDenseBf16) {
  expect_tiled_equals_dense(tiny("layernorm", "gelu", "learned", 4, 4), DType::bf16, 1e-5, 3e-3);
  expect_tiled_equals_dense(tiny("rmsnorm", "swiglu", "rope", 4, 2), DType::bf16, 1e-5, 3e-3);
}

TEST(AttentionLayer, LongContextTiledEqualsDenseAndItsMemoryIsLinearInT) {
  // T = 2048: 32 query tiles by 16 key tiles, the causal skip and the online rescaling
  // across many tiles, at the model level (1 layer, 2 heads of 16).
  ModelConfig m = tiny("layernorm", "gelu", "learned", 2, 2);
  m.layers = 1, m.channels = 32, m.ffn = 64, m.seq_len = 2048;
  const Result tiled = run(m, AttentionKernel::tiled, DType::f32, 1, 2048);
  const Result dense = run(m, AttentionKernel::dense, DType::f32, 1, 2048);
  EXPECT_NEAR(tiled.loss, dense.loss, 1e-6 * dense.loss);
  for (std::size_t i = 0; i < dense.grads.size(); ++i)
    EXPECT_LT(relative(tiled.grads[i], dense.grads[i]), 1e-4) << "parameter " << i;
  // The memory plan's activations and scratch: exactly linear in T with tiled; dense adds
  // H T^2 floats of probs per block and of dprobs.
  auto be = make_backend(Device::cpu);
  auto bytes = [&](AttentionKernel kernel, std::int64_t T) {
    LocalCommunicator tp;
    Gpt gpt(*be, m, 1, T, tp, {}, {}, {.attention = kernel});
    std::size_t n = 0;
    for (const auto& [name, b] : gpt.memory_plan().items)
      if (name == "activations: blocks" || name == "backward scratch (shared by all layers)") n += b;
    return n;
  };
  EXPECT_EQ(bytes(AttentionKernel::tiled, 2048), 2 * bytes(AttentionKernel::tiled, 1024));
  EXPECT_EQ(bytes(AttentionKernel::dense, 2048) - bytes(AttentionKernel::tiled, 2048),
            std::size_t(2 * 2 * 2048 * 2048 - 2 * 2048) * sizeof(float));  // probs + dprobs - lse
}

TEST(AttentionLayer, AWindowCoveringTheSequenceIsNoWindow) {
  ModelConfig m = tiny("rmsnorm", "swiglu", "rope", 4, 2), w = m;
  w.window = 16;  // = T: every row already sees all its keys
  const Result a = run(m, AttentionKernel::tiled), b = run(w, AttentionKernel::tiled);
  EXPECT_EQ(a.loss, b.loss);
  EXPECT_EQ(a.grads, b.grads);
  w.window = 5;  // and a smaller one does change the model
  EXPECT_NE(run(w, AttentionKernel::tiled).loss, a.loss);
}

TEST(AttentionLayer, AWindowLimitsTheReceptiveField) {
  // L = 2 layers with window w = 3: position t sees t-2..t in layer 1, so after layer 2
  // its logits depend on tokens t - 4 .. t only (L (w - 1) = 4 earlier ones).
  auto be = make_backend(Device::cpu);
  ModelConfig m = tiny("layernorm", "gelu", "learned", 4, 4);
  m.window = 3;
  const std::int64_t T = 12, t = 10;
  Gpt gpt(*be, m, 1, T);
  gpt.params().init(3);
  std::vector<std::int32_t> x = tokens(T, m.vocab, 3);
  std::vector<float> base(std::size_t(m.vocab)), now(base.size());
  gpt.logits_at(x.data(), 0, t, base.data());
  for (std::int64_t s = 0; s <= t; ++s) {
    std::vector<std::int32_t> changed = x;
    changed[std::size_t(s)] = (x[std::size_t(s)] + 1) % std::int32_t(m.vocab);
    gpt.logits_at(changed.data(), 0, t, now.data());
    if (s < t - 4)
      EXPECT_EQ(now, base) << "token " << s << " is outside the receptive field of " << t;
    else
      EXPECT_NE(now, base) << "token " << s << " is inside the receptive field of " << t;
  }
}

TEST(AttentionLayer, TheCausalFlagReachesTheKernel) {
  // One layer, B 1, T 6, C 8, 2 heads, no biases: row 0's output depends on the last
  // token's input only when causal = false.
  auto be = make_backend(Device::cpu);
  const std::int64_t T = 6, C = 8;
  auto random = [&](Shape shape, std::uint64_t stream) {
    Buffer b(*be, shape, DType::f32);
    std::vector<float> h(static_cast<std::size_t>(shape.numel()));
    for (std::size_t i = 0; i < h.size(); ++i) h[i] = 0.5f * rng_normal(13, stream, i);
    be->copy(b.tensor(), host_tensor(h.data(), shape));
    return b;
  };
  Buffer w_qkv = random({3 * C, C}, 1), w_proj = random({C, C}, 2), x = random({1, T, C}, 3);
  Buffer qkv(*be, {1, T, 3 * C}, DType::f32), att(*be, {1, T, C}, DType::f32), lse(*be, {1, 2, T}, DType::f32),
      out(*be, {1, T, C}, DType::f32);
  LocalCommunicator tp;
  Attention a{{Linear{w_qkv.tensor(), {}, {}, {}}, &tp, nullptr}, {Linear{w_proj.tensor(), {}, {}, {}}, &tp, nullptr}, 2};
  const Attention::Saved saved{.qkv = qkv.tensor(), .att = att.tensor(), .lse = lse.tensor()};
  auto row0 = [&](bool causal, float last_token_shift) {
    a.causal = causal;
    std::vector<float> h(static_cast<std::size_t>(T * C));
    be->copy(host_tensor(h.data(), Shape{1, T, C}), x.tensor());
    for (std::int64_t c = 0; c < C; ++c) h[std::size_t((T - 1) * C + c)] += last_token_shift;
    Buffer xs(*be, {1, T, C}, DType::f32);
    be->copy(xs.tensor(), host_tensor(h.data(), Shape{1, T, C}));
    a.forward(*be, out.tensor(), xs.tensor(), saved);
    std::vector<float> o(static_cast<std::size_t>(T * C));
    be->copy(host_tensor(o.data(), Shape{1, T, C}), out.tensor());
    return std::vector<float>(o.begin(), o.begin() + C);
  };
  EXPECT_EQ(row0(true, 0), row0(true, 1)) << "causal: row 0 sees only itself";
  EXPECT_NE(row0(false, 0), row0(false, 1)) << "bidirectional: row 0 sees the last token";
  a.kernel = AttentionKernel::dense;
  EXPECT_THROW(row0(false, 0), Error);
  a.causal = true;
  EXPECT_NO_THROW(a.check());
}

TEST(AttentionLayer, WindowTravelsInTheConfigJson) {
  ModelConfig m = tiny("rmsnorm", "swiglu", "rope", 4, 2);
  EXPECT_EQ(Gpt::to_json(m).find("window"), std::string::npos) << "no window: the JSON is what it always was";
  m.window = 64;
  EXPECT_EQ(Gpt::from_json(Gpt::to_json(m)).window, 64);
  EXPECT_EQ(Gpt::from_json(R"({"layers":1,"channels":8,"heads":2,"ffn":32,"vocab":13,"seq_len":4})").window, 0);
  ModelConfig g = tiny("layernorm", "gelu", "learned", 4, 4);
  g.window = 4;
  EXPECT_FALSE(g.is_gpt2()) << "Hugging Face's GPT-2 has no window";
}

TEST(AttentionLayer, DenseRefusesAWindowAndOptionsAreChecked) {
  auto be = make_backend(Device::cpu);
  ModelConfig m = tiny("layernorm", "gelu", "learned", 4, 4);
  m.window = 4;
  LocalCommunicator tp;
  try {
    Gpt gpt(*be, m, 1, 8, tp, {}, {}, {.attention = AttentionKernel::dense});
    FAIL() << "dense attention with a window was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.window = 4"), std::string::npos) << e.what();
  }
  RunConfig c;
  c.model = m;
  c.train.attention = "dense";
  EXPECT_THROW(validate(c), Error);
  c.train.attention = "tiled";
  EXPECT_NO_THROW(validate(c));
  c.train.attention = "flash";
  EXPECT_THROW(validate(c), Error);
  EXPECT_THROW(parse_attention_kernel("flash"), Error);
  // auto (the default): tiled on cpu; dense on cuda (its tiled kernel has not run on a GPU
  // yet), so a window there needs train.attention tiled, and the error names both options.
  c.train.attention = "auto";
  EXPECT_EQ(c.train.attention_kernel(), "tiled");
  EXPECT_NO_THROW(validate(c));
  c.train.device = "cuda";
  EXPECT_EQ(c.train.attention_kernel(), "dense");
  try {
    validate(c);
    FAIL() << "a window on cuda (dense) was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.window = 4 needs train.attention tiled"), std::string::npos) << e.what();
  }
  c.model.window = 0;
  EXPECT_NO_THROW(validate(c));
  c.train.attention = "tiled";
  c.model.window = 4;
  EXPECT_NO_THROW(validate(c));  // asked for by name
  c.train.device = "cpu";
  c.model.window = -1;
  EXPECT_THROW(validate(c), Error);
  // recompute attention has nothing to drop with the tiled kernel: a warning says so.
  c.model.window = 0;
  c.train.recompute = "attention";
  EXPECT_EQ(config_warnings(c).size(), 1u);
  c.train.attention = "auto";
  EXPECT_EQ(config_warnings(c).size(), 1u);
  c.train.attention = "dense";
  EXPECT_TRUE(config_warnings(c).empty());
}
