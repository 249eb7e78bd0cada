// optimizer/zero_adamw.h — ZeRO-1 (Megatron's distributed optimizer, fp32): the optimizer
// state sharded over data parallelism.
//
// Every gradient bucket (StageModel::grad_buckets, flat views in backward order) splits
// over the dp ranks by shard_range (core/range.h): dp rank r owns part r of each bucket.
// As backward completes a bucket's last micro-batch, its reduce-scatter starts (overlapped
// with the rest of backward, like the all-reduce of ZeRO-0), in place: this rank's part of
// the bucket gets the sum over dp, the rest of the gradient buffer is left undefined; AdamW then updates only the owned elements, with moments m, v of the owned size
// (memory 1/dp of ZeRO-0's), and each bucket's parameters are all-gathered in place. The
// gradient norm for clipping is summed from the owned shards (each element weighted as its
// parameter: 1/tp when replicated over tp, 0 for a tied copy not counted), over dp, tp and pp.
// Buckets holding a tied copy start only in finish(), after the trainer summed the tied
// copies (TiedGrads) — the sum must precede the reduce-scatter, since afterwards no rank
// holds the whole tied gradient.
// Mixed precision: with 16-bit working parameters this rank also keeps the f32 master
// weights of the elements it owns (laid out like m, v); after the update it rounds them
// into its part of the working parameters, and the all-gather moves 16-bit values.
// `reduce_dtype` (parallel.grad_reduce_dtype): f32 reduces the f32 gradients in place; a
// 16-bit dtype rounds each bucket into a staging copy, reduce-scatters that (half the
// bytes; each partial sum rounds to the dtype) and widens this rank's part back.
#pragma once

#include <vector>

#include "backend/backend.h"
#include "core/config.h"
#include "core/memory_plan.h"
#include "core/param_spec.h"
#include "core/range.h"
#include "optimizer/adamw.h"
#include "optimizer/grad_sync.h"
#include "parallel/communicator.h"

namespace loom {

class ZeroAdamW {
public:
  // params, grads: the flat buffers the specs are packed in; buckets: views of grads.
  ZeroAdamW(Backend& be, std::vector<ParamSpec> specs, Tensor params, Tensor grads, std::vector<Tensor> buckets,
            const OptimConfig& cfg, Communicator& dp, std::vector<Communicator*> model_parallel,
            std::vector<float> norm_weights, DType reduce_dtype = DType::f32);

  void begin_step(int microbatches) { ready_.begin_step(microbatches); }
  void bucket_done(std::size_t bucket) { ready_.bucket_done(bucket); }  // wired to the model's bucket hook
  void finish();                         // starts what is left (tied buckets) and waits
  double grad_norm() const;              // of the reduced gradient, whole model
  // AdamW on the owned elements with every gradient times grad_scale, then the all-gather.
  void update(float lr, std::int64_t step, float grad_scale);
  double step(float lr, std::int64_t step);  // grad_norm, then update with the clipping factor
  MemoryPlan memory_plan() const { return mem_.plan(); }
  Tensor master() const { return master_; }  // this rank's f32 weights, laid out like m, v
  std::int64_t owned() const { return owned_; }  // elements of optimizer state on this rank
  // The owned runs, per parameter (master: the parameters themselves in fp32).
  std::vector<StateSlice> state() const;
  // Every rank's part of the working parameters from its master weights (rounded), then
  // all-gathered over dp: the end of every update, and after a checkpoint wrote the owned
  // master weights (so each rank reads only its part of the weights).
  void params_from_master();

private:
  // An owned run of one parameter: flat elements [flat.begin, flat.end), at `shard` in m_, v_.
  struct Segment {
    std::size_t param;
    Range flat;
    std::int64_t shard;
  };
  struct Bucket {
    Range flat;           // in the flat buffers
    std::int64_t shard;   // where this rank's part starts in m_, v_
    Range mine;           // this rank's part, relative to the bucket
  };
  void start(const Bucket& b);
  Range own(const Bucket& b) const { return {b.flat.begin + b.mine.begin, b.flat.begin + b.mine.end}; }
  Range shard(const Bucket& b) const { return {b.shard, b.shard + b.mine.size()}; }

  Backend& be_;
  std::vector<ParamSpec> specs_;
  Tensor params_, grads_;
  OptimConfig cfg_;
  Communicator& dp_;
  std::vector<Communicator*> mp_;
  std::vector<float> norm_weights_;
  std::vector<Bucket> buckets_;
  BucketReadiness ready_;  // buckets holding a tied copy are deferred to finish()
  std::vector<Segment> segments_;
  std::int64_t owned_ = 0;
  Allocations mem_;
  Tensor m_, v_;     // this rank's shard: owned() elements each
  Tensor master_;    // 16-bit parameters: the owned f32 weights (like m_, v_); else empty
  Tensor staging_;   // 16-bit gradient reduction: the gradients rounded, reduced there
};

}  // namespace loom
