// core/shape.h — a tensor's extents, up to 4 dimensions, row-major (last dim fastest).
//
// Glossary used across loom: B batch, T sequence, C channels, H heads, D head
// size (C / H), V vocabulary (Vp padded), F ffn hidden size; tp/pp/dp the
// tensor/pipeline/data parallel degrees.
#pragma once

#include <array>
#include <cstdint>
#include <vector>
#include <initializer_list>
#include <string>

#include <fmt/format.h>

#include "core/error.h"

namespace loom {

class Shape {
public:
  static constexpr int kMaxRank = 4;

  Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims) {
    LOOM_CHECK(dims.size() <= kMaxRank, "", "Shape: rank {} exceeds the maximum {}", dims.size(), kMaxRank);
    for (auto d : dims) {
      LOOM_CHECK(d >= 0, "", "Shape: negative extent {}", d);
      dims_[rank_++] = d;
    }
  }

  int rank() const { return rank_; }
  std::int64_t operator[](int i) const { return dims_[i < 0 ? rank_ + i : i]; }
  std::int64_t numel() const {
    std::int64_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[i];
    return n;
  }
  // Product of all dims but the last: the number of "rows" an op over the last dim sees.
  std::int64_t rows() const { return rank_ == 0 ? 1 : numel() / dims_[rank_ - 1]; }
  std::int64_t last() const { return rank_ == 0 ? 1 : dims_[rank_ - 1]; }
  std::vector<std::int64_t> dims() const { return {dims_.begin(), dims_.begin() + rank_}; }  // for files, messages

  bool operator==(const Shape& o) const {
    if (rank_ != o.rank_) return false;
    for (int i = 0; i < rank_; ++i)
      if (dims_[i] != o.dims_[i]) return false;
    return true;
  }
  bool operator!=(const Shape& o) const { return !(*this == o); }

  std::string str() const {
    std::string s = "(";
    for (int i = 0; i < rank_; ++i) s += fmt::format("{}{}", i ? "," : "", dims_[i]);
    return s + ")";
  }

private:
  std::array<std::int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

}  // namespace loom
