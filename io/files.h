// io/files.h — what every loom file writer shares: the overwrite policy, writing
// under PATH.tmp and renaming it into place, and CRC-32 checksums.
//
// A file under its final name is therefore always complete: a crash leaves at
// most PATH.tmp behind, never a half-written PATH. CRC-32 is the zlib/PNG one
// (Python: zlib.crc32). Token checksums are defined over the token values as
// little-endian uint32, so they do not depend on the on-disk width (uint16/uint32):
// Python: zlib.crc32(tokens.astype('<u4').tobytes()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace loom {

// Whether a writer may replace an existing file (a boolean trap otherwise).
enum class Overwrite : std::uint8_t { no, yes };

// Write-to-temporary-then-rename. The constructor refuses (loom::Error) when
// `path` exists and overwrite is no, and removes a stale PATH.tmp. Write to
// tmp_path(), then call commit(); a destructor without commit() removes the
// temporary, so an exception on the way out leaves nothing behind.
class AtomicWrite {
public:
  AtomicWrite(std::string path, Overwrite overwrite, const std::string& what);
  ~AtomicWrite();
  AtomicWrite(const AtomicWrite&) = delete;
  AtomicWrite& operator=(const AtomicWrite&) = delete;

  const std::string& path() const { return path_; }
  const std::string& tmp_path() const { return tmp_; }
  void commit();  // rename(tmp, path): atomic on POSIX file systems

private:
  std::string path_, tmp_;
  bool committed_ = false;
};

// Refuses (loom::Error, even under Overwrite::yes) when `output` is the same file as one
// of `inputs` (the same path, or another name of it: a link, "./x"), so a converter never
// replaces the data it reads. An output that does not exist yet is no input.
void check_output_is_not_an_input(const std::string& output, std::span<const std::string> inputs);

// CRC-32 continued over n bytes (start with crc = 0).
std::uint32_t crc32_update(std::uint32_t crc, const void* data, std::size_t n);

// CRC-32 of token values as little-endian uint32, continued from `crc`.
std::uint32_t tokens_crc32(std::uint32_t crc, std::span<const std::int32_t> tokens);
std::uint32_t tokens_crc32(std::uint32_t crc, std::span<const std::uint16_t> tokens);
std::uint32_t tokens_crc32(std::uint32_t crc, std::span<const std::uint32_t> tokens);

}  // namespace loom
