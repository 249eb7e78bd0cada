// core/param_spec.cpp — global shapes and indices of sharded parameters.
#include "core/param_spec.h"

#include "core/error.h"

namespace loom {

std::uint64_t param_stream(const std::string& name) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

Shape global_shape(const ParamSpec& s) {
  const Shard& h = s.shard;
  if (h.split == Shard::Split::none || h.parts == 1) return s.shape;
  const int dim = h.split == Shard::Split::rows ? 0 : s.shape.rank() - 1;
  LOOM_CHECK(s.shape.rank() >= 1 && s.shape.rank() <= 2, "", "parameter {}: only 1-D and 2-D tensors can be sharded",
             s.name);
  if (s.shape.rank() == 1) return Shape{s.shape[0] * h.parts};
  return dim == 0 ? Shape{s.shape[0] * h.parts, s.shape[1]} : Shape{s.shape[0], s.shape[1] * h.parts};
}

Shape stored_shape(const ParamSpec& s) {
  Shape g = global_shape(s);
  if (s.stored_rows < 0) return g;
  LOOM_CHECK(s.stored_rows <= g[0], "", "parameter {}: stored_rows {} exceeds its {} rows", s.name, s.stored_rows, g[0]);
  return g.rank() == 1 ? Shape{s.stored_rows} : Shape{s.stored_rows, g[1]};
}

std::int64_t global_index(const ParamSpec& s, std::int64_t i) {
  const Shard& h = s.shard;
  if (h.split == Shard::Split::none || h.parts == 1) return i;
  const std::int64_t cols = s.shape.rank() == 2 ? s.shape[1] : 1;
  const std::int64_t r = i / cols, c = i % cols;
  if (h.split == Shard::Split::cols) return r * cols * h.parts + std::int64_t(h.index) * cols + c;
  // rows, inside row blocks: local block b holds rows [start_b, start_b + lb) of this
  // rank's share of global block b, which starts at start_b * parts (every block splits
  // into parts equal shares). Block 0 has lead_block_factor units of u rows, the others one.
  const std::int64_t u = s.shape[0] / h.row_units(), lead = std::int64_t(h.lead_block_factor) * u;
  const std::int64_t b = r < lead ? 0 : 1 + (r - lead) / u;
  const std::int64_t start = b == 0 ? 0 : lead + (b - 1) * u, lb = b == 0 ? lead : u, within = r - start;
  return (start * h.parts + std::int64_t(h.index) * lb + within) * cols + c;
}

}  // namespace loom
