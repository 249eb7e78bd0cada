// io/token_source.h — what training reads a split through: loom's HDF5 token
// dataset (io/token_dataset.h) or a Megatron-LM pair read in place
// (io/megatron_source.h). The DataLoader and blends take this interface, so a
// blend may mix both kinds.
//
// A source is one split seen as a single token stream: documents back to back,
// each followed by the eod token, so a window may cross documents (the format
// is in docs/data-format.md). Not thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "io/embedded_tokenizer.h"

namespace loom {

class TokenSource {
public:
  virtual ~TokenSource() = default;

  virtual std::int64_t size() const = 0;  // tokens in this split
  virtual std::int64_t vocab_size() const = 0;
  virtual const std::string& tokenizer() const = 0;  // blends require the same on every source
  // The tokenizer itself when the file embeds it (io/embedded_tokenizer.h); else known
  // by name only ("bytes" needs no payload). loom-train carries it into the model.
  virtual EmbeddedTokenizer embedded_tokenizer() const {
    return {tokenizer() == "bytes" ? "bytes" : "", tokenizer(), ""};
  }
  virtual const std::string& path() const = 0;       // the file named in messages
  virtual const std::string& split() const = 0;      // "train" or "val"
  // Identity for the rank-agreement check (launch/rank_agreement.h): equal on two
  // ranks when they opened the same data. Cheap: never a pass over the tokens.
  virtual std::uint32_t tokens_checksum() const = 0;
  virtual std::int64_t resident_bytes() const = 0;  // host memory held (for the memory plan)

  // out[i] = token[offset + i] for i < count; [offset, offset + count) must lie in the split.
  virtual void read(std::int64_t offset, std::int64_t count, std::int32_t* out) const = 0;
};

}  // namespace loom
