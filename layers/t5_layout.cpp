// layers/t5_layout.cpp — what the encoder-decoder puts where: the split of its combined
// layers over pipeline stages, the tensor-parallel checks, the parameter specs of a stage,
// the tied embedding's holders, the FLOPs count and the model config as a weights file
// stores it (layers/t5.h).
#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "layers/gpt.h"
#include "layers/t5.h"

namespace loom {

namespace {
std::string enc_name(std::int64_t l, const char* rest) { return fmt::format("enc.h.{}.{}", l, rest); }
std::string dec_name(std::int64_t l, const char* rest) { return fmt::format("dec.h.{}.{}", l, rest); }
}  // namespace

void T5::check_tp(const ModelConfig& m, int tp) {
  Gpt::check_tp(m, tp);  // heads, ffn, padded vocabulary
}

T5Stage make_t5_stage(const ModelConfig& cfg, int stages, int stage, const std::string& split) {
  ModelConfig combined = cfg;  // the encoder's then the decoder's layers, split as GPT's
  combined.layers = cfg.layers + cfg.decoder_layer_count();
  LOOM_CHECK(combined.layers >= stages, "use at most as many pipeline stages as encoder + decoder layers",
             "model.layers + model.decoder_layers ({}) is fewer than the pipeline stages parallel.pp ({})",
             combined.layers, stages);
  const GptStage g = make_gpt_stage(combined, stages, stage, 1, split);
  return T5Stage{stages, stage, g.chunks[0].first, g.chunks[0].second, split};
}

std::vector<ParamSpec> T5::param_specs(const ModelConfig& m, int tp, int r, const T5Stage& given) {
  check_tp(m, tp);
  const T5Stage st = given.end == 0 ? make_t5_stage(m, given.stages, given.stage, given.split) : given;
  const std::int64_t C = m.channels, F = m.ffn_size(), Le = m.layers, Ld = m.decoder_layer_count();
  const bool rms = m.norm == "rmsnorm", swiglu = m.mlp == "swiglu", learned = m.positions == "learned";
  const float std = 0.02f;
  // GPT-2's scaling of the projections writing into a residual stream, per stack: the
  // encoder stream gets 2 per block, the decoder's 3.
  const float enc_proj_std = std / std::sqrt(2.0f * float(Le)),
              dec_proj_std = std / std::sqrt(3.0f * float(Ld));
  using S = Shard::Split;
  using R = ParamRole;
  const Shard rows{S::rows, tp, r, 1}, qkv_rows{S::rows, tp, r, 3}, kv_rows{S::rows, tp, r, 2},
      cols{S::cols, tp, r, 1};
  const Shard fc_rows = swiglu ? Shard{S::rows, tp, r, 2} : rows;
  const std::int64_t fc = swiglu ? 2 * F : F;
  const auto rep = TpReplicated::yes;
  const bool embeds_enc = st.begin == 0, embeds_dec = st.begin <= Le && Le < st.end, loss = st.end == Le + Ld;
  std::vector<ParamSpec> s;
  // wte first, then the positions: the embedding bucket is [wte, last position table].
  if (embeds_enc || embeds_dec || loss)
    s.push_back({.name = "wte",
                 .shape = {m.padded_vocab() / tp, C},
                 .init_std = std,
                 .role = R::embedding,
                 .shard = rows,
                 .tied = "wte",
                 .stored_rows = m.vocab});
  if (learned && embeds_enc)
    s.push_back({.name = "enc.wpe",
                 .shape = {m.seq_len, C},
                 .init_std = std,
                 .role = R::embedding,
                 .tp_replicated = rep});
  if (learned && embeds_dec)
    s.push_back({.name = "dec.wpe",
                 .shape = {m.seq_len, C},
                 .init_std = std,
                 .role = R::embedding,
                 .tp_replicated = rep});
  auto add = [&](const std::string& n, Shape shape, float init_std, float init_value, R role, Shard sh) {
    s.push_back({.name = n,
                 .shape = shape,
                 .init_std = init_std,
                 .init_value = init_value,
                 .role = role,
                 .shard = sh,
                 .tp_replicated = sh.split == S::none ? TpReplicated::yes : TpReplicated::no});
  };
  auto norm = [&](const std::string& n) {
    add(n + ".weight", {C}, 0, 1, R::norm, {});
    if (!rms) add(n + ".bias", {C}, 0, 0, R::norm, {});
  };
  // T5's linears have no bias. (A key bias would not even train: softmax ignores a shift
  // common to every key, so its gradient is zero up to rounding, which AdamW would amplify.)
  auto linear = [&](const std::string& n, Shape w, float init_std, Shard sh) {
    add(n + ".weight", w, init_std, 0, R::matrix, sh);
  };
  for (std::int64_t l = std::min(st.begin, Le); l < std::min(st.end, Le); ++l) {
    norm(enc_name(l, "ln_1"));
    linear(enc_name(l, "attn.c_attn"), {3 * C / tp, C}, std, qkv_rows);
    linear(enc_name(l, "attn.c_proj"), {C, C / tp}, enc_proj_std, cols);
    norm(enc_name(l, "ln_2"));
    linear(enc_name(l, "mlp.c_fc"), {fc / tp, C}, std, fc_rows);
    linear(enc_name(l, "mlp.c_proj"), {C, F / tp}, enc_proj_std, cols);
  }
  if (st.begin < Le && Le <= st.end) norm("enc.ln_f");
  for (std::int64_t l = std::max(st.begin, Le) - Le; l < std::max(st.end, Le) - Le; ++l) {
    norm(dec_name(l, "ln_1"));
    linear(dec_name(l, "attn.c_attn"), {3 * C / tp, C}, std, qkv_rows);
    linear(dec_name(l, "attn.c_proj"), {C, C / tp}, dec_proj_std, cols);
    norm(dec_name(l, "ln_2"));
    linear(dec_name(l, "cross.c_q"), {C / tp, C}, std, rows);
    linear(dec_name(l, "cross.c_kv"), {2 * C / tp, C}, std, kv_rows);
    linear(dec_name(l, "cross.c_proj"), {C, C / tp}, dec_proj_std, cols);
    norm(dec_name(l, "ln_3"));
    linear(dec_name(l, "mlp.c_fc"), {fc / tp, C}, std, fc_rows);
    linear(dec_name(l, "mlp.c_proj"), {C, F / tp}, dec_proj_std, cols);
  }
  if (loss) norm("dec.ln_f");
  // T5's relative bias tables (t5_relative), one per stack, on the stages holding blocks of
  // that stack, split by heads over tp and initialised as HF T5 does (normal, std
  // d_model^-1/2). Last, encoder's first: every stage meets its tied groups in one order
  // (TiedGrads exchanges them in parameter order), wte, enc.rel_bias, dec.rel_bias.
  const bool rel = m.positions == "t5_relative";
  if (rel && st.begin < Le)
    s.push_back({.name = "enc.rel_bias",
                 .shape = {m.rel_buckets, m.heads / tp},
                 .init_std = 1.0f / std::sqrt(float(C)),
                 .role = R::embedding,
                 .shard = cols,
                 .tied = "enc.rel_bias"});
  if (rel && st.end > Le)
    s.push_back({.name = "dec.rel_bias",
                 .shape = {m.rel_buckets, m.heads / tp},
                 .init_std = 1.0f / std::sqrt(float(C)),
                 .role = R::embedding,
                 .shard = cols,
                 .tied = "dec.rel_bias"});
  return s;
}

// wte's holders: the stages embedding the encoder input (0), the decoder input, and the head
// (the last); enc.rel_bias's: the stages with encoder blocks; dec.rel_bias's: with decoder blocks.
std::vector<int> T5::tied_stages(const std::string& group) const {
  LOOM_CHECK(group == "wte" || group == "enc.rel_bias" || group == "dec.rel_bias", "",
             "T5 has no tied group '{}'", group);
  std::vector<int> out;
  for (int k = 0; k < stage_.stages; ++k) {
    const T5Stage o = make_t5_stage(cfg_, stage_.stages, k, stage_.split);
    const bool holds = group == "enc.rel_bias" ? o.begin < Le_
                       : group == "dec.rel_bias"
                           ? o.end > Le_
                           : o.begin == 0 || (o.begin <= Le_ && Le_ < o.end) || o.end == Le_ + Ld_;
    if (holds) out.push_back(k);
  }
  return out;
}

std::vector<ParamSpec> T5::stage_param_specs(int stage, int tp_rank) const {
  return param_specs(cfg_, tp_.size(), tp_rank, make_t5_stage(cfg_, stage_.stages, stage, stage_.split));
}

// Megatron's count per sequence, divided by the packed row Te + Td: 6 x every matmul weight
// times the rows it multiplies (the encoder's and the cross-attention k/v on Te rows, the
// decoder's and the tied head on Td rows) + 12 C per (query, key) pair of each attention.
double T5::flops_per_token() const {
  const double C = double(cfg_.channels), F = double(cfg_.ffn_size()), Le = double(cfg_.layers),
               Ld = double(cfg_.decoder_layer_count()), Te = double(Te_), Td = double(Td_);
  const double mlp = (cfg_.mlp == "swiglu" ? 3 : 2) * C * F;
  const double enc = Te * Le * (4 * C * C + mlp);
  const double dec =
      Td * (Ld * (4 * C * C + 2 * C * C + mlp) + C * double(cfg_.padded_vocab())) + Te * Ld * 2 * C * C;
  const double attention = 12.0 * C * (Le * Te * Te + Ld * (Td * Td + Td * Te));
  return (6.0 * (enc + dec) + attention) / (Te + Td);
}

std::string T5::to_json(const ModelConfig& m) {
  nlohmann::json j = nlohmann::json::parse(Gpt::to_json(m));
  j["decoder_layers"] = m.decoder_layer_count();
  return j.dump();
}

ModelConfig T5::from_json(const std::string& text) {
  ModelConfig m = Gpt::from_json(text);
  try {
    m.decoder_layers = nlohmann::json::parse(text).at("decoder_layers");
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("bad T5 model config: {}", e.what()),
                "the file was not written by loom; see docs/checkpoint-format.md");
  }
  return m;
}

}  // namespace loom
