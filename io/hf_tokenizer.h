// io/hf_tokenizer.h — a Hugging Face `tokenizer.json` of byte-level BPE (the GPT-2 /
// Llama-3 kind), encoding and decoding token for token as the Python `tokenizers`
// library does with add_special_tokens=False.
//
// Supported: model BPE (vocab; merges as "a b" strings or [a, b] arrays; ignore_merges;
// unk_token/fuse_unk; no dropout, continuing_subword_prefix, end_of_word_suffix or
// byte_fallback), normalizer null, pre_tokenizer ByteLevel (add_prefix_space, use_regex:
// the GPT-2 regex) alone or in a Sequence with Split (Regex or String pattern, behavior
// Isolated, invert false), added_tokens (matched leftmost-longest on the raw text before
// pre-tokenisation; lstrip/rstrip/single_word false), decoder ByteLevel. post_processor is
// ignored (encode never adds BOS/EOS, like add_special_tokens=False). Anything else is a
// loom::Error naming the feature.
//
// Bytes: the pre-tokeniser regex runs in PCRE2 with UTF + UCP + MATCH_INVALID_UTF, so
// invalid UTF-8 never matches and forms pieces of its own; byte-level BPE encodes every
// byte, and decode returns raw bytes (Python would replace invalid UTF-8 by U+FFFD), so
// decode(encode(x)) == x for any bytes x when every single byte is in the vocabulary.
//
// encode/decode are const and thread-safe (the per-word BPE cache has a mutex).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace loom {

class HfTokenizer {
public:
  // Reads and parses `path` (loom::Error on I/O, JSON or unsupported features).
  static HfTokenizer load(const std::string& path);
  // Parses the text of a tokenizer.json; `origin` names it in error messages.
  static HfTokenizer from_json(std::string_view json, const std::string& origin = "tokenizer.json");

  HfTokenizer(HfTokenizer&&) noexcept;
  HfTokenizer& operator=(HfTokenizer&&) noexcept;
  ~HfTokenizer();

  std::vector<std::int32_t> encode(std::string_view text) const;
  void encode_append(std::string_view text, std::vector<std::int32_t>& out) const;
  // Special added tokens are kept unless skip_special (Python's default skips them).
  std::string decode(std::span<const std::int32_t> ids, bool skip_special = false) const;

  // 1 + the largest id of the vocabulary and the added tokens.
  std::int64_t vocab_size() const;
  std::optional<std::int32_t> token_to_id(std::string_view token) const;
  // The end-of-document id: the first added special token named <|endoftext|>,
  // <|end_of_text|>, </s> or <eos>; nullopt if none.
  std::optional<std::int32_t> eod() const;

private:
  struct Impl;
  explicit HfTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace loom
