// core/param_blocks.h — which rectangles of a parameter's global tensor a run of this
// rank's local elements is.
//
// Checkpoints store every tensor global and layout-free (docs/checkpoint-format.md). A
// rank writes the elements it owns — its tp shard, or with ZeRO-1 only the run of it whose
// optimizer state it keeps — and reads back the elements another layout gives it. Both are
// a range [begin, end) of local (row-major) elements, which maps onto a few rectangles of
// the global tensor: a partial first row, whole rows, a partial last row, and whole rows
// split again wherever the global rows stop being consecutive (c_attn's q | k | v blocks).
// Computed from global_index alone, so every Shard kind works without a case of its own.
// 1-D tensors are columns here: element i is row i, one column wide.
#pragma once

#include <cstdint>
#include <vector>

#include "core/param_spec.h"

namespace loom {

// Global rows [row, row + rows) x columns [col, col + cols) of the *stored* tensor
// (stored_shape: padding rows never appear); they hold local elements
// local + r * local_stride + c for r < rows, c < cols.
struct GlobalBlock {
  std::int64_t row = 0, col = 0, rows = 0, cols = 0;
  std::int64_t local = 0, local_stride = 0;

  std::int64_t numel() const { return rows * cols; }
};

// The blocks covering local elements [begin, end) of `s`, in local order, each as large
// as possible. Elements in padding rows (beyond stored_rows) are left out.
std::vector<GlobalBlock> global_blocks(const ParamSpec& s, std::int64_t begin, std::int64_t end);

}  // namespace loom
