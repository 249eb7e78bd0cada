// launch/hf_gpt2_config.cpp — see hf_gpt2_config.h. Key names and defaults are
// transformers' GPT2Config (models/gpt2/configuration_gpt2.py).
#include "launch/hf_gpt2_config.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace loom {

namespace {
using json = nlohmann::json;

constexpr double kLayerNormEps = 1e-5;  // layers/layernorm.h
}  // namespace

std::string hf_gpt2_config_json(const ModelConfig& m) {
  json c = {{"architectures", {"GPT2LMHeadModel"}},
            {"model_type", "gpt2"},
            {"vocab_size", m.vocab},
            {"n_positions", m.seq_len},
            {"n_ctx", m.seq_len},
            {"n_embd", m.channels},
            {"n_layer", m.layers},
            {"n_head", m.heads},
            // null means 4 * n_embd to transformers
            {"n_inner", m.ffn_size() == 4 * m.channels ? json(nullptr) : json(m.ffn_size())},
            {"activation_function", "gelu_new"},  // GELU, tanh approximation
            {"layer_norm_epsilon", kLayerNormEps},
            {"resid_pdrop", 0.0},
            {"embd_pdrop", 0.0},
            {"attn_pdrop", 0.0},
            {"initializer_range", 0.02},
            {"scale_attn_weights", true},
            {"scale_attn_by_inverse_layer_idx", false},
            {"tie_word_embeddings", true},
            {"torch_dtype", "float32"}};
  // End-of-document doubles as bos/eos where we know the vocabulary: GPT-2's
  // <|endoftext|> (50256) and loom's byte tokenizer's eod (256). Otherwise unknown: none.
  if (m.vocab == 50257 || m.vocab == 257) c["bos_token_id"] = c["eos_token_id"] = m.vocab - 1;
  return c.dump(2) + "\n";
}

ModelConfig read_hf_gpt2_config(const std::string& path) {
  std::ifstream f(path);
  LOOM_CHECK(f.good(), "check the path", "cannot open Hugging Face config '{}'", path);
  std::stringstream text;
  text << f.rdbuf();
  const char* hint = "give the config.json the model was saved with (transformers' GPT2Config)";
  ModelConfig m;
  try {
    const json c = json::parse(text.str());
    auto need = [&](const char* key) {
      LOOM_CHECK(c.contains(key) && c[key].is_number_integer(), hint,
                 "Hugging Face config '{}' has no integer '{}'", path, key);
      return c[key].get<std::int64_t>();
    };
    // Optional keys, with GPT2Config's defaults when absent.
    auto get = [&](const char* key, auto fallback) {
      return c.contains(key) ? c[key].get<decltype(fallback)>() : fallback;
    };
    const std::string type = get("model_type", std::string("gpt2"));
    LOOM_CHECK(type == "gpt2", "only GPT-2 models can be imported",
               "Hugging Face config '{}' describes a '{}' model, not 'gpt2'", path, type);
    m.layers = need("n_layer");
    m.channels = need("n_embd");
    m.heads = need("n_head");
    m.vocab = need("vocab_size");
    m.seq_len = need("n_positions");
    m.ffn =
        c.contains("n_inner") && !c["n_inner"].is_null() ? c["n_inner"].get<std::int64_t>() : 4 * m.channels;
    const std::string act = get("activation_function", std::string("gelu_new"));
    LOOM_CHECK(act == "gelu_new" || act == "gelu_pytorch_tanh",
               "loom's GPT uses the tanh GELU (gelu_new) only",
               "Hugging Face config '{}': activation_function '{}' is not supported", path, act);
    const double eps = get("layer_norm_epsilon", kLayerNormEps);
    LOOM_CHECK(eps == kLayerNormEps, "loom's layernorm uses eps 1e-5 only",
               "Hugging Face config '{}': layer_norm_epsilon {} is not supported", path, eps);
    LOOM_CHECK(get("tie_word_embeddings", true), "loom ties the output head to wte",
               "Hugging Face config '{}': tie_word_embeddings false is not supported", path);
    LOOM_CHECK(
        get("scale_attn_weights", true) && !get("scale_attn_by_inverse_layer_idx", false),
        "loom scales attention scores by 1/sqrt(head size) only",
        "Hugging Face config '{}': scale_attn_weights false or scale_attn_by_inverse_layer_idx true is not "
        "supported",
        path);
  } catch (const json::exception& e) {
    throw Error(fmt::format("Hugging Face config '{}': {}", path, e.what()), hint);
  }
  LOOM_CHECK(m.layers >= 1 && m.channels >= 1 && m.heads >= 1 && m.channels % m.heads == 0 && m.vocab >= 1 &&
                 m.seq_len >= 1 && m.ffn >= 1,
             hint,
             "Hugging Face config '{}': n_layer {}, n_embd {}, n_head {}, vocab_size {}, n_positions {}, "
             "n_inner {} do not describe a GPT (all >= 1, n_embd divisible by n_head)",
             path, m.layers, m.channels, m.heads, m.vocab, m.seq_len, m.ffn);
  return m;
}

}  // namespace loom
