// io/spm_tokenizer.cpp — SentencePiece models (see spm_tokenizer.h).
#include "io/spm_tokenizer.h"

#include <sentencepiece_processor.h>

#include <fstream>
#include <sstream>

#include "core/error.h"

namespace loom {

struct SpmTokenizer::Impl {
  sentencepiece::SentencePieceProcessor sp;
  std::string origin;
};

SpmTokenizer::SpmTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SpmTokenizer::SpmTokenizer(SpmTokenizer&&) noexcept = default;
SpmTokenizer& SpmTokenizer::operator=(SpmTokenizer&&) noexcept = default;
SpmTokenizer::~SpmTokenizer() = default;

SpmTokenizer SpmTokenizer::load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  LOOM_CHECK(f.good(), "check the path of the SentencePiece .model file", "cannot open tokenizer '{}'", path);
  std::stringstream ss;
  ss << f.rdbuf();
  LOOM_CHECK(!f.bad(), "", "error while reading tokenizer '{}'", path);
  return from_serialized(ss.str(), path);
}

SpmTokenizer SpmTokenizer::from_serialized(std::string_view model_proto, const std::string& origin) {
  auto impl = std::make_unique<Impl>();
  impl->origin = origin;
  const auto st = impl->sp.LoadFromSerializedProto(model_proto);
  LOOM_CHECK(st.ok(), "give a .model file written by SentencePiece (spm_train, loom-data train-tokenizer)",
             "'{}' is not a SentencePiece model: {}", origin, st.ToString());
  return SpmTokenizer(std::move(impl));
}

void SpmTokenizer::encode_append(std::string_view text, std::vector<std::int32_t>& out) const {
  std::vector<int> ids;
  const auto st = impl_->sp.Encode(absl::string_view(text.data(), text.size()), &ids);
  LOOM_CHECK(st.ok(), "", "SentencePiece could not encode with '{}': {}", impl_->origin, st.ToString());
  out.insert(out.end(), ids.begin(), ids.end());
}

std::vector<std::int32_t> SpmTokenizer::encode(std::string_view text) const {
  std::vector<std::int32_t> out;
  encode_append(text, out);
  return out;
}

std::string SpmTokenizer::decode(std::span<const std::int32_t> ids) const {
  const auto n = vocab_size();
  std::vector<int> v(ids.begin(), ids.end());
  for (std::size_t i = 0; i < v.size(); ++i)
    LOOM_CHECK(v[i] >= 0 && v[i] < n, "the tokens come from a different tokenizer",
               "token {} at position {} is outside the vocabulary [0, {}) of '{}'", v[i], i, n, impl_->origin);
  std::string out;
  const auto st = impl_->sp.Decode(v, &out);
  LOOM_CHECK(st.ok(), "", "SentencePiece could not decode with '{}': {}", impl_->origin, st.ToString());
  return out;
}

std::int64_t SpmTokenizer::vocab_size() const { return impl_->sp.GetPieceSize(); }

std::optional<std::int32_t> SpmTokenizer::piece_to_id(std::string_view piece) const {
  const int id = impl_->sp.PieceToId(absl::string_view(piece.data(), piece.size()));
  if (id < 0 || id >= impl_->sp.GetPieceSize() || impl_->sp.IdToPiece(id) != piece) return std::nullopt;
  return id;
}

std::string SpmTokenizer::id_to_piece(std::int32_t id) const {
  LOOM_CHECK(id >= 0 && id < vocab_size(), "", "id {} is outside the vocabulary [0, {})", id, vocab_size());
  return impl_->sp.IdToPiece(id);
}

float SpmTokenizer::score(std::int32_t id) const {
  LOOM_CHECK(id >= 0 && id < vocab_size(), "", "id {} is outside the vocabulary [0, {})", id, vocab_size());
  return impl_->sp.GetScore(id);
}

std::optional<std::int32_t> SpmTokenizer::eod() const {
  for (const char* p : {"<|endoftext|>", "<|end_of_text|>"})
    if (auto id = piece_to_id(p)) return id;
  const int eos = impl_->sp.eos_id();
  if (eos >= 0 && eos < impl_->sp.GetPieceSize()) return eos;
  return std::nullopt;
}

std::optional<std::int32_t> SpmTokenizer::pad_id() const {
  const int pad = impl_->sp.pad_id();
  if (pad >= 0 && pad < impl_->sp.GetPieceSize()) return pad;
  return std::nullopt;
}

}  // namespace loom
