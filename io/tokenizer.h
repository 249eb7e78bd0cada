// io/tokenizer.h — the byte-level tokenizer: token = byte value 0..255, and
// token 256 = end-of-document (eod); vocabulary size 257.
//
// encode_bytes never emits eod (callers append it after each document).
// decode_bytes maps 0..255 back to their bytes and eod to `eod_text` (default:
// nothing, so decode(encode(s)) == s and decoding a whole dataset gives the
// concatenated input documents); any other value throws loom::Error. Output is
// returned by value; nothing is shared, so both are thread-safe.
//
// tokenizer_by_name also accepts the path of a Hugging Face tokenizer.json
// (byte-level BPE, io/hf_tokenizer.h) or of a SentencePiece .model (io/spm_tokenizer.h);
// encode_append(info, ...) encodes with any of them.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace loom {

class HfTokenizer;
class SpmTokenizer;

struct TokenizerInfo {
  std::string name = "bytes";  // "bytes", "hf:" + the tokenizer.json path, or "spm:" + the .model path
  std::int64_t vocab_size = 257;
  std::int32_t eod = 256;
  std::shared_ptr<const HfTokenizer> hf;    // set for a tokenizer.json
  std::shared_ptr<const SpmTokenizer> spm;  // set for a SentencePiece .model
};

// The tokenizer a name refers to: "bytes", or a path ending in ".json" (a Hugging
// Face byte-level BPE tokenizer.json; its eod is HfTokenizer::eod(), which must
// exist), or a path ending in ".model" (a SentencePiece model; eod SpmTokenizer::eod(),
// which must exist); loom::Error listing the known names otherwise.
TokenizerInfo tokenizer_by_name(const std::string& name);

// Appends the tokens of `text` (no eod) with the tokenizer `info` describes.
void encode_append(const TokenizerInfo& info, std::string_view text, std::vector<std::int32_t>& out);

// Decodes with the tokenizer `info` describes (eod and other special tokens: as that
// tokenizer decodes them; the byte tokenizer drops eod).
std::string decode_with(const TokenizerInfo& info, std::span<const std::int32_t> tokens);

std::vector<std::int32_t> encode_bytes(std::string_view text);
// Appends the tokens of `text` to `out` (no eod): the streaming form loom-data uses.
void encode_bytes_append(std::string_view text, std::vector<std::int32_t>& out);

std::string decode_bytes(std::span<const std::int32_t> tokens, std::string_view eod_text = {});

}  // namespace loom
