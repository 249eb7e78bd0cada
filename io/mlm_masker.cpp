// io/mlm_masker.cpp — see mlm_masker.h.
#include "io/mlm_masker.h"

#include <algorithm>
#include <optional>
#include <string_view>

#include "core/error.h"
#include "core/rng.h"
#include "io/hf_tokenizer.h"
#include "io/spm_tokenizer.h"

namespace loom {

namespace {
// 24 random bits of `u` starting at bit `shift`, as a uniform in [0, 1).
double uniform24(std::uint64_t u, int shift) { return double((u >> shift) & 0xffffffu) / double(1u << 24); }
// XORed into the key for the replacement draw, independent of the choice.
constexpr std::uint64_t kReplacementKey = 0x5265706c61636521ULL;
}  // namespace

MlmTokens mlm_tokens(const TokenizerInfo& info) {
  MlmTokens t;
  t.special.push_back(info.eod);
  if (!info.hf && !info.spm) {  // bytes: [MASK] appended after eod
    t.mask = std::int32_t(info.vocab_size);
    t.vocab = info.vocab_size + 1;
    t.special.push_back(t.mask);
    return t;
  }
  auto lookup = [&](std::string_view name) -> std::optional<std::int32_t> {
    return info.hf ? info.hf->token_to_id(name) : info.spm->piece_to_id(name);
  };
  for (std::string_view name : {"[MASK]", "<mask>"})
    if (auto id = lookup(name); id && t.mask < 0) t.mask = *id;
  LOOM_CHECK(
      t.mask >= 0,
      "train a tokenizer with one (loom-data train-tokenizer --special-tokens '<|endoftext|>,<mask>'), or "
      "use the byte "
      "tokenizer, which appends one",
      "model.family bert needs a mask token, but the data's tokenizer '{}' has neither [MASK] nor <mask>",
      info.name);
  // Control tokens a masked position must not hold or become.
  for (std::string_view name : {"[MASK]", "<mask>", "[CLS]", "[SEP]", "[PAD]", "[UNK]", "<cls>", "<sep>",
                                "<pad>", "<unk>", "<s>", "</s>", "<|endoftext|>"})
    if (auto id = lookup(name)) t.special.push_back(*id);
  if (info.spm && info.spm->pad_id()) t.special.push_back(*info.spm->pad_id());
  t.vocab = info.vocab_size;
  std::sort(t.special.begin(), t.special.end());
  t.special.erase(std::unique(t.special.begin(), t.special.end()), t.special.end());
  LOOM_CHECK(t.vocab > std::int64_t(t.special.size()), "use a tokenizer with ordinary tokens",
             "tokenizer '{}' has no ordinary token to draw as a random replacement", info.name);
  return t;
}

void MlmMasker::train(std::int64_t step, std::int64_t first_seq, std::int64_t count, std::int64_t T,
                      const std::int32_t* windows, std::int32_t* x, std::int32_t* y) const {
  mask(seed ^ kMlmTrainKey, std::uint64_t(step), first_seq, count, T, windows, x, y);
}

void MlmMasker::eval(std::int64_t eval_index, std::int64_t first_seq, std::int64_t count, std::int64_t T,
                     const std::int32_t* windows, std::int32_t* x, std::int32_t* y) const {
  mask(seed ^ kMlmEvalKey, std::uint64_t(eval_index), first_seq, count, T, windows, x, y);
}

void MlmMasker::mask(std::uint64_t key, std::uint64_t stream, std::int64_t first_seq, std::int64_t count,
                     std::int64_t T, const std::int32_t* windows, std::int32_t* x, std::int32_t* y) const {
  const std::vector<std::int32_t>& sp = tokens.special;
  const std::uint64_t ordinary = std::uint64_t(tokens.vocab) - sp.size();  // ids a replacement may take
  for (std::int64_t i = 0; i < count; ++i) {
    const std::int64_t g = first_seq + i;  // global sequence: the key, whatever the slice
    for (std::int64_t t = 0; t < T; ++t) {
      const std::int32_t tok = windows[i * (T + 1) + t];
      std::int32_t& xi = x[i * T + t];
      std::int32_t& yi = y[i * T + t];
      xi = tok;
      yi = -1;
      const std::uint64_t index = std::uint64_t(g * T + t);
      const std::uint64_t u = rng_u64(key, stream, index);
      if (uniform24(u, 40) >= rate || std::binary_search(sp.begin(), sp.end(), tok)) continue;
      yi = tok;
      const double kind = uniform24(u, 16);
      if (kind < mask_share) {
        xi = tokens.mask;
      } else if (kind < mask_share + random_share) {
        // The r-th ordinary id: step over the sorted special ids at or below it.
        std::int64_t r = std::int64_t(rng_u64(key ^ kReplacementKey, stream, index) % ordinary);
        for (std::int32_t s : sp)
          if (r >= s) ++r;
        xi = std::int32_t(r);
      }
    }
  }
}

}  // namespace loom
