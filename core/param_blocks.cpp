// core/param_blocks.cpp — see param_blocks.h.
#include "core/param_blocks.h"

#include "core/error.h"

namespace loom {

std::vector<GlobalBlock> global_blocks(const ParamSpec& s, std::int64_t begin, std::int64_t end) {
  LOOM_CHECK(0 <= begin && begin <= end && end <= s.shape.numel(), "",
             "parameter {}: local elements [{}, {}) outside [0, {})", s.name, begin, end, s.shape.numel());
  const std::int64_t local_cols = s.shape.rank() == 2 ? s.shape[1] : 1;
  const Shape g = global_shape(s);
  const std::int64_t global_cols = g.rank() == 2 ? g[1] : 1;
  const std::int64_t stored_rows = stored_shape(s)[0];
  std::vector<GlobalBlock> out;
  if (begin == end) return out;
  // One local row's part [c0, c1) at a time; extend the last block when this row continues it.
  auto add = [&](std::int64_t r, std::int64_t c0, std::int64_t c1) {
    const std::int64_t first = r * local_cols + c0;
    const std::int64_t gi = global_index(s, first);
    LOOM_CHECK(global_index(s, first + (c1 - c0 - 1)) == gi + (c1 - c0 - 1), "",
               "internal: parameter {}: a local row is not contiguous in the global tensor", s.name);
    const std::int64_t row = gi / global_cols, col = gi % global_cols;
    if (row >= stored_rows) return;  // padding
    if (!out.empty()) {
      GlobalBlock& b = out.back();
      if (b.col == col && b.cols == c1 - c0 && b.row + b.rows == row && b.local + b.rows * local_cols == first) {
        ++b.rows;
        return;
      }
    }
    out.push_back({row, col, 1, c1 - c0, first, local_cols});
  };
  const std::int64_t r0 = begin / local_cols, r1 = (end - 1) / local_cols;
  for (std::int64_t r = r0; r <= r1; ++r)
    add(r, r == r0 ? begin % local_cols : 0, r == r1 ? (end - 1) % local_cols + 1 : local_cols);
  return out;
}

}  // namespace loom
