// io/span_corruption.cpp — see span_corruption.h.
#include "io/span_corruption.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>
#include <string>

#include "core/error.h"
#include "core/rng.h"
#include "io/hf_tokenizer.h"
#include "io/spm_tokenizer.h"

namespace loom {

namespace {
struct Counts {
  std::int64_t noise, spans;
};
// T5's counts for a window of L tokens (random_spans_noise_mask's clamps included). Python's
// round and tf.round round half to even: so does llrint in the default rounding mode.
Counts counts(std::int64_t L, double density, double mean_span) {
  std::int64_t noise = std::llrint(double(L) * density);
  noise = std::min(std::max<std::int64_t>(noise, 1), L - 1);
  const std::int64_t spans = std::max<std::int64_t>(std::llrint(double(noise) / mean_span), 1);
  return {noise, spans};
}
std::int64_t enc_of(std::int64_t L, double density, double mean_span) {
  const Counts c = counts(L, density, mean_span);
  return L - c.noise + c.spans + 1;  // non-noise, one sentinel per span, eod
}

// T5's _random_segmentation: `items` split into `segments` non-empty runs, uniformly over
// the C(items - 1, segments - 1) ways: a partial Fisher-Yates shuffle of the items - 1 gaps
// picks the segments - 1 cut points, draw j from rng_u64(key, stream, base + j).
std::vector<std::int64_t> segmentation(std::int64_t items, std::int64_t segments, std::uint64_t key,
                                       std::uint64_t stream, std::uint64_t base) {
  std::vector<std::int64_t> gaps(std::size_t(items - 1));
  std::iota(gaps.begin(), gaps.end(), 0);
  for (std::int64_t j = 0; j < segments - 1; ++j) {
    const std::uint64_t left = std::uint64_t(items - 1 - j);
    const std::int64_t pick = j + std::int64_t(rng_u64(key, stream, base + std::uint64_t(j)) % left);
    std::swap(gaps[std::size_t(j)], gaps[std::size_t(pick)]);
  }
  std::vector<std::int64_t> cuts(gaps.begin(), gaps.begin() + (segments - 1));  // a cut after item cuts[i]
  std::sort(cuts.begin(), cuts.end());
  std::vector<std::int64_t> lengths;
  std::int64_t start = 0;
  for (std::int64_t c : cuts) {
    lengths.push_back(c + 1 - start);
    start = c + 1;
  }
  lengths.push_back(items - start);
  return lengths;
}
}  // namespace

SpanLayout span_layout(std::int64_t enc_len, double density, double mean_span) {
  LOOM_CHECK(density > 0 && density < 1, "T5 uses 0.15",
             "span corruption: noise density {} is outside (0, 1)", density);
  LOOM_CHECK(mean_span >= 1, "T5 uses 3", "span corruption: mean noise span length {} is below 1", mean_span);
  LOOM_CHECK(enc_len >= 4, "raise model.seq_len (T5 uses 512)",
             "model.family t5: the encoder length model.seq_len = {} is too short for span corruption",
             enc_len);
  // random_spans_helper: the longest window whose corrupted text (+ eod) fits the encoder.
  std::int64_t L = std::max<std::int64_t>(enc_len - 1, 2);
  while (enc_of(L + 1, density, mean_span) <= enc_len) ++L;
  const Counts c = counts(L, density, mean_span);
  SpanLayout out{.raw = L, .noise = c.noise, .spans = c.spans, .enc = enc_len, .dec = c.noise + c.spans + 1};
  LOOM_CHECK(enc_of(L, density, mean_span) <= enc_len, "raise model.seq_len",
             "model.family t5: no window fits the encoder length {}", enc_len);
  return out;
}

SpanTokens span_tokens(const TokenizerInfo& info, std::int64_t spans) {
  SpanTokens t;
  t.eod = info.eod;
  if (!info.hf && !info.spm) {  // bytes: <extra_id_i> appended after eod
    for (std::int64_t i = 0; i < spans; ++i) t.sentinels.push_back(std::int32_t(info.vocab_size + i));
    t.vocab = info.vocab_size + spans;
    return t;
  }
  for (std::int64_t i = 0; i < spans; ++i) {
    const std::string name = fmt::format("<extra_id_{}>", i);
    const std::optional<std::int32_t> id = info.hf ? info.hf->token_to_id(name) : info.spm->piece_to_id(name);
    LOOM_CHECK(
        id.has_value(),
        "train a tokenizer with enough sentinels (loom-data train-tokenizer --sentinels 100), shorten "
        "model.seq_len, or use the byte tokenizer, which appends them",
        "model.family t5 needs {} sentinel tokens <extra_id_0> .. <extra_id_{}> (one per noise span), but "
        "the data's tokenizer '{}' lacks {}",
        spans, spans - 1, info.name, name);
    t.sentinels.push_back(*id);
  }
  t.vocab = info.vocab_size;
  return t;
}

std::vector<std::uint8_t> SpanCorruptor::noise_mask(std::uint64_t key, std::uint64_t stream,
                                                    std::int64_t g) const {
  const std::int64_t L = layout.raw;
  const std::uint64_t base = std::uint64_t(g) * 2 * std::uint64_t(L);
  const auto noise = segmentation(layout.noise, layout.spans, key, stream, base);
  const auto plain = segmentation(L - layout.noise, layout.spans, key, stream, base + std::uint64_t(L));
  std::vector<std::uint8_t> mask(std::size_t(L), 0);
  std::int64_t t = 0;
  for (std::int64_t i = 0; i < layout.spans; ++i) {  // non-noise span i, then noise span i
    t += plain[std::size_t(i)];
    for (std::int64_t k = 0; k < noise[std::size_t(i)]; ++k) mask[std::size_t(t++)] = 1;
  }
  return mask;
}

void SpanCorruptor::train(std::int64_t step, std::int64_t first_seq, std::int64_t count,
                          const std::int32_t* windows, std::int64_t stride, std::int32_t* x,
                          std::int32_t* y) const {
  corrupt(seed ^ kSpanTrainKey, std::uint64_t(step), first_seq, count, windows, stride, x, y);
}

void SpanCorruptor::eval(std::int64_t eval_index, std::int64_t first_seq, std::int64_t count,
                         const std::int32_t* windows, std::int64_t stride, std::int32_t* x,
                         std::int32_t* y) const {
  corrupt(seed ^ kSpanEvalKey, std::uint64_t(eval_index), first_seq, count, windows, stride, x, y);
}

void SpanCorruptor::corrupt(std::uint64_t key, std::uint64_t stream, std::int64_t first_seq,
                            std::int64_t count, const std::int32_t* windows, std::int64_t stride,
                            std::int32_t* x, std::int32_t* y) const {
  const std::int64_t L = layout.raw, Te = layout.enc, Td = layout.dec, R = layout.row();
  LOOM_CHECK(stride >= L, "", "span corruption: windows of {} tokens, {} needed", stride, L);
  LOOM_CHECK(std::int64_t(tokens.sentinels.size()) >= layout.spans, "",
             "span corruption: {} sentinels for {} spans", tokens.sentinels.size(), layout.spans);
  for (std::int64_t i = 0; i < count; ++i) {
    const std::int32_t* w = windows + i * stride;
    std::int32_t* xe = x + i * R;  // encoder input
    std::int32_t* xd = xe + Te;    // decoder input
    std::int32_t* ye = y + i * R;
    std::int32_t* yd = ye + Te;  // decoder target
    const std::vector<std::uint8_t> mask = noise_mask(key, stream, first_seq + i);
    std::int64_t e = 0, d = 0, span = 0;
    for (std::int64_t t = 0; t < L; ++t) {
      if (!mask[std::size_t(t)]) {
        xe[e++] = w[t];
        continue;
      }
      if (t == 0 || !mask[std::size_t(t - 1)]) {  // a span starts: its sentinel in both
        xe[e++] = tokens.sentinels[std::size_t(span)];
        yd[d++] = tokens.sentinels[std::size_t(span)];
        ++span;
      }
      yd[d++] = w[t];
    }
    yd[d++] = tokens.eod;
    while (e < Te) xe[e++] = tokens.eod;  // eod, then the fill
    LOOM_CHECK(e == Te && d == Td && span == layout.spans, "",
               "span corruption: lengths {} {} {} != {} {} {}", e, d, span, Te, Td, layout.spans);
    std::fill(ye, ye + Te, -1);
    xd[0] = tokens.eod;  // the decoder's start id
    std::copy(yd, yd + Td - 1, xd + 1);
  }
}

}  // namespace loom
