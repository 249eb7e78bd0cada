// tests/unit/test_tokenizer_travels.cpp — the tokenizer travels with the data and the
// model (io/embedded_tokenizer.h): loom-data embeds a hand-written byte-level BPE
// tokenizer.json (or a SentencePiece model it trained) in the dataset, loom-train puts
// it into weights.h5 and the checkpoint index, loom-generate encodes and decodes with it;
// a model or data made with another tokenizer is refused by name; older files (no
// tokenizer embedded) still read, as bytes or by name.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/checkpoint_files.h"
#include "io/embedded_tokenizer.h"
#include "io/hf_tokenizer.h"
#include "io/spm_tokenizer.h"
#include "io/token_dataset.h"
#include "io/weights_file.h"
#include "launch/run_dir.h"
#include "programs.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using testing::AllOf;
using testing::HasSubstr;

namespace loom {
namespace {

std::string utf8(std::uint32_t cp) {
  if (cp < 0x80) return std::string(1, char(cp));
  return {char(0xC0 | (cp >> 6)), char(0x80 | (cp & 0x3F))};  // every byte symbol is < 0x800
}

// GPT-2's byte -> symbol map (bytes_to_unicode): printable bytes stand for themselves,
// the others are moved to 256 + n.
std::vector<std::string> byte_symbols() {
  std::vector<std::string> sym(256);
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    sym[std::size_t(b)] = utf8(printable ? std::uint32_t(b) : std::uint32_t(256 + n++));
  }
  return sym;
}

// A byte-level BPE covering every byte (ids 0..255 = byte values), four merges and
// <|endoftext|> = 260: vocabulary 261.
std::string bpe_json() {
  nlohmann::json vocab = nlohmann::json::object();
  const auto sym = byte_symbols();
  for (int b = 0; b < 256; ++b) vocab[sym[std::size_t(b)]] = b;
  vocab["Ġt"] = 256;
  vocab["he"] = 257;
  vocab["Ġthe"] = 258;
  vocab["in"] = 259;
  const nlohmann::json j = {
      {"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr},
      {"added_tokens", {{{"id", 260}, {"content", "<|endoftext|>"}, {"single_word", false}, {"lstrip", false},
                         {"rstrip", false}, {"normalized", false}, {"special", true}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
                 {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
                 {"vocab", vocab}, {"merges", {"Ġ t", "h e", "Ġt he", "i n"}}}}};
  return j.dump();
}

struct SplitRun {
  int exit_code = -1;
  std::string out, err;
};

// Runs a program with stdout and stderr apart (loom-generate prints text on stdout).
SplitRun run_split(const test::TempDir& dir, const std::string& name, const std::string& args) {
  const std::string out = dir.file("stdout"), err = dir.file("stderr");
  const std::string cmd = "timeout 120 " + test::program(name).string() + " " + args + " >" + out + " 2>" + err;
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, test::read_file(out), test::read_file(err)};
}

std::optional<EmbeddedTokenizer> weights_tokenizer(const std::string& path) {
  const WeightsReader r = WeightsReader::open(path);
  return tokenizer_from_attrs([&](const std::string& a) { return r.string_attr(a); }, path);
}

std::optional<EmbeddedTokenizer> checkpoint_tokenizer(const std::string& dir) {
  const CheckpointReader r = CheckpointReader::open(dir);
  return tokenizer_from_attrs([&](const std::string& a) { return r.has_attr(a) ? std::optional(r.attr(a)) : std::nullopt; },
                              dir);
}

// The attributes round-trip any bytes (base64 of every length mod 3), and damage is named.
TEST(EmbeddedTokenizer, AttributesRoundTripAndDamageIsNamed) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(char(b));
  for (std::size_t n : {0, 1, 2, 3, 4, 5, 256}) {
    const EmbeddedTokenizer t{"sentencepiece", "spm:x.model", all.substr(0, n)};
    const auto attrs = tokenizer_attrs(t);
    const auto back = tokenizer_from_attrs(
        [&](const std::string& a) { return attrs.contains(a) ? std::optional(attrs.at(a)) : std::nullopt; }, "f");
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->payload, t.payload) << n;
    EXPECT_EQ(back->name, "spm:x.model");
  }
  auto damaged = [](std::map<std::string, std::string> attrs) {
    return test::error_of([&] {
      tokenizer_from_attrs([&](const std::string& a) { return attrs.contains(a) ? std::optional(attrs.at(a)) : std::nullopt; },
                           "file 'f'");
    });
  };
  auto attrs = tokenizer_attrs(EmbeddedTokenizer{"hf-json", "hf:t.json", "{}"});
  attrs["tokenizer_data"] = "{ }";
  EXPECT_THAT(damaged(attrs), HasSubstr("file 'f': the embedded tokenizer fails its checksum"));
  attrs = tokenizer_attrs(EmbeddedTokenizer{"sentencepiece", "spm:m", "abcd"});
  EXPECT_EQ(attrs["tokenizer_data"], "YWJjZA==");  // Python: base64.b64encode(b"abcd")
  EXPECT_EQ(attrs["tokenizer_crc32"], "ed82cd11");  // Python: "%08x" % zlib.crc32(b"abcd")
  attrs["tokenizer_data"] = "YWJj*A==";
  EXPECT_THAT(damaged(attrs), HasSubstr("tokenizer_data is not valid base64"));
  attrs["tokenizer_kind"] = "tiktoken";
  EXPECT_THAT(damaged(attrs), HasSubstr("unknown tokenizer_kind 'tiktoken'"));
  EXPECT_FALSE(tokenizer_from_attrs([](const std::string&) { return std::optional<std::string>(); }, "f").has_value());
}

class TokenizerTravels : public testing::Test {
protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir("tok-travels");
    std::ostringstream text;
    for (int i = 0; i < 300; ++i) text << "in the beginning the thin thing was in " << i << ".\n";
    test::write_file(file("text.txt"), text.str());
    test::write_file(file("tok.json"), bpe_json());
    for (const auto& [out, tok] : {std::pair{"hf.h5", file("tok.json")}, std::pair{"bytes.h5", std::string("bytes")}}) {
      const auto r = test::run_program("loom-data", "--quiet --input " + file("text.txt") + " --output " + file(out) +
                                                        " --tokenizer " + tok);
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string file(const std::string& name) { return dir_->file(name); }
  static std::string tiny(const std::string& data, const std::string& run, const std::string& more = "") {
    return "--data.train " + data + " --model.layers 1 --model.channels 16 --model.heads 2 --model.seq_len 16"
           " --train.global_batch 4 --train.micro_batch 2 --train.eval_batches 1 --train.steps 2 --checkpoint.dir " +
           file(run) + " " + more;
  }
  // Trains on hf.h5 once (2 steps): run "hf-run" with weights.h5 and a checkpoint.
  static void train_hf() {
    if (fs::exists(file("hf-run/weights.h5"))) return;
    const auto r = test::run_program("loom-train", tiny(file("hf.h5"), "hf-run"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static inline test::TempDir* dir_ = nullptr;
};

TEST_F(TokenizerTravels, TheDatasetEmbedsTheTokenizerJson) {
  const TokenDataset hf = TokenDataset::open(file("hf.h5"), "train");
  EXPECT_EQ(hf.meta().embedded.kind, "hf-json");
  EXPECT_EQ(hf.meta().embedded.payload, test::read_file(file("tok.json")));
  EXPECT_EQ(hf.meta().embedded.name, "hf:" + file("tok.json"));
  EXPECT_EQ(hf.vocab_size(), 261);
  const TokenDataset bytes = TokenDataset::open(file("bytes.h5"), "val");
  EXPECT_EQ(bytes.meta().embedded.kind, "bytes");
  EXPECT_TRUE(bytes.meta().embedded.payload.empty());
  EXPECT_FALSE(same_tokenizer(hf.meta().embedded, bytes.meta().embedded));
  // The dataset still decodes after the tokenizer.json is gone: the payload is enough.
  const TokenizerInfo info = tokenizer_info(hf.meta().embedded);
  std::vector<std::int32_t> ids(8);
  hf.read(0, 8, ids.data());
  EXPECT_EQ(decode_with(info, ids).substr(0, 10), "in the beg");
}

TEST_F(TokenizerTravels, OlderDatasetsReadAsBytesOrByName) {
  const std::vector<std::int32_t> t = {1, 2, 3, 4};
  const std::vector<std::uint64_t> offsets = {0};
  DatasetMeta meta;  // no embedded tokenizer, as before
  write_token_dataset(file("old-bytes.h5"), t, offsets, t, offsets, meta);
  meta.tokenizer = "hf:/gone/tokenizer.json";
  write_token_dataset(file("old-hf.h5"), t, offsets, t, offsets, meta);
  const TokenDataset b = TokenDataset::open(file("old-bytes.h5"), "train");
  EXPECT_EQ(b.meta().embedded.kind, "bytes");
  const TokenDataset h = TokenDataset::open(file("old-hf.h5"), "train");
  EXPECT_FALSE(h.meta().embedded.known());
  EXPECT_EQ(h.meta().embedded.name, "hf:/gone/tokenizer.json");
  EXPECT_EQ(h.meta().tokenizer, "hf:/gone/tokenizer.json");
}

TEST_F(TokenizerTravels, WeightsAndCheckpointCarryItAndGenerateDecodesWithIt) {
  train_hf();
  const EmbeddedTokenizer data = TokenDataset::open(file("hf.h5"), "train").meta().embedded;
  const auto in_weights = weights_tokenizer(file("hf-run/weights.h5"));
  ASSERT_TRUE(in_weights.has_value());
  EXPECT_TRUE(same_tokenizer(*in_weights, data)) << in_weights->describe();
  const auto in_ckpt = checkpoint_tokenizer(find_checkpoint(file("hf-run")));
  ASSERT_TRUE(in_ckpt.has_value());
  EXPECT_TRUE(same_tokenizer(*in_ckpt, data)) << in_ckpt->describe();
  // loom-ckpt export keeps it in the weights file it makes.
  const auto exported = test::run_program("loom-ckpt", "export " + file("hf-run") + " --output " + file("exported.h5"));
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  const auto in_export = weights_tokenizer(file("exported.h5"));
  ASSERT_TRUE(in_export.has_value());
  EXPECT_TRUE(same_tokenizer(*in_export, data));
  // export --hf writes it as transformers loads it: tokenizer.json, the original verbatim.
  const auto hf = test::run_program("loom-ckpt", "export " + file("hf-run") + " --hf " + file("hf-export"));
  ASSERT_EQ(hf.exit_code, 0) << hf.output;
  EXPECT_THAT(hf.output, HasSubstr("hf-export/tokenizer.json"));
  EXPECT_EQ(test::read_file(file("hf-export/tokenizer.json")), bpe_json());

  // Greedy, with the ids printed: stdout must be the tokenizer's decoding of prompt + ids.
  const test::TempDir out("tok-gen");
  const std::string prompt = "in the thin";
  for (const std::string& from : {file("hf-run/weights.h5"), file("hf-run")}) {
    const SplitRun g = run_split(out, "loom-generate", "--weights " + from + " --prompt '" + prompt +
                                                      "' --tokens 12 --temperature 0 --print_ids");
    ASSERT_EQ(g.exit_code, 0) << g.err;
    EXPECT_THAT(g.err, HasSubstr("tokenizer hf-json"));
    const HfTokenizer tok = HfTokenizer::from_json(bpe_json());
    std::vector<std::int32_t> ids = tok.encode(prompt);
    EXPECT_EQ(ids, (std::vector<std::int32_t>{259, 258, 256, 104, 259}));  // in, Ġthe, Ġt, h, in
    const std::string line = g.err.substr(g.err.find("ids ") + 4);
    std::istringstream ss(line);
    for (std::int32_t id; ss >> id;) ids.push_back(id);
    EXPECT_EQ(ids.size(), 5u + 12u) << g.err;
    EXPECT_EQ(g.out, tok.decode(ids) + "\n");
  }
}

TEST_F(TokenizerTravels, AModelOfAnotherTokenizerIsRefused) {
  train_hf();
  const auto init = test::run_program("loom-train", tiny(file("bytes.h5"), "r-init", "--model.init " + file("hf-run/weights.h5")));
  EXPECT_EQ(init.exit_code, 2) << init.output;
  EXPECT_THAT(init.output, AllOf(HasSubstr("model.init"), HasSubstr("the data was tokenised with bytes"),
                                 HasSubstr("the model with hf-json 'hf:" + file("tok.json") + "' (crc32 ")));
  // Resuming: the same model configuration (vocab 261), bytes data.
  const auto resume = test::run_program(
      "loom-train", tiny(file("bytes.h5"), "hf-run", "--model.vocab 261 --checkpoint.resume auto"));
  EXPECT_EQ(resume.exit_code, 2) << resume.output;
  EXPECT_THAT(resume.output, AllOf(HasSubstr("checkpoint.resume"), HasSubstr("the data was tokenised with bytes"),
                                   HasSubstr("the model with hf-json")));
  // Data that disagree among themselves: train on one tokenizer, evaluate on another.
  const auto mixed = test::run_program("loom-train", tiny(file("hf.h5"), "r-mixed", "--data.val " + file("bytes.h5")));
  EXPECT_EQ(mixed.exit_code, 2) << mixed.output;
  EXPECT_THAT(mixed.output, AllOf(HasSubstr(file("hf.h5")), HasSubstr(file("bytes.h5")),
                                  HasSubstr("different tokenizers: hf-json"), HasSubstr("and bytes")));
}

TEST_F(TokenizerTravels, OlderWeightsFilesStillLoadAsBytes) {
  train_hf();
  // weights.h5 as an older loom wrote it: the same tensors and config, no tokenizer.
  const WeightsReader r = WeightsReader::open(file("hf-run/weights.h5"));
  std::vector<std::vector<float>> data;
  std::vector<NamedArray> arrays;
  data.reserve(r.names().size());  // arrays point into data
  for (const std::string& n : r.names()) {
    const auto shape = r.shape(n);
    std::int64_t count = 1;
    for (auto d : shape) count *= d;
    data.emplace_back(std::size_t(count));
    r.read(n, data.back().data(), count);
    arrays.push_back({n, shape, data.back().data()});
  }
  write_weights(file("old.h5"), arrays, r.config_json());
  EXPECT_FALSE(weights_tokenizer(file("old.h5")).has_value());
  const test::TempDir out("tok-old");
  const SplitRun g = run_split(out, "loom-generate", "--weights " + file("old.h5") + " --prompt 'in the' --tokens 0");
  ASSERT_EQ(g.exit_code, 0) << g.err;
  EXPECT_THAT(g.err, HasSubstr("carries no tokenizer (written by an older loom); using bytes"));
  EXPECT_EQ(g.out, "in the\n");
  // Nothing to compare against: --model.init accepts it with any data.
  const auto init = test::run_program("loom-train", tiny(file("hf.h5"), "r-old", "--model.init " + file("old.h5")));
  EXPECT_EQ(init.exit_code, 0) << init.output;
}

// A SentencePiece model is binary: it travels base64-encoded and must come back byte for byte.
TEST_F(TokenizerTravels, ASentencePieceModelTravelsToo) {
  const std::string prefix = file("spm");
  auto r = test::run_program("loom-data", "train-tokenizer --quiet --input " + file("text.txt") + " --output " + prefix +
                                              " --model-type bpe --vocab-size 60");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = test::run_program("loom-data", "--quiet --input " + file("text.txt") + " --output " + file("spm.h5") +
                                         " --tokenizer " + prefix + ".model");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = test::run_program("loom-train", tiny(file("spm.h5"), "spm-run"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto in_weights = weights_tokenizer(file("spm-run/weights.h5"));
  ASSERT_TRUE(in_weights.has_value());
  EXPECT_EQ(in_weights->kind, "sentencepiece");
  EXPECT_EQ(in_weights->payload, test::read_file(prefix + ".model"));
  const auto in_ckpt = checkpoint_tokenizer(find_checkpoint(file("spm-run")));
  ASSERT_TRUE(in_ckpt.has_value());
  EXPECT_TRUE(same_tokenizer(*in_ckpt, *in_weights));
  // export --hf writes it as tokenizer.model, byte for byte.
  r = test::run_program("loom-ckpt", "export " + file("spm-run/weights.h5") + " --hf " + file("spm-export"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(test::read_file(file("spm-export/tokenizer.model")), test::read_file(prefix + ".model"));

  const test::TempDir out("tok-spm");
  const std::string prompt = "in the thin";
  const SplitRun g = run_split(out, "loom-generate", "--weights " + file("spm-run/weights.h5") + " --prompt '" + prompt +
                                                         "' --tokens 10 --temperature 0 --print_ids");
  ASSERT_EQ(g.exit_code, 0) << g.err;
  EXPECT_THAT(g.err, HasSubstr("tokenizer sentencepiece"));
  const SpmTokenizer tok = SpmTokenizer::load(prefix + ".model");
  std::vector<std::int32_t> ids = tok.encode(prompt);
  EXPECT_LT(ids.size(), prompt.size());  // merged pieces, not bytes
  std::istringstream ss(g.err.substr(g.err.find("ids ") + 4));
  for (std::int32_t id; ss >> id;) ids.push_back(id);
  EXPECT_EQ(g.out, tok.decode(ids) + "\n");
  // Another tokenizer's model on this data: refused, naming both.
  train_hf();
  const auto init = test::run_program("loom-train", tiny(file("spm.h5"), "r-spm", "--model.init " + file("hf-run/weights.h5")));
  EXPECT_EQ(init.exit_code, 2) << init.output;
  EXPECT_THAT(init.output, AllOf(HasSubstr("the data was tokenised with sentencepiece 'spm:" + prefix + ".model' (crc32 "),
                                 HasSubstr("the model with hf-json")));
}

}  // namespace
}  // namespace loom
