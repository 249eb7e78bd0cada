// optimizer/grad_sync.h — gradient synchronisation: the data-parallel sum, overlapped with
// backward, and the sum of tied copies over the pipeline stages that hold them.
//
// DataParallelGrads: the model's gradient buckets (StageModel::grad_buckets, flat views in
// the order backward completes them) are summed over the dp group. The model reports each
// time it finished one micro-batch's gradients in a bucket (bucket_done, wired to its
// bucket hook); after the step's last micro-batch, the bucket's non-blocking all-reduce
// starts at once, while backward goes on with the next layers. finish() waits for all.
// Each micro-batch's loss gradient is scaled by 1 / (target tokens of the global batch),
// so the sum is the gradient of the global mean. BucketReadiness is the bookkeeping of when
// a bucket may start, shared with ZeRO-1's reduce-scatter (optimizer/zero_adamw.h).
//
// TiedGrads: the copies of a tied group (GPT's wte on the first and last stage) get the
// sum of all copies' gradients, added in stage order on every holder, so the copies stay
// bit-identical. One scratch buffer per other holder, allocated here.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/memory_plan.h"
#include "parallel/communicator.h"

namespace loom {

// When each gradient bucket's reduction starts: as soon as its last micro-batch is in, or,
// for a deferred bucket, only at start_rest(). `start(b)` issues the reduction.
class BucketReadiness {
public:
  BucketReadiness(std::vector<bool> deferred, std::function<void(std::size_t)> start);
  // A new step of `microbatches` per chunk: every bucket will be reported that many times.
  void begin_step(int microbatches);
  void bucket_done(std::size_t bucket);
  void start_rest();  // every bucket not started yet (deferred ones, or ones no backward reported)

private:
  std::vector<bool> deferred_, started_;
  std::vector<int> done_;
  std::function<void(std::size_t)> start_;
  int microbatches_ = 1;
};

// `reduce_dtype` (parallel.grad_reduce_dtype): f32 reduces the f32 gradients in place; a
// 16-bit dtype rounds each bucket into a staging copy, all-reduces that (half the bytes,
// each partial sum rounded to the dtype) and widens the result back in finish().
class DataParallelGrads {
public:
  DataParallelGrads(Backend& be, Communicator& dp, std::vector<Tensor> buckets, DType reduce_dtype = DType::f32);
  void begin_step(int microbatches) { ready_.begin_step(microbatches); }
  void bucket_done(std::size_t bucket) { ready_.bucket_done(bucket); }
  // Starts the buckets not reported complete (none when every backward ran) and waits for all.
  void finish();
  const MemoryPlan& memory_plan() const { return mem_.plan(); }

private:
  void start(std::size_t b);

  Backend& be_;
  Communicator& dp_;
  std::vector<Tensor> buckets_;
  Allocations mem_;
  std::vector<Tensor> staging_;  // 16-bit reduction: one per bucket; else empty
  BucketReadiness ready_;
};

class TiedGrads {
public:
  struct Group {
    Tensor grad;               // this stage's copy's gradient
    std::vector<int> holders;  // pp ranks holding a copy, ascending (this one among them)
  };
  TiedGrads(Backend& be, Communicator& pp, std::vector<Group> groups);
  void sum();  // collective over the holders of each group
  const MemoryPlan& memory_plan() const { return mem_.plan(); }

private:
  Backend& be_;
  Communicator& pp_;
  std::vector<Group> groups_;
  Allocations mem_;
  std::vector<std::vector<Tensor>> peer_;  // per group: one buffer per holder (own slot empty)
};

}  // namespace loom
