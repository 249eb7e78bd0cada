// io/mlm_masker.h — BERT's masked-language-model corruption of a batch (Devlin et al. 2019,
// section 3.1; docs/models.md "BERT").
//
// Of the positions of a sequence, each is chosen with probability `rate` (15%); a chosen
// position becomes a target (y = the original token) and its input x becomes the mask token
// (80%), a random ordinary token (10%) or stays (10%). Every other position has y = -1 (not
// a target; the loss skips it). Special tokens (eod, mask, and cls / sep / pad / unk where the
// tokenizer has them) are never chosen and never drawn as the random replacement.
// The draws are a pure function of the counter-based RNG: position t of global sequence g of
// training step s uses rng_u64(seed ^ kMlmTrainKey, s, g * T + t) (evaluation batch e:
// seed ^ kMlmEvalKey, stream e), so every dp / tp / pp layout masks the same positions, and
// a rank reading a slice of the global batch masks it as the whole batch would.
// Windows are the data loader's (count, T + 1) rows; x and y (count, T) are written (=).
#pragma once

#include <cstdint>
#include <vector>

#include "io/tokenizer.h"

namespace loom {

// XORed into the seed: independent of the window draws (io/data_loader.h), train from eval.
inline constexpr std::uint64_t kMlmTrainKey = 0x6d6c6d5f74726e31ULL;  // "mlm_trn1"
inline constexpr std::uint64_t kMlmEvalKey = 0x6d6c6d5f6576616cULL;   // "mlm_eval"

// The token ids masking needs. The byte tokenizer has no mask token: [MASK] is appended
// after eod (256), id 257, so the vocabulary grows to 258. A Hugging Face or SentencePiece
// tokenizer must have one by name, "[MASK]" or "<mask>" (loom-data train-tokenizer
// --special-tokens '<|endoftext|>,<mask>' adds it); loom::Error naming the tokenizer otherwise.
struct MlmTokens {
  std::int32_t mask = -1;
  std::int64_t vocab = 0;             // ids [0, vocab) exist: model.vocab must be at least this
  std::vector<std::int32_t> special;  // sorted, distinct: eod, mask and the tokenizer's other specials
};
MlmTokens mlm_tokens(const TokenizerInfo& info);

struct MlmMasker {
  MlmTokens tokens;
  std::uint64_t seed = 0;
  double rate = 0.15;         // positions chosen
  double mask_share = 0.8;    // of the chosen: the mask token
  double random_share = 0.1;  // of the chosen: a random ordinary token (the rest: unchanged)

  // Global sequences [first_seq, first_seq + count) of training step `step`.
  void train(std::int64_t step, std::int64_t first_seq, std::int64_t count, std::int64_t T,
             const std::int32_t* windows, std::int32_t* x, std::int32_t* y) const;
  // Sequences [first_seq, first_seq + count) of evaluation batch `eval_index`.
  void eval(std::int64_t eval_index, std::int64_t first_seq, std::int64_t count, std::int64_t T,
            const std::int32_t* windows, std::int32_t* x, std::int32_t* y) const;

 private:
  void mask(std::uint64_t key, std::uint64_t stream, std::int64_t first_seq, std::int64_t count,
            std::int64_t T, const std::int32_t* windows, std::int32_t* x, std::int32_t* y) const;
};

}  // namespace loom
