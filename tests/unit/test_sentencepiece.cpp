// tests/unit/test_sentencepiece.cpp — loom-data train-tokenizer and io/spm_tokenizer.h
// against the Python `sentencepiece` package: models trained by loom-data on Genesis
// (BPE and unigram, lossless and NFKC) are loaded by Python
// (tests/unit/sentencepiece_reference.py), which encodes the corpus and a hostile text;
// the ids must agree token for token, and so must decode. Also: the special tokens'
// ids, decode(encode(x)) == x for the lossless models, loom-data --tokenizer PATH.model,
// bad options (error, exit 2, no files left) and the refusal of a model without eod.
// Needs `sentencepiece` (launch/test.sh installs it) and the `bible` program (bible-kjv):
// the comparisons fail, saying so, when either is missing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "io/spm_tokenizer.h"
#include "io/token_dataset.h"
#include "io/tokenizer.h"
#include "programs.h"
#include "temp_dir.h"

namespace loom {
namespace {

using test::read_file;  // tests/unit/temp_dir.h
using test::read_ids;
using test::write_file;

// Mixed scripts, emoji (ZWJ, skin tones, flags), control characters, whitespace runs,
// CRLF, tabs, the special tokens written out in the text.
std::string hostile_text() {
  std::string s =
      "Hello, World! It's 2024; we'll see: they've, I'm, you'd, THEY'RE 'quoted' ''double''.\r\n"
      "\tTabbed\tline\t\twith\t\t\ttabs   and    spaces.\n\n\n"
      "Числа 12345 и 3.14159, ελληνικά, עברית, العربية, 中文分词测试，日本語のテキスト、한국어 텍스트.\n"
      "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🇩🇪 ❤️ — “smart quotes” ‘single’ … ½ ² ① Ⅻ ﬁ ｆｕｌｌ\n"
      "Control: \x01\x02\x07\x1b[31mred\x1b[0m \x7f end\v\f\r\r\n"
      "<|endoftext|>After eod<|endoftext|><|endoftext|>x<|endoftext| broken <mask> <cls>a<sep> <extra_id_1>\n"
      "Combining: e\xCC\x81 n\xCC\x83 a\xCC\x8A; zero\xE2\x80\x8Bwidth; nbsp\xC2\xA0here; ideographic\xE3\x80\x80space\n";
  s += std::string(300, ' ') + "after 300 spaces" + std::string(50, '\n') + std::string(40, '\t') + "x";
  s += "\n    indented\n  \n \n" + std::string(1000, 'a') + " " + std::string(500, '!') + "\n   ";
  return s;
}

std::string reference_script() { return std::string(LOOM_SOURCE_DIR) + "/tests/unit/sentencepiece_reference.py"; }

// The preconditions of the Python comparison: fail (not skip) when missing.
::testing::AssertionResult have_reference() {
  if (std::system("python3 -c 'import sentencepiece' >/dev/null 2>&1") != 0)
    return ::testing::AssertionFailure()
           << "the Python package 'sentencepiece' is not importable: run launch/test.sh (it installs it), "
              "or python3 -m pip install sentencepiece";
  if (std::system("command -v bible >/dev/null 2>&1") != 0)
    return ::testing::AssertionFailure() << "the 'bible' program is missing: run launch/install-deps.sh (bible-kjv)";
  return ::testing::AssertionSuccess();
}

const char* kSpecial = "\"<|endoftext|>,<pad>,<mask>,<cls>,<sep>\"";

// Trains PREFIX.model with loom-data; returns its path.
std::string train(const test::TempDir& dir, const std::string& corpus, const std::string& type, const std::string& extra,
                  int vocab = 1000) {
  const std::string prefix = dir.file(type);
  const auto r = test::run_program(
      "loom-data", "train-tokenizer --quiet --input " + corpus + " --output " + prefix + " --model-type " + type +
                       " --vocab-size " + std::to_string(vocab) + " --special-tokens " + kSpecial + " --sentinels 2 " + extra);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return prefix + ".model";
}

void compare_with_python(const std::string& type, bool lossless) {
  ASSERT_TRUE(have_reference());
  test::TempDir dir("spm-" + type);
  const std::string corpus = dir.file("genesis.txt"), hostile = dir.file("hostile.txt");
  ASSERT_EQ(std::system(("bible Gen1:1-Gen50:26 > " + corpus).c_str()), 0);
  write_file(hostile, hostile_text());
  const std::string model =
      train(dir, corpus, type, lossless ? "--byte-fallback --normalization identity --keep-whitespace" : "");
  ASSERT_FALSE(::testing::Test::HasFailure());
  const std::string cmd = "python3 " + reference_script() + " --model " + model + " --encode " + corpus + " " + hostile +
                          " --pieces '<unk>' '<s>' '</s>' '<pad>' '<|endoftext|>' '<mask>' '<cls>' '<sep>' "
                          "'<extra_id_0>' '<extra_id_1>'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

  // The special tokens have the documented ids, in Python and in loom.
  EXPECT_EQ(read_file(model + ".pieces"),
            "<unk> 0\n<s> 1\n</s> 2\n<pad> 3\n<|endoftext|> 4\n<mask> 5\n<cls> 6\n<sep> 7\n<extra_id_0> 8\n"
            "<extra_id_1> 9\nvocab 1000\npad 3\neos 2\n");
  const TokenizerInfo info = tokenizer_by_name(model);
  EXPECT_EQ(info.name, "spm:" + model);
  EXPECT_EQ(info.vocab_size, 1000);
  EXPECT_EQ(info.eod, 4);
  ASSERT_TRUE(info.spm);
  const SpmTokenizer& tok = *info.spm;
  EXPECT_EQ(tok.pad_id(), 3);
  EXPECT_EQ(tok.piece_to_id("<sep>"), 7);
  EXPECT_EQ(tok.piece_to_id("<nonexistent>"), std::nullopt);
  if (lossless) {
    EXPECT_EQ(tok.id_to_piece(10), "<0x00>");  // byte pieces follow the special tokens
  }
  // PREFIX.vocab: one "piece TAB score" line per id.
  const std::string vocab = read_file(dir.file(type + ".vocab"));
  EXPECT_EQ(std::count(vocab.begin(), vocab.end(), '\n'), 1000);
  EXPECT_EQ(vocab.substr(0, 9), "<unk>\t0\n<");

  for (const std::string& f : {corpus, hostile}) {
    SCOPED_TRACE(f);
    const std::string text = read_file(f);
    const std::vector<std::int32_t> want = read_ids(f + ".ids");
    ASSERT_GT(want.size(), 100u);
    std::vector<std::int32_t> got = tok.encode(text);
    ASSERT_EQ(got.size(), want.size());
    std::size_t diff = 0;
    while (diff < got.size() && got[diff] == want[diff]) ++diff;
    EXPECT_EQ(diff, got.size()) << "first difference at token " << diff;
    EXPECT_EQ(got, want);
    std::vector<std::int32_t> appended{7};
    encode_append(info, text, appended);  // the interface loom-data uses
    EXPECT_EQ(std::vector<std::int32_t>(appended.begin() + 1, appended.end()), want);
    EXPECT_EQ(tok.decode(got), read_file(f + ".decoded"));
    if (lossless) {
      EXPECT_EQ(tok.decode(got), text);
    }
  }
  // The special tokens written in a text are their ids (user-defined symbols).
  const std::vector<std::int32_t> sp = tok.encode("a<mask>b<|endoftext|><extra_id_1>");
  EXPECT_NE(std::find(sp.begin(), sp.end(), 5), sp.end());
  EXPECT_NE(std::find(sp.begin(), sp.end(), 4), sp.end());
  EXPECT_NE(std::find(sp.begin(), sp.end(), 9), sp.end());
  if (lossless) {
    // Byte fallback: text outside the training alphabet round-trips through byte pieces.
    const std::string rare = "\xF0\x9F\xA6\x84 unicorn \xE2\x9C\x93 \x01\x02 \xE4\xB8\x80";
    EXPECT_EQ(tok.decode(tok.encode(rare)), rare);
  }
  EXPECT_NE(test::error_of([&] { (void)tok.decode(std::vector<std::int32_t>{1000}); })
                .find("token 1000 at position 0 is outside the vocabulary"),
            std::string::npos);
}

TEST(SentencePiecePython, BpeLosslessMatchesPython) { compare_with_python("bpe", true); }
TEST(SentencePiecePython, UnigramLosslessMatchesPython) { compare_with_python("unigram", true); }
TEST(SentencePiecePython, BpeNfkcMatchesPython) { compare_with_python("bpe", false); }
TEST(SentencePiecePython, UnigramNfkcMatchesPython) { compare_with_python("unigram", false); }

TEST(SentencePiecePython, LoomDataUsesAModel) {
  ASSERT_TRUE(have_reference());
  test::TempDir dir("spm-data");
  const std::string corpus = dir.file("genesis.txt");
  ASSERT_EQ(std::system(("bible Gen1:1-Gen50:26 > " + corpus).c_str()), 0);
  const std::string model = train(dir, corpus, "unigram", "--byte-fallback", 800);
  ASSERT_FALSE(::testing::Test::HasFailure());
  const std::string cmd = "python3 " + reference_script() + " --model " + model + " --encode " + corpus;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const auto r = test::run_program("loom-data", "--input " + corpus + " " + corpus + " --output " + dir.file("d.h5") +
                                                   " --tokenizer " + model);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The stream is Python's ids, eod (4), Python's ids, eod; the file records vocab 800 and eod 4.
  std::vector<std::int32_t> want = read_ids(corpus + ".ids");
  const std::size_t n = want.size();
  ASSERT_GT(n, 1000u);
  want.push_back(4);
  want.insert(want.end(), want.begin(), want.begin() + std::ptrdiff_t(n + 1));
  std::vector<std::int32_t> got;
  for (const char* split : {"train", "val"}) {
    const TokenDataset ds = TokenDataset::open(dir.file("d.h5"), split);
    EXPECT_EQ(ds.vocab_size(), 800);
    EXPECT_EQ(ds.meta().eod_token, 4);
    EXPECT_EQ(ds.meta().tokenizer, "spm:" + model);
    std::vector<std::int32_t> part(static_cast<std::size_t>(ds.size()));
    ds.read(0, ds.size(), part.data());
    got.insert(got.end(), part.begin(), part.end());
  }
  EXPECT_EQ(got, want);
}

TEST(SentencePiecePython, ModelWithoutEodIsRefused) {
  ASSERT_TRUE(have_reference());
  test::TempDir dir("spm-noeod");
  const std::string corpus = dir.file("genesis.txt");
  ASSERT_EQ(std::system(("bible Gen1:1-Gen50:26 > " + corpus).c_str()), 0);
  const std::string cmd =
      "python3 " + reference_script() + " --train-no-eos " + corpus + " --out " + dir.file("noeos");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  EXPECT_EQ(SpmTokenizer::load(dir.file("noeos.model")).eod(), std::nullopt);
  const std::string err = test::error_of([&] { (void)tokenizer_by_name(dir.file("noeos.model")); });
  EXPECT_NE(err.find("has no end-of-document token"), std::string::npos) << err;
  const auto r = test::run_program("loom-data", "--input " + corpus + " --output " + dir.file("d.h5") +
                                                   " --tokenizer " + dir.file("noeos.model"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir.file("d.h5")));
}

TEST(SentencePiece, BadOptionsLeaveNoFiles) {
  test::TempDir dir("spm-bad");
  const std::string corpus = dir.file("corpus.txt");
  std::string text;
  for (int i = 0; i < 200; ++i) text += "the quick brown fox jumps over the lazy dog " + std::to_string(i) + "\n";
  write_file(corpus, text);
  const std::string base = "train-tokenizer --quiet --input " + corpus + " --output " + dir.file("m");
  struct Case {
    std::string args, message;
  };
  const std::vector<Case> cases = {
      {" --model-type bpe --vocab-size 20", "Vocabulary size is smaller than required_chars"},  // SentencePiece's check
      {" --model-type unigram --vocab-size 100000", "Vocabulary size too high"},
      {" --model-type wordpiece --vocab-size 300", "unknown --model-type 'wordpiece'"},
      {" --model-type bpe --vocab-size 200 --byte-fallback", "--vocab-size 200 leaves no room for learned pieces"},
      {" --model-type bpe --vocab-size 300 --special-tokens '<a>,<b>,<a>'", "special token '<a>' is repeated"},
      {" --model-type bpe", "no --vocab-size given"},
      {" --model-type bpe --vocab-size 300 --character-coverage 1.5", "--character-coverage 1.5 is outside (0, 1]"},
      {" --model-type bpe --vocab-size 300 --no-such-option", "unrecognised option '--no-such-option'"},
  };
  for (const Case& c : cases) {
    const auto r = test::run_program("loom-data", base + c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find("HINT"), std::string::npos) << r.output;
    std::vector<std::string> left;
    for (const auto& e : std::filesystem::directory_iterator(dir.path)) left.push_back(e.path().filename().string());
    EXPECT_EQ(left, std::vector<std::string>{"corpus.txt"}) << c.args;
  }
  // A good run writes both files; a second one without --force refuses and keeps them.
  auto r = test::run_program("loom-data", base + " --model-type bpe --vocab-size 100");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string model = read_file(dir.file("m.model"));
  EXPECT_GT(model.size(), 100u);
  r = test::run_program("loom-data", base + " --model-type unigram --vocab-size 60");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("already exists"), std::string::npos) << r.output;
  EXPECT_TRUE(read_file(dir.file("m.model")) == model);
  // A failed training with --force keeps the old files too.
  r = test::run_program("loom-data", base + " --model-type unigram --vocab-size 100000 --force");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(read_file(dir.file("m.model")) == model);
  r = test::run_program("loom-data", base + " --model-type unigram --vocab-size 60 --force");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(read_file(dir.file("m.model")) != model);
  EXPECT_EQ(SpmTokenizer::load(dir.file("m.model")).vocab_size(), 60);
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(dir.path)) left.push_back(e.path().filename().string());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"corpus.txt", "m.model", "m.vocab"}));  // no temporary files
  EXPECT_NE(test::error_of([&] { (void)SpmTokenizer::load(corpus); }).find("is not a SentencePiece model"),
            std::string::npos);
}

}  // namespace
}  // namespace loom
