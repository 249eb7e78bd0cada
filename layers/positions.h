// layers/positions.h — the fixed (parameter-free) position information of the decoder:
// the sinusoidal table of Vaswani et al. and ALiBi's per-head slopes (Press et al.).
// RoPE is an op (Backend::rope_forward); learned positions are the parameter wpe.
// Pure host functions: the model uploads their values once, tests check them directly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace loom {

enum class Positions : std::uint8_t { learned, sinusoidal, rope, alibi };
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

}  // namespace loom
