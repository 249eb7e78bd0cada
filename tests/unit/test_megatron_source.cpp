// Training straight from a Megatron pair (io/megatron_source.h): its token stream,
// splits and batches equal those of the same pair converted by loom-data
// from-megatron; bad pairs and missing options are errors naming the file.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/data_loader.h"
#include "io/megatron_dataset.h"
#include "io/megatron_source.h"
#include "io/token_dataset.h"
#include "io/tokenizer.h"
#include "launch/model_io.h"
#include "layers/gpt.h"
#include "programs.h"
#include "temp_dir.h"

namespace loom {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

constexpr std::int32_t kEod = 0;
constexpr std::int64_t kVocab = 50;

// Documents as lists of sequences. Covers what changes the stream: documents that
// end with eod (none appended) and that do not, a multi-sequence document, an
// empty sequence and an empty document (each gets one eod).
std::string write_pair(const TempDir& dir, const std::string& name, MegatronDType dtype = MegatronDType::uint16) {
  const std::string prefix = dir.file(name);
  MegatronWriter w(prefix, dtype);
  std::int32_t t = 1;
  for (int d = 0; d < 40; ++d) {
    const int nseq = 1 + d % 3;
    for (int q = 0; q < nseq; ++q) {
      std::vector<std::int32_t> seq;
      const int len = (d == 7 && q == 1) ? 0 : 3 + (d * 7 + q) % 11;
      for (int i = 0; i < len; ++i, t = 1 + t % (kVocab - 1)) seq.push_back(t);
      if (q == nseq - 1 && d % 4 == 0) seq.push_back(kEod);  // --append-eod style
      w.add_sequence(seq);
    }
    w.end_document();
    if (d == 20) w.end_document();  // an empty document
  }
  w.finish();
  return prefix;
}

MegatronSourceOptions options() { return {.vocab_size = kVocab, .eod_id = kEod, .val_fraction = 0.1}; }

std::vector<std::int32_t> all_tokens(const TokenSource& s) {
  std::vector<std::int32_t> out(static_cast<std::size_t>(s.size()));
  s.read(0, s.size(), out.data());
  return out;
}

// loom-data from-megatron, the conversion users run today.
std::string convert(const TempDir& dir, const std::string& prefix) {
  const std::string h5 = dir.file("converted.h5");
  const auto r = test::run_program("loom-data", "from-megatron --quiet --input " + prefix + " --output " + h5 +
                                                    " --vocab-size 50 --eod-id 0 --val-fraction 0.1");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return h5;
}

std::string error_of(const auto& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(MegatronSource, SameStreamAsConvertedDataset) {
  TempDir dir("megsrc");
  const std::string prefix = write_pair(dir, "corpus");
  const std::string h5 = convert(dir, prefix);
  for (const char* split : {"train", "val"}) {
    const TokenDataset converted = TokenDataset::open(h5, split);
    const auto direct = MegatronSource::open(prefix, split, options());
    ASSERT_EQ(direct->size(), converted.size()) << split;
    EXPECT_EQ(all_tokens(*direct), all_tokens(converted)) << split;
    EXPECT_EQ(direct->vocab_size(), converted.vocab_size());
    EXPECT_EQ(direct->tokenizer(), converted.tokenizer());
    // Windows starting anywhere, crossing sequences, documents and appended eods.
    for (std::int64_t off = 0; off + 9 <= direct->size(); off += 5) {
      std::vector<std::int32_t> a(9), b(9);
      direct->read(off, 9, a.data());
      converted.read(off, 9, b.data());
      ASSERT_EQ(a, b) << split << " offset " << off;
    }
  }
}

TEST(MegatronSource, SameBatchesAsConvertedDataset) {
  TempDir dir("megsrc");
  const std::string prefix = write_pair(dir, "corpus");
  const std::string h5 = convert(dir, prefix);
  constexpr std::int64_t T = 8, B = 6;
  for (const std::string& spec : {prefix, prefix + ".idx", prefix + ".bin"}) {
    const Blend direct = open_blend(spec, "train", options());
    const Blend converted = open_blend(h5, "train");
    const DataLoader a(direct, T, 1234), b(converted, T, 1234);
    std::vector<std::int32_t> ra(B * (T + 1)), rb(B * (T + 1));
    for (std::int64_t step = 0; step < 20; ++step) {
      a.train_batch(step, 0, B, ra.data());
      b.train_batch(step, 0, B, rb.data());
      ASSERT_EQ(ra, rb) << spec << " step " << step;
    }
    const auto val_a = open_token_source(spec, "val", options());
    const TokenDataset val_b = TokenDataset::open(h5, "val");
    const DataLoader ea(*val_a, T, 1), eb(val_b, T, 1);
    std::vector<std::int32_t> va(2 * (T + 1), -1), vb(2 * (T + 1), -2);
    ea.eval_batch(0, 0, 2, 2, va.data());
    eb.eval_batch(0, 0, 2, 2, vb.data());
    EXPECT_EQ(va, vb) << spec;
  }
}

TEST(MegatronSource, BlendsWithAnHdf5Dataset) {
  TempDir dir("megsrc");
  const std::string prefix = write_pair(dir, "corpus", MegatronDType::int32);
  const std::string h5 = convert(dir, prefix);
  const Blend mixed = open_blend("0.5 " + prefix + " 0.5 " + h5, "train", options());
  ASSERT_EQ(mixed.sets.size(), 2u);
  EXPECT_EQ(all_tokens(*mixed.sets[0]), all_tokens(*mixed.sets[1]));
  const DataLoader loader(mixed, 8, 7);  // same vocabulary and tokenizer name: accepted
  std::int64_t from_pair = 0;
  for (std::int64_t i = 0; i < 64; ++i) from_pair += loader.train_source(0, i) == 0;
  EXPECT_GT(from_pair, 0);
  EXPECT_LT(from_pair, 64);
}

TEST(MegatronSource, ChecksumIsTheIndexNotTheTokens) {
  TempDir dir("megsrc");
  const std::string a = write_pair(dir, "a"), b = write_pair(dir, "b");
  EXPECT_EQ(MegatronSource::open(a, "train", options())->tokens_checksum(),
            MegatronSource::open(b, "train", options())->tokens_checksum());
  // One more token in the last sequence changes the index (its length) and the .bin's size.
  {
    MegatronWriter w(dir.file("c"), MegatronDType::uint16);
    w.add_document(std::vector<std::int32_t>{1, 2, 3});
    w.finish();
    MegatronWriter v(dir.file("d"), MegatronDType::uint16);
    v.add_document(std::vector<std::int32_t>{1, 2, 3, 4});
    v.finish();
  }
  EXPECT_NE(MegatronSource::open(dir.file("c"), "train", options())->tokens_checksum(),
            MegatronSource::open(dir.file("d"), "train", options())->tokens_checksum());
}

TEST(MegatronSource, MissingOptionsAreNamed) {
  TempDir dir("megsrc");
  const std::string prefix = write_pair(dir, "corpus");
  MegatronSourceOptions o = options();
  o.vocab_size = 0;
  EXPECT_NE(error_of([&] { MegatronSource::open(prefix, "train", o); }).find("the vocabulary size is not given"),
            std::string::npos);
  o = options();
  o.eod_id = -1;
  EXPECT_NE(error_of([&] { MegatronSource::open(prefix, "train", o); }).find("the eod id -1 is not given"),
            std::string::npos);
  o = options();
  o.vocab_size = 20;  // tokens go up to 49: found when a window reads them
  const auto s = MegatronSource::open(prefix, "train", o);
  std::vector<std::int32_t> all(static_cast<std::size_t>(s->size()));
  EXPECT_NE(error_of([&] { s->read(0, s->size(), all.data()); }).find("corpus.bin: sequence"), std::string::npos);
}

TEST(MegatronSource, BrokenPairsAreNamed) {
  TempDir dir("megsrc");
  const std::string prefix = write_pair(dir, "corpus");
  const std::string bin = prefix + ".bin", idx = prefix + ".idx";
  const std::string bytes = test::read_file(bin);

  fs::rename(bin, bin + ".away");
  EXPECT_NE(error_of([&] { open_token_source(prefix, "train", options()); }).find("corpus.bin' does not exist"),
            std::string::npos);
  fs::rename(bin + ".away", bin);

  test::write_file(bin, bytes.substr(0, bytes.size() - 2));  // truncated: the last sequence sticks out
  const std::string truncated = error_of([&] { open_token_source(prefix, "train", options()); });
  EXPECT_NE(truncated.find("lies outside"), std::string::npos) << truncated;
  EXPECT_NE(truncated.find("corpus.bin"), std::string::npos) << truncated;
  test::write_file(bin, bytes);

  std::string index = test::read_file(idx);
  index[0] = 'X';
  test::write_file(idx, index);
  EXPECT_NE(error_of([&] { open_token_source(idx, "train", options()); }).find("corpus.idx: bad magic"),
            std::string::npos);

  fs::remove(idx);
  for (const std::string& path : {bin, prefix})
    EXPECT_NE(error_of([&] { open_token_source(path, "train", options()); }).find("corpus.idx' does not exist"),
              std::string::npos)
        << path;
}

// loom-train on the pair and on its conversion: the same losses, train and val.
std::vector<std::string> train_losses(const TempDir& dir, const std::string& data, const std::string& run) {
  const std::string args = "--data.train " + data +
                           " --model.vocab 50 --data.eod_id 0 --data.val_fraction 0.1 --model.layers 1"
                           " --model.channels 16 --model.heads 2 --model.seq_len 16 --train.global_batch 4"
                           " --train.micro_batch 2 --train.steps 3 --train.eval_interval 3 --train.eval_batches 1"
                           " --checkpoint.dir " +
                           dir.file(run);
  const auto r = test::run_program("loom-train", args);
  EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.output;
  std::vector<std::string> out;
  std::ifstream metrics(dir.file(run) + "/metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) {
    const auto rec = nlohmann::json::parse(line);
    out.push_back(rec["loss"].dump() + (rec.contains("val_loss") ? " val " + rec["val_loss"].dump() : ""));
  }
  return out;
}

TEST(MegatronSourceCli, TrainsAsOnTheConvertedDataset) {
  TempDir dir("megsrc");
  const std::string prefix = write_pair(dir, "corpus");
  const std::string h5 = convert(dir, prefix);
  const auto direct = train_losses(dir, prefix + ".bin", "direct"), converted = train_losses(dir, h5, "converted");
  ASSERT_EQ(direct.size(), 3u);
  EXPECT_NE(direct.back().find(" val "), std::string::npos) << direct.back();
  EXPECT_EQ(direct, converted);
}

TEST(MegatronSourceCli, RefusesWithoutVocabularyOrEod) {
  TempDir dir("megsrc");
  const std::string prefix = write_pair(dir, "corpus");
  const std::string base = "--data.train " + prefix + " --model.layers 1 --model.channels 16 --model.heads 2" +
                           " --model.seq_len 16 --train.steps 1 --checkpoint.dir " + dir.file("run");
  auto r = test::run_program("loom-train", base + " --data.eod_id 0");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("corpus': the vocabulary size is not given"), std::string::npos) << r.output;
  r = test::run_program("loom-train", base + " --model.vocab 50");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--data.eod_id"), std::string::npos) << r.output;
}

// data.tokenizer: a pair made with a known tokenizer (here bytes: ids 0-255, eod 256)
// gives model.vocab and data.eod_id, and the tokenizer travels into the weights file.
std::string write_byte_pair(const TempDir& dir) {
  const std::string prefix = dir.file("bytes");
  MegatronWriter w(prefix, MegatronDType::uint16);
  for (int d = 0; d < 60; ++d) {
    std::vector<std::int32_t> doc = encode_bytes(fmt::format("In the beginning was the word, number {}.", d));
    doc.push_back(256);
    w.add_sequence(doc);
    w.end_document();
  }
  w.finish();
  return prefix;
}

TEST(MegatronSourceCli, DataTokenizerGivesVocabularyAndEodAndTravelsIntoTheModel) {
  TempDir dir("megtok");
  const std::string prefix = write_byte_pair(dir);
  const std::string base = "--model.layers 1 --model.channels 16 --model.heads 2 --model.seq_len 16"
                           " --train.global_batch 2 --train.micro_batch 2 --train.steps 2 --train.eval_interval 0";
  auto r = test::run_program("loom-train", "--data.train " + prefix + " --data.tokenizer bytes " + base +
                                               " --checkpoint.dir " + dir.file("run"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto weights = read_model_tokenizer(dir.file("run/weights.h5"));
  ASSERT_TRUE(weights.has_value());
  EXPECT_EQ(weights->kind, "bytes");
  EXPECT_EQ(Gpt::from_json(read_config_json(dir.file("run/weights.h5"))).vocab, 257);
  // Without it the model's tokenizer is unknown (only a name).
  r = test::run_program("loom-train", "--data.train " + prefix + " --model.vocab 257 --data.eod_id 256 " + base +
                                          " --checkpoint.dir " + dir.file("plain"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(read_model_tokenizer(dir.file("plain/weights.h5"))->known());
  // A conflicting eod or a too small vocabulary is named.
  r = test::run_program("loom-train", "--data.train " + prefix + " --data.tokenizer bytes --data.eod_id 0 " + base +
                                          " --checkpoint.dir " + dir.file("bad"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("data.eod_id = 0 is not the end-of-document id of the tokenizer 'bytes' (256)"),
            std::string::npos)
      << r.output;
  r = test::run_program("loom-train", "--data.train " + prefix + " --data.tokenizer bytes --model.vocab 100 " + base +
                                          " --checkpoint.dir " + dir.file("bad"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("model.vocab = 100 is smaller than the vocabulary"), std::string::npos) << r.output;

  // from-megatron --tokenizer embeds it in the converted dataset, which then trains with it.
  r = test::run_program("loom-data", "from-megatron --quiet --input " + prefix + " --output " + dir.file("c.h5") +
                                         " --tokenizer bytes");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(TokenDataset::open(dir.file("c.h5"), "train").meta().embedded.kind, "bytes");

  // With a loom dataset, data.tokenizer must be the one it embeds.
  test::write_file(dir.file("t.txt"), "In the beginning was the word.\nAnd the word was with God.\n");
  r = test::run_program("loom-data", "train-tokenizer --quiet --input " + dir.file("t.txt") + " --output " +
                                         dir.file("spm") + " --model-type bpe --vocab-size 40");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = test::run_program("loom-train", "--data.train " + dir.file("c.h5") + " --data.tokenizer " + dir.file("spm.model") +
                                          " --model.vocab 300 " + base + " --checkpoint.dir " + dir.file("mismatch"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("c.h5' was made with bytes"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace loom
