// io/spm_tokenizer.h — a SentencePiece model file (`.model`, BPE or unigram) behind
// loom's tokenizer interface, through the SentencePiece C++ library
// (libsentencepiece-dev): encode/decode are SentencePieceProcessor's EncodeAsIds /
// DecodeIds, so the ids equal those of the Python `sentencepiece` package loading the
// same file (sp.encode(text), no BOS/EOS added, no sampling).
//
// The end-of-document id (eod) is the first of these that the model has: a piece
// <|endoftext|> or <|end_of_text|> (user-defined symbols), else the model's eos id
// (</s>); a model with none is refused by tokenizer_by_name. Models trained by
// `loom-data train-tokenizer` have <|endoftext|> at id 4 (docs/data-format.md).
//
// Thread-safety: SentencePieceProcessor's const encode/decode are thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace loom {

class SpmTokenizer {
public:
  // Loads `path` (loom::Error when it cannot be read or is not a SentencePiece model).
  static SpmTokenizer load(const std::string& path);
  // Loads a serialized ModelProto (the content of a .model file).
  static SpmTokenizer from_serialized(std::string_view model_proto, const std::string& origin = "model");

  SpmTokenizer(SpmTokenizer&&) noexcept;
  SpmTokenizer& operator=(SpmTokenizer&&) noexcept;
  ~SpmTokenizer();

  std::vector<std::int32_t> encode(std::string_view text) const;
  void encode_append(std::string_view text, std::vector<std::int32_t>& out) const;
  // SentencePiece's DecodeIds (control ids such as <s>, </s>, <pad> decode to nothing;
  // byte pieces are reassembled). loom::Error for an id outside [0, vocab_size()).
  std::string decode(std::span<const std::int32_t> ids) const;

  std::int64_t vocab_size() const;  // the number of pieces
  // The id of `piece` if the model has it (not the unk fallback).
  std::optional<std::int32_t> piece_to_id(std::string_view piece) const;
  std::string id_to_piece(std::int32_t id) const;
  float score(std::int32_t id) const;
  std::optional<std::int32_t> eod() const;  // as described above
  std::optional<std::int32_t> pad_id() const;

private:
  struct Impl;
  explicit SpmTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace loom
