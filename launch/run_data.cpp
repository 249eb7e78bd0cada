// launch/run_data.cpp — see run_data.h.
#include "launch/run_data.h"

#include <fmt/format.h>

#include "core/error.h"
#include "launch/model_tokenizer.h"
#include "launch/rank_agreement.h"

namespace loom {

namespace {

// FNV-1a over the split's tokens, lengths and labels: the data's identity across ranks.
std::uint64_t fingerprint(const LabelledSplit& s, std::uint64_t h = 1469598103934665603ULL) {
  for (const auto* v : {&s.tokens, &s.lengths, &s.labels})
    for (std::int32_t x : *v) h = (h ^ std::uint64_t(std::uint32_t(x))) * 1099511628211ULL;
  return h;
}

void open_labelled(RunData& d, RunConfig& cfg, MPI_Comm world) {
  LabelledDataset data = read_labelled_dataset(cfg.data.train);
  if (!cfg.data.val.empty() && cfg.data.val != cfg.data.train) {  // another file's val split
    LabelledDataset other = read_labelled_dataset(cfg.data.val);
    LOOM_CHECK(other.label_names == data.label_names && other.seq_len == data.seq_len &&
                   same_tokenizer(other.embedded, data.embedded),
               "build both with loom-data classify from the same labels, seq_len and tokenizer",
               "data.val '{}' differs from data.train '{}' in its labels, seq_len or tokenizer", cfg.data.val,
               cfg.data.train);
    data.val = std::move(other.val);
  }
  if (cfg.data.val.empty()) cfg.data.val = cfg.data.train;
  if (cfg.model.classes == 0) cfg.model.classes = data.classes();
  LOOM_CHECK(cfg.model.classes == data.classes(), "drop model.classes (it defaults to the dataset's)",
             "model.classes = {} but the labelled dataset '{}' has {} labels", cfg.model.classes,
             cfg.data.train, data.classes());
  check_ranks_agree(world,
                    fmt::format("[data]\ntrain = {}\nval = {}\nfingerprint = {:x} {:x}\n", cfg.data.train,
                                cfg.data.val, fingerprint(data.train), fingerprint(data.val)),
                    "data");
  d.tokenizer = data.embedded;
  d.vocab = data.vocab_size;
  d.train_path = cfg.data.train;
  d.resident_bytes = std::int64_t(4 * (data.train.tokens.size() + data.val.tokens.size()));
  d.labelled = std::move(data);
}

void open_tokens(RunData& d, RunConfig& cfg, MPI_Comm world) {
  // A blend evaluates on its first source's val split unless data.val names one.
  if (cfg.data.val.empty()) cfg.data.val = parse_blend(cfg.data.train).front().path;
  // A Megatron pair records neither vocabulary nor eod nor tokenizer (io/megatron_source.h):
  // the options give them, data.tokenizer all three.
  std::optional<DeclaredTokenizer> declared;
  if (!cfg.data.tokenizer.empty())
    declared =
        declare_tokenizer(cfg.data.tokenizer, cfg.model.vocab, cfg.data.eod_id, "model.vocab", "data.eod_id");
  const MegatronSourceOptions megatron{declared ? declared->vocab_size : cfg.model.vocab,
                                       declared ? declared->eod_id : cfg.data.eod_id, cfg.data.val_fraction,
                                       declared ? declared->tokenizer : EmbeddedTokenizer{}};
  d.blend = open_blend(cfg.data.train, "train", megatron);
  const TokenSource& train_set = *d.blend.sets.front();
  d.val_source = open_token_source(cfg.data.val, "val", megatron);
  const TokenSource& val_set = *d.val_source;
  check_ranks_agree(world, data_checksums_ini(d.blend, val_set), "data");  // same paths, same files?
  // The tokenizer travels from the data into the model: the weights file and the checkpoints
  // embed it, and a model trained on another one is refused (launch/model_tokenizer.h).
  d.tokenizer = data_tokenizer(d.blend, val_set);
  LOOM_CHECK(!declared || same_tokenizer(declared->tokenizer, d.tokenizer),
             "drop data.tokenizer, or re-tokenise the data with it (loom-data --tokenizer)",
             "data.tokenizer is {}, but '{}' was made with {}",
             declared ? declared->tokenizer.describe() : "", train_set.path(), d.tokenizer.describe());
  d.vocab = std::max(train_set.vocab_size(), val_set.vocab_size());
  d.train_path = train_set.path();
  d.resident_bytes = val_set.resident_bytes();
  for (const auto& s : d.blend.sets) d.resident_bytes += s->resident_bytes();
}

}  // namespace

RunData open_run_data(RunConfig& cfg, MPI_Comm world) {
  RunData d;
  if (cfg.model.head == "classify") {
    LOOM_CHECK(is_labelled_dataset(cfg.data.train),
               "make one with loom-data classify --input labelled.tsv --output cls.h5 (docs/finetuning.md)",
               "model.head classify needs a labelled dataset as data.train; '{}' is not one", cfg.data.train);
    open_labelled(d, cfg, world);
  } else {
    LOOM_CHECK(
        !is_labelled_dataset(cfg.data.train), "add --model.head classify to fine-tune a classifier on it",
        "data.train '{}' is a labelled dataset (loom-data classify); model.head lm needs a token dataset",
        cfg.data.train);
    open_tokens(d, cfg, world);
  }
  return d;
}

void make_batches(RunData& d, const RunConfig& cfg, std::int64_t T, Pooling pooling) {
  if (d.labelled) {
    const LabelledDataset& l = *d.labelled;
    LOOM_CHECK(T <= l.seq_len, "set train.seq_len (or model.seq_len) to at most the dataset's seq_len",
               "the training sequence length {} exceeds the labelled dataset's seq_len {}", T, l.seq_len);
    d.train =
        std::make_unique<ClassifyBatches>(l.train, l.classes(), T, l.pad_token, cfg.train.seed, pooling);
    d.val = std::make_unique<ClassifyBatches>(l.val, l.classes(), T, l.pad_token, cfg.train.seed, pooling);
    return;
  }
  // The loaders check that each split holds at least one sequence: before any allocation.
  // A loader window is seq_len + 1 tokens: span corruption reads layout.raw of them.
  const std::int64_t window = d.spans ? d.spans->layout.raw - 1 : T;
  d.train_loader = std::make_unique<DataLoader>(d.blend, window, cfg.train.seed);
  d.val_loader = std::make_unique<DataLoader>(*d.val_source, window, cfg.train.seed);
  const MlmMasker* mlm = d.mlm ? &*d.mlm : nullptr;
  const SpanCorruptor* spans = d.spans ? &*d.spans : nullptr;
  d.train = std::make_unique<LmBatches>(*d.train_loader, cfg.train.eval_batches, mlm, spans);
  d.val = std::make_unique<LmBatches>(*d.val_loader, cfg.train.eval_batches, mlm, spans);
}

}  // namespace loom
