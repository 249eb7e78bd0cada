// core/range.h — a contiguous range of elements, and how n elements split over ranks.
//
// ZeRO-1 (optimizer/zero_adamw.h) gives each data-parallel rank the part of every gradient
// bucket that shard_range() names: contiguous, in rank order, sizes differing by at most
// one, so nothing needs padding. The communicators' uneven reduce-scatter and all-gather
// (parallel/communicator.h) split by the same function.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace loom {

struct Range {
  std::int64_t begin = 0, end = 0;  // [begin, end)
  std::int64_t size() const { return end - begin; }
  bool operator==(const Range&) const = default;
};

// Elements [r.begin, r.end) of a flat tensor, any dtype.
inline Tensor flat_range(Tensor flat, Range r) {
  flat.ptr = static_cast<char*>(flat.ptr) + std::size_t(r.begin) * dtype_size(flat.dtype);
  flat.shape = Shape{r.size()};
  return flat;
}

// Part r of `parts` of [0, n): the first n % parts parts have one element more.
inline Range shard_range(std::int64_t n, int parts, int r) {
  const std::int64_t base = n / parts, extra = n % parts;
  const std::int64_t begin = std::int64_t(r) * base + (r < extra ? r : extra);
  return {begin, begin + base + (r < extra ? 1 : 0)};
}

}  // namespace loom
