// tests/unit/test_hf_gpt2.cpp — Hugging Face GPT-2 export/import (launch/hf_gpt2.h).
//
// A tiny GPT on the CPU backend with random values in every parameter (layernorms and
// biases included, so a misplaced transpose or name cannot hide) is saved with
// save_weights, then: the Python `safetensors` package checks the export's names and
// shapes against transformers' GPT2Model structure and its values against loom's
// (tests/unit/hf_gpt2_reference.py); import(export(w)) == w bit for bit, and the imported
// file loads into a Gpt that gives the same logits; the files Python writes the way
// GPT2LMHeadModel saves (transformer. prefix, buffers, tied lm_head; float16) import.
// Errors: truncated file, missing / extra / wrong-shape tensors, missing config.json,
// untied lm_head, unsupported config, non-gpt2 architecture, refusing to overwrite.
//
// The Python comparisons need python3 with safetensors and numpy (launch/test.sh
// installs them): without them they skip, except under CI (env CI set), where they fail.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "backend/registry.h"
#include "core/dtype.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "io/weights_file.h"
#include "launch/hf_gpt2.h"
#include "launch/model_io.h"
#include "layers/gpt.h"
#include "parallel/local_communicator.h"
#include "temp_dir.h"

namespace loom {
namespace {

namespace fs = std::filesystem;
using test::error_of;
using test::TempDir;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

ModelConfig tiny(std::int64_t ffn = 0) {
  ModelConfig m;
  m.layers = 2, m.channels = 16, m.heads = 4, m.ffn = ffn, m.vocab = 257, m.seq_len = 8;
  return m;
}

// Every parameter random (seeded by its index), saved the way loom-train saves.
void make_weights(const std::string& path, const ModelConfig& m) {
  auto be = make_backend(Device::cpu);
  Gpt model(*be, m, 1, m.seq_len);
  ParamStore& ps = model.params();
  for (std::size_t i = 0; i < ps.size(); ++i) {
    std::vector<float> v(static_cast<std::size_t>(ps.spec(i).shape.numel()));
    fill_normal(v.data(), std::int64_t(v.size()), 11, i, 0, 0.0f, 0.5f);
    ps.write(i, v);
  }
  LocalCommunicator one;
  save_weights(model, one, path);
}

std::vector<float> read_all(const WeightsReader& r, const std::string& name) {
  std::int64_t n = 1;
  for (auto d : r.shape(name)) n *= d;
  std::vector<float> v(static_cast<std::size_t>(n));
  r.read(name, v.data(), n);
  return v;
}

// Same names in the same order, same shapes, same bits; and the same config.
void expect_same_weights(const std::string& a, const std::string& b) {
  const WeightsReader x = WeightsReader::open(a), y = WeightsReader::open(b);
  EXPECT_EQ(x.architecture(), y.architecture());
  EXPECT_EQ(nlohmann::json::parse(x.config_json()), nlohmann::json::parse(y.config_json()));
  ASSERT_EQ(x.names(), y.names());
  for (const std::string& n : x.names()) {
    ASSERT_EQ(x.shape(n), y.shape(n)) << n;
    const std::vector<float> u = read_all(x, n), v = read_all(y, n);
    EXPECT_EQ(std::memcmp(u.data(), v.data(), u.size() * sizeof(float)), 0) << n << " differs";
  }
}

// What the Python side needs: loom's tensors raw, their shapes and the config.
void dump_for_python(const std::string& weights, const std::string& dir) {
  fs::create_directories(dir);
  const WeightsReader r = WeightsReader::open(weights);
  nlohmann::json manifest;
  manifest["__config__"] = nlohmann::json::parse(r.config_json());
  for (const std::string& n : r.names()) {
    manifest[n] = r.shape(n);
    const std::vector<float> v = read_all(r, n);
    std::ofstream(dir + "/" + n + ".f32", std::ios::binary)
        .write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * sizeof(float)));
  }
  std::ofstream(dir + "/manifest.json") << manifest.dump();
}

// "" when python3 can import safetensors and numpy, else what is missing.
std::string python_missing() {
  if (std::system("python3 -c 'import safetensors, numpy' >/dev/null 2>&1") == 0) return "";
  return "python3 with the packages safetensors and numpy is needed: run launch/test.sh (it installs them), "
         "or "
         "python3 -m pip install safetensors numpy";
}

#define REQUIRE_PYTHON()                                 \
  do {                                                   \
    const std::string missing = python_missing();        \
    if (!missing.empty()) {                              \
      if (std::getenv("CI")) FAIL() << missing;          \
      GTEST_SKIP() << missing << " (skipped: CI unset)"; \
    }                                                    \
  } while (0)

int run_reference(const std::string& args) {
  const std::string cmd =
      "python3 " + std::string(LOOM_SOURCE_DIR) + "/tests/unit/hf_gpt2_reference.py " + args;
  return std::system(cmd.c_str());
}

TEST(HfGpt2Python, ExportHasGpt2NamesShapesAndLoomValues) {
  REQUIRE_PYTHON();
  for (std::int64_t ffn : {0, 24}) {  // n_inner null (4C) and set
    TempDir dir("hf-gpt2");
    make_weights(dir.file("w.h5"), tiny(ffn));
    export_hf_gpt2(dir.file("w.h5"), dir.file("hf"), Overwrite::no);
    dump_for_python(dir.file("w.h5"), dir.file("dump"));
    EXPECT_EQ(run_reference("--export " + dir.file("hf") + " --loom " + dir.file("dump")), 0)
        << "ffn " << ffn;
  }
}

TEST(HfGpt2Python, ImportsWhatTransformersSaves) {
  REQUIRE_PYTHON();
  TempDir dir("hf-gpt2");
  make_weights(dir.file("w.h5"), tiny());
  export_hf_gpt2(dir.file("w.h5"), dir.file("hf"), Overwrite::no);
  ASSERT_EQ(run_reference("--export " + dir.file("hf") + " --write-hf " + dir.file("py")), 0);
  // transformer. prefix, attn.bias / masked_bias buffers, lm_head == wte: the same model.
  import_hf_gpt2(dir.file("py/prefixed/model.safetensors"), dir.file("prefixed.h5"), Overwrite::no);
  expect_same_weights(dir.file("w.h5"), dir.file("prefixed.h5"));
  // float16: every value is loom's rounded to f16 (numpy and loom both round to nearest even).
  import_hf_gpt2(dir.file("py/half/model.safetensors"), dir.file("half.h5"), Overwrite::no);
  const WeightsReader w = WeightsReader::open(dir.file("w.h5")), h = WeightsReader::open(dir.file("half.h5"));
  for (const std::string& n : w.names()) {
    std::vector<float> want = read_all(w, n);
    for (float& x : want) x = to_float(from_float<f16>(x));
    EXPECT_EQ(read_all(h, n), want) << n;
  }
}

TEST(HfGpt2, RoundTripIsBitExact) {
  for (std::int64_t ffn : {0, 24}) {
    TempDir dir("hf-gpt2");
    make_weights(dir.file("w.h5"), tiny(ffn));
    export_hf_gpt2(dir.file("w.h5"), dir.file("hf"), Overwrite::no);
    EXPECT_TRUE(fs::exists(dir.file("hf/config.json")));
    EXPECT_FALSE(fs::exists(dir.file("hf/model.safetensors.tmp")));
    import_hf_gpt2(dir.file("hf/model.safetensors"), dir.file("back.h5"), Overwrite::no);
    expect_same_weights(dir.file("w.h5"), dir.file("back.h5"));
  }
}

TEST(HfGpt2, ExportLayoutIsConv1D) {
  TempDir dir("hf-gpt2");
  make_weights(dir.file("w.h5"), tiny());
  export_hf_gpt2(dir.file("w.h5"), dir.file("hf"), Overwrite::no);
  const SafetensorsReader st = SafetensorsReader::open(dir.file("hf/model.safetensors"));
  const WeightsReader w = WeightsReader::open(dir.file("w.h5"));
  EXPECT_EQ(st.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  EXPECT_EQ(st.entries().size(), w.names().size());
  EXPECT_EQ(st.entry("wte.weight").shape, (std::vector<std::int64_t>{257, 16}));
  EXPECT_EQ(st.entry("h.1.attn.c_attn.weight").shape, (std::vector<std::int64_t>{16, 48}));
  EXPECT_EQ(st.entry("h.1.mlp.c_proj.weight").shape, (std::vector<std::int64_t>{64, 16}));
  // HF c_attn.weight[i][o] == loom c_attn.weight[o][i]
  const std::vector<float> hf = st.read("h.1.attn.c_attn.weight"), lm = read_all(w, "h.1.attn.c_attn.weight");
  for (int o = 0; o < 48; ++o)
    for (int i = 0; i < 16; ++i) ASSERT_EQ(hf[std::size_t(i * 48 + o)], lm[std::size_t(o * 16 + i)]);
  EXPECT_EQ(st.read("h.1.attn.c_attn.bias"), read_all(w, "h.1.attn.c_attn.bias"));
  const auto cfg = nlohmann::json::parse(test::read_file(dir.file("hf/config.json")));
  EXPECT_EQ(cfg["n_head"], 4);
  EXPECT_TRUE(cfg["n_inner"].is_null());
  EXPECT_EQ(cfg["eos_token_id"], 256);
}

// The imported file is what loom-train --model.init and loom-generate load: same logits.
TEST(HfGpt2, ImportedWeightsLoadIntoGpt) {
  TempDir dir("hf-gpt2");
  const ModelConfig m = tiny();
  make_weights(dir.file("w.h5"), m);
  export_hf_gpt2(dir.file("w.h5"), dir.file("hf"), Overwrite::no);
  import_hf_gpt2(dir.file("hf/model.safetensors"), dir.file("back.h5"), Overwrite::no);
  const ModelConfig back = Gpt::from_json(read_config_json(dir.file("back.h5")));
  EXPECT_EQ(Gpt::to_json(back), Gpt::to_json(m));
  auto be = make_backend(Device::cpu);
  Gpt a(*be, m, 1, m.seq_len), b(*be, back, 1, back.seq_len);
  load_weights(a, dir.file("w.h5"));
  load_weights(b, dir.file("back.h5"));
  const std::vector<std::int32_t> tokens = {72, 101, 108, 108, 111, 256, 3, 44};
  std::vector<float> la(257), lb(257);
  a.logits_at(tokens.data(), 0, 7, la.data());
  b.logits_at(tokens.data(), 0, 7, lb.data());
  EXPECT_EQ(la, lb);
}

// ---- errors

struct Exported {
  TempDir dir{"hf-gpt2"};
  Exported() {
    make_weights(dir.file("w.h5"), tiny());
    export_hf_gpt2(dir.file("w.h5"), dir.file("hf"), Overwrite::no);
  }
  std::string st() const { return dir.file("hf/model.safetensors"); }
  // Re-writes model.safetensors: `edit` may rename or reshape each tensor and returns
  // whether to keep it; `extra` is appended.
  template <class F>
  void rewrite(F&& edit, const std::vector<NamedArray>& extra = {}) const {
    const SafetensorsReader r = SafetensorsReader::open(st());
    std::vector<std::vector<float>> host;
    std::vector<NamedArray> arrays;
    host.reserve(r.entries().size());
    for (const SafetensorsEntry& e : r.entries()) {
      host.push_back(r.read(e.name));
      NamedArray a{e.name, e.shape, host.back().data()};
      if (edit(a)) arrays.push_back(a);
    }
    arrays.insert(arrays.end(), extra.begin(), extra.end());
    write_safetensors(st(), arrays, {}, Overwrite::yes);
  }
  void add(const NamedArray& extra) const {
    rewrite([](NamedArray&) { return true; }, {extra});
  }
};

TEST(HfGpt2Errors, TruncatedFileIsNamed) {
  Exported x;
  const std::string bytes = test::read_file(x.st());
  for (std::size_t keep : {bytes.size() - 4, std::size_t(100), std::size_t(5)}) {
    test::write_file(x.st(), bytes.substr(0, keep));
    const std::string e = error_of([&] { import_hf_gpt2(x.st(), x.dir.file("o.h5"), Overwrite::no); });
    EXPECT_TRUE(contains(e, x.st()) && contains(e, "truncated")) << keep << ": " << e;
  }
  EXPECT_FALSE(fs::exists(x.dir.file("o.h5")));
}

TEST(HfGpt2Errors, MissingAndMisshapenTensorsAreNamed) {
  Exported x;
  x.rewrite([](NamedArray& a) { return a.name != "h.1.mlp.c_fc.bias"; });
  std::string e = error_of([&] { import_hf_gpt2(x.st(), x.dir.file("o.h5"), Overwrite::no); });
  EXPECT_TRUE(contains(e, "lacks 1 tensor") && contains(e, "h.1.mlp.c_fc.bias")) << e;

  Exported z;
  z.rewrite([](NamedArray& a) {  // loom's own (out, in) layout: not transposed
    if (a.name == "h.0.attn.c_attn.weight") a.shape = {48, 16};
    return true;
  });
  e = error_of([&] { import_hf_gpt2(z.st(), z.dir.file("o.h5"), Overwrite::no); });
  EXPECT_TRUE(contains(e, "'h.0.attn.c_attn.weight' is [48, 16]") && contains(e, "[16, 48]")) << e;

  Exported w;
  w.rewrite([](NamedArray& a) {
    if (a.name == "ln_f.bias") a.name = "ln_f.beta";
    return true;
  });
  e = error_of([&] { import_hf_gpt2(w.st(), w.dir.file("o.h5"), Overwrite::no); });
  EXPECT_TRUE(contains(e, "ln_f.bias")) << e;
  EXPECT_FALSE(fs::exists(w.dir.file("o.h5")));
}

TEST(HfGpt2Errors, ExtraTensorIsNamed) {
  Exported x;
  const std::vector<float> extra(4, 1.0f);
  x.add({"h.0.attn.rotary.inv_freq", {4}, extra.data()});
  const std::string e = error_of([&] { import_hf_gpt2(x.st(), x.dir.file("o.h5"), Overwrite::no); });
  EXPECT_TRUE(contains(e, "does not have") && contains(e, "h.0.attn.rotary.inv_freq")) << e;
}

TEST(HfGpt2Errors, UntiedLmHeadIsRefused) {
  Exported x;
  std::vector<float> head = SafetensorsReader::open(x.st()).read("wte.weight");
  x.add({"lm_head.weight", {257, 16}, head.data()});
  import_hf_gpt2(x.st(), x.dir.file("tied.h5"), Overwrite::no);  // equal to wte: ignored
  head[5] += 1.0f;
  x.rewrite([](NamedArray& a) { return a.name != "lm_head.weight"; },
            {{"lm_head.weight", {257, 16}, head.data()}});
  const std::string e = error_of([&] { import_hf_gpt2(x.st(), x.dir.file("o.h5"), Overwrite::no); });
  EXPECT_TRUE(contains(e, "lm_head.weight differs from wte.weight") && contains(e, "tied")) << e;
}

TEST(HfGpt2Errors, MissingConfigJsonIsNamed) {
  Exported x;
  fs::remove(x.dir.file("hf/config.json"));
  const std::string e = error_of([&] { import_hf_gpt2(x.st(), x.dir.file("o.h5"), Overwrite::no); });
  EXPECT_TRUE(contains(e, x.dir.file("hf/config.json") + "' not found") && contains(e, "n_head")) << e;
}

TEST(HfGpt2Errors, UnsupportedConfigIsRefused) {
  Exported x;
  const std::string path = x.dir.file("hf/config.json");
  const auto good = nlohmann::json::parse(test::read_file(path));
  const std::vector<std::pair<std::string, nlohmann::json>> bad = {{"activation_function", "gelu"},
                                                                   {"layer_norm_epsilon", 1e-6},
                                                                   {"tie_word_embeddings", false},
                                                                   {"model_type", "llama"},
                                                                   {"n_head", 5},
                                                                   {"n_embd", 32}};
  for (const auto& [key, value] : bad) {
    auto c = good;
    c[key] = value;
    test::write_file(path, c.dump());
    const std::string e = error_of([&] { import_hf_gpt2(x.st(), x.dir.file("o.h5"), Overwrite::no); });
    EXPECT_TRUE(contains(e, path)) << key << ": " << e;
  }
  auto c = good;
  c.erase("n_head");
  test::write_file(path, c.dump());
  EXPECT_TRUE(
      contains(error_of([&] { import_hf_gpt2(x.st(), x.dir.file("o.h5"), Overwrite::no); }), "'n_head'"));
  EXPECT_FALSE(fs::exists(x.dir.file("o.h5")));
}

TEST(HfGpt2Errors, NonGpt2ArchitectureIsNamed) {
  TempDir dir("hf-gpt2");
  std::vector<float> v(4, 0.0f);
  write_weights(dir.file("l.h5"), {{"tok_embeddings", {2, 2}, v.data()}},
                R"({"architecture":"llama","layers":1})");
  const std::string e = error_of([&] { export_hf_gpt2(dir.file("l.h5"), dir.file("hf"), Overwrite::no); });
  EXPECT_TRUE(contains(e, "'llama'") && contains(e, dir.file("l.h5"))) << e;
}

TEST(HfGpt2Errors, ExistingOutputsAreNotOverwritten) {
  Exported x;
  const std::string before = test::read_file(x.st());
  EXPECT_TRUE(contains(error_of([&] { export_hf_gpt2(x.dir.file("w.h5"), x.dir.file("hf"), Overwrite::no); }),
                       "already exists"));
  fs::remove(x.dir.file("hf/config.json"));  // model.safetensors alone also blocks, leaving no config.json
  EXPECT_TRUE(contains(error_of([&] { export_hf_gpt2(x.dir.file("w.h5"), x.dir.file("hf"), Overwrite::no); }),
                       "model.safetensors' already exists"));
  EXPECT_FALSE(fs::exists(x.dir.file("hf/config.json")) || fs::exists(x.dir.file("hf/config.json.tmp")));
  EXPECT_EQ(test::read_file(x.st()), before);
  export_hf_gpt2(x.dir.file("w.h5"), x.dir.file("hf"), Overwrite::yes);
  EXPECT_TRUE(fs::exists(x.dir.file("hf/config.json")));
  import_hf_gpt2(x.st(), x.dir.file("o.h5"), Overwrite::no);
  EXPECT_TRUE(contains(error_of([&] { import_hf_gpt2(x.st(), x.dir.file("o.h5"), Overwrite::no); }),
                       "already exists"));
}

}  // namespace
}  // namespace loom
