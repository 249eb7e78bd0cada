// io/span_corruption.h — T5's span-corruption objective (Raffel et al. 2020, section 3.1.4;
// T5's `random_spans_noise_mask` and `random_spans_helper`; docs/models.md "T5").
//
// A raw window of L tokens is split into alternating non-noise / noise spans (it starts with
// non-noise and ends with noise): noise = round(L * density) tokens (clamped to [1, L-1]) in
// spans = max(1, round(noise / mean_span)) spans, each span length >= 1; both the noise and
// the non-noise tokens are partitioned into `spans` non-empty segments uniformly at random
// (T5's `_random_segmentation`: spans - 1 cut points among the items - 1 gaps).
//   encoder input  the text with noise span i replaced by sentinel i, then eod (T5's EOS);
//                  enc = L - noise + spans + 1 <= T_enc tokens, filled with eod to T_enc
//   decoder target sentinel i + span i's tokens for every span, then eod: dec = noise + spans + 1
//   decoder input  the target shifted right, starting with the start id (eod)
// L is the largest window whose encoder input fits T_enc (T5's random_spans_helper), so
// T_dec = dec is fixed by T_enc: 128 -> L 141 (noise 21, 7 spans, T_dec 29); 512 -> L 568, T_dec 114.
// The draws are a pure function of the counter-based RNG: draw j of global sequence g of
// step s uses rng_u64(seed ^ kSpanTrainKey, s, g * 2L + j) (noise cuts j < L, non-noise cuts
// L + j; evaluation batch e: seed ^ kSpanEvalKey, stream e), so every dp / tp / pp layout
// corrupts identically, and a dp slice as the whole batch would.
// Output rows (the packed micro-batch of layers/t5.h): x = [encoder input (T_enc) | decoder
// input (T_dec)], y = [-1 x T_enc | decoder target (T_dec)]; (count, T_enc + T_dec), written (=).
#pragma once

#include <cstdint>
#include <vector>

#include "io/tokenizer.h"

namespace loom {

inline constexpr std::uint64_t kSpanTrainKey = 0x7435737061747231ULL;  // "t5spatr1"
inline constexpr std::uint64_t kSpanEvalKey = 0x7435737061657631ULL;   // "t5spaev1"

// The lengths span corruption produces for an encoder of `enc_len` tokens.
struct SpanLayout {
  std::int64_t raw = 0;    // L: raw text tokens per sequence (the data window)
  std::int64_t noise = 0;  // of them replaced
  std::int64_t spans = 0;  // noise spans (= sentinels used per sequence)
  std::int64_t enc = 0;    // T_enc: encoder input length (corrupted text + eod + eod fill)
  std::int64_t dec = 0;    // T_dec: decoder length (noise + spans + 1)
  std::int64_t row() const { return enc + dec; }  // the packed micro-batch row
};
// Throws naming the option when enc_len is too short or density / mean_span are out of range.
SpanLayout span_layout(std::int64_t enc_len, double density = 0.15, double mean_span = 3.0);

// The ids corruption writes. The byte tokenizer has no sentinels: <extra_id_0 .. K-1> are
// appended after eod (ids 257 .. 256 + K, K = the spans of a sequence). A Hugging Face or
// SentencePiece tokenizer must have <extra_id_0> .. <extra_id_{K-1}> (loom-data
// train-tokenizer --sentinels 100 adds them); loom::Error naming the tokenizer otherwise.
struct SpanTokens {
  std::int32_t eod = 256;               // T5's EOS, the encoder fill and the decoder start id
  std::vector<std::int32_t> sentinels;  // sentinel i's id
  std::int64_t vocab = 0;               // ids [0, vocab) exist: model.vocab must be at least this
};
SpanTokens span_tokens(const TokenizerInfo& info, std::int64_t spans);

struct SpanCorruptor {
  SpanTokens tokens;
  SpanLayout layout;
  std::uint64_t seed = 0;

  // Global sequences [first_seq, first_seq + count) of training step `step`; row i of the
  // raw text is windows + i * stride (stride >= layout.raw: the loader's T + 1).
  void train(std::int64_t step, std::int64_t first_seq, std::int64_t count, const std::int32_t* windows,
             std::int64_t stride, std::int32_t* x, std::int32_t* y) const;
  // Sequences [first_seq, first_seq + count) of evaluation batch `eval_index`.
  void eval(std::int64_t eval_index, std::int64_t first_seq, std::int64_t count, const std::int32_t* windows,
            std::int64_t stride, std::int32_t* x, std::int32_t* y) const;

  // The noise mask of one sequence (1: noise), L entries: what train/eval corrupt with.
  std::vector<std::uint8_t> noise_mask(std::uint64_t key, std::uint64_t stream, std::int64_t g) const;

 private:
  void corrupt(std::uint64_t key, std::uint64_t stream, std::int64_t first_seq, std::int64_t count,
               const std::int32_t* windows, std::int64_t stride, std::int32_t* x, std::int32_t* y) const;
};

}  // namespace loom
