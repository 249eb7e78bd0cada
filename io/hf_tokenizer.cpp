// io/hf_tokenizer.cpp — byte-level BPE from a Hugging Face tokenizer.json (see hf_tokenizer.h).
#include "io/hf_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <mutex>
#include <queue>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace loom {
namespace {

using json = nlohmann::json;

// GPT-2's pre-tokenisation regex (ByteLevel with use_regex).
constexpr const char* kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// GPT-2's byte -> code point map: printable Latin-1 bytes map to themselves, the
// others to 256, 257, ... in byte order.
std::array<std::uint32_t, 256> make_byte_to_char() {
  std::array<std::uint32_t, 256> m{};
  std::uint32_t n = 0;
  for (int b = 0; b < 256; ++b) {
    const bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    m[b] = keep ? std::uint32_t(b) : 256 + n++;
  }
  return m;
}

// Decodes UTF-8 into code points; false if `s` is not valid UTF-8.
bool utf8_decode(std::string_view s, std::vector<std::uint32_t>& out) {
  out.clear();
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    std::uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k < len; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    out.push_back(cp);
    i += len;
  }
  return true;
}

struct Pcre2 {
  pcre2_code* code = nullptr;
  Pcre2() = default;
  Pcre2(const Pcre2&) = delete;
  Pcre2& operator=(const Pcre2&) = delete;
  ~Pcre2() {
    if (code) pcre2_code_free(code);
  }
};

struct AddedToken {
  std::string content;
  std::int32_t id;
  bool special;
};

struct Step {
  bool byte_level = false;  // else Split (Isolated)
  bool add_prefix_space = false;
  const pcre2_code* regex = nullptr;  // Split pattern, or the GPT-2 regex for ByteLevel use_regex
};

std::string type_of(const json& j) { return j.is_object() && j.contains("type") ? j["type"].get<std::string>() : "?"; }

}  // namespace

struct HfTokenizer::Impl {
  std::string origin;
  std::vector<std::string> id_bytes;                  // id -> decoded bytes (byte-level rule)
  std::vector<std::uint8_t> id_special;               // id -> special added token
  std::vector<std::uint8_t> id_known;                 // id -> present
  std::unordered_map<std::string, std::int32_t> vocab_bytes;  // raw bytes -> model id
  std::unordered_map<std::string, std::int32_t> token_ids;    // token string (as in the json) -> id
  std::array<std::int32_t, 256> byte_id{};
  std::unordered_map<std::uint64_t, std::pair<std::int32_t, std::int32_t>> merges;  // (a, b) -> (rank, new id)
  std::vector<AddedToken> added;
  std::array<bool, 256> added_first{};
  std::vector<std::unique_ptr<Pcre2>> regexes;
  std::vector<Step> steps;
  bool ignore_merges = false, fuse_unk = false;
  std::optional<std::int32_t> unk, eod;
  mutable std::mutex cache_mu;
  mutable std::unordered_map<std::string, std::vector<std::int32_t>> cache;

  static std::uint64_t key(std::int32_t a, std::int32_t b) {
    return (std::uint64_t(std::uint32_t(a)) << 32) | std::uint32_t(b);
  }

  [[noreturn]] void unsupported(const std::string& what) const {
    throw Error(fmt::format("tokenizer '{}': {} is not supported", origin, what),
                "loom reads byte-level BPE tokenizers (GPT-2 / Llama-3 kind); see docs/data-format.md");
  }

  const pcre2_code* compile(const std::string& pattern, bool literal) {
    int err = 0;
    PCRE2_SIZE off = 0;
    auto r = std::make_unique<Pcre2>();
    const std::uint32_t flags = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : 0);
    r->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), flags, &err, &off, nullptr);
    if (!r->code) {
      std::array<PCRE2_UCHAR, 256> msg{};
      pcre2_get_error_message(err, msg.data(), msg.size());
      throw Error(fmt::format("tokenizer '{}': PCRE2 cannot compile the pre-tokenizer regex '{}' at offset {}: {}", origin,
                              pattern, off, reinterpret_cast<const char*>(msg.data())));
    }
    pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is unavailable
    const pcre2_code* c = r->code;
    regexes.push_back(std::move(r));
    return c;
  }

  void set_id(std::int32_t id, const std::string& token, const std::unordered_map<std::uint32_t, std::uint8_t>& c2b) {
    LOOM_CHECK(id >= 0, "", "tokenizer '{}': token '{}' has negative id {}", origin, token, id);
    if (std::size_t(id) >= id_bytes.size()) {
      id_bytes.resize(id + 1);
      id_special.resize(id + 1);
      id_known.resize(id + 1);
    }
    id_bytes[id] = to_bytes(token, c2b);
    id_known[id] = 1;
  }

  // The ByteLevel decoder's rule: every char mapped back to its byte, or, if any char
  // is outside the map, the token's own UTF-8.
  static std::string to_bytes(const std::string& token, const std::unordered_map<std::uint32_t, std::uint8_t>& c2b) {
    std::vector<std::uint32_t> cps;
    if (!utf8_decode(token, cps)) return token;
    std::string out;
    for (std::uint32_t cp : cps) {
      auto it = c2b.find(cp);
      if (it == c2b.end()) return token;
      out.push_back(static_cast<char>(it->second));
    }
    return out;
  }

  void parse(const json& j) {
    const auto b2c = make_byte_to_char();
    std::unordered_map<std::uint32_t, std::uint8_t> c2b;
    for (int b = 0; b < 256; ++b) c2b[b2c[b]] = std::uint8_t(b);

    // Model.
    LOOM_CHECK(j.contains("model") && j["model"].is_object(), "", "tokenizer '{}': no \"model\"", origin);
    const json& m = j["model"];
    const std::string mtype = m.value("type", std::string("BPE"));
    if (mtype != "BPE") unsupported(fmt::format("model type '{}' (only BPE)", mtype));
    if (m.contains("dropout") && !m["dropout"].is_null()) unsupported("BPE dropout");
    for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (m.contains(k) && !m[k].is_null() && !m[k].get<std::string>().empty()) unsupported(fmt::format("BPE {}", k));
    if (m.value("byte_fallback", false)) unsupported("BPE byte_fallback");
    ignore_merges = m.value("ignore_merges", false);
    fuse_unk = m.value("fuse_unk", false);
    LOOM_CHECK(m.contains("vocab") && m["vocab"].is_object(), "", "tokenizer '{}': model has no \"vocab\" object", origin);
    for (const auto& [tok, idj] : m["vocab"].items()) {
      const auto id = idj.get<std::int32_t>();
      set_id(id, tok, c2b);
      token_ids[tok] = id;
      vocab_bytes[id_bytes[id]] = id;
    }
    byte_id.fill(-1);
    for (int b = 0; b < 256; ++b) {
      auto it = vocab_bytes.find(std::string(1, static_cast<char>(b)));
      if (it != vocab_bytes.end()) byte_id[b] = it->second;
    }
    if (m.contains("unk_token") && !m["unk_token"].is_null()) {
      const std::string u = m["unk_token"].get<std::string>();
      auto it = token_ids.find(u);
      LOOM_CHECK(it != token_ids.end(), "", "tokenizer '{}': unk_token '{}' is not in the vocabulary", origin, u);
      unk = it->second;
    }
    if (m.contains("merges")) {
      std::int32_t rank = 0;
      for (const json& mj : m["merges"]) {
        std::string a, b;
        if (mj.is_string()) {
          const std::string s = mj.get<std::string>();
          const auto sp = s.find(' ');
          LOOM_CHECK(sp != std::string::npos && s.find(' ', sp + 1) == std::string::npos, "", "tokenizer '{}': merge {} '{}' is not 'a b'", origin, rank, s);
          a = s.substr(0, sp);
          b = s.substr(sp + 1);
        } else {
          LOOM_CHECK(mj.is_array() && mj.size() == 2, "", "tokenizer '{}': merge {} is not a pair", origin, rank);
          a = mj[0].get<std::string>();
          b = mj[1].get<std::string>();
        }
        auto ia = token_ids.find(a), ib = token_ids.find(b), iab = token_ids.find(a + b);
        for (auto [it, name] : {std::pair{ia, &a}, std::pair{ib, &b}})
          LOOM_CHECK(it != token_ids.end(), "", "tokenizer '{}': merge {} uses '{}', which is not in the vocabulary", origin, rank, *name);
        LOOM_CHECK(iab != token_ids.end(), "", "tokenizer '{}': merge {} makes '{}', which is not in the vocabulary", origin, rank, a + b);
        merges.emplace(key(ia->second, ib->second), std::pair{rank, iab->second});  // first (lowest rank) wins
        ++rank;
      }
    }

    // Normalizer, truncation, padding.
    if (j.contains("normalizer") && !j["normalizer"].is_null()) unsupported(fmt::format("normalizer '{}'", type_of(j["normalizer"])));
    if (j.contains("truncation") && !j["truncation"].is_null()) unsupported("truncation");
    if (j.contains("padding") && !j["padding"].is_null()) unsupported("padding");

    // Pre-tokenizer: ByteLevel, or a Sequence of Splits ending in ByteLevel.
    if (!j.contains("pre_tokenizer") || j["pre_tokenizer"].is_null())
      unsupported("a missing pre_tokenizer (byte-level BPE needs ByteLevel)");
    std::vector<json> pts;
    if (type_of(j["pre_tokenizer"]) == "Sequence") {
      for (const json& p : j["pre_tokenizer"]["pretokenizers"]) pts.push_back(p);
    } else {
      pts.push_back(j["pre_tokenizer"]);
    }
    for (std::size_t i = 0; i < pts.size(); ++i) {
      const json& p = pts[i];
      const std::string t = type_of(p);
      Step s;
      if (t == "ByteLevel") {
        if (i + 1 != pts.size()) unsupported("a pre_tokenizer after ByteLevel in the Sequence");
        s.byte_level = true;
        s.add_prefix_space = p.value("add_prefix_space", true);
        if (p.value("use_regex", true)) s.regex = compile(kGpt2Regex, false);
      } else if (t == "Split") {
        const std::string behavior = p.value("behavior", std::string("?"));
        if (behavior != "Isolated") unsupported(fmt::format("Split behavior '{}' (only Isolated)", behavior));
        if (p.value("invert", false)) unsupported("Split with invert");
        const json& pat = p["pattern"];
        if (pat.contains("Regex")) s.regex = compile(pat["Regex"].get<std::string>(), false);
        else if (pat.contains("String")) s.regex = compile(pat["String"].get<std::string>(), true);
        else unsupported("a Split pattern that is neither Regex nor String");
      } else {
        unsupported(fmt::format("pre_tokenizer '{}'", t));
      }
      steps.push_back(s);
    }
    if (steps.empty() || !steps.back().byte_level) unsupported("a pre_tokenizer without ByteLevel (byte-level BPE needs it)");

    // Decoder.
    if (!j.contains("decoder") || type_of(j["decoder"]) != "ByteLevel")
      unsupported(fmt::format("decoder '{}' (only ByteLevel)", j.contains("decoder") && !j["decoder"].is_null() ? type_of(j["decoder"]) : "null"));

    // Added tokens.
    if (j.contains("added_tokens")) {
      for (const json& a : j["added_tokens"]) {
        AddedToken t{a.at("content").get<std::string>(), a.at("id").get<std::int32_t>(), a.value("special", false)};
        for (const char* k : {"lstrip", "rstrip", "single_word"})
          if (a.value(k, false)) unsupported(fmt::format("added token '{}' with {}", t.content, k));
        LOOM_CHECK(!t.content.empty(), "", "tokenizer '{}': added token {} is empty", origin, t.id);
        set_id(t.id, t.content, c2b);
        id_special[t.id] = t.special ? 1 : 0;
        token_ids[t.content] = t.id;
        added_first[static_cast<unsigned char>(t.content[0])] = true;
        added.push_back(std::move(t));
      }
      // Longest first so the first hit at a position is the longest.
      std::stable_sort(added.begin(), added.end(), [](const AddedToken& x, const AddedToken& y) { return x.content.size() > y.content.size(); });
    }
    for (const char* name : {"<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>"}) {
      for (const AddedToken& t : added)
        if (t.special && t.content == name && !eod) eod = t.id;
    }
  }

  // BPE of one pre-token (raw bytes), appended to out.
  void bpe(std::string_view w, std::vector<std::int32_t>& out) const {
    if (ignore_merges) {
      auto it = vocab_bytes.find(std::string(w));
      if (it != vocab_bytes.end()) {
        out.push_back(it->second);
        return;
      }
    }
    const int n = int(w.size());
    std::vector<std::int32_t> ids;
    ids.reserve(n);
    for (int i = 0; i < n; ++i) {
      const std::int32_t id = byte_id[static_cast<unsigned char>(w[i])];
      if (id >= 0) ids.push_back(id);
      else if (unk && !(fuse_unk && !ids.empty() && ids.back() == -2)) ids.push_back(-2);  // placeholder for unk
    }
    const int m = int(ids.size());
    std::vector<int> prev(m), next(m);
    for (int i = 0; i < m; ++i) {
      prev[i] = i - 1;
      next[i] = i + 1 < m ? i + 1 : -1;
    }
    struct Cand {
      std::int32_t rank, pos, new_id;
      bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> q;
    auto push = [&](int pos) {
      if (pos < 0 || next[pos] < 0) return;
      auto it = merges.find(key(ids[pos], ids[next[pos]]));
      if (it != merges.end()) q.push({it->second.first, pos, it->second.second});
    };
    for (int i = 0; i + 1 < m; ++i) push(i);
    std::vector<std::uint8_t> dead(m, 0);
    while (!q.empty()) {
      const Cand c = q.top();
      q.pop();
      if (dead[c.pos] || next[c.pos] < 0) continue;
      auto it = merges.find(key(ids[c.pos], ids[next[c.pos]]));
      if (it == merges.end() || it->second.second != c.new_id || it->second.first != c.rank) continue;
      const int r = next[c.pos];
      ids[c.pos] = c.new_id;
      dead[r] = 1;
      next[c.pos] = next[r];
      if (next[r] >= 0) prev[next[r]] = c.pos;
      push(prev[c.pos]);
      push(c.pos);
    }
    for (int i = 0; i < m; ++i)
      if (!dead[i]) out.push_back(ids[i] == -2 ? *unk : ids[i]);
  }

  void bpe_cached(std::string_view w, std::vector<std::int32_t>& out) const {
    if (w.size() > 64) return bpe(w, out);
    std::string k(w);
    {
      std::lock_guard<std::mutex> lock(cache_mu);
      auto it = cache.find(k);
      if (it != cache.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    const std::size_t first = out.size();
    bpe(w, out);
    std::lock_guard<std::mutex> lock(cache_mu);
    if (cache.size() >= (std::size_t(1) << 18)) cache.clear();
    cache.emplace(std::move(k), std::vector<std::int32_t>(out.begin() + std::ptrdiff_t(first), out.end()));
  }

  // Isolated split of `s` by `re`: matches and the gaps between them, empty pieces dropped.
  static void split(const pcre2_code* re, pcre2_match_data* md, const std::string& s, std::vector<std::string>& out) {
    const auto* subj = reinterpret_cast<PCRE2_SPTR>(s.data());
    const std::size_t len = s.size();
    std::size_t last = 0, start = 0;
    while (start <= len) {
      const int rc = pcre2_match(re, subj, len, start, 0, md, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        std::array<PCRE2_UCHAR, 256> msg{};
        pcre2_get_error_message(rc, msg.data(), msg.size());
        throw Error(fmt::format("tokenizer: PCRE2 match failed: {}", reinterpret_cast<const char*>(msg.data())));
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      const std::size_t ms = ov[0], me = ov[1];
      if (me > ms) {
        if (ms > last) out.emplace_back(s, last, ms - last);
        out.emplace_back(s, ms, me - ms);
        last = me;
        start = me;
      } else {
        start = ms + 1;
        while (start < len && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) ++start;
      }
    }
    if (last < len) out.emplace_back(s, last, len - last);
  }

  // Pre-tokenise and BPE one stretch of text without added tokens.
  void encode_segment(std::string_view text, pcre2_match_data* md, std::vector<std::int32_t>& out) const {
    if (text.empty()) return;
    std::vector<std::string> pieces{std::string(text)}, next;
    for (const Step& s : steps) {
      next.clear();
      for (std::string& p : pieces) {
        if (s.byte_level && s.add_prefix_space && p[0] != ' ') p.insert(p.begin(), ' ');
        if (s.regex) split(s.regex, md, p, next);
        else next.push_back(std::move(p));
      }
      pieces.swap(next);
    }
    for (const std::string& p : pieces) bpe_cached(p, out);
  }

  void encode(std::string_view text, std::vector<std::int32_t>& out) const {
    // Match data sized for the largest pattern.
    pcre2_match_data* md = pcre2_match_data_create(16, nullptr);
    struct Free {
      pcre2_match_data* p;
      ~Free() { pcre2_match_data_free(p); }
    } guard{md};
    std::size_t seg = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (!added_first[static_cast<unsigned char>(text[i])]) continue;
      for (const AddedToken& t : added) {
        if (text.compare(i, t.content.size(), t.content) == 0) {
          encode_segment(text.substr(seg, i - seg), md, out);
          out.push_back(t.id);
          i += t.content.size() - 1;
          seg = i + 1;
          break;
        }
      }
    }
    encode_segment(text.substr(seg), md, out);
  }
};

HfTokenizer::HfTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HfTokenizer::HfTokenizer(HfTokenizer&&) noexcept = default;
HfTokenizer& HfTokenizer::operator=(HfTokenizer&&) noexcept = default;
HfTokenizer::~HfTokenizer() = default;

HfTokenizer HfTokenizer::from_json(std::string_view text, const std::string& origin) {
  auto impl = std::make_unique<Impl>();
  impl->origin = origin;
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(fmt::format("tokenizer '{}' is not valid JSON: {}", origin, e.what()), "give the path of a Hugging Face tokenizer.json");
  }
  try {
    impl->parse(j);
  } catch (const json::exception& e) {
    throw Error(fmt::format("tokenizer '{}': unexpected JSON structure: {}", origin, e.what()), "give the path of a Hugging Face tokenizer.json");
  }
  return HfTokenizer(std::move(impl));
}

HfTokenizer HfTokenizer::load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  LOOM_CHECK(f.good(), "check the path and its permissions", "cannot open tokenizer '{}'", path);
  std::stringstream ss;
  ss << f.rdbuf();
  return from_json(ss.str(), path);
}

std::vector<std::int32_t> HfTokenizer::encode(std::string_view text) const {
  std::vector<std::int32_t> out;
  impl_->encode(text, out);
  return out;
}

void HfTokenizer::encode_append(std::string_view text, std::vector<std::int32_t>& out) const { impl_->encode(text, out); }

std::string HfTokenizer::decode(std::span<const std::int32_t> ids, bool skip_special) const {
  std::string out;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const std::int32_t t = ids[i];
    LOOM_CHECK(t >= 0 && std::size_t(t) < impl_->id_bytes.size() && impl_->id_known[t],
               "the tokens come from a different tokenizer", "tokenizer '{}': token {} at position {} is not in the vocabulary",
               impl_->origin, t, i);
    if (skip_special && impl_->id_special[t]) continue;
    out += impl_->id_bytes[t];
  }
  return out;
}

std::int64_t HfTokenizer::vocab_size() const { return std::int64_t(impl_->id_bytes.size()); }

std::optional<std::int32_t> HfTokenizer::token_to_id(std::string_view token) const {
  auto it = impl_->token_ids.find(std::string(token));
  if (it == impl_->token_ids.end()) return std::nullopt;
  return it->second;
}

std::optional<std::int32_t> HfTokenizer::eod() const { return impl_->eod; }

}  // namespace loom
