// io/embedded_tokenizer.cpp — see embedded_tokenizer.h.
#include "io/embedded_tokenizer.h"

#include <fmt/format.h>

#include <array>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "io/files.h"
#include "io/hf_tokenizer.h"
#include "io/spm_tokenizer.h"

namespace loom {

namespace {

constexpr const char* kB64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64_encode(const std::string& in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  for (std::size_t i = 0; i < in.size(); i += 3) {
    const std::size_t n = std::min<std::size_t>(3, in.size() - i);
    std::uint32_t v = 0;
    for (std::size_t k = 0; k < 3; ++k) v = (v << 8) | (k < n ? static_cast<unsigned char>(in[i + k]) : 0u);
    for (std::size_t k = 0; k < 4; ++k) out.push_back(k <= n ? kB64[(v >> (18 - 6 * k)) & 63] : '=');
  }
  return out;
}

// nullopt on anything that is not canonical padded base64 (the damage check).
std::optional<std::string> base64_decode(const std::string& in) {
  std::array<int, 256> value{};
  value.fill(-1);
  for (int i = 0; i < 64; ++i) value[static_cast<unsigned char>(kB64[i])] = i;
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (std::size_t i = 0; i < in.size(); i += 4) {
    std::uint32_t v = 0;
    int pad = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      const char c = in[i + k];
      const bool last = i + 4 == in.size();
      if (c == '=' && last && k >= 2 && (k == 3 || in[i + 3] == '=')) {
        ++pad;
        v <<= 6;
        continue;
      }
      const int d = value[static_cast<unsigned char>(c)];
      if (d < 0 || pad > 0) return std::nullopt;
      v = (v << 6) | std::uint32_t(d);
    }
    for (int k = 0; k < 3 - pad; ++k) out.push_back(static_cast<char>((v >> (16 - 8 * k)) & 0xff));
  }
  return out;
}

std::string crc_hex(std::uint32_t crc) { return fmt::format("{:08x}", crc); }

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  LOOM_CHECK(f.good(), "check the path", "cannot read tokenizer file '{}'", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

std::uint32_t EmbeddedTokenizer::crc32() const { return crc32_update(0, payload.data(), payload.size()); }

std::string EmbeddedTokenizer::describe() const {
  if (!known()) return fmt::format("'{}' (an older file: no tokenizer embedded)", name);
  if (kind == "bytes") return "bytes";
  return fmt::format("{} '{}' (crc32 {})", kind, name, crc_hex(crc32()));
}

bool same_tokenizer(const EmbeddedTokenizer& a, const EmbeddedTokenizer& b) {
  if (!a.known() || !b.known()) return !a.known() && !b.known() && a.name == b.name;
  return a.kind == b.kind && a.payload == b.payload;
}

EmbeddedTokenizer embed_tokenizer(const std::string& name) {
  const TokenizerInfo info = tokenizer_by_name(name);  // validates it (eod, supported features)
  EmbeddedTokenizer t;
  t.name = info.name;
  if (!info.hf && !info.spm) {
    t.kind = "bytes";
    return t;
  }
  t.kind = info.hf ? "hf-json" : "sentencepiece";
  t.payload = read_bytes(name);
  return t;
}

std::map<std::string, std::string> tokenizer_attrs(const EmbeddedTokenizer& t) {
  if (!t.known()) return {};
  std::map<std::string, std::string> a = {
      {"tokenizer", t.name}, {"tokenizer_kind", t.kind}, {"tokenizer_crc32", crc_hex(t.crc32())}};
  if (t.kind == "hf-json") a["tokenizer_data"] = t.payload;
  if (t.kind == "sentencepiece") a["tokenizer_data"] = base64_encode(t.payload);
  return a;
}

std::optional<EmbeddedTokenizer> tokenizer_from_attrs(const AttrGetter& get, const std::string& where) {
  const auto kind = get("tokenizer_kind");
  if (!kind) return std::nullopt;
  const std::string damaged = "the file is damaged; write it again";
  LOOM_CHECK(*kind == "bytes" || *kind == "hf-json" || *kind == "sentencepiece", damaged,
             "{}: unknown tokenizer_kind '{}' (expected bytes, hf-json or sentencepiece)", where, *kind);
  EmbeddedTokenizer t;
  t.kind = *kind;
  t.name = get("tokenizer").value_or(*kind);
  if (t.kind != "bytes") {
    const auto data = get("tokenizer_data");
    LOOM_CHECK(data.has_value(), damaged, "{}: tokenizer_kind is {} but tokenizer_data is missing", where, t.kind);
    if (t.kind == "hf-json") {
      t.payload = *data;
    } else {
      const auto bytes = base64_decode(*data);
      LOOM_CHECK(bytes.has_value(), damaged, "{}: tokenizer_data is not valid base64", where);
      t.payload = *bytes;
    }
  }
  const std::string stored = get("tokenizer_crc32").value_or("(missing)");
  LOOM_CHECK(stored == crc_hex(t.crc32()), damaged, "{}: the embedded tokenizer fails its checksum (stored {}, computed {})",
             where, stored, crc_hex(t.crc32()));
  return t;
}

TokenizerInfo tokenizer_info(const EmbeddedTokenizer& t) {
  LOOM_CHECK(t.known(), "", "tokenizer {} has no embedded payload to load", t.describe());
  TokenizerInfo info;
  info.name = t.name;
  if (t.kind == "hf-json") {
    auto hf = std::make_shared<const HfTokenizer>(HfTokenizer::from_json(t.payload, t.name));
    LOOM_CHECK(hf->eod().has_value(), "", "embedded tokenizer {} has no end-of-document token", t.describe());
    info.vocab_size = hf->vocab_size();
    info.eod = *hf->eod();
    info.hf = std::move(hf);
  } else if (t.kind == "sentencepiece") {
    auto spm = std::make_shared<const SpmTokenizer>(SpmTokenizer::from_serialized(t.payload, t.name));
    LOOM_CHECK(spm->eod().has_value(), "", "embedded tokenizer {} has no end-of-document token", t.describe());
    info.vocab_size = spm->vocab_size();
    info.eod = *spm->eod();
    info.spm = std::move(spm);
  }
  return info;
}

}  // namespace loom
