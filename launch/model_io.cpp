// launch/model_io.cpp — see model_io.h.
#include "launch/model_io.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "core/param_blocks.h"
#include "io/checkpoint_files.h"
#include "io/weights_file.h"
#include "launch/run_dir.h"

namespace loom {

namespace {


// The whole (global) tensor of parameter i, gathered over the tp group (collective:
// every tp rank calls it), cut to its stored rows.
std::vector<float> gather_stored(ParamStore& ps, Communicator& tp, std::size_t i) {
  const ParamSpec& spec = ps.spec(i);
  std::vector<float> local = ps.read(i);
  const int parts = spec.shard.split == Shard::Split::none ? 1 : spec.shard.parts;
  std::vector<float> global = local;
  if (parts > 1) {
    const std::int64_t n = spec.shape.numel();
    std::vector<float> all(static_cast<std::size_t>(n * parts));
    global.resize(all.size());
    tp.all_gather(host_tensor(all.data(), Shape{n * parts}), host_tensor(local.data(), Shape{n}));
    for (int r = 0; r < parts; ++r) {
      ParamSpec part = spec;
      part.shard.index = r;
      for (std::int64_t j = 0; j < n; ++j) global[std::size_t(global_index(part, j))] = all[std::size_t(r * n + j)];
    }
  }
  global.resize(std::size_t(stored_shape(spec).numel()));  // stored rows are a prefix (row-major)
  return global;
}

}  // namespace

void save_weights(StageModel& model, Communicator& tp, const std::string& path, bool write, Communicator* pp,
                  bool in_writer_pipeline, const std::map<std::string, std::string>& attrs) {
  ParamStore& ps = model.params();
  const int stages = pp ? pp->size() : 1, stage = pp ? pp->rank() : 0;
  // A tied group is written once: by its first holder.
  auto stored = [&](const ParamSpec& spec, int on) {
    return spec.tied.empty() || model.tied_stages(spec.tied).front() == on;
  };
  std::vector<std::vector<float>> host;
  std::vector<NamedArray> arrays;
  host.reserve(ps.size() + 1024);
  for (std::size_t i = 0; i < ps.size(); ++i) {
    if (!stored(ps.spec(i), stage)) continue;
    host.push_back(gather_stored(ps, tp, i));  // collective over tp
    arrays.push_back({ps.spec(i).name, stored_shape(ps.spec(i)).dims(), host.back().data()});
  }
  const bool carries = stages > 1 && in_writer_pipeline && tp.rank() == 0;
  if (carries && stage != 0) {  // send this stage's tensors to stage 0, in order
    for (auto& h : host) pp->send_recv(host_tensor(h.data(), Shape{std::int64_t(h.size())}), 0, {}, -1);
    return;
  }
  if (carries) {  // stage 0: receive every other stage's tensors, in stage order
    for (int s = 1; s < stages; ++s)
      for (const ParamSpec& spec : model.stage_param_specs(s, 0)) {
        if (!stored(spec, s)) continue;
        host.emplace_back(static_cast<std::size_t>(stored_shape(spec).numel()));
        pp->send_recv({}, -1, host_tensor(host.back().data(), Shape{std::int64_t(host.back().size())}), s);
        arrays.push_back({spec.name, stored_shape(spec).dims(), host.back().data()});
      }
  }
  if (!write) return;
  auto config = nlohmann::json::parse(model.config_json());
  config["architecture"] = model.architecture();
  write_weights(path, arrays, config.dump(), Overwrite::yes, attrs);
}

std::size_t save_weights_host_bytes(StageModel& model, int stages, int stage, bool in_writer_pipeline) {
  auto stored = [&](const ParamSpec& spec, int on) {
    return spec.tied.empty() || model.tied_stages(spec.tied).front() == on;
  };
  const bool all = stages > 1 && in_writer_pipeline && stage == 0;
  std::size_t elements = 0;
  for (int s = all ? 0 : stage; s <= (all ? stages - 1 : stage); ++s)
    for (const ParamSpec& spec : model.stage_param_specs(s, 0))
      if (stored(spec, s)) elements += std::size_t(stored_shape(spec).numel());
  return elements * sizeof(float);
}

std::string read_architecture(const std::string& path) {
  if (const std::string c = find_checkpoint(path); !c.empty()) return CheckpointReader::open(c).attr("architecture");
  return WeightsReader::open(path).architecture();
}

std::string read_config_json(const std::string& path) {
  if (const std::string c = find_checkpoint(path); !c.empty()) return CheckpointReader::open(c).attr("config");
  return WeightsReader::open(path).config_json();
}

std::optional<EmbeddedTokenizer> read_model_tokenizer(const std::string& path) {
  if (const std::string c = find_checkpoint(path); !c.empty()) {
    const CheckpointReader r = CheckpointReader::open(c);
    return tokenizer_from_attrs(
        [&](const std::string& a) { return r.has_attr(a) ? std::optional(r.attr(a)) : std::nullopt; },
        fmt::format("checkpoint '{}'", c));
  }
  const WeightsReader r = WeightsReader::open(path);
  return tokenizer_from_attrs([&](const std::string& a) { return r.string_attr(a); },
                              fmt::format("weights file '{}'", path));
}

namespace {

// The checkpoint's `params` (master weights, f32): each rank reads its blocks only.
void load_checkpoint_weights(StageModel& model, const std::string& dir, const KeepInit& keep_init) {
  const CheckpointReader r = CheckpointReader::open(dir);
  LOOM_CHECK(r.attr("architecture") == model.architecture(), "start from a checkpoint of the same model family",
             "checkpoint '{}' holds a '{}' model, not '{}'", dir, r.attr("architecture"), model.architecture());
  ParamStore& ps = model.params();
  for (std::size_t i = 0; i < ps.size(); ++i) {
    const ParamSpec& s = ps.spec(i);
    if (keep_init && keep_init(s) && !r.has("params", s.name)) continue;
    std::vector<float> local(static_cast<std::size_t>(s.shape.numel()), 0.0f);  // padding rows stay 0
    read_local_run(r, "params", s, 0, s.shape.numel(), local.data());
    ps.write(i, local);
  }
}

}  // namespace

void load_weights(StageModel& model, const std::string& path, const KeepInit& keep_init) {
  if (const std::string c = find_checkpoint(path); !c.empty()) return load_checkpoint_weights(model, c, keep_init);
  const WeightsReader r = WeightsReader::open(path);
  LOOM_CHECK(r.architecture() == model.architecture(), "start from weights of the same model family",
             "weights file '{}' holds a '{}' model, not '{}'", path,
             r.architecture().empty() ? std::string("(unnamed)") : r.architecture(), model.architecture());
  ParamStore& ps = model.params();
  for (std::size_t i = 0; i < ps.size(); ++i) {
    const ParamSpec& s = ps.spec(i);
    const std::vector<std::int64_t> want = stored_shape(s).dims();
    if (keep_init && keep_init(s) && !r.has(s.name)) continue;
    LOOM_CHECK(r.has(s.name), "the file must come from a model with the same architecture",
               "weights file '{}' has no parameter '{}'", path, s.name);
    LOOM_CHECK(r.shape(s.name) == want, "model.* options must match the model that wrote the file",
               "weights file '{}': parameter '{}' is {} but this model needs {}", path, s.name,
               fmt::join(r.shape(s.name), "x"), fmt::join(want, "x"));
    std::vector<float> global(static_cast<std::size_t>(global_shape(s).numel()), 0.0f);  // padding rows stay 0
    r.read(s.name, global.data(), stored_shape(s).numel());
    // Every rank reads the whole tensor, so every rank refuses alike.
    const auto bad = std::ranges::find_if(global, [](float v) { return !std::isfinite(v); });
    LOOM_CHECK(bad == global.end(), "the file was written by a run that diverged; start from an earlier checkpoint",
               "weights file '{}': parameter '{}' holds {} at element {}: non-finite initial weights", path, s.name,
               *bad, bad - global.begin());
    std::vector<float> local(static_cast<std::size_t>(s.shape.numel()));  // this tp rank's shard
    for (std::int64_t j = 0; j < s.shape.numel(); ++j) local[std::size_t(j)] = global[std::size_t(global_index(s, j))];
    ps.write(i, local);
  }
}

}  // namespace loom
