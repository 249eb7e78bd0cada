// layers/stage_model.h — the contract between a model and the training runtime.
//
// A StageModel is the part of a model one pipeline rank holds: `chunks()` pieces
// (1, or V with interleaved 1F1B: chunk v is virtual stage v * pp + stage), each a
// contiguous run of the model's layers. The runtime — the trainer (launch/trainer.h),
// the pipeline executor (schedule/pipeline_executor.h), gradient synchronisation and
// AdamW (optimizer/), the weights file — works through this interface and the
// ParamSpecs (core/param_spec.h) alone; it never names a parameter. GPT (layers/gpt.h)
// implements it; so can an encoder with a masked-LM loss or an encoder-decoder (which
// sends its encoder output alongside the decoder stream: boundary tensors are lists).
//
// Per micro-batch slot (activations of up to slots(chunk) micro-batches in flight are
// kept, one slot each; the executor picks the slot):
//   forward(chunk, mb, slot)  reads inputs(chunk, slot) (received from the previous
//                             virtual stage) or, on virtual stage 0, mb.tokens; writes
//                             outputs(chunk, slot); the chunk holding the loss adds the
//                             micro-batch's summed token losses to an accumulator.
//   backward(chunk, slot, dloss) reads output_grads(chunk) (d loss / d outputs, received
//                             from the next virtual stage; unused on the loss chunk),
//                             writes input_grads(chunk) (to send back; unused on virtual
//                             stage 0), and ADDS dloss * d(summed token losses)/d(param)
//                             to the gradients. The runtime passes dloss = 1 / (target
//                             tokens of the global batch), so accumulated gradients are
//                             the gradient of the global mean whatever the layout.
// Targets < 0 are not targets (padding, unmasked positions): no loss, no gradient.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/memory_plan.h"
#include "core/tensor.h"
#include "layers/param_store.h"

namespace loom {

// One micro-batch on the host: B sequences of T token ids and their targets. A model may
// copy them to the device asynchronously (Backend::upload_async), so the caller leaves
// them unchanged until it next synchronises the backend.
struct MicroBatch {
  const std::int32_t* tokens = nullptr;   // (B, T)
  const std::int32_t* targets = nullptr;  // (B, T); < 0: not a target
  // (B) real tokens of each sequence (1..T), the rest is padding; null: every position is
  // real (token streams). A bidirectional encoder masks the padding out of attention.
  const std::int32_t* lengths = nullptr;
};

class StageModel {
public:
  virtual ~StageModel() = default;

  virtual std::string architecture() const = 0;  // written to weights files, checked on load
  virtual std::string config_json() const = 0;   // the model config, as the weights file stores it
  // A stored config (an older file's, say) in this version's form, with today's defaults
  // for the fields it lacks, so it compares with config_json() key by key.
  virtual std::string canonical_config_json(const std::string& stored) const { return stored; }
  virtual std::int64_t batch() const = 0;        // B of a micro-batch
  virtual std::int64_t seq_len() const = 0;      // T
  // Model FLOPs per trained token, forward + backward, the whole model (not this stage):
  // what tokens/s turns into MFU.
  virtual double flops_per_token() const = 0;

  // ---- parameters: specs (sharding, tied group, tp replication) and flat buffers
  virtual ParamStore& params() = 0;
  // Pipeline stages holding a copy of tied group `group`, ascending (the same on every stage).
  virtual std::vector<int> tied_stages(const std::string& group) const = 0;
  // The parameters pipeline stage `stage` holds, for tp rank `tp_rank` (how stage 0
  // gathers every stage's tensors for a weights file without asking each).
  virtual std::vector<ParamSpec> stage_param_specs(int stage, int tp_rank) const = 0;

  // ---- the pipeline boundary (empty lists where a virtual stage has no neighbour)
  virtual int chunks() const = 0;
  virtual int slots(int chunk) const = 0;
  virtual std::vector<Tensor> inputs(int chunk, int slot) = 0;
  virtual std::vector<Tensor> outputs(int chunk, int slot) = 0;
  virtual std::vector<Tensor> input_grads(int chunk) = 0;
  virtual std::vector<Tensor> output_grads(int chunk) = 0;

  // ---- compute
  virtual void forward(int chunk, const MicroBatch& mb, int slot) = 0;
  virtual void backward(int chunk, int slot, float dloss) = 0;
  // The loss as {sum, count}: the sum is the model's — summed token losses since the last
  // call (reset by it), kept on the device and read once per step or evaluation pass; zero
  // on a rank without the loss. The count is the runtime's: it counts the targets >= 0 of
  // the whole global batch from the data before the step (every rank, no communication),
  // so it can pass dloss = 1 / count to every backward.
  virtual double take_loss_sum() = 0;
  // Classification heads: the targets >= 0 predicted right (the largest logit is the
  // target's) since the last call (reset by it), as take_loss_sum; language models: 0.
  virtual double take_correct() { return 0; }

  // ---- gradient buckets: flat views of the gradient buffer, in the order backward
  // completes them. Every parameter is in exactly one bucket. During backward the model
  // calls the hook with a bucket's index each time it has finished adding one
  // micro-batch's gradients to it (the dp synchronisation starts a bucket's reduction
  // once its last micro-batch is in).
  virtual std::vector<Tensor> grad_buckets() const = 0;
  virtual void set_bucket_hook(std::function<void(std::size_t bucket)> hook) = 0;

  // ---- memory: what the constructor allocated (parameters, gradients, activations,
  // scratch), by category.
  virtual MemoryPlan memory_plan() const = 0;
};

}  // namespace loom
