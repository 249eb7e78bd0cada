// tests/unit/test_t5_model.cpp — the encoder-decoder (layers/t5.h): whole-model
// finite-difference gradients of every parameter tensor (two sets of parts, encoder and
// decoder depths and lengths different), cross-attention alone against finite differences
// (its input, the encoder output and its weights), the dependency structure (a decoder
// logit depends on every encoder token, on decoder inputs at or before it and on none
// after), the parameter specs, the config JSON round trip and the refusals.
//
// Gradient check as test_decoder_model.cpp: the backward gradient of the mean loss against
// (L(p+h) - L(p-h)) / 2h for a sample of elements of each tensor.
#include <algorithm>
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "backend/registry.h"
#include "core/error.h"
#include "core/rng.h"
#include "layers/t5.h"
#include "parallel/local_communicator.h"
#include "tests/unit/param_gradcheck.h"

using namespace loom;

namespace {

ModelConfig tiny(const std::string& norm, const std::string& mlp, const std::string& positions) {
  ModelConfig m;
  m.family = "t5";
  m.layers = 2;
  m.decoder_layers = 1;
  m.channels = 24;
  m.heads = 3;
  m.ffn = 40;
  m.vocab = 37;
  m.seq_len = 8;
  m.norm = norm;
  m.mlp = mlp;
  m.positions = positions;
  return m;
}

std::vector<std::int32_t> random_tokens(std::int64_t n, std::int64_t vocab, std::uint64_t stream) {
  std::vector<std::int32_t> t(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i)
    t[std::size_t(i)] = std::int32_t(rng_u64(5, stream, i) % std::uint64_t(vocab));
  return t;
}

// Packed rows [encoder (Te) | decoder input (Td)] and targets [-1 x Te | targets (Td)], with
// one decoder target left out (-1) as span corruption's padding would.
struct Packed {
  std::vector<std::int32_t> x, y;
};
Packed packed(std::int64_t B, std::int64_t Te, std::int64_t Td, std::int64_t vocab) {
  Packed p{random_tokens(B * (Te + Td), vocab, 1), random_tokens(B * (Te + Td), vocab, 2)};
  for (std::int64_t b = 0; b < B; ++b) std::fill_n(p.y.begin() + b * (Te + Td), Te, -1);
  p.y.back() = -1;
  return p;
}

std::vector<float> grad_of(Backend& be, ParamStore& ps, std::size_t i) {
  std::vector<float> v(static_cast<std::size_t>(ps.spec(i).shape.numel()));
  be.copy(host_tensor(v.data(), ps.spec(i).shape), ps.grad(i));
  return v;
}

void check_gradients(const ModelConfig& cfg) {
  auto be = make_backend(Device::cpu);
  const std::int64_t B = 2, Te = 6, Td = 4;
  T5 model(*be, cfg, B, Te, Td);
  EXPECT_EQ(model.seq_len(), Te + Td);
  model.params().init(42);
  for (std::size_t i = 0; i < model.params().size(); ++i) {  // generic values for biases and norm weights
    std::vector<float> p = model.params().read(i);
    for (std::size_t j = 0; j < p.size(); ++j) p[j] += 0.1f * rng_normal(9, i, j);
    model.params().write(i, p);
  }
  const Packed d = packed(B, Te, Td, cfg.vocab);
  const double n = double(std::count_if(d.y.begin(), d.y.end(), [](std::int32_t t) { return t >= 0; }));
  EXPECT_EQ(n, double(B * Td - 1));
  std::vector<int> reported(model.grad_buckets().size(), 0);
  model.set_bucket_hook([&](std::size_t b) { ++reported.at(b); });
  model.params().zero_grads();
  model.forward(0, {d.x.data(), d.y.data()}, 0);
  model.take_loss_sum();
  model.backward(0, 0, float(1.0 / n));
  for (int r : reported) EXPECT_EQ(r, 1) << "every bucket reported once per micro-batch";
  std::int64_t bucketed = 0;
  for (const Tensor& t : model.grad_buckets()) bucketed += t.numel();
  EXPECT_EQ(bucketed, model.params().numel()) << "every parameter in exactly one bucket";
  auto loss = [&] {
    model.forward(0, {d.x.data(), d.y.data()}, 0);
    return model.take_loss_sum() / n;
  };
  const float h = 1e-2f;
  std::mt19937 pick(3);
  int checked = 0;
  for (std::size_t i = 0; i < model.params().size(); ++i) {
    const std::vector<float> g = grad_of(*be, model.params(), i);
    std::vector<float> p = model.params().read(i);
    const std::string& name = model.params().spec(i).name;
    std::vector<std::size_t> idx;
    for (int k = 0; k < 4; ++k) idx.push_back(pick() % p.size());
    if (name == "wte") {  // rows both stacks and the head read
      idx.push_back(std::size_t(d.x[0]) * std::size_t(cfg.channels));
      idx.push_back(std::size_t(d.x[Te]) * std::size_t(cfg.channels) + 1);
    }
    checked += test::expect_param_gradients(model.params(), i, p, g, idx, h, loss);
  }
  EXPECT_GT(checked, 4 * int(model.params().size()) - 1);
}

}  // namespace

TEST(T5ModelGrad, LearnedLayernormGelu) { check_gradients(tiny("layernorm", "gelu", "learned")); }
TEST(T5ModelGrad, SinusoidalRmsnormSwiglu) { check_gradients(tiny("rmsnorm", "swiglu", "sinusoidal")); }
// T5's own positions: the encoder's bidirectional and the decoder's causal table, each shared
// by its stack's self-attentions. 4 buckets, max distance 3: with Te = 6 and Td = 4 every
// bucket of both tables is used, the log-spaced ones included (layers/positions.h).
TEST(T5ModelGrad, RelativeRmsnormGelu) {
  ModelConfig m = tiny("rmsnorm", "gelu", "t5_relative");  // relu's kinks defeat finite differences
  m.rel_buckets = 4, m.rel_max_distance = 3;
  check_gradients(m);
}

// Cross-attention alone: L = sum(out * R) for a fixed random R; its gradients with respect
// to the decoder input x, the encoder output enc (accumulated onto a nonzero buffer) and
// every weight, against central differences.
TEST(CrossAttentionGrad, InputEncoderOutputAndWeights) {
  auto be = make_backend(Device::cpu);
  const std::int64_t B = 2, Td = 3, Te = 5, C = 8, H = 2;
  auto local = std::make_unique<LocalCommunicator>();
  std::vector<std::vector<float>> host;  // every tensor's values
  std::vector<Buffer> bufs;
  auto make = [&](Shape s, std::uint64_t stream, float scale) {
    std::vector<float> v(static_cast<std::size_t>(s.numel()));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = scale * rng_normal(11, stream, i);
    bufs.emplace_back(*be, s, DType::f32);
    be->copy(bufs.back().tensor(), host_tensor(v.data(), s));
    host.push_back(v);
    return bufs.back().tensor();
  };
  bufs.reserve(64);
  host.reserve(64);
  const Tensor x = make({B, Td, C}, 1, 1), enc = make({B, Te, C}, 2, 1), R = make({B, Td, C}, 3, 1);
  const Tensor wq = make({C, C}, 4, 0.4f), bq = make({C}, 5, 0.1f), wkv = make({2 * C, C}, 6, 0.4f),
               bkv = make({2 * C}, 7, 0.1f), wo = make({C, C}, 8, 0.4f), bo = make({C}, 9, 0.1f);
  const Tensor dwq = make({C, C}, 0, 0), dbq = make({C}, 0, 0), dwkv = make({2 * C, C}, 0, 0),
               dbkv = make({2 * C}, 0, 0), dwo = make({C, C}, 0, 0), dbo = make({C}, 0, 0);
  const CrossAttention ca{{{wq, bq, dwq, dbq}, local.get(), nullptr},
                          {{wkv, bkv, dwkv, dbkv}, local.get(), nullptr},
                          {{wo, bo, dwo, dbo}, local.get(), nullptr},
                          int(H)};
  const CrossAttention::Saved s{make({B, Td, C}, 0, 0), make({B, Te, 2 * C}, 0, 0), make({B, Td, C}, 0, 0),
                                make({B, H, Td}, 0, 0)};
  const CrossAttention::Scratch k{make({B, Td, C}, 0, 0), make({B, Te, 2 * C}, 0, 0), make({B, Td, C}, 0, 0),
                                  make({B, Te, C}, 0, 0)};
  const Tensor out = make({B, Td, C}, 0, 0), dx = make({B, Td, C}, 0, 0), denc = make({B, Te, C}, 12, 1);
  const std::vector<float> denc0 = host.back();
  auto read = [&](const Tensor& t) {
    std::vector<float> v(static_cast<std::size_t>(t.numel()));
    be->copy(host_tensor(v.data(), t.shape), t);
    return v;
  };
  auto loss = [&] {
    ca.forward(*be, out, x, enc, s);
    const auto o = read(out), r = read(R);
    double l = 0;
    for (std::size_t i = 0; i < o.size(); ++i) l += double(o[i]) * double(r[i]);
    return l;
  };
  loss();
  ca.backward(*be, dx, denc, R, x, enc, s, k);
  std::vector<float> g_denc = read(denc);
  for (std::size_t i = 0; i < g_denc.size(); ++i) g_denc[i] -= denc0[i];  // denc accumulates (+=)
  const struct {
    const char* name;
    Tensor value;
    std::vector<float> grad;
  } checks[] = {{"x", x, read(dx)},    {"enc", enc, g_denc},     {"wq", wq, read(dwq)},
                {"bq", bq, read(dbq)}, {"wkv", wkv, read(dwkv)}, {"bkv", bkv, read(dbkv)},
                {"wo", wo, read(dwo)}, {"bo", bo, read(dbo)}};
  const float h = 1e-2f;
  for (const auto& c : checks) {
    std::vector<float> v = read(c.value);
    for (std::size_t j = 0; j < v.size(); j += 3) {
      const float orig = v[j];
      v[j] = orig + h;
      be->copy(c.value, host_tensor(v.data(), c.value.shape));
      const double lp = loss();
      v[j] = orig - h;
      be->copy(c.value, host_tensor(v.data(), c.value.shape));
      const double lm = loss();
      v[j] = orig;
      be->copy(c.value, host_tensor(v.data(), c.value.shape));
      const double fd = (lp - lm) / (2.0 * h);
      EXPECT_NEAR(c.grad[j], fd, 2e-3 * std::max(std::abs(fd), 1e-1) + 1e-4) << c.name << "[" << j << "]";
    }
  }
}

// The wiring, independently of the gradients: decoder position t sees every encoder
// position (bidirectional encoder, full cross-attention) and decoder inputs <= t only.
TEST(T5Model, DecoderLogitsDependOnEveryEncoderTokenAndOnlyEarlierDecoderInputs) {
  auto be = make_backend(Device::cpu);
  const ModelConfig cfg = tiny("layernorm", "gelu", "learned");
  const std::int64_t Te = 6, Td = 4, R = Te + Td;
  T5 model(*be, cfg, 1, Te, Td);
  model.params().init(7);
  const auto base = random_tokens(R, cfg.vocab, 4);
  auto logits = [&](const std::vector<std::int32_t>& row) {
    std::vector<std::vector<float>> out(std::size_t(Td), std::vector<float>(std::size_t(cfg.vocab)));
    for (std::int64_t t = 0; t < Td; ++t) model.logits_at(row.data(), 0, t, out[std::size_t(t)].data());
    return out;
  };
  const auto ref = logits(base);
  for (std::int64_t i = 0; i < R; ++i) {
    auto row = base;
    row[std::size_t(i)] = (row[std::size_t(i)] + 1) % std::int32_t(cfg.vocab);
    const auto changed = logits(row);
    for (std::int64_t t = 0; t < Td; ++t) {
      const bool should = i < Te || i - Te <= t;
      EXPECT_EQ(changed[std::size_t(t)] != ref[std::size_t(t)], should)
          << "token " << i << ", decoder position " << t;
    }
  }
}

TEST(T5Model, SpecsJsonAndRefusals) {
  ModelConfig m = tiny("layernorm", "gelu", "learned");
  m.heads = 4;
  const auto specs = T5::param_specs(m, 2, 1);
  auto find = [&](const std::string& n) {
    return *std::find_if(specs.begin(), specs.end(), [&](const ParamSpec& s) { return s.name == n; });
  };
  EXPECT_EQ(find("dec.h.0.cross.c_q.weight").shape, (Shape{12, 24}));
  EXPECT_EQ(find("dec.h.0.cross.c_kv.weight").shape, (Shape{24, 24}));
  EXPECT_EQ(find("dec.h.0.cross.c_kv.weight").shard.row_blocks, 2) << "k and v split by heads each";
  EXPECT_EQ(find("dec.h.0.cross.c_proj.weight").shape, (Shape{24, 12}));
  EXPECT_EQ(find("enc.h.1.attn.c_attn.weight").shape, (Shape{36, 24}));
  EXPECT_FALSE(std::any_of(specs.begin(), specs.end(),
                           [](const ParamSpec& s) { return s.name == "dec.h.1.ln_1.weight"; }));
  const ModelConfig back = T5::from_json(T5::to_json(m));
  EXPECT_EQ(back.decoder_layers, 1);
  EXPECT_EQ(back.family, "t5");
  EXPECT_EQ(T5::to_json(back), T5::to_json(m));
  auto refused = [](ModelConfig c) {
    try {
      validate(c);
    } catch (const Error&) {
      return true;
    }
    return false;
  };
  EXPECT_FALSE(refused(m));
  ModelConfig c = m;
  c.head = "classify", c.classes = 2;
  EXPECT_TRUE(refused(c));
  c = m, c.ln_placement = "post";
  EXPECT_TRUE(refused(c));
  c = m, c.positions = "rope";
  EXPECT_TRUE(refused(c));
  c = m, c.positions = "alibi";
  EXPECT_TRUE(refused(c));
  c = m, c.positions = "t5_relative";
  EXPECT_FALSE(refused(c));
  c.rel_buckets = 6,
  c.rel_max_distance = 2;  // causal would have 3 exact distances; the encoder's bidirectional 1
  EXPECT_FALSE(refused(c));
  c.rel_buckets = 3;  // the encoder's buckets need one exact distance per half: 4 at least
  EXPECT_TRUE(refused(c));
  c = m, c.family = "gpt";  // decoder_layers only for t5
  EXPECT_TRUE(refused(c));
}

// Pipeline stages over the combined 4 + 2 layers (2,2,1,1): who holds what, the boundary
// lists each stage sends and receives, and wte's holders. (The mpi tests decoder_t5_pp*
// check that the stages compute the single-rank run.)
TEST(T5Model, PipelineStagesSplitBothStacks) {
  auto be = make_backend(Device::cpu);
  ModelConfig m = tiny("rmsnorm", "gelu", "learned");
  m.layers = 4, m.decoder_layers = 2;
  const std::int64_t B = 1, Te = 6, Td = 4;
  auto names = [&](int stage) {
    std::vector<std::string> out;
    for (const ParamSpec& p : T5::param_specs(m, 1, 0, make_t5_stage(m, 4, stage))) out.push_back(p.name);
    return out;
  };
  auto has = [](const std::vector<std::string>& v, const std::string& n) {
    return std::find(v.begin(), v.end(), n) != v.end();
  };
  const auto s0 = names(0), s1 = names(1), s2 = names(2), s3 = names(3);
  EXPECT_TRUE(has(s0, "wte") && has(s0, "enc.wpe") && has(s0, "enc.h.1.ln_1.weight") &&
              !has(s0, "enc.ln_f.weight"));
  EXPECT_TRUE(!has(s1, "wte") && has(s1, "enc.h.3.ln_1.weight") && has(s1, "enc.ln_f.weight"));
  EXPECT_TRUE(has(s2, "wte") && has(s2, "dec.wpe") && has(s2, "dec.h.0.cross.c_kv.weight") &&
              !has(s2, "dec.ln_f.weight"));
  EXPECT_TRUE(has(s3, "wte") && !has(s3, "dec.wpe") && has(s3, "dec.h.1.ln_3.weight") &&
              has(s3, "dec.ln_f.weight"));
  std::vector<std::vector<std::int64_t>> in_rows, out_rows;  // the second dimension of each boundary tensor
  for (int k = 0; k < 4; ++k) {
    T5 st(*be, m, B, Te, Td, nullptr, {}, make_t5_stage(m, 4, k));
    EXPECT_EQ(st.tied_stages("wte"), (std::vector<int>{0, 2, 3}));
    std::vector<std::int64_t> in, out;
    for (const Tensor& t : st.inputs(0, 0)) in.push_back(t.shape[1]);
    for (const Tensor& t : st.outputs(0, 0)) out.push_back(t.shape[1]);
    EXPECT_EQ(st.input_grads(0).size(), in.size());
    EXPECT_EQ(st.output_grads(0).size(), out.size());
    in_rows.push_back(in), out_rows.push_back(out);
  }
  EXPECT_EQ(out_rows[0], (std::vector<std::int64_t>{Te}));      // the encoder stream
  EXPECT_EQ(out_rows[1], (std::vector<std::int64_t>{Te}));      // the encoder output (after enc.ln_f)
  EXPECT_EQ(out_rows[2], (std::vector<std::int64_t>{Te, Td}));  // encoder output, decoder stream
  EXPECT_TRUE(out_rows[3].empty() && in_rows[0].empty());
  for (int k = 1; k < 4; ++k)
    EXPECT_EQ(in_rows[std::size_t(k)], out_rows[std::size_t(k - 1)]) << "stage " << k;
}

// Which buckets each table serves, against HF T5's _relative_position_bucket worked by hand
// (8 buckets, max distance 6): the encoder's bidirectional buckets over Te = 6 use rows
// 0-3 for keys at or before the query (distances 0, 1 exact; 2, 3 -> 2; 4, 5 -> 3) and 5-7
// for later keys (1 -> 5; 2, 3 -> 6; 4, 5 -> 7), never 4; the decoder's causal ones over
// Td = 4 use rows 0-3 only (distances below 4 exact). So exactly those rows get a gradient:
// swapping the kinds (or giving the cross-attention a table) would move them.
TEST(T5Model, RelativeTablesUseTheirStacksBuckets) {
  auto be = make_backend(Device::cpu);
  ModelConfig m = tiny("rmsnorm", "gelu", "t5_relative");
  m.rel_buckets = 8, m.rel_max_distance = 6;
  const std::int64_t B = 2, Te = 6, Td = 4;  // 2 rows: packed() leaves out the last row's last target
  T5 model(*be, m, B, Te, Td);
  model.params().init(5);
  const Packed d = packed(B, Te, Td, m.vocab);
  model.params().zero_grads();
  model.forward(0, {d.x.data(), d.y.data()}, 0);
  model.take_loss_sum();
  model.backward(0, 0, 1.0f);
  auto used_rows = [&](const std::string& name) {
    const std::size_t i = model.params().index(name);
    const std::vector<float> g = grad_of(*be, model.params(), i);
    const std::int64_t H = model.params().spec(i).shape[1];
    std::vector<int> rows;
    for (std::int64_t r = 0; r < m.rel_buckets; ++r)
      if (std::any_of(g.begin() + r * H, g.begin() + (r + 1) * H, [](float v) { return v != 0.0f; }))
        rows.push_back(int(r));
    return rows;
  };
  EXPECT_EQ(used_rows("enc.rel_bias"), (std::vector<int>{0, 1, 2, 3, 5, 6, 7}));
  EXPECT_EQ(used_rows("dec.rel_bias"), (std::vector<int>{0, 1, 2, 3}));
}

// t5_relative over pipeline stages: each stack's table sits on the stages with that stack's
// blocks (pp2 (3,3): stage 1 holds both), after every other parameter, encoder's first, and
// is tied over exactly those stages; no absolute position table anywhere.
TEST(T5Model, RelativeTablesAreTiedOverTheirStacksStages) {
  auto be = make_backend(Device::cpu);
  ModelConfig m = tiny("rmsnorm", "gelu", "t5_relative");
  m.layers = 4, m.decoder_layers = 2, m.heads = 4, m.rel_buckets = 8, m.rel_max_distance = 6;
  auto names = [&](int stages, int stage) {
    std::vector<std::string> out;
    for (const ParamSpec& p : T5::param_specs(m, 2, 1, make_t5_stage(m, stages, stage))) {
      out.push_back(p.name);
      if (p.name.find("rel_bias") != std::string::npos) {
        EXPECT_EQ(p.shape, (Shape{8, 2})) << "split by heads over tp 2";
        EXPECT_EQ(p.tied, p.name);
      }
      EXPECT_EQ(p.name.find("wpe"), std::string::npos) << p.name;
    }
    return out;
  };
  using V = std::vector<std::string>;
  auto tail = [](const V& v, std::size_t n) { return V(v.end() - std::ptrdiff_t(n), v.end()); };
  EXPECT_EQ(tail(names(4, 0), 1), (V{"enc.rel_bias"}));
  EXPECT_EQ(tail(names(4, 1), 2), (V{"enc.ln_f.weight", "enc.rel_bias"}));
  EXPECT_EQ(tail(names(4, 2), 1), (V{"dec.rel_bias"}));
  EXPECT_EQ(tail(names(4, 3), 2), (V{"dec.ln_f.weight", "dec.rel_bias"}));
  EXPECT_EQ(tail(names(2, 1), 3), (V{"dec.ln_f.weight", "enc.rel_bias", "dec.rel_bias"}));
  EXPECT_EQ(names(1, 0).back(), "dec.rel_bias");
  for (int k = 0; k < 4; ++k) {
    T5 st(*be, m, 1, 6, 4, nullptr, {}, make_t5_stage(m, 4, k));
    EXPECT_EQ(st.tied_stages("enc.rel_bias"), (std::vector<int>{0, 1}));
    EXPECT_EQ(st.tied_stages("dec.rel_bias"), (std::vector<int>{2, 3}));
    EXPECT_EQ(st.tied_stages("wte"), (std::vector<int>{0, 2, 3}));
  }
  T5 one(*be, m, 1, 6, 4, nullptr, {}, make_t5_stage(m, 2, 1));
  EXPECT_EQ(one.tied_stages("enc.rel_bias"), (std::vector<int>{0, 1}));
  EXPECT_EQ(one.tied_stages("dec.rel_bias"), (std::vector<int>{1}));
  EXPECT_THROW(one.tied_stages("rel_bias"), Error);
}
