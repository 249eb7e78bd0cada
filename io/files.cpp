// io/files.cpp — AtomicWrite and the CRC-32 helpers (see files.h).
//
// CRC-32 is zlib's crc32(), fed in blocks (its length argument is 32-bit). Token
// checksums widen each value to little-endian uint32 in a small stack buffer.
#include "io/files.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <system_error>

#include <zlib.h>

#include "core/error.h"

namespace loom {

namespace fs = std::filesystem;

void check_output_is_not_an_input(const std::string& output, std::span<const std::string> inputs) {
  std::error_code ec;
  if (!fs::exists(output, ec)) return;
  for (const std::string& in : inputs) {
    std::error_code e2;
    LOOM_CHECK(!fs::equivalent(output, in, e2), "choose another output path; --force never overwrites an input",
               "the output '{}' is the input '{}': writing it would destroy the data being read", output, in);
  }
}

AtomicWrite::AtomicWrite(std::string path, Overwrite overwrite, const std::string& what)
    : path_(std::move(path)), tmp_(path_ + ".tmp") {
  LOOM_CHECK(!path_.empty(), "", "{}: empty output path", what);
  std::error_code ec;
  const bool exists = fs::exists(path_, ec);
  LOOM_CHECK(overwrite == Overwrite::yes || !exists,
             "choose another output path, delete the file, or ask for overwriting (loom-data --force)",
             "{}: '{}' already exists and will not be overwritten", what, path_);
  LOOM_CHECK(!exists || !fs::is_directory(path_, ec), "give a file name, not a directory",
             "{}: '{}' is a directory", what, path_);
  const fs::path parent = fs::path(path_).parent_path();
  LOOM_CHECK(parent.empty() || fs::is_directory(parent, ec), "create the directory first",
             "{}: cannot write '{}': directory '{}' does not exist", what, path_, parent.string());
  fs::remove(tmp_, ec);  // a stale temporary from an interrupted run
}

AtomicWrite::~AtomicWrite() {
  if (!committed_) {
    std::error_code ec;
    fs::remove(tmp_, ec);
  }
}

void AtomicWrite::commit() {
  std::error_code ec;
  fs::rename(tmp_, path_, ec);
  LOOM_CHECK(!ec, "check the permissions of the output directory", "cannot rename '{}' to '{}': {}", tmp_,
             path_, ec.message());
  committed_ = true;
}

std::uint32_t crc32_update(std::uint32_t crc, const void* data, std::size_t n) {
  const auto* p = static_cast<const Bytef*>(data);
  uLong c = crc;
  while (n > 0) {
    const std::size_t block = std::min<std::size_t>(n, std::size_t(1) << 30);
    c = ::crc32(c, p, static_cast<uInt>(block));
    p += block;
    n -= block;
  }
  return static_cast<std::uint32_t>(c);
}

namespace {

template <class T>
std::uint32_t tokens_crc32_impl(std::uint32_t crc, std::span<const T> tokens) {
  std::array<std::uint8_t, 4 * 4096> buf;
  std::size_t i = 0;
  while (i < tokens.size()) {
    const std::size_t n = std::min<std::size_t>(tokens.size() - i, buf.size() / 4);
    for (std::size_t k = 0; k < n; ++k) {
      const auto v = static_cast<std::uint32_t>(tokens[i + k]);
      buf[4 * k + 0] = std::uint8_t(v);
      buf[4 * k + 1] = std::uint8_t(v >> 8);
      buf[4 * k + 2] = std::uint8_t(v >> 16);
      buf[4 * k + 3] = std::uint8_t(v >> 24);
    }
    crc = crc32_update(crc, buf.data(), 4 * n);
    i += n;
  }
  return crc;
}

}  // namespace

std::uint32_t tokens_crc32(std::uint32_t crc, std::span<const std::int32_t> tokens) {
  return tokens_crc32_impl(crc, tokens);
}
std::uint32_t tokens_crc32(std::uint32_t crc, std::span<const std::uint16_t> tokens) {
  return tokens_crc32_impl(crc, tokens);
}
std::uint32_t tokens_crc32(std::uint32_t crc, std::span<const std::uint32_t> tokens) {
  return tokens_crc32_impl(crc, tokens);
}

}  // namespace loom
