// io/embedded_tokenizer.h — the tokenizer itself, carried inside the files it concerns:
// the token dataset, the weights file and the checkpoint index, so that a model always
// decodes with the tokenizer its data was made with (docs/data-format.md).
//
// Stored as string attributes on the file's root (h5py: f.attrs[...]):
//   tokenizer        its name, as loom-data was given it ("bytes", "hf:PATH", "spm:PATH")
//   tokenizer_kind   "bytes", "hf-json" or "sentencepiece"
//   tokenizer_crc32  8 hex digits: zlib.crc32 of the payload (the identity messages show)
//   tokenizer_data   the payload: the tokenizer.json text verbatim (hf-json), or the .model
//                    bytes in base64 (sentencepiece: binary); absent for bytes
// Variable-length string attributes live in the HDF5 global heap, so megabyte payloads fit.
// Files written before this carry none of them: they read as "unknown" (only a name).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "io/tokenizer.h"

namespace loom {

struct EmbeddedTokenizer {
  std::string kind;     // "bytes", "hf-json", "sentencepiece"; "" when unknown (an older file)
  std::string name;     // where it came from ("bytes", "hf:PATH", "spm:PATH"): messages only
  std::string payload;  // the tokenizer.json text or the .model bytes; empty for bytes

  bool known() const { return !kind.empty(); }
  std::uint32_t crc32() const;
  // "hf-json 'hf:tok.json' (crc32 1a2b3c4d)", for messages.
  std::string describe() const;
};

// Same kind and payload (an unknown one matches only an unknown one of the same name).
bool same_tokenizer(const EmbeddedTokenizer& a, const EmbeddedTokenizer& b);

// The tokenizer `name` refers to, as tokenizer_by_name accepts it ("bytes", PATH.json,
// PATH.model), with the file's bytes as payload.
EmbeddedTokenizer embed_tokenizer(const std::string& name);

// The attributes above (empty map for an unknown tokenizer: nothing to write).
std::map<std::string, std::string> tokenizer_attrs(const EmbeddedTokenizer& t);

// Reads the attributes through `get` (nullopt when absent). nullopt when the file has no
// tokenizer_kind; loom::Error naming `where` when they are damaged (crc32 mismatch, bad
// base64, unknown kind).
using AttrGetter = std::function<std::optional<std::string>(const std::string& attr)>;
std::optional<EmbeddedTokenizer> tokenizer_from_attrs(const AttrGetter& get, const std::string& where);

// A usable tokenizer (encode_append, vocab_size, eod) from the payload; loom::Error for
// an unknown one.
TokenizerInfo tokenizer_info(const EmbeddedTokenizer& t);

}  // namespace loom
