// io/safetensors.h — the safetensors format (https://github.com/huggingface/safetensors),
// read and written by hand: an 8-byte little-endian header length N, N bytes of JSON
// {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
// then the byte buffer the offsets index (relative to its start).
//
// The reader checks what the spec demands before anything is read: the header fits
// the file, every entry's byte count equals its shape times its dtype's size, and the
// offsets tile the buffer exactly (contiguous, no overlap, no hole, nothing past the
// end), so a truncated or corrupt file is refused at open, naming the file. F32, F16 and
// BF16 tensors read widened to float; other dtypes are listed but refused on read.
// The writer writes F32 only, in the caller's order, via PATH.tmp and a rename.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "io/files.h"
#include "io/weights_file.h"  // NamedArray

namespace loom {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;                 // "F32", "BF16", ...
  std::vector<std::int64_t> shape;   // {} is a scalar
  std::uint64_t begin = 0, end = 0;  // byte offsets in the data buffer
};

class SafetensorsReader {
 public:
  static SafetensorsReader open(const std::string& path);

  const std::string& path() const { return path_; }
  // Every tensor, in data-offset order.
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool has(const std::string& name) const;
  const SafetensorsEntry& entry(const std::string& name) const;  // throws naming the tensor and file
  // The tensor's values widened to float32 (F32, F16, BF16; others throw naming the dtype).
  std::vector<float> read(const std::string& name) const;

 private:
  std::string path_;
  std::uint64_t data_start_ = 0;  // 8 + header length
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Writes `tensors` as F32, data in the given order, with an optional "__metadata__" map.
// Refuses an existing `path` unless overwrite is yes; either way the old file stays
// intact until the new one is complete.
void write_safetensors(const std::string& path, const std::vector<NamedArray>& tensors,
                       const std::map<std::string, std::string>& metadata, Overwrite overwrite);

}  // namespace loom
