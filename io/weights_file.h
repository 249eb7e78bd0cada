// io/weights_file.h — the weights file: one HDF5 file, one float32 dataset per
// parameter (full, unsharded shape), named the GPT-2 / Hugging Face way by the
// caller ("wte", "wpe", "h.0.ln_1.weight", ...). Details in docs/data-format.md.
//
// Datasets sit at the root of the file and carry the public (dotted) names
// verbatim: no name mapping, h5py reads f["h.0.ln_1.weight"]. File attributes:
// magic "loom-weights", format_version 1, config (JSON text from the caller), architecture
// (the config's "architecture" value, when it has one),
// created_by. write_weights writes PATH.tmp and renames it; the caller owns the
// float arrays. WeightsReader is move-only, reads on demand, not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/files.h"

namespace loom {

inline constexpr const char* kWeightsMagic = "loom-weights";
inline constexpr std::int64_t kWeightsFormatVersion = 1;

struct NamedArray {
  std::string name;                 // non-empty, no '/', unique within the file
  std::vector<std::int64_t> shape;  // {} is a scalar
  const float* data = nullptr;      // numel(shape) values, row-major
};

// Writes every array, in order, plus the attributes. config_json must be valid JSON.
// Replaces an existing file by default (a training run re-saving its weights);
// Overwrite::no refuses instead. Either way the old file stays intact until the
// new one is complete. `attrs`: more string attributes for the root (the embedded
// tokenizer, io/embedded_tokenizer.h).
void write_weights(const std::string& path, const std::vector<NamedArray>& arrays, const std::string& config_json,
                   Overwrite overwrite = Overwrite::yes, const std::map<std::string, std::string>& attrs = {});

class WeightsReader {
public:
  static WeightsReader open(const std::string& path);
  WeightsReader(WeightsReader&&) noexcept;
  WeightsReader& operator=(WeightsReader&&) noexcept;
  ~WeightsReader();

  const std::string& path() const;
  const std::string& config_json() const;
  // The `architecture` attribute ("gpt2", ...; empty when absent), written from the config's
  // "architecture" key: what a model checks before loading the file.
  const std::string& architecture() const;
  // A string attribute of the root (nullopt when absent).
  std::optional<std::string> string_attr(const std::string& name) const;
  bool has(const std::string& name) const;
  // Parameter names in file order (creation order when the file tracks it, as
  // write_weights' files do; name order otherwise).
  std::vector<std::string> names() const;
  std::vector<std::int64_t> shape(const std::string& name) const;
  // Reads `name` (converted to float32) into out; count must equal its numel.
  void read(const std::string& name, float* out, std::int64_t count) const;
  // Same, but the stored shape must equal expected_shape (the error names both).
  void read(const std::string& name, const std::vector<std::int64_t>& expected_shape, float* out) const;

private:
  struct Impl;
  explicit WeightsReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// "[768, 2304]": for messages.
std::string shape_string(const std::vector<std::int64_t>& shape);

}  // namespace loom
