// launch/flops.h — model FLOPs per token, counted as Megatron-LM does:
// 6 x (every matmul weight, the tied LM head included, padded vocabulary)
// + 12 L T C for attention scores and values (the full T x T, as Megatron
// counts, although the causal half is masked). Forward + backward.
#pragma once

#include "core/config.h"

namespace loom {

// T is the sequence length trained on (attention cost grows with it).
inline double flops_per_token(const ModelConfig& m, std::int64_t seq_len) {
  const double C = double(m.channels), F = double(m.ffn_size()), L = double(m.layers), T = double(seq_len);
  const double matmul_weights = L * (4 * C * C + 2 * C * F) + C * double(m.padded_vocab());
  return 6.0 * matmul_weights + 12.0 * L * T * C;
}

}  // namespace loom
