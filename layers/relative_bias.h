// layers/relative_bias.h — T5's learned relative position bias: one (num_buckets, H) table
// shared by every attention layer of a stack, turned into the tiled attention's rel_bias
// (backend.h AttentionSpec) and its gradient scattered back.
//
// Glossary: B micro-batch, Tq query and Tk key positions, Toff = Tq + Tk - 1 relative
// offsets (row o is offset s - t = o - (Tq - 1)), H this tp rank's heads (tensor parallel
// splits the table by columns: rank r holds heads [r H, (r + 1) H) of every bucket).
// The bucket of each offset (layers/positions.h t5_offset_buckets) is uploaded once as a
// (B, Toff) id tensor, the same row per sequence, so the existing embedding ops do the work:
//   forward   bias (Toff, H) f32 = table[bucket[o]]          embedding_forward (gather)
//   backward  dbias (B, Toff, H) f32 = 0; every layer's flash_attention_backward adds its
//             per-sequence d rel_bias (AttentionSpec::drel_bias +=); then
//             dtable (+=) = sum over b and offsets of the same bucket    embedding_backward
// (deterministic on both backends: a fixed summation order, no float atomics). The table
// is a parameter (working dtype), dtable its f32 gradient; every buffer here is a view the
// owner allocated (planned memory). Forward and backward of one micro-batch see the same
// table (the optimizer steps between micro-batch groups only), so bias is shared by all.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "layers/positions.h"

namespace loom {

struct RelativeBias {
  Tensor table, dtable;  // (num_buckets, H): the parameter and its f32 gradient (+=)
  Tensor ids;            // (B, Toff) int32 bucket ids in 4-byte elements (device), from upload_ids
  Tensor gathered;       // (1, Toff, H) in the table's dtype when it is not f32; else empty
  Tensor bias;           // (Toff, H) f32: AttentionSpec::rel_bias of every layer
  Tensor dbias;          // (B, Toff, H) f32: AttentionSpec::drel_bias of every layer (empty: frozen)

  // ids (B, Toff) = the bucket of offset o, for every sequence. Construction only.
  static void upload_ids(Backend& be, Tensor ids, std::int64_t Tq, std::int64_t Tk, RelBuckets kind,
                         std::int64_t num_buckets, std::int64_t max_distance) {
    const std::vector<std::int32_t> row = t5_offset_buckets(Tq, Tk, kind, num_buckets, max_distance);
    const std::int64_t B = ids.shape[0], Toff = std::int64_t(row.size());
    std::vector<std::int32_t> all;
    for (std::int64_t b = 0; b < B; ++b) all.insert(all.end(), row.begin(), row.end());
    be.copy(ids, Tensor{all.data(), Shape{B, Toff}, DType::f32, Device::cpu});  // 4-byte ids, byte for byte
  }

  // bias = table[bucket of each offset], widened to f32.
  void forward(Backend& be) const {
    const std::int64_t Toff = bias.shape[0], H = bias.shape[1];
    const TokenView first{static_cast<const std::int32_t*>(ids.ptr), Shape{1, Toff}, ids.device};
    if (gathered.empty()) return be.embedding_forward(bias.view({1, Toff, H}), first, table, {}, 0);
    be.embedding_forward(gathered, first, table, {}, 0);
    be.cast(bias.view({1, Toff, H}), gathered);
  }
  // Before the layers' backward: the per-sequence accumulator starts at 0.
  void begin_backward(Backend& be) const {
    if (!dbias.empty()) be.fill(dbias, 0.0f);
  }
  // After every layer added its d rel_bias: dtable += the sums over sequences and offsets per bucket.
  void end_backward(Backend& be) const {
    if (dbias.empty()) return;
    const TokenView all{static_cast<const std::int32_t*>(ids.ptr), Shape{ids.shape[0], ids.shape[1]}, ids.device};
    be.embedding_backward(dtable, {}, dbias, all, 0);
  }
};

}  // namespace loom
