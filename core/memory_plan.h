// core/memory_plan.h — bytes by category, made from the allocations themselves.
//
// Every owner of device memory (a stage model, the optimizer, the gradient
// synchronisation) allocates through an Allocations list, which records each
// buffer under a category as it allocates it; its plan() is therefore the very
// list of buffers allocated, so plan and allocation cannot drift (tests check the
// plan against the allocator's live bytes, to the byte). Categories merge by name,
// in first-seen order.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/buffer.h"

namespace loom {

struct MemoryPlan {
  std::vector<std::pair<std::string, std::size_t>> items;

  void add(const std::string& category, std::size_t bytes) {
    for (auto& [name, b] : items)
      if (name == category) { b += bytes; return; }
    items.push_back({category, bytes});
  }
  void add(const MemoryPlan& other) {
    for (auto& [name, bytes] : other.items) add(name, bytes);
  }
  std::size_t total() const {
    std::size_t t = 0;
    for (auto& [name, bytes] : items) t += bytes;
    return t;
  }
};

// The final weights file's host copy (launch/model_io.h save_weights) is gathered after
// the checkpoint snapshot is freed (Checkpointer::release_snapshot): at the end a rank holds
// one or the other, never both, so the plan (a sum) counts the weights file only by what
// it holds beyond the snapshot. loom-train's plan and plan/loom_memory.h both use these.
inline const char* const kWeightsFilePlanName = "weights file (host; snapshot freed first)";
inline std::size_t weights_file_beyond_snapshot(std::size_t weights_bytes, std::size_t snapshot_bytes) {
  return weights_bytes > snapshot_bytes ? weights_bytes - snapshot_bytes : 0;
}

// Owns the buffers it hands out views of; plan() lists what it allocated.
class Allocations {
public:
  explicit Allocations(Allocator& a) : alloc_(&a) {}
  Allocations(Allocations&&) = default;
  Allocations& operator=(Allocations&&) = default;

  Tensor alloc(const std::string& category, Shape shape, DType dtype = DType::f32) {
    buffers_.emplace_back(*alloc_, shape, dtype);
    plan_.add(category, buffers_.back().bytes());
    return buffers_.back().tensor();
  }
  const MemoryPlan& plan() const { return plan_; }

private:
  Allocator* alloc_;
  std::vector<Buffer> buffers_;
  MemoryPlan plan_;
};

}  // namespace loom
