// layers/vocab_parallel_loss.h — cross-entropy over vocabulary-parallel logits (Megatron's
// vocab_parallel_cross_entropy), every reduction on device tensors.
//
// logits (N, Vs): this tp rank's columns [vocab_start, vocab_start + Vs) of the padded
// vocabulary; ids >= vocab are padding and excluded. Forward: the row max over the
// shard, all-reduced (max) over tp; the shard's sum of exp(logit - max) and the target
// logit, all-reduced (sum) over tp; then lse = max + log(sum) is saved and
// `losses` (N) ACCUMULATES lse - target logit, so the caller reads one total per step.
// The logits are never gathered. Targets < 0 add no loss and get no gradient.
// Backward: dlogits (=, may alias logits) = dloss * (softmax - onehot).
#pragma once

#include "backend/backend.h"
#include "parallel/communicator.h"

namespace loom {

struct VocabParallelLoss {
  Communicator* tp = nullptr;
  std::int64_t vocab_start = 0, vocab = 0;

  struct Saved {
    Tensor max, stats, lse;  // (N), (2, N), (N)
  };

  void forward(Backend& be, Tensor losses, Tensor logits, TokenView targets, const Saved& s) const {
    be.cross_entropy_shard_max(s.max, logits, vocab_start, vocab);
    tp->all_reduce(s.max, ReduceOp::max);
    be.cross_entropy_shard_sumexp(s.stats, logits, s.max, targets, vocab_start, vocab);
    tp->all_reduce(s.stats);  // sum of exp over the whole vocabulary; the target logit from its shard
    be.cross_entropy_loss(s.lse, losses, s.max, s.stats, targets);
  }

  void backward(Backend& be, Tensor dlogits, Tensor logits, TokenView targets, const Saved& s, float dloss) const {
    be.cross_entropy_shard_backward(dlogits, logits, targets, vocab_start, vocab, s.lse, dloss);
  }
};

}  // namespace loom
