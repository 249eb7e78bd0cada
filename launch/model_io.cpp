// launch/model_io.cpp — see model_io.h.
#include "launch/model_io.h"

#include <nlohmann/json.hpp>

#include "io/weights_file.h"

namespace loom {

namespace {

// The global shape as stored: wte without its vocabulary padding rows.
std::vector<std::int64_t> stored_shape(const ModelConfig& m, const ParamSpec& s) {
  const Shape g = global_shape(s);
  std::vector<std::int64_t> shape;
  for (int d = 0; d < g.rank(); ++d) shape.push_back(g[d]);
  if (s.name == "wte") shape[0] = m.vocab;
  return shape;
}

// The whole (global, padded) tensor of parameter i, gathered over the tp group
// (collective: every tp rank calls it).
std::vector<float> gather_global(Gpt& model, std::size_t i) {
  ParamStore& ps = model.params();
  const ParamSpec& spec = ps.spec(i);
  std::vector<float> local = ps.read(i);
  const int parts = spec.shard.split == Shard::Split::none ? 1 : spec.shard.parts;
  if (parts == 1) return local;
  const std::int64_t n = spec.shape.numel();
  std::vector<float> all(static_cast<std::size_t>(n * parts)), global(all.size());
  model.tp().all_gather(host_tensor(all.data(), Shape{n * parts}), host_tensor(local.data(), Shape{n}));
  for (int r = 0; r < parts; ++r) {
    ParamSpec part = spec;
    part.shard.index = r;
    for (std::int64_t j = 0; j < n; ++j) global[std::size_t(global_index(part, j))] = all[std::size_t(r * n + j)];
  }
  return global;
}

}  // namespace

void save_weights(Gpt& model, const std::string& path, bool write, Communicator* pp, bool in_writer_pipeline,
                  const std::string& split) {
  const ModelConfig& m = model.config();
  ParamStore& ps = model.params();
  const Stage& st = model.stage();
  // The second copy of the tied wte (on the last stage) is not written: stage 0's is.
  auto stored = [&](const ParamSpec& spec, const Stage& on) { return !(spec.name == "wte" && on.last() && !on.first()); };
  std::vector<std::vector<float>> host;
  std::vector<NamedArray> arrays;
  host.reserve(ps.size() + 64);
  for (std::size_t i = 0; i < ps.size(); ++i) {
    if (!stored(ps.spec(i), st)) continue;
    host.push_back(gather_global(model, i));  // collective over tp
    arrays.push_back({ps.spec(i).name, stored_shape(m, ps.spec(i)), host.back().data()});
  }
  const bool carries = st.stages > 1 && in_writer_pipeline && model.tp().rank() == 0;
  if (carries && !st.first()) {  // send this stage's tensors to stage 0, in order
    for (auto& h : host) pp->send_recv(host_tensor(h.data(), Shape{std::int64_t(h.size())}), 0, {}, -1);
    return;
  }
  if (carries) {  // stage 0: receive every other stage's tensors, in stage order
    for (int s = 1; s < st.stages; ++s) {
      const Stage other = make_stage(m, st.stages, s, split);
      for (const ParamSpec& spec : Gpt::param_specs(m, model.tp().size(), 0, other)) {
        if (!stored(spec, other)) continue;
        host.emplace_back(static_cast<std::size_t>(global_shape(spec).numel()));
        pp->send_recv({}, -1, host_tensor(host.back().data(), Shape{std::int64_t(host.back().size())}), s);
        arrays.push_back({spec.name, stored_shape(m, spec), host.back().data()});
      }
    }
  }
  if (!write) return;
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
    std::vector<float> global(static_cast<std::size_t>(global_shape(s).numel()), 0.0f);  // wte padding stays 0
    std::int64_t count = 1;
    for (auto d : want) count *= d;
    r.read(s.name, global.data(), count);
    std::vector<float> local(static_cast<std::size_t>(s.shape.numel()));  // this tp rank's shard
    for (std::int64_t j = 0; j < s.shape.numel(); ++j) local[std::size_t(j)] = global[std::size_t(global_index(s, j))];
    ps.write(i, local);
  }
}

}  // namespace loom
