// io/data_loader.cpp — window arithmetic and batch assembly (see data_loader.h).
//
// Each row is one TokenSource::read of T + 1 tokens, so a resident split costs a
// copy per row and a streamed one an HDF5 hyperslab read per row.
#include "io/data_loader.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "core/rng.h"

namespace loom {

namespace {
constexpr const char* kBlendHint =
    "write data.train as PATH or as weight-path pairs, e.g. \"0.7 a.h5 0.3 b.h5\"";
}  // namespace

std::vector<BlendSource> parse_blend(const std::string& spec) {
  std::vector<std::string> words;
  std::istringstream in(spec);
  for (std::string w; in >> w;) words.push_back(w);
  LOOM_CHECK(!words.empty(), kBlendHint, "data.train is empty");
  std::error_code ec;
  if (words.size() == 1 || std::filesystem::exists(spec, ec))
    return {BlendSource{words.size() == 1 ? words[0] : spec, 1.0}};
  LOOM_CHECK(words.size() % 2 == 0, kBlendHint,
             "data.train '{}' has {} words; a blend needs weight-path pairs (an even count)", spec,
             words.size());
  std::vector<BlendSource> out;
  double total = 0;
  for (std::size_t k = 0; k < words.size(); k += 2) {
    const std::string& w = words[k];
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(w.c_str(), &end);
    LOOM_CHECK(end == w.c_str() + w.size() && errno == 0 && std::isfinite(v), kBlendHint,
               "data.train '{}': weight '{}' (before '{}') is not a number", spec, w, words[k + 1]);
    LOOM_CHECK(v > 0, "give every dataset of a blend a positive weight",
               "data.train '{}': the weight of '{}' is {}, must be > 0", spec, words[k + 1], w);
    out.push_back({words[k + 1], v});
    total += v;
  }
  for (BlendSource& s : out) s.weight /= total;
  return out;
}

std::unique_ptr<TokenSource> open_token_source(const std::string& path, const std::string& split,
                                               const MegatronSourceOptions& megatron) {
  if (is_megatron_path(path)) return MegatronSource::open(path, split, megatron);
  return std::make_unique<TokenDataset>(TokenDataset::open(path, split));
}

// Vocabulary and tokenizer agreement is checked by the DataLoader built on the blend.
Blend open_blend(const std::string& spec, const std::string& split, const MegatronSourceOptions& megatron) {
  Blend b;
  for (const BlendSource& s : parse_blend(spec)) {
    b.sets.push_back(open_token_source(s.path, split, megatron));
    b.weights.push_back(s.weight);
  }
  return b;
}

DataLoader::DataLoader(const TokenSource& data, std::int64_t seq_len, std::uint64_t seed)
    : DataLoader(std::vector<const TokenSource*>{&data}, std::vector<double>{1.0}, seq_len, seed) {}

DataLoader::DataLoader(const Blend& blend, std::int64_t seq_len, std::uint64_t seed)
    : DataLoader(
          [&] {
            std::vector<const TokenSource*> p;
            for (const auto& d : blend.sets) p.push_back(d.get());
            return p;
          }(),
          blend.weights, seq_len, seed) {}

DataLoader::DataLoader(std::vector<const TokenSource*> sources, std::vector<double> weights,
                       std::int64_t seq_len, std::uint64_t seed)
    : sources_(std::move(sources)), seq_len_(seq_len), seed_(seed) {
  LOOM_CHECK(seq_len >= 1, "", "DataLoader: seq_len must be >= 1, got {}", seq_len);
  LOOM_CHECK(!sources_.empty() && sources_.size() == weights.size(), "",
             "DataLoader: {} sources need as many weights, got {}", sources_.size(), weights.size());
  double total = 0;
  for (double w : weights) {
    LOOM_CHECK(w > 0 && std::isfinite(w), "", "DataLoader: blend weights must be positive, got {}", w);
    total += w;
  }
  double acc = 0;
  for (double w : weights) cumulative_.push_back(acc += w / total);
  cumulative_.back() = 1.0;
  for (const TokenSource* d : sources_) {
    const TokenSource& first = *sources_.front();
    LOOM_CHECK(d->vocab_size() == first.vocab_size() && d->tokenizer() == first.tokenizer(),
               "tokenise every dataset of a blend with the same tokenizer",
               "blend: '{}' (tokenizer '{}', vocabulary {}) and '{}' (tokenizer '{}', vocabulary {}) differ",
               first.path(), first.tokenizer(), first.vocab_size(), d->path(), d->tokenizer(),
               d->vocab_size());
    LOOM_CHECK(d->size() >= seq_len + 1,
               "use a shorter sequence length (model.seq_len) or more data (for the val split: a larger "
               "loom-data --val-fraction)",
               "the '{}' split of '{}' has {} tokens, too small for sequence length {} (needs at least {})",
               d->split(), d->path(), d->size(), seq_len, seq_len + 1);
  }
}

std::int64_t DataLoader::eval_windows() const { return (sources_.front()->size() - 1) / seq_len_; }

std::int64_t DataLoader::train_source(std::int64_t step, std::int64_t seq) const {
  LOOM_CHECK(step >= 0 && seq >= 0, "", "DataLoader: step {} and sequence {} must be >= 0", step, seq);
  if (sources_.size() == 1) return 0;
  const double u =
      double(rng_u64(seed_ ^ kBlendKey, static_cast<std::uint64_t>(step), static_cast<std::uint64_t>(seq)) >>
             11) *
      0x1p-53;  // uniform in [0, 1), 53 bits
  const auto it = std::upper_bound(cumulative_.begin(), cumulative_.end(), u);
  return std::min<std::int64_t>(it - cumulative_.begin(), sources() - 1);
}

std::int64_t DataLoader::train_window(std::int64_t step, std::int64_t seq) const {
  const TokenSource* data = sources_[static_cast<std::size_t>(train_source(step, seq))];
  const auto span = static_cast<std::uint64_t>(data->size() - seq_len_);
  return static_cast<std::int64_t>(
      rng_u64(seed_, static_cast<std::uint64_t>(step), static_cast<std::uint64_t>(seq)) % span);
}

std::int64_t DataLoader::eval_window(std::int64_t eval_index, std::int64_t seq,
                                     std::int64_t seqs_per_batch) const {
  LOOM_CHECK(eval_index >= 0 && seq >= 0 && seqs_per_batch >= 1, "",
             "DataLoader: eval_index {} and sequence {} must be >= 0, seqs_per_batch {} >= 1", eval_index,
             seq, seqs_per_batch);
  const auto span = static_cast<std::uint64_t>(sources_.front()->size() - seq_len_);
  const std::uint64_t s =
      static_cast<std::uint64_t>(eval_index) * static_cast<std::uint64_t>(seqs_per_batch) +
      static_cast<std::uint64_t>(seq);
  __extension__ using u128 = unsigned __int128;  // (s * T) mod span, exact for any s
  return static_cast<std::int64_t>(u128(s) * u128(seq_len_) % span);
}

void DataLoader::train_batch(std::int64_t step, std::int64_t first_seq, std::int64_t count,
                             std::int32_t* out) const {
  LOOM_CHECK(first_seq >= 0 && count >= 0, "",
             "DataLoader::train_batch: first_seq {} and count {} must be >= 0", first_seq, count);
  for (std::int64_t i = 0; i < count; ++i) {
    const std::int64_t seq = first_seq + i;
    sources_[static_cast<std::size_t>(train_source(step, seq))]->read(train_window(step, seq), row_len(),
                                                                      out + i * row_len());
  }
}

void DataLoader::eval_batch(std::int64_t eval_index, std::int64_t first_seq, std::int64_t count,
                            std::int64_t seqs_per_batch, std::int32_t* out) const {
  LOOM_CHECK(first_seq >= 0 && count >= 0 && first_seq + count <= seqs_per_batch, "",
             "DataLoader::eval_batch: sequences [{}, {}) are outside the batch of {}", first_seq,
             first_seq + count, seqs_per_batch);
  for (std::int64_t i = 0; i < count; ++i) {
    sources_.front()->read(eval_window(eval_index, first_seq + i, seqs_per_batch), row_len(),
                           out + i * row_len());
  }
}

}  // namespace loom
