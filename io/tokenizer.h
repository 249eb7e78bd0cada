// io/tokenizer.h — the byte-level tokenizer: token = byte value 0..255, and
// token 256 = end-of-document (eod); vocabulary size 257.
//
// encode_bytes never emits eod (callers append it after each document).
// decode_bytes maps 0..255 back to their bytes and eod to `eod_text` (default:
// nothing, so decode(encode(s)) == s and decoding a whole dataset gives the
// concatenated input documents); any other value throws loom::Error. Output is
// returned by value; nothing is shared, so both are thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace loom {

struct TokenizerInfo {
  std::string name = "bytes";
  std::int64_t vocab_size = 257;
  std::int32_t eod = 256;
};

// The tokenizer a name refers to ("bytes" is the only one); loom::Error listing
// the known names otherwise.
TokenizerInfo tokenizer_by_name(const std::string& name);

std::vector<std::int32_t> encode_bytes(std::string_view text);
// Appends the tokens of `text` to `out` (no eod): the streaming form loom-data uses.
void encode_bytes_append(std::string_view text, std::vector<std::int32_t>& out);

std::string decode_bytes(std::span<const std::int32_t> tokens, std::string_view eod_text = {});

}  // namespace loom
