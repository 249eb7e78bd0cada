// layers/class_head.h — the sequence-classification head (model.head classify): a linear
// map C -> K classes (+ bias) of the final norm's output (pre-LN) or of the last block's
// output (post-LN, whose blocks end in a norm), and cross-entropy over the K classes.
//
// Shapes: N = B*T rows, C channels, K classes. The head runs over every row (K is small,
// so this costs N*C*K, a sliver of the LM head's N*C*V) and the loss keeps the rows whose
// target is >= 0: the batch puts each sequence's label at its pooled position and -1
// elsewhere (io/labelled_dataset.h classify_row), so exactly one row per sequence counts
// and the runtime's target count is the number of sequences. Which position is pooled is
// one predicate, pooling_for(): a causal decoder's last real token is the only one that
// has seen the whole text (the padding after it cannot reach it), an encoder's first
// token sees everything real (its attention masks the padding: MicroBatch::lengths).
// Tensor parallelism: the head is small and whole on every tp rank (tp-replicated
// parameters); every rank computes the same logits, loss and gradients from the same
// replicated input, so no tp communication and the gradients stay identical across tp.
// Forward writes logits (=) and ACCUMULATES the per-row losses (+=); backward writes
// d input (=, when not empty), ACCUMULATES dW and db (+=), and turns logits into dlogits
// in place.
#pragma once

#include <string>
#include <vector>

#include "core/config.h"
#include "layers/linear.h"
#include "layers/vocab_parallel_loss.h"

namespace loom {

enum class Pooling : std::uint8_t { first_token, last_token };

// The pooled position of a model: the last real token for a causal decoder (model.family
// gpt), the first for a bidirectional encoder (bert: under its padding mask the first
// position sees every real token and nothing else; docs/finetuning.md).
inline Pooling pooling_for(const ModelConfig& m) { return m.bert() ? Pooling::first_token : Pooling::last_token; }

struct ClassHead {
  Linear proj;             // w (K, C), b (K)
  VocabParallelLoss loss;  // over a one-rank group (vocab_start 0, vocab K): no tp split

  struct Saved {
    Tensor logits;                // (N, K), working dtype
    VocabParallelLoss::Saved ce;  // (N), (2, N), (N) f32
  };

  void forward(Backend& be, Tensor losses, Tensor x, TokenView targets, const Saved& s) const {
    proj.forward(be, s.logits, x);
    loss.forward(be, losses, s.logits, targets, s.ce);
  }

  void backward(Backend& be, Tensor dx, Tensor x, TokenView targets, const Saved& s, float dloss) const {
    loss.backward(be, s.logits, s.logits, targets, s.ce, dloss);  // logits become dlogits
    proj.backward(be, dx, s.logits, x);
  }

  // Rows whose target is >= 0 and whose largest logit (the first, on a tie) is the target's:
  // logits after forward, cast to f32 into `wide` (N, K) and read to `host` (N*K floats).
  static std::int64_t correct(Backend& be, const Saved& s, const std::int32_t* targets, Tensor wide,
                              std::vector<float>& host) {
    be.cast(wide, s.logits);
    be.copy(host_tensor(host.data(), wide.shape), wide);
    const std::int64_t N = wide.shape[0], K = wide.shape[1];
    std::int64_t n = 0;
    for (std::int64_t r = 0; r < N; ++r) {
      if (targets[r] < 0) continue;
      const float* row = host.data() + r * K;
      std::int64_t best = 0;
      for (std::int64_t k = 1; k < K; ++k)
        if (row[k] > row[best]) best = k;
      n += best == targets[r];
    }
    return n;
  }
};

}  // namespace loom
