// layers/sequence_parallel.h — Megatron's sequence parallelism (Korthikanti et al., 2022,
// "Reducing Activation Recomputation in Large Transformer Models"), over the tp group.
//
// With sequence parallelism on, everything computed row by row from the residual stream —
// the residual stream itself, the layernorms (outputs and saved statistics), the residual
// adds — is split over the tp ranks: rank r holds token rows [r N/tp, (r+1) N/tp) of the
// N = B*T rows. loom's activations are (B, T, C) row-major, so this splits the flattened
// (batch, sequence) rows (with B = 1 exactly the sequence; Megatron's (s, b, h) layout
// splits s: the same memory). Attention and the MLP still see all N rows:
//   column-parallel linear (c_attn, c_fc): all-gather the input (N/tp, C) -> (N, C) first;
//     backward re-gathers it (not kept: the gathered copy would cost what SP saves) and
//     reduce-scatters the (N, C) partial input gradient instead of all-reducing it.
//   row-parallel linear (c_proj): reduce-scatter the (N, C) partial products to (N/tp, C)
//     instead of all-reducing them (tp rank 0 adds the bias first, as without SP);
//     backward all-gathers the output gradient (N/tp, C) -> (N, C), so the bias gradient
//     is identical on every tp rank, as without SP.
//   layernorm: forward needs nothing; backward's weight and bias gradients come from this
//     rank's rows only, so they are summed over tp for each micro-batch (into a small
//     zeroed scratch, all-reduced, then added to the gradient; all-reducing the
//     accumulated gradient instead would count earlier micro-batches tp times).
// The gathered tensors live in two (N, C) buffers shared by every layer (the memory plan
// counts them once). A pointer to this struct switches a layer to SP; nullptr = off.
#pragma once

#include "backend/backend.h"
#include "parallel/communicator.h"

namespace loom {

struct SequenceParallel {
  Communicator* tp = nullptr;
  Tensor gathered;    // (B,T,C): a column-parallel layer's input, gathered (forward, and again in backward)
  Tensor full;        // (B,T,C): a row-parallel layer's partial products (forward) or its gathered output
                      // gradient (backward); a column-parallel layer's partial input gradient (backward)
  Tensor norm_grads;  // (2, C): one layernorm's weight and bias gradients from this rank's rows
};

}  // namespace loom
