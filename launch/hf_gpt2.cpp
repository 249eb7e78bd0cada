// launch/hf_gpt2.cpp — see hf_gpt2.h. The tensor list comes from Gpt::param_specs
// (one tp rank, one stage: the whole model), so export and import cover exactly what
// loom's GPT holds, in the order loom writes it.
#include "launch/hf_gpt2.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/safetensors.h"
#include "io/weights_file.h"
#include "launch/hf_gpt2_config.h"
#include "launch/model_io.h"
#include "layers/gpt.h"

namespace loom {

namespace {

namespace fs = std::filesystem;

struct HfTensor {
  std::string loom_name, hf_name;
  std::vector<std::int64_t> loom_shape;  // as the weights file stores it
  bool transposed = false;               // a Conv1D weight: HF's shape is loom's reversed
  std::vector<std::int64_t> hf_shape() const {
    return transposed ? std::vector<std::int64_t>{loom_shape[1], loom_shape[0]} : loom_shape;
  }
};

// Every tensor of GPT `m`, loom name and HF name side by side.
std::vector<HfTensor> hf_layout(const ModelConfig& m) {
  std::vector<HfTensor> out;
  for (const ParamSpec& s : Gpt::param_specs(m)) {
    const Shape shape = stored_shape(s);
    HfTensor t{s.name, s.name, {}, s.role == ParamRole::matrix};  // GPT's matrices are its Conv1D weights
    for (int i = 0; i < shape.rank(); ++i) t.loom_shape.push_back(shape[i]);
    if (s.name == "wte" || s.name == "wpe") t.hf_name += ".weight";  // nn.Embedding
    out.push_back(std::move(t));
  }
  return out;
}

// (rows, cols) row-major -> (cols, rows) row-major: a copy, so values stay bit-exact.
std::vector<float> transpose(const std::vector<float>& a, std::int64_t rows, std::int64_t cols) {
  std::vector<float> t(a.size());
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) t[std::size_t(c * rows + r)] = a[std::size_t(r * cols + c)];
  return t;
}

// "a, b, c" (the first 10, then how many more): for messages.
std::string name_list(const std::vector<std::string>& names) {
  std::string s;
  for (std::size_t i = 0; i < names.size() && i < 10; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > 10) s += fmt::format(" and {} more", names.size() - 10);
  return s;
}

std::int64_t numel(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

}  // namespace

std::vector<std::string> export_hf_gpt2(const std::string& weights_h5, const std::string& out_dir,
                                        Overwrite overwrite) {
  const WeightsReader r = WeightsReader::open(weights_h5);
  LOOM_CHECK(r.architecture() == "gpt2", "only GPT-2 models have a Hugging Face GPT-2 export",
             "weights file '{}' holds a '{}' model, not 'gpt2'", weights_h5,
             r.architecture().empty() ? std::string("(unnamed)") : r.architecture());
  const ModelConfig m = Gpt::from_json(r.config_json());
  LOOM_CHECK(m.is_gpt2(),
             "a Hugging Face GPT-2 is a pre-LN gpt with layernorm, a GELU MLP, learned positions, as many key/value "
             "heads as heads, no window and the LM head; this model is kept in loom's own weights format",
             "weights file '{}' holds a model with model.family = {}, model.ln_placement = {}, model.norm = {}, "
             "model.mlp = {}, model.positions = {}, model.kv_heads = {} (heads {}), model.window = {}, "
             "model.head = {}: not a GPT-2 language model, so it has no Hugging Face GPT-2 export",
             weights_h5, m.family, m.ln_placement, m.norm, m.mlp, m.positions, m.kv_head_count(), m.heads, m.window,
             m.head);
  const std::vector<HfTensor> layout = hf_layout(m);

  std::set<std::string> known;
  for (const HfTensor& t : layout) known.insert(t.loom_name);
  std::vector<std::string> extra;
  for (const std::string& n : r.names())
    if (!known.count(n)) extra.push_back(n);
  LOOM_CHECK(extra.empty(), "the file was not written by loom's GPT; remove the extra datasets",
             "weights file '{}' holds tensors a GPT-2 does not have: {}", weights_h5, name_list(extra));

  std::vector<std::vector<float>> host;
  std::vector<NamedArray> arrays;
  host.reserve(layout.size());
  for (const HfTensor& t : layout) {
    std::vector<float> v(static_cast<std::size_t>(numel(t.loom_shape)));
    r.read(t.loom_name, t.loom_shape, v.data());  // names the file, the tensor and both shapes on a mismatch
    host.push_back(t.transposed ? transpose(v, t.loom_shape[0], t.loom_shape[1]) : std::move(v));
    arrays.push_back({t.hf_name, t.hf_shape(), host.back().data()});
  }

  std::error_code ec;
  fs::create_directories(out_dir, ec);
  LOOM_CHECK(!ec, "check the path and its permissions", "cannot create directory '{}': {}", out_dir,
             ec.message());
  // The tokenizer the model was trained with goes along, as transformers loads it:
  // tokenizer.json (a Hugging Face one, verbatim) or tokenizer.model (SentencePiece). The
  // byte tokenizer has no file: ids are byte values and 256 is eod.
  const std::optional<EmbeddedTokenizer> tok = read_model_tokenizer(weights_h5);
  std::string tok_file;
  if (tok && tok->kind == "hf-json") tok_file = "tokenizer.json";
  if (tok && tok->kind == "sentencepiece") tok_file = "tokenizer.model";

  // The small files' AtomicWrites first: they refuse existing outputs before anything is
  // written, and remove their temporaries if model.safetensors is refused.
  AtomicWrite config((fs::path(out_dir) / "config.json").string(), overwrite, "export_hf_gpt2");
  std::optional<AtomicWrite> tokenizer;
  if (!tok_file.empty()) tokenizer.emplace((fs::path(out_dir) / tok_file).string(), overwrite, "export_hf_gpt2");
  write_safetensors((fs::path(out_dir) / "model.safetensors").string(), arrays, {{"format", "pt"}},
                    overwrite);
  auto write_text = [](const AtomicWrite& w, const std::string& bytes) {
    std::ofstream f(w.tmp_path(), std::ios::binary);
    f << bytes;
    f.close();
    LOOM_CHECK(!f.fail(), "check the free disk space", "export_hf_gpt2: cannot write '{}'", w.tmp_path());
  };
  write_text(config, hf_gpt2_config_json(m));
  if (tokenizer) write_text(*tokenizer, tok->payload);
  config.commit();
  std::vector<std::string> written{"model.safetensors", "config.json"};
  if (tokenizer) {
    tokenizer->commit();
    written.push_back(tok_file);
  }
  return written;
}

namespace {

// The file's tensor names with any `transformer.` prefix (GPT2LMHeadModel's) removed,
// mapped to the names in the file.
std::map<std::string, std::string> strip_prefix(const SafetensorsReader& st) {
  const std::string prefix = "transformer.";
  std::map<std::string, std::string> names;
  for (const SafetensorsEntry& e : st.entries()) {
    const std::string bare = e.name.rfind(prefix, 0) == 0 ? e.name.substr(prefix.size()) : e.name;
    LOOM_CHECK(names.emplace(bare, e.name).second, "keep one copy of each tensor",
               "safetensors file '{}' holds '{}' both with and without the 'transformer.' prefix", st.path(),
               bare);
  }
  return names;
}

// Buffers transformers may save that are not parameters: the causal mask and its fill value.
bool is_buffer(const std::string& name, std::int64_t layers) {
  for (std::int64_t l = 0; l < layers; ++l)
    if (name == fmt::format("h.{}.attn.bias", l) || name == fmt::format("h.{}.attn.masked_bias", l))
      return true;
  return false;
}

// Every tensor of `layout` present with its HF shape, and nothing else but buffers and lm_head.
void check_tensors(const SafetensorsReader& st, const std::map<std::string, std::string>& names,
                   const std::vector<HfTensor>& layout, const ModelConfig& m,
                   const std::string& config_path) {
  std::vector<std::string> missing, extra;
  std::set<std::string> expected;
  for (const HfTensor& t : layout) {
    expected.insert(t.hf_name);
    if (!names.count(t.hf_name)) missing.push_back(t.hf_name);
  }
  for (const auto& [bare, name] : names)
    if (!expected.count(bare) && !is_buffer(bare, m.layers) && bare != "lm_head.weight")
      extra.push_back(name);
  LOOM_CHECK(missing.empty(), "give the safetensors file of the model this config.json describes",
             "safetensors file '{}' lacks {} tensor(s) that a GPT-2 with {} layers ('{}') has: {}", st.path(),
             missing.size(), m.layers, config_path, name_list(missing));
  LOOM_CHECK(extra.empty(),
             "give a GPT-2 (GPT2Model / GPT2LMHeadModel) checkpoint whose config.json matches it",
             "safetensors file '{}' holds tensor(s) that a GPT-2 with {} layers ('{}') does not have: {}",
             st.path(), m.layers, config_path, name_list(extra));
  for (const HfTensor& t : layout) {
    const SafetensorsEntry& e = st.entry(names.at(t.hf_name));
    LOOM_CHECK(e.shape == t.hf_shape(), "give the config.json saved with this model",
               "safetensors file '{}': tensor '{}' is {} but '{}' implies {}", st.path(), e.name,
               shape_string(e.shape), config_path, shape_string(t.hf_shape()));
  }
}

// loom's head is wte itself: an untied lm_head would be silently dropped, so refuse it.
void check_lm_head(const SafetensorsReader& st, const std::map<std::string, std::string>& names,
                   const std::vector<float>& wte) {
  const auto it = names.find("lm_head.weight");
  if (it == names.end()) return;
  const std::vector<float> head = st.read(it->second);
  LOOM_CHECK(
      head.size() == wte.size() && std::memcmp(head.data(), wte.data(), wte.size() * sizeof(float)) == 0,
      "loom ties the output head to wte: only tied GPT-2 models can be imported",
      "safetensors file '{}': lm_head.weight differs from wte.weight", st.path());
}

}  // namespace

void import_hf_gpt2(const std::string& safetensors_path, const std::string& weights_h5, Overwrite overwrite) {
  const std::string config_path = (fs::path(safetensors_path).parent_path() / "config.json").string();
  LOOM_CHECK(
      fs::exists(config_path),
      "put the model's Hugging Face config.json (with n_head) in the directory of the safetensors file",
      "'{}' not found: the number of attention heads cannot be read off the tensor shapes of '{}'",
      config_path, safetensors_path);
  const ModelConfig m = read_hf_gpt2_config(config_path);
  const SafetensorsReader st = SafetensorsReader::open(safetensors_path);
  const std::map<std::string, std::string> names = strip_prefix(st);
  const std::vector<HfTensor> layout = hf_layout(m);
  check_tensors(st, names, layout, m, config_path);

  std::vector<std::vector<float>> host;
  std::vector<NamedArray> arrays;
  host.reserve(layout.size());
  for (const HfTensor& t : layout) {
    std::vector<float> v = st.read(names.at(t.hf_name));
    host.push_back(t.transposed ? transpose(v, t.loom_shape[1], t.loom_shape[0]) : std::move(v));
    arrays.push_back({t.loom_name, t.loom_shape, host.back().data()});
  }
  for (std::size_t i = 0; i < layout.size(); ++i)
    if (layout[i].loom_name == "wte") check_lm_head(st, names, host[i]);

  auto config = nlohmann::json::parse(Gpt::to_json(m));
  config["architecture"] = "gpt2";  // as save_weights writes it
  write_weights(weights_h5, arrays, config.dump(), overwrite);
}

}  // namespace loom
