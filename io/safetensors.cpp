// io/safetensors.cpp — the safetensors reader and writer (see safetensors.h).
//
// The header is parsed once at open; read() seeks to one tensor and reads only its
// bytes. Values are little-endian on disk and loom only builds for little-endian hosts.
#include "io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <tuple>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/error.h"

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

namespace loom {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// The Rust reference refuses headers above 100 MB; so do we (a corrupt length
// would otherwise ask for gigabytes).
constexpr std::uint64_t kMaxHeader = 100'000'000;

const char* kCorruptHint = "the file is truncated or not a safetensors file: export or download it again";

// Bytes per element of every dtype the spec names (0: unknown).
std::uint64_t dtype_size(const std::string& d) {
  static const std::map<std::string, std::uint64_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
      {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"I64", 8},     {"U64", 8}, {"F64", 8}};
  const auto it = sizes.find(d);
  return it == sizes.end() ? 0 : it->second;
}

// One header entry, checked for the keys and types the spec requires.
SafetensorsEntry parse_entry(const std::string& path, const std::string& name, const json& v) {
  LOOM_CHECK(
      v.is_object() && v.contains("dtype") && v.contains("shape") && v.contains("data_offsets"), kCorruptHint,
      "safetensors file '{}': tensor '{}' needs dtype, shape and data_offsets in the header", path, name);
  SafetensorsEntry e{name, v.at("dtype").get<std::string>(), {}, 0, 0};
  const std::uint64_t size = dtype_size(e.dtype);
  LOOM_CHECK(size > 0, kCorruptHint, "safetensors file '{}': tensor '{}' has unknown dtype '{}'", path, name,
             e.dtype);
  std::uint64_t numel = 1;
  for (const json& d : v.at("shape")) {
    const auto n = d.get<std::int64_t>();
    LOOM_CHECK(n >= 0 && (n == 0 || numel <= (std::uint64_t(1) << 62) / std::uint64_t(n)), kCorruptHint,
               "safetensors file '{}': tensor '{}' has an invalid extent {}", path, name, n);
    e.shape.push_back(n);
    numel *= std::uint64_t(n);
  }
  const json& off = v.at("data_offsets");
  LOOM_CHECK(off.is_array() && off.size() == 2, kCorruptHint,
             "safetensors file '{}': tensor '{}': data_offsets must be [begin, end]", path, name);
  e.begin = off[0].get<std::uint64_t>();
  e.end = off[1].get<std::uint64_t>();
  LOOM_CHECK(e.begin <= e.end && e.end - e.begin == numel * size, kCorruptHint,
             "safetensors file '{}': tensor '{}' ({} {}) spans bytes [{}, {}), not {} bytes", path, name,
             e.dtype, shape_string(e.shape), e.begin, e.end, numel * size);
  return e;
}

// The spec: the buffer is entirely indexed, without holes or overlaps.
void check_tiling(const std::string& path, std::vector<SafetensorsEntry>& entries, std::uint64_t buffer) {
  // (begin, end): an empty tensor sits before a non-empty one at the same offset.
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  std::uint64_t at = 0;
  for (const SafetensorsEntry& e : entries) {
    LOOM_CHECK(
        e.begin == at, kCorruptHint,
        "safetensors file '{}': tensor '{}' starts at byte {} of the data, expected {} (tensors must be "
        "contiguous and must not overlap)",
        path, e.name, e.begin, at);
    at = e.end;
  }
  LOOM_CHECK(at == buffer, kCorruptHint,
             "safetensors file '{}': the header indexes {} data bytes but the file holds {}", path, at,
             buffer);
}

}  // namespace

SafetensorsReader SafetensorsReader::open(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  LOOM_CHECK(f.good(), "check the path", "cannot open safetensors file '{}'", path);
  std::error_code ec;
  const std::uint64_t file_size = fs::file_size(path, ec);
  LOOM_CHECK(!ec, "check the path", "cannot stat safetensors file '{}': {}", path, ec.message());
  unsigned char len_bytes[8] = {};
  LOOM_CHECK(file_size >= 8 && f.read(reinterpret_cast<char*>(len_bytes), 8), kCorruptHint,
             "safetensors file '{}' is {} bytes, too short for the 8-byte header length", path, file_size);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  LOOM_CHECK(n <= kMaxHeader && n <= file_size - 8, kCorruptHint,
             "safetensors file '{}': header length {} does not fit the file ({} bytes)", path, n, file_size);
  std::string header(n, '\0');
  LOOM_CHECK(f.read(header.data(), std::streamsize(n)), kCorruptHint,
             "safetensors file '{}': cannot read the header", path);

  SafetensorsReader r;
  r.path_ = path;
  r.data_start_ = 8 + n;
  try {
    const json h = json::parse(header);
    LOOM_CHECK(h.is_object(), kCorruptHint, "safetensors file '{}': the header is not a JSON object", path);
    for (const auto& [name, v] : h.items()) {
      if (name == "__metadata__") {
        LOOM_CHECK(v.is_object(), kCorruptHint, "safetensors file '{}': __metadata__ is not an object", path);
        for (const auto& [k, s] : v.items()) r.metadata_[k] = s.get<std::string>();
      } else {
        r.entries_.push_back(parse_entry(path, name, v));
      }
    }
  } catch (const json::exception& e) {
    throw Error(fmt::format("safetensors file '{}': bad header: {}", path, e.what()), kCorruptHint);
  }
  check_tiling(path, r.entries_, file_size - r.data_start_);
  for (std::size_t i = 0; i < r.entries_.size(); ++i) r.index_[r.entries_[i].name] = i;
  return r;
}

bool SafetensorsReader::has(const std::string& name) const { return index_.count(name) > 0; }

const SafetensorsEntry& SafetensorsReader::entry(const std::string& name) const {
  const auto it = index_.find(name);
  LOOM_CHECK(it != index_.end(), "the file must hold this tensor", "safetensors file '{}' has no tensor '{}'",
             path_, name);
  return entries_[it->second];
}

std::vector<float> SafetensorsReader::read(const std::string& name) const {
  const SafetensorsEntry& e = entry(name);
  LOOM_CHECK(
      e.dtype == "F32" || e.dtype == "F16" || e.dtype == "BF16", "convert the tensor to F32, F16 or BF16",
      "safetensors file '{}': tensor '{}' is {}; only F32, F16 and BF16 can be read", path_, name, e.dtype);
  const std::uint64_t bytes = e.end - e.begin;
  std::vector<char> raw(bytes);
  std::ifstream f(path_, std::ios::binary);
  f.seekg(std::streamoff(data_start_ + e.begin));
  LOOM_CHECK(f.good() && f.read(raw.data(), std::streamsize(bytes)), kCorruptHint,
             "safetensors file '{}': cannot read tensor '{}' (the file changed or is truncated)", path_,
             name);
  const std::size_t width = e.dtype == "F32" ? 4 : 2;
  std::vector<float> out(bytes / width);
  if (e.dtype == "F32") {
    std::memcpy(out.data(), raw.data(), bytes);
    return out;
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    std::uint16_t bits;
    std::memcpy(&bits, raw.data() + 2 * i, 2);
    out[i] = e.dtype == "F16" ? to_float(f16{bits}) : to_float(bf16{bits});
  }
  return out;
}

void write_safetensors(const std::string& path, const std::vector<NamedArray>& tensors,
                       const std::map<std::string, std::string>& metadata, Overwrite overwrite) {
  // ordered_json: the header lists tensors in data order, which is easier to read.
  nlohmann::ordered_json h;
  if (!metadata.empty()) h["__metadata__"] = metadata;
  std::uint64_t at = 0;
  std::vector<std::uint64_t> bytes;
  for (const NamedArray& t : tensors) {
    LOOM_CHECK(!t.name.empty() && t.name != "__metadata__" && !h.contains(t.name), "",
               "write_safetensors '{}': invalid or repeated tensor name '{}'", path, t.name);
    std::uint64_t numel = 1;
    for (auto d : t.shape) {
      LOOM_CHECK(d >= 0, "", "write_safetensors '{}': '{}' has a negative extent", path, t.name);
      numel *= std::uint64_t(d);
    }
    LOOM_CHECK(t.data != nullptr || numel == 0, "", "write_safetensors '{}': '{}' has no data", path, t.name);
    h[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {at, at + 4 * numel}}};
    bytes.push_back(4 * numel);
    at += 4 * numel;
  }
  std::string header = h.dump();
  header.append((8 - header.size() % 8) % 8, ' ');  // as the reference: data starts 8-byte aligned

  AtomicWrite out(path, overwrite, "write_safetensors");
  {
    std::ofstream f(out.tmp_path(), std::ios::binary);
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(std::uint64_t(header.size()) >> (8 * i));
    f.write(reinterpret_cast<const char*>(len), 8);
    f.write(header.data(), std::streamsize(header.size()));
    for (std::size_t i = 0; i < tensors.size(); ++i)
      if (bytes[i] > 0) f.write(reinterpret_cast<const char*>(tensors[i].data), std::streamsize(bytes[i]));
    f.close();
    LOOM_CHECK(!f.fail(), "check the free disk space and permissions", "write_safetensors: cannot write '{}'",
               out.tmp_path());
  }
  out.commit();
}

}  // namespace loom
