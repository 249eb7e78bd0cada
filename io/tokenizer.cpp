// io/tokenizer.cpp — the byte tokenizer (see tokenizer.h).
#include "io/tokenizer.h"

#include "core/error.h"
#include "io/hf_tokenizer.h"
#include "io/spm_tokenizer.h"

namespace loom {

TokenizerInfo tokenizer_by_name(const std::string& name) {
  if (name.size() > 5 && name.ends_with(".json")) {
    auto hf = std::make_shared<const HfTokenizer>(HfTokenizer::load(name));
    LOOM_CHECK(hf->eod().has_value(),
               "add a special token <|endoftext|> (or <|end_of_text|>, </s>, <eos>) to its added_tokens",
               "tokenizer '{}' has no end-of-document special token", name);
    TokenizerInfo info;
    info.name = "hf:" + name;
    info.vocab_size = hf->vocab_size();
    info.eod = *hf->eod();
    info.hf = std::move(hf);
    return info;
  }
  if (name.size() > 6 && name.ends_with(".model")) {
    auto spm = std::make_shared<const SpmTokenizer>(SpmTokenizer::load(name));
    LOOM_CHECK(spm->eod().has_value(),
               "train it with an end-of-document piece: a user-defined symbol <|endoftext|> or an eos id "
               "(loom-data train-tokenizer adds <|endoftext|>)",
               "SentencePiece model '{}' has no end-of-document token (<|endoftext|>, <|end_of_text|> or eos)", name);
    TokenizerInfo info;
    info.name = "spm:" + name;
    info.vocab_size = spm->vocab_size();
    info.eod = *spm->eod();
    info.spm = std::move(spm);
    return info;
  }
  LOOM_CHECK(name == "bytes",
             "the known tokenizers are: bytes, the path of a Hugging Face tokenizer.json, or the path of a "
             "SentencePiece .model",
             "unknown tokenizer '{}'", name);
  return TokenizerInfo{};
}

void encode_append(const TokenizerInfo& info, std::string_view text, std::vector<std::int32_t>& out) {
  if (info.hf) info.hf->encode_append(text, out);
  else if (info.spm) info.spm->encode_append(text, out);
  else encode_bytes_append(text, out);
}

std::string decode_with(const TokenizerInfo& info, std::span<const std::int32_t> tokens) {
  if (info.hf) return info.hf->decode(tokens);
  if (info.spm) return info.spm->decode(tokens);
  return decode_bytes(tokens);
}

void encode_bytes_append(std::string_view text, std::vector<std::int32_t>& out) {
  const std::size_t first = out.size();
  out.resize(first + text.size());
  for (std::size_t i = 0; i < text.size(); ++i) out[first + i] = static_cast<unsigned char>(text[i]);
}

std::vector<std::int32_t> encode_bytes(std::string_view text) {
  std::vector<std::int32_t> out;
  encode_bytes_append(text, out);
  return out;
}

std::string decode_bytes(std::span<const std::int32_t> tokens, std::string_view eod_text) {
  const TokenizerInfo info;
  std::string out;
  out.reserve(tokens.size());
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const std::int32_t t = tokens[i];
    if (t >= 0 && t < 256) {
      out.push_back(static_cast<char>(static_cast<unsigned char>(t)));
    } else if (t == info.eod) {
      out.append(eod_text);
    } else {
      throw Error(fmt::format("decode_bytes: token {} at position {} is outside the byte vocabulary [0, {})", t, i,
                              info.vocab_size),
                  "the tokens come from a different tokenizer or a model with a larger vocabulary");
    }
  }
  return out;
}

}  // namespace loom
