// layers/gpt_layout.cpp — what GPT puts where: the layer split over (virtual) pipeline
// stages, the tensor-parallel divisibility checks, the parameter specs of a stage, and
// the model config as a weights file stores it.
#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "layers/gpt.h"

namespace loom {

namespace {
std::string layer_name(std::int64_t l, const char* rest) { return fmt::format("h.{}.{}", l, rest); }

std::vector<std::int64_t> parse_split(const std::string& split, std::int64_t layers, int virtual_stages) {
  std::vector<std::int64_t> counts;
  std::size_t pos = 0;
  while (pos <= split.size()) {
    const std::size_t comma = std::min(split.find(',', pos), split.size());
    const std::string item = split.substr(pos, comma - pos);
    try {
      counts.push_back(std::stoll(item));
    } catch (const std::exception&) {
      throw Error(fmt::format("parallel.stages '{}': '{}' is not a number of layers", split, item),
                  "give one layer count per (virtual) stage, e.g. parallel.stages = 3,3,2");
    }
    pos = comma + 1;
  }
  std::int64_t total = 0;
  for (auto c : counts) total += c;
  LOOM_CHECK(std::int64_t(counts.size()) == virtual_stages && total == layers &&
                 std::all_of(counts.begin(), counts.end(), [](auto c) { return c >= 1; }),
             "give parallel.pp * parallel.virtual_stages positive counts that add up to model.layers",
             "parallel.stages '{}' must list {} layer counts >= 1 adding up to model.layers = {}", split,
             virtual_stages, layers);
  return counts;
}
}  // namespace

GptStage make_gpt_stage(const ModelConfig& m, int stages, int stage, int chunks, const std::string& split) {
  LOOM_CHECK(stages >= 1 && 0 <= stage && stage < stages && chunks >= 1, "",
             "pipeline stage {} of {} with {} chunks is out of range", stage, stages, chunks);
  const int vs = stages * chunks;
  LOOM_CHECK(m.layers >= vs, "use at most as many (virtual) pipeline stages as layers",
             "model.layers ({}) is fewer than the virtual pipeline stages parallel.pp * parallel.virtual_stages ({})",
             m.layers, vs);
  std::vector<std::int64_t> counts;
  if (split.empty()) {
    for (int s = 0; s < vs; ++s) counts.push_back(m.layers / vs + (s < m.layers % vs ? 1 : 0));
  } else {
    counts = parse_split(split, m.layers, vs);
  }
  GptStage st{stages, stage, {}, split};
  for (int v = 0; v < chunks; ++v) {
    const int virt = v * stages + stage;
    std::int64_t begin = 0;
    for (int s = 0; s < virt; ++s) begin += counts[std::size_t(s)];
    st.chunks.push_back({begin, begin + counts[std::size_t(virt)]});
  }
  return st;
}

void Gpt::check_tp(const ModelConfig& m, int tp) {
  LOOM_CHECK(tp >= 1, "", "parallel.tp must be >= 1, got {}", tp);
  LOOM_CHECK(m.heads % tp == 0, "pick parallel.tp dividing model.heads",
             "model.heads ({}) is not divisible by parallel.tp ({})", m.heads, tp);
  LOOM_CHECK(m.ffn_size() % tp == 0, "pick parallel.tp dividing model.ffn",
             "model.ffn ({}) is not divisible by parallel.tp ({})", m.ffn_size(), tp);
  LOOM_CHECK(m.kv_head_count() % tp == 0, "pick parallel.tp dividing model.kv_heads (or more kv_heads)",
             "model.kv_heads ({}) is not divisible by parallel.tp ({}): each tp rank holds whole key/value heads",
             m.kv_head_count(), tp);
  LOOM_CHECK(m.padded_vocab() % tp == 0, "pick parallel.tp dividing the padded vocabulary",
             "the padded vocabulary ({}, model.vocab {} rounded up to a multiple of 128) is not divisible by "
             "parallel.tp ({})",
             m.padded_vocab(), m.vocab, tp);
}

std::vector<ParamSpec> Gpt::param_specs(const ModelConfig& m, int tp, int r, const GptStage& given) {
  check_tp(m, tp);
  const GptStage stage = given.chunks.empty() ? make_gpt_stage(m, given.stages, given.stage) : given;
  const std::int64_t C = m.channels, F = m.ffn_size(), QKV = m.qkv_size();
  const bool rms = m.norm == "rmsnorm", swiglu = m.mlp == "swiglu";
  const int group = int(m.heads / m.kv_head_count());  // query heads per key/value head
  const float std = 0.02f;
  // GPT-2 scales the init of the projections that write into the residual
  // stream by 1/sqrt(2 L) (two per block), keeping the stream's variance flat.
  const float proj_std = std / std::sqrt(2.0f * float(m.layers));
  using S = Shard::Split;
  using R = ParamRole;
  // c_attn's rows are [q | k | v] with q group times the size of k and v; SwiGLU's c_fc
  // rows are [gate | up]: each tp rank holds its share of every block.
  const Shard rows{S::rows, tp, r, 1}, qkv_rows{S::rows, tp, r, 3, group}, cols{S::cols, tp, r, 1};
  const Shard fc_rows = swiglu ? Shard{S::rows, tp, r, 2} : rows;
  const std::int64_t fc = swiglu ? 2 * F : F;
  const auto rep = TpReplicated::yes;
  // The tied wte: one copy on the embedding chunk, one on the head's (the same one when both are here).
  const ParamSpec wte{.name = "wte", .shape = {m.padded_vocab() / tp, C}, .init_std = std, .role = R::embedding,
                      .shard = rows, .tied = "wte", .stored_rows = m.vocab};
  std::vector<ParamSpec> s;
  for (int v = 0; v < int(stage.chunks.size()); ++v) {
    const auto [l0, l1] = stage.chunks[std::size_t(v)];
    if (stage.embeds(v)) {
      s.push_back(wte);
      if (m.positions == "learned")
        s.push_back({.name = "wpe", .shape = {m.seq_len, C}, .init_std = std, .role = R::embedding, .tp_replicated = rep});
      if (m.post_ln()) {  // BERT's embedding norm: post-LN blocks expect a normalised input
        s.push_back({.name = "ln_emb.weight", .shape = {C}, .init_value = 1, .role = R::norm, .tp_replicated = rep});
        if (!rms) s.push_back({.name = "ln_emb.bias", .shape = {C}, .role = R::norm, .tp_replicated = rep});
      }
    } else if (stage.has_loss(v) && m.head == "lm") {
      s.push_back(wte);  // the tied LM head's copy
    }

    for (std::int64_t l = l0; l < l1; ++l) {
      auto add = [&](const char* n, Shape shape, float init_std, float init_value, R role, Shard sh) {
        s.push_back({.name = layer_name(l, n), .shape = shape, .init_std = init_std, .init_value = init_value,
                     .role = role, .shard = sh,
                     .tp_replicated = sh.split == S::none ? TpReplicated::yes : TpReplicated::no});
      };
      add("ln_1.weight", {C}, 0, 1, R::norm, {});
      if (!rms) add("ln_1.bias", {C}, 0, 0, R::norm, {});
      add("attn.c_attn.weight", {QKV / tp, C}, std, 0, R::matrix, qkv_rows);
      add("attn.c_attn.bias", {QKV / tp}, 0, 0, R::bias, qkv_rows);
      add("attn.c_proj.weight", {C, C / tp}, proj_std, 0, R::matrix, cols);
      add("attn.c_proj.bias", {C}, 0, 0, R::bias, {});
      add("ln_2.weight", {C}, 0, 1, R::norm, {});
      if (!rms) add("ln_2.bias", {C}, 0, 0, R::norm, {});
      add("mlp.c_fc.weight", {fc / tp, C}, std, 0, R::matrix, fc_rows);
      add("mlp.c_fc.bias", {fc / tp}, 0, 0, R::bias, fc_rows);
      add("mlp.c_proj.weight", {C, F / tp}, proj_std, 0, R::matrix, cols);
      add("mlp.c_proj.bias", {C}, 0, 0, R::bias, {});
    }
    if (stage.has_loss(v) && !m.post_ln()) {  // post-LN: the last block's output is already normalised
      s.push_back({.name = "ln_f.weight", .shape = {C}, .init_value = 1, .role = R::norm, .tp_replicated = rep});
      if (!rms) s.push_back({.name = "ln_f.bias", .shape = {C}, .role = R::norm, .tp_replicated = rep});
    }
    if (stage.has_loss(v) && m.head == "classify") {  // layers/class_head.h: whole on every tp rank
      s.push_back({.name = "cls.weight", .shape = {m.classes, C}, .init_std = std, .role = R::matrix,
                   .tp_replicated = rep});
      s.push_back({.name = "cls.bias", .shape = {m.classes}, .role = R::bias, .tp_replicated = rep});
    }
  }
  // T5's relative bias table, shared by all blocks: one copy per stage, split by heads over
  // tp, initialised as HF T5 does (normal, std d_model^-1/2). Last on every stage, so the
  // tied groups (wte, rel_bias) come in the same order on every stage (TiedGrads pairs them
  // in parameter order), whichever chunk holds the head's wte copy.
  if (m.positions == "t5_relative")
    s.push_back({.name = "rel_bias", .shape = {m.rel_buckets, m.heads / tp}, .init_std = 1.0f / std::sqrt(float(C)),
                 .role = R::embedding, .shard = cols, .tied = "rel_bias"});
  return s;
}

std::vector<int> Gpt::tied_stages(const std::string& group) const {
  if (group == "rel_bias") {  // every stage's blocks read the table
    std::vector<int> all;
    for (int s = 0; s < stage_.stages; ++s) all.push_back(s);
    return all;
  }
  LOOM_CHECK(group == "wte", "", "GPT has no tied group '{}'", group);
  if (stage_.stages == 1 || cfg_.head == "classify") return {0};  // classify: no LM head, one copy
  return {0, stage_.stages - 1};
}

std::vector<ParamSpec> Gpt::stage_param_specs(int stage, int tp_rank) const {
  const GptStage other = make_gpt_stage(cfg_, stage_.stages, stage, int(stage_.chunks.size()), stage_.split);
  return param_specs(cfg_, tp_.size(), tp_rank, other);
}

// Megatron-LM's count: 6 x (every matmul weight, the tied head included, padded vocabulary)
// + 12 L T C for attention scores and values (the full T x T, though the causal half is masked;
// grouped-query attention computes as many scores as full attention; with model.window W,
// T x min(T, W) of them, which is what the tiled kernel computes). Per block: c_attn
// C x (H + 2 Hkv) D (3 C^2 without GQA), c_proj C^2, and the MLP's 2 C F (3 C F for SwiGLU:
// gate, up and down).
double Gpt::flops_per_token() const {
  const double C = double(cfg_.channels), F = double(cfg_.ffn_size()), L = double(cfg_.layers), T = double(T_);
  const double mlp_matrices = cfg_.mlp == "swiglu" ? 3 : 2;
  const double head = cfg_.head == "classify" ? double(cfg_.classes) : double(cfg_.padded_vocab());
  const double matmul_weights = L * (C * double(cfg_.qkv_size()) + C * C + mlp_matrices * C * F) + C * head;
  const double keys = cfg_.window > 0 ? std::min(T, double(cfg_.window)) : T;
  return 6.0 * matmul_weights + 12.0 * L * keys * C;
}

// The decoder's parts are always written; a file from before they existed has none of them
// and loads as GPT-2 (the defaults).
std::string Gpt::to_json(const ModelConfig& m) {
  nlohmann::json j{{"layers", m.layers},       {"channels", m.channels},   {"heads", m.heads},
                   {"ffn", m.ffn_size()},      {"vocab", m.vocab},         {"seq_len", m.seq_len},
                   {"norm", m.norm},           {"mlp", m.mlp},
                   {"positions", m.positions}, {"rope_base", m.rope_base}, {"norm_eps", m.norm_eps},
                   {"kv_heads", m.kv_head_count()}, {"family", m.family}, {"ln_placement", m.ln_placement},
                   {"head", m.head},           {"classes", m.classes}};
  // Only a windowed model records its window: every other model's config (and so its
  // files) stays byte for byte what it was before the option existed.
  if (m.window > 0) j["window"] = m.window;
  if (m.positions == "t5_relative") j["rel_buckets"] = m.rel_buckets, j["rel_max_distance"] = m.rel_max_distance;
  return j.dump();
}

ModelConfig Gpt::from_json(const std::string& text) {
  ModelConfig m;
  try {
    const auto j = nlohmann::json::parse(text);
    m.layers = j.at("layers");
    m.channels = j.at("channels");
    m.heads = j.at("heads");
    m.ffn = j.at("ffn");
    m.vocab = j.at("vocab");
    m.seq_len = j.at("seq_len");
    m.norm = j.value("norm", m.norm);
    m.mlp = j.value("mlp", m.mlp);
    m.positions = j.value("positions", m.positions);
    m.rope_base = j.value("rope_base", m.rope_base);
    m.norm_eps = j.value("norm_eps", m.norm_eps);
    m.kv_heads = j.value("kv_heads", m.kv_heads);
    m.family = j.value("family", m.family);
    m.ln_placement = j.value("ln_placement", m.ln_placement);
    m.window = j.value("window", m.window);  // absent in older files: no window
    m.rel_buckets = j.value("rel_buckets", m.rel_buckets);
    m.rel_max_distance = j.value("rel_max_distance", m.rel_max_distance);
    m.head = j.value("head", m.head);  // files from before fine-tuning are language models
    m.classes = j.value("classes", m.classes);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("bad GPT model config: {}", e.what()),
                "the file was not written by loom; see docs/checkpoint-format.md");
  }
  return m;
}

}  // namespace loom
