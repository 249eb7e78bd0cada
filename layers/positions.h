// layers/positions.h — the fixed (parameter-free) position information of the decoder:
// the sinusoidal table of Vaswani et al. and ALiBi's per-head slopes (Press et al.).
// RoPE is an op (Backend::rope_forward); learned positions are the parameter wpe.
// T5's relative position buckets (Raffel et al. 2020): the bucket of each relative offset,
// by which a learned (num_buckets, H) table becomes the attention's rel_bias (backend.h).
// Pure host functions: the model uploads their values once, tests check them directly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace loom {

enum class Positions : std::uint8_t { learned, sinusoidal, rope, alibi, t5_relative };
Positions parse_positions(const std::string& name);  // model.positions (validated in core/config.cpp)

// (T, C) row-major: PE[t][2i] = sin(t / 10000^(2i/C)), PE[t][2i+1] = cos(t / 10000^(2i/C)),
// added to the token embedding as GPT-2 adds wpe (computed in double, rounded to float).
std::vector<float> sinusoidal_table(std::int64_t T, std::int64_t C);

// ALiBi's slopes for `heads` heads, head h's bias on the score of query t and key s being
// -slope_h * (t - s). For a power of two n: slope_h = 2^(-8 (h + 1) / n), a geometric
// sequence from 2^(-8/n). Otherwise, with m the largest power of two below n, the m slopes
// of m heads followed by the first n - m of the even-indexed slopes (0, 2, 4, ...) of 2m
// heads (Press et al.'s reference code, `get_slopes`).
std::vector<float> alibi_slopes(std::int64_t heads);

// T5's relative position buckets (Hugging Face `T5Attention._relative_position_bucket`),
// of the offset n = s - t of key s from query t:
//   bidirectional (an encoder): half the buckets for n <= 0, half for n > 0 (num_buckets / 2
//     each, the second half offset by num_buckets / 2), by |n|;
//   causal (a decoder): all buckets for -n, n > 0 mapped to bucket 0 (masked anyway).
// Within a half of m buckets: distances below m / 2 get a bucket each; larger ones share
// logarithmically sized buckets up to max_distance, m / 2 + floor(log(d / (m/2)) /
// log(max_distance / (m/2)) * (m - m/2)), and everything beyond falls in the last one.
// The logarithm is taken in f32 as PyTorch does, so the buckets are HF's bit for bit.
enum class RelBuckets : std::uint8_t { bidirectional, causal };
std::int32_t t5_bucket(std::int64_t offset, RelBuckets kind, std::int64_t num_buckets, std::int64_t max_distance);
// The bucket of every row o = s - t + Tq - 1 of an attention's rel_bias (Tq + Tk - 1, H):
// o = 0 is s - t = -(Tq - 1). The model gathers its table by these.
std::vector<std::int32_t> t5_offset_buckets(std::int64_t Tq, std::int64_t Tk, RelBuckets kind,
                                            std::int64_t num_buckets, std::int64_t max_distance);

}  // namespace loom
