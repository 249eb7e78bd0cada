// launch/model_io.cpp — see model_io.h.
#include "launch/model_io.h"

#include <nlohmann/json.hpp>

#include "io/weights_file.h"

namespace loom {

namespace {

// The rows of a parameter that are stored (all but wte's vocabulary padding).
std::int64_t stored_rows(const ModelConfig& m, const ParamSpec& s) {
  return s.name == "wte" ? m.vocab : s.shape[0];
}

std::vector<std::int64_t> stored_shape(const ModelConfig& m, const ParamSpec& s) {
  std::vector<std::int64_t> shape;
  for (int d = 0; d < s.shape.rank(); ++d) shape.push_back(s.shape[d]);
  shape[0] = stored_rows(m, s);
  return shape;
}

}  // namespace

void save_weights(Gpt& model, const std::string& path) {
  const ModelConfig& m = model.config();
  ParamStore& ps = model.params();
  std::vector<std::vector<float>> host;
  std::vector<NamedArray> arrays;
  host.reserve(ps.size());
  for (std::size_t i = 0; i < ps.size(); ++i) {
    host.push_back(ps.read(i));
    arrays.push_back({ps.spec(i).name, stored_shape(m, ps.spec(i)), host.back().data()});
  }
  const nlohmann::json config = {{"layers", m.layers}, {"channels", m.channels}, {"heads", m.heads},
                                 {"ffn", m.ffn_size()}, {"vocab", m.vocab},       {"seq_len", m.seq_len},
                                 {"architecture", "gpt2"}, {"tokenizer", "bytes"}};
  write_weights(path, arrays, config.dump());
}

ModelConfig read_model_config(const std::string& path) {
  const WeightsReader r = WeightsReader::open(path);
  ModelConfig m;
  try {
    const auto j = nlohmann::json::parse(r.config_json());
    m.layers = j.at("layers");
    m.channels = j.at("channels");
    m.heads = j.at("heads");
    m.ffn = j.at("ffn");
    m.vocab = j.at("vocab");
    m.seq_len = j.at("seq_len");
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("weights file '{}': bad model config attribute: {}", path, e.what()),
                "the file was not written by loom; see docs/checkpoint-format.md");
  }
  return m;
}

void load_weights(Gpt& model, const std::string& path) {
  const WeightsReader r = WeightsReader::open(path);
  const ModelConfig& m = model.config();
  ParamStore& ps = model.params();
  for (std::size_t i = 0; i < ps.size(); ++i) {
    const ParamSpec& s = ps.spec(i);
    const std::vector<std::int64_t> want = stored_shape(m, s);
    LOOM_CHECK(r.has(s.name), "the file must come from a model with the same architecture",
               "weights file '{}' has no parameter '{}'", path, s.name);
    LOOM_CHECK(r.shape(s.name) == want, "model.* options must match the model that wrote the file",
               "weights file '{}': parameter '{}' is {} but this model needs {}", path, s.name,
               fmt::join(r.shape(s.name), "x"), fmt::join(want, "x"));
    std::vector<float> host(static_cast<std::size_t>(s.shape.numel()), 0.0f);  // wte padding stays 0
    std::int64_t count = 1;
    for (auto d : want) count *= d;
    r.read(s.name, host.data(), count);
    ps.write(i, host);
  }
}

}  // namespace loom
