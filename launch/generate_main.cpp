// launch/generate_main.cpp — loom-generate: sample text from a weights file.
//
//   loom-generate --weights runs/latest/weights.h5 --prompt "In the beginning"
//                 --tokens 200 --temperature 0.8 --top_k 40 --seed 1
// The model architecture is read from the file, and so is the tokenizer that encodes
// the prompt and decodes the output (the one the training data was made with; bytes
// for a file written before tokenizers were embedded). Each new token re-runs the
// forward over the (at most seq_len) most recent tokens; sampling draws come
// from the counter-based RNG (seed, stream 0, index = token number), so a
// seed always gives the same text.
// A T5 file (architecture "t5", model.family t5) fills in spans instead: the prompt, with
// <extra_id_N> where text is missing, is the encoder input (then eod, and eod up to
// model.seq_len, as span corruption fills it); the encoder runs on it and the decoder
// generates from the start id (eod) until eod or --tokens, recomputing the decoder prefix
// each step; the output is the decoder's text, "<extra_id_0> span <extra_id_1> span ...".
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <optional>

#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "backend/registry.h"
#include "core/rng.h"
#include "io/embedded_tokenizer.h"
#include "io/tokenizer.h"
#include "launch/model_io.h"
#include "layers/gpt.h"
#include "layers/t5.h"
#include "parallel/local_communicator.h"

namespace po = boost::program_options;

namespace loom {
namespace {

// Samples from softmax(logits / temperature) restricted to the top_k largest
// (all when top_k <= 0); temperature 0 is greedy.
std::int32_t sample(std::vector<float>& logits, float temperature, int top_k, float u) {
  const std::int64_t V = std::int64_t(logits.size());
  std::vector<std::int32_t> order(static_cast<std::size_t>(V));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](auto a, auto b) { return logits[std::size_t(a)] > logits[std::size_t(b)]; });
  if (temperature <= 0) return order[0];
  const std::int64_t k = top_k > 0 ? std::min<std::int64_t>(top_k, V) : V;
  std::vector<double> p(static_cast<std::size_t>(k));
  const double mx = logits[std::size_t(order[0])];
  double sum = 0;
  for (std::int64_t i = 0; i < k; ++i) sum += p[std::size_t(i)] = std::exp((logits[std::size_t(order[std::size_t(i)])] - mx) / temperature);
  double acc = 0;
  for (std::int64_t i = 0; i < k; ++i)
    if ((acc += p[std::size_t(i)] / sum) > u) return order[std::size_t(i)];
  return order[std::size_t(k - 1)];
}

// The tokenizer the weights file (or checkpoint) embeds; bytes, saying so, for a file
// written before tokenizers travelled with the model.
TokenizerInfo model_tokenizer(const std::string& weights) {
  const std::optional<EmbeddedTokenizer> t = read_model_tokenizer(weights);
  if (!t || !t->known()) {
    std::fprintf(stderr, "loom-generate: note: '%s' carries no tokenizer (written by an older loom); using bytes\n",
                 weights.c_str());
    return TokenizerInfo{};
  }
  std::fprintf(stderr, "loom-generate: tokenizer %s\n", t->describe().c_str());
  return tokenizer_info(*t);
}

// The byte tokenizer has no sentinel pieces: "<extra_id_N>" in the prompt becomes id eod + 1 + N
// (how span corruption appends them, io/span_corruption.h) and back. Other tokenizers
// encode and decode their own <extra_id_N> tokens.
std::vector<std::int32_t> encode_t5(const TokenizerInfo& tok, const std::string& text) {
  std::vector<std::int32_t> out;
  if (tok.hf || tok.spm) {
    encode_append(tok, text, out);
    return out;
  }
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t at = text.find("<extra_id_", pos), close = text.find('>', at == std::string::npos ? pos : at);
    if (at == std::string::npos || close == std::string::npos) {
      encode_append(tok, std::string_view(text).substr(pos), out);
      break;
    }
    encode_append(tok, std::string_view(text).substr(pos, at - pos), out);
    const std::string digits = text.substr(at + 10, close - at - 10);
    LOOM_CHECK(!digits.empty() && digits.find_first_not_of("0123456789") == std::string::npos, "write <extra_id_0>",
               "loom-generate: '{}' in the prompt is not a sentinel", text.substr(at, close + 1 - at));
    out.push_back(std::int32_t(tok.eod + 1 + std::stoll(digits)));
    pos = close + 1;
  }
  return out;
}

std::string decode_t5(const TokenizerInfo& tok, const std::vector<std::int32_t>& ids) {
  if (tok.hf || tok.spm) return decode_with(tok, ids);
  std::string out;
  std::vector<std::int32_t> run;
  for (std::int32_t id : ids) {
    if (id <= tok.eod) {
      run.push_back(id);
      continue;
    }
    out += decode_with(tok, run) + fmt::format("<extra_id_{}>", id - tok.eod - 1);
    run.clear();
  }
  return out + decode_with(tok, run);
}

// Greedy or sampled span filling with an encoder-decoder (see the top of this file).
int generate_t5(const std::string& weights, const ModelConfig& mc, const std::string& device, const std::string& prompt,
                std::int64_t tokens, float temperature, int top_k, std::uint64_t seed, bool print_ids) {
  auto be = make_backend(device == "cuda" ? Device::cuda : Device::cpu);
  const std::int64_t Te = mc.seq_len, Td = std::clamp<std::int64_t>(tokens, 1, mc.seq_len);
  T5 model(*be, mc, 1, Te, Td);
  load_weights(model, weights);
  const TokenizerInfo tok = model_tokenizer(weights);
  std::vector<std::int32_t> enc = encode_t5(tok, prompt);
  LOOM_CHECK(std::int64_t(enc.size()) < Te, "shorten the prompt",
             "loom-generate: the prompt has {} tokens; the encoder takes {} with the final eod", enc.size(), Te);
  for (std::int32_t t : enc)
    LOOM_CHECK(0 <= t && t < mc.vocab, "", "loom-generate: prompt token {} is outside the model's vocabulary {}", t,
               mc.vocab);
  std::vector<std::int32_t> row(static_cast<std::size_t>(Te + Td), tok.eod);  // [encoder | decoder], eod-filled
  std::copy(enc.begin(), enc.end(), row.begin());
  std::vector<float> logits(static_cast<std::size_t>(mc.vocab));
  std::vector<std::int32_t> out;
  for (std::int64_t i = 0; i < std::min(tokens, Td); ++i) {
    model.logits_at(row.data(), 0, i, logits.data());  // decoder position i sees the start id and out[0..i)
    const std::int32_t next = sample(logits, temperature, top_k, rng_uniform(seed, 0, std::uint64_t(i)));
    if (next == tok.eod) break;
    out.push_back(next);
    if (i + 1 < Td) row[std::size_t(Te + i + 1)] = next;
  }
  std::fputs((decode_t5(tok, enc) + "\n=> " + decode_t5(tok, out) + "\n").c_str(), stdout);
  if (print_ids) std::fprintf(stderr, "loom-generate: ids %s\n", fmt::format("{}", fmt::join(out, " ")).c_str());
  return 0;
}

int generate(int argc, char** argv) {
  std::string weights, prompt = "\n", device = "cpu";
  std::int64_t tokens = 200;
  float temperature = 0.8f;
  int top_k = 40;
  std::uint64_t seed = 1;
  bool print_ids = false;
  po::options_description opts("loom-generate options");
  opts.add_options()("help,h", "show this help")
      ("weights", po::value(&weights)->required(),
       "weights file written by loom-train (HDF5), or a checkpoint: step_N/ or a run directory (its latest)")
      ("prompt", po::value(&prompt)->default_value(prompt), "text to continue")
      ("tokens", po::value(&tokens)->default_value(tokens), "tokens to generate")
      ("temperature", po::value(&temperature)->default_value(temperature), "softmax temperature (0: greedy)")
      ("top_k", po::value(&top_k)->default_value(top_k), "sample among the k most likely tokens (0: all)")
      ("seed", po::value(&seed)->default_value(seed), "sampling seed")
      ("device", po::value(&device)->default_value(device), "cpu or cuda")
      ("print_ids", po::bool_switch(&print_ids), "also print the generated token ids (to stderr)");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    if (vm.count("help")) {
      std::cout << opts << "\n";
      return 0;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw Error(fmt::format("loom-generate: {}", e.what()), "run 'loom-generate --help'");
  }
  LOOM_CHECK(tokens >= 0, "", "loom-generate: --tokens must be >= 0, got {}", tokens);
  // Written so that NaN fails: a NaN or infinite temperature would sample garbage silently.
  LOOM_CHECK(temperature >= 0 && std::isfinite(temperature), "0 is greedy; 0.8 is a usual choice",
             "loom-generate: --temperature must be a finite number >= 0, got {}", temperature);
  LOOM_CHECK(top_k >= 0, "0 samples among all tokens; e.g. --top_k 40",
             "loom-generate: --top_k must be >= 0, got {}", top_k);

  if (read_architecture(weights) == "t5")
    return generate_t5(weights, T5::from_json(read_config_json(weights)), device, prompt, tokens, temperature, top_k,
                       seed, print_ids);
  const ModelConfig mc = Gpt::from_json(read_config_json(weights));
  LOOM_CHECK(!mc.bert(), "generate with a gpt-family model; a bert model fills in masked tokens instead",
             "loom-generate: '{}' is a model.family bert encoder (bidirectional, trained on masked tokens): it does not "
             "predict the next token",
             weights);
  auto be = make_backend(device == "cuda" ? Device::cuda : Device::cpu);
  const std::int64_t T = mc.seq_len;
  LocalCommunicator one;
  // The attention kernel train.attention auto picks for this device; a windowed model needs tiled.
  TrainConfig run{.attention = mc.window > 0 ? "tiled" : "auto", .device = device};
  Gpt model(*be, mc, 1, T, one, {}, {}, {.attention = parse_attention_kernel(run.attention_kernel())});
  load_weights(model, weights);

  const TokenizerInfo tok = model_tokenizer(weights);
  std::vector<std::int32_t> ctx;
  encode_append(tok, prompt, ctx);
  LOOM_CHECK(!ctx.empty(), "", "loom-generate: the prompt must not be empty");
  for (std::int32_t t : ctx)
    LOOM_CHECK(t < mc.vocab, "", "loom-generate: prompt token {} is outside the model's vocabulary {}", t, mc.vocab);
  // The prompt as the model sees it (decode(encode(prompt))), then each token's text: the
  // whole context is decoded again and its new tail printed, because a token's text can
  // depend on its neighbours (SentencePiece's leading-space marker, split UTF-8 sequences).
  std::string printed = decode_with(tok, ctx);
  std::fputs(printed.c_str(), stdout);
  std::vector<float> logits(static_cast<std::size_t>(mc.vocab));
  std::vector<std::int32_t> window(static_cast<std::size_t>(T), 0);
  const std::size_t prompt_tokens = ctx.size();
  for (std::int64_t i = 0; i < tokens; ++i) {
    const std::int64_t n = std::min<std::int64_t>(std::int64_t(ctx.size()), T);
    std::copy(ctx.end() - n, ctx.end(), window.begin());  // positions after n are ignored (causal)
    model.logits_at(window.data(), 0, n - 1, logits.data());
    const std::int32_t next = sample(logits, temperature, top_k, rng_uniform(seed, 0, std::uint64_t(i)));
    ctx.push_back(next);
    const std::string text = decode_with(tok, ctx);
    std::fputs(text.substr(std::min(printed.size(), text.size())).c_str(), stdout);
    std::fflush(stdout);
    printed = text;
  }
  if (print_ids)
    std::fprintf(stderr, "loom-generate: ids %s\n",
                 fmt::format("{}", fmt::join(ctx.begin() + std::ptrdiff_t(prompt_tokens), ctx.end(), " ")).c_str());
  std::fputs("\n", stdout);
  return 0;
}

}  // namespace
}  // namespace loom

int main(int argc, char** argv) {
  try {
    return loom::generate(argc, argv);
  } catch (const loom::Error& e) {
    std::fprintf(stderr, "loom-generate: error: %s\n", e.full_message().c_str());
    return 2;
  }
}
