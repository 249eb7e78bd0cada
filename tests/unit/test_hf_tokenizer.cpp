// tests/unit/test_hf_tokenizer.cpp — io/hf_tokenizer.h against the Python `tokenizers`
// package (tests/unit/hf_tokenizer_reference.py trains byte-level BPEs of three kinds on
// Genesis and encodes the corpus and a hostile text; the ids must agree token for token),
// decode(encode(x)) == x (also for invalid UTF-8), a hand-written tokenizer.json, the
// errors for unsupported features, and loom-data --tokenizer PATH.json.
// Needs `tokenizers` (launch/test.sh installs it) and the `bible` program (bible-kjv):
// the test fails, saying so, when either is missing.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "io/hf_tokenizer.h"
#include "io/token_dataset.h"
#include "io/tokenizer.h"
#include "programs.h"
#include "temp_dir.h"

namespace loom {
namespace {

using test::read_file;  // tests/unit/temp_dir.h
using test::read_ids;
using test::write_file;

// Mixed scripts, emoji (with ZWJ and skin tones), control characters, long whitespace
// runs, CRLF, tabs, numbers, contractions, a special token in the middle.
std::string hostile_text() {
  std::string s =
      "Hello, World! It's 2024; we'll see: they've, I'm, you'd, she's, THEY'RE 'quoted' ''double''.\r\n"
      "\tTabbed\tline\t\twith\t\t\ttabs   and    spaces.\n\n\n"
      "Числа 12345 и 3.14159, ελληνικά, עברית, العربية, 中文分词测试，日本語のテキスト、한국어 텍스트.\n"
      "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🇩🇪 ❤️ — “smart quotes” ‘single’ … ½ ² ① Ⅻ\n"
      "Control: \x01\x02\x07\x1b[31mred\x1b[0m \x7f end\v\f\r\r\n"
      "<|endoftext|>After the special token<|endoftext|><|endoftext|>x<|endoftext| broken\n"
      "Combining: e\xCC\x81 n\xCC\x83 a\xCC\x8A; zero\xE2\x80\x8Bwidth; nbsp\xC2\xA0here; ideographic\xE3\x80\x80space\n"
      "numbers: 0 00 000 1234567890 1,000,000 -42 +7 3e10 0x1F\n";
  s += std::string(300, ' ') + "after 300 spaces" + std::string(50, '\n') + std::string(40, '\t') + "x";
  s += "\n    indented\n  \n \n" + std::string(1000, 'a') + " " + std::string(500, '!') + "\n   ";
  return s;
}

std::string reference_script() { return std::string(LOOM_SOURCE_DIR) + "/tests/unit/hf_tokenizer_reference.py"; }

// The preconditions of the Python comparison: fail (not skip) when missing.
::testing::AssertionResult have_reference() {
  if (std::system("python3 -c 'import tokenizers' >/dev/null 2>&1") != 0)
    return ::testing::AssertionFailure()
           << "the Python package 'tokenizers' is not importable: run launch/test.sh (it installs it), "
              "or python3 -m pip install tokenizers";
  if (std::system("command -v bible >/dev/null 2>&1") != 0)
    return ::testing::AssertionFailure() << "the 'bible' program is missing: run launch/install-deps.sh (bible-kjv)";
  return ::testing::AssertionSuccess();
}

void compare_with_python(const std::string& style) {
  ASSERT_TRUE(have_reference());
  test::TempDir dir("hf-" + style);
  const std::string corpus = dir.file("genesis.txt"), hostile = dir.file("hostile.txt");
  ASSERT_EQ(std::system(("bible Gen1:1-Gen50:26 > " + corpus).c_str()), 0);
  write_file(hostile, hostile_text());
  const std::string cmd = "python3 " + reference_script() + " --style " + style + " --corpus " + corpus + " --out " +
                          dir.path.string() + " --encode " + corpus + " " + hostile;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const HfTokenizer tok = HfTokenizer::load(dir.file("tokenizer.json"));
  EXPECT_EQ(tok.eod(), 0);  // <|endoftext|>, the trainer's first special token
  for (const std::string& f : {corpus, hostile}) {
    const std::string text = read_file(f);
    const std::vector<std::int32_t> want = read_ids(f + ".ids");
    ASSERT_GT(want.size(), 100u) << f;
    const std::vector<std::int32_t> got = tok.encode(text);
    std::size_t i = 0;
    while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
    EXPECT_TRUE(i == got.size() && i == want.size())
        << style << " " << f << ": " << got.size() << " tokens vs Python's " << want.size() << ", first difference at "
        << i << ": " << (i < got.size() ? got[i] : -1) << " vs " << (i < want.size() ? want[i] : -1) << " near '"
        << tok.decode(std::span(want).subspan(i > 3 ? i - 3 : 0, std::min<std::size_t>(8, want.size() - (i > 3 ? i - 3 : 0)))) << "'";
    // decode as Python's (with add_prefix_space that has the added spaces), else the text itself.
    EXPECT_EQ(tok.decode(got), read_file(f + ".decoded"));
    if (style != "gpt2-prefix") {
      EXPECT_EQ(tok.decode(got), text);
    }
    // The encoder is deterministic with its cache warm.
    EXPECT_EQ(tok.encode(text), got);
  }
  // Any bytes round-trip, invalid UTF-8 included (Python cannot hold these); with
  // add_prefix_space each stretch between added tokens gains a leading space.
  if (style == "gpt2-prefix") return;
  std::string bytes;
  for (int i = 0; i < 4096; ++i) bytes.push_back(static_cast<char>((i * 7919 + i / 256) & 0xFF));
  bytes += "\xC3\x28 \xE2\x82 \xF0\x9F\x98 ok \xFF\xFE<|endoftext|>\x80";
  EXPECT_EQ(tok.decode(tok.encode(bytes)), bytes);
}

TEST(HfTokenizerPython, Gpt2StyleMatchesTokenizers) { compare_with_python("gpt2"); }
TEST(HfTokenizerPython, Gpt2AddPrefixSpaceMatchesTokenizers) { compare_with_python("gpt2-prefix"); }
TEST(HfTokenizerPython, Llama3StyleMatchesTokenizers) { compare_with_python("llama3"); }

// A hand-written tokenizer.json: bytes a b c and space (Ġ), merges, an added token.
std::string tiny_json(const std::string& model_type = "BPE", const std::string& normalizer = "null",
                      const std::string& merges = R"(["a b", ["ab", "c"], "Ġ a", "b c", "a a"])") {
  return R"({"version": "1.0", "truncation": null, "padding": null,
  "added_tokens": [{"id": 9, "content": "<eot>", "single_word": false, "lstrip": false, "rstrip": false,
                    "normalized": false, "special": true},
                   {"id": 10, "content": "<eot>x", "single_word": false, "lstrip": false, "rstrip": false,
                    "normalized": false, "special": false}],
  "normalizer": )" + normalizer + R"(,
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
  "post_processor": null,
  "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
  "model": {"type": ")" + model_type + R"(", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
            "vocab": {"a": 0, "b": 1, "c": 2, "Ġ": 3, "ab": 4, "abc": 5, "Ġa": 6, "bc": 7, "aa": 11},
            "merges": )" + merges + "}}";
}

TEST(HfTokenizer, HandWrittenMergesAndAddedTokens) {
  const HfTokenizer tok = HfTokenizer::from_json(tiny_json());
  EXPECT_EQ(tok.vocab_size(), 12);
  EXPECT_EQ(tok.eod(), std::nullopt);
  EXPECT_EQ(tok.token_to_id("<eot>"), 9);
  EXPECT_EQ(tok.token_to_id("Ġa"), 6);
  using V = std::vector<std::int32_t>;
  EXPECT_EQ(tok.encode("abc"), (V{5}));          // a b -> ab (rank 0), ab c -> abc (rank 1)
  EXPECT_EQ(tok.encode("bc"), (V{7}));
  EXPECT_EQ(tok.encode("aaa"), (V{11, 0}));      // equal ranks: leftmost pair first
  EXPECT_EQ(tok.encode("aaaaa"), (V{11, 11, 0}));
  EXPECT_EQ(tok.encode("aab"), (V{0, 4}));       // a b (rank 0) before a a (rank 4)
  EXPECT_EQ(tok.encode("abbc"), (V{4, 7}));      // ab first (rank 0), then b c
  EXPECT_EQ(tok.encode(" a b"), (V{6, 3, 1}));   // regex pieces " a", " b"; Ġ b is no merge
  EXPECT_EQ(tok.encode("ab<eot>c"), (V{4, 9, 2}));
  EXPECT_EQ(tok.encode("<eot>xa<eot"), (V{10, 0}));  // longest added token wins; "<eot" has no bytes in the vocab: dropped
  EXPECT_EQ(tok.encode(""), V{});
  EXPECT_EQ(tok.decode(V{5, 9, 6, 3}), "abc<eot> a ");
  EXPECT_EQ(tok.decode(V{5, 9, 6}, /*skip_special=*/true), "abc a");
  EXPECT_NE(test::error_of([&] { (void)tok.decode(V{8}); }).find("token 8 at position 0 is not in the vocabulary"), std::string::npos);
}

TEST(HfTokenizer, UnsupportedFeaturesAreNamed) {
  auto err = [](const std::string& j) { return test::error_of([&] { (void)HfTokenizer::from_json(j, "t.json"); }); };
  EXPECT_NE(err(tiny_json("WordPiece")).find("model type 'WordPiece' (only BPE) is not supported"), std::string::npos)
      << err(tiny_json("WordPiece"));
  EXPECT_NE(err(tiny_json("Unigram")).find("model type 'Unigram'"), std::string::npos);
  EXPECT_NE(err(tiny_json("BPE", R"({"type": "NFC"})")).find("normalizer 'NFC' is not supported"), std::string::npos);
  EXPECT_NE(err(tiny_json("BPE", "null", R"(["a x"])")).find("merge 0 uses 'x', which is not in the vocabulary"),
            std::string::npos);
  EXPECT_NE(err("{not json").find("is not valid JSON"), std::string::npos);
  std::string j = tiny_json();
  j.replace(j.find(R"("ByteLevel")"), 11, R"("Metaspace")");  // the pre_tokenizer (before the decoder)
  EXPECT_NE(err(j).find("pre_tokenizer 'Metaspace' is not supported"), std::string::npos) << err(j);
  EXPECT_NE(test::error_of([] { (void)tokenizer_by_name("/nonexistent/tokenizer.json"); }).find("cannot open tokenizer"),
            std::string::npos);
  test::TempDir dir("hf-noeod");
  write_file(dir.file("t.json"), tiny_json());  // no <|endoftext|>: loom-data cannot end documents
  EXPECT_NE(test::error_of([&] { (void)tokenizer_by_name(dir.file("t.json")); }).find("has no end-of-document special token"),
            std::string::npos);
}

TEST(HfTokenizerPython, LoomDataUsesATokenizerJson) {
  ASSERT_TRUE(have_reference());
  test::TempDir dir("hf-data");
  const std::string corpus = dir.file("genesis.txt");
  ASSERT_EQ(std::system(("bible Gen1:1-Gen50:26 > " + corpus).c_str()), 0);
  const std::string cmd = "python3 " + reference_script() + " --style gpt2 --corpus " + corpus + " --out " +
                          dir.path.string() + " --vocab 600 --encode " + corpus;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const TokenizerInfo info = tokenizer_by_name(dir.file("tokenizer.json"));
  EXPECT_EQ(info.eod, 0);
  EXPECT_EQ(info.vocab_size, 600);
  const auto r = test::run_program("loom-data", "--input " + corpus + " " + corpus + " --output " + dir.file("d.h5") +
                                                   " --tokenizer " + dir.file("tokenizer.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The stream is Python's ids, eod, Python's ids, eod; the file records vocab 600 and eod 0.
  std::vector<std::int32_t> want = read_ids(corpus + ".ids");
  const std::size_t n = want.size();
  want.push_back(0);
  want.insert(want.end(), want.begin(), want.begin() + std::ptrdiff_t(n + 1));
  std::vector<std::int32_t> got;
  for (const char* split : {"train", "val"}) {
    const TokenDataset ds = TokenDataset::open(dir.file("d.h5"), split);
    EXPECT_EQ(ds.vocab_size(), 600);
    EXPECT_EQ(ds.meta().eod_token, 0);
    EXPECT_EQ(ds.meta().tokenizer, "hf:" + dir.file("tokenizer.json"));
    std::vector<std::int32_t> part(static_cast<std::size_t>(ds.size()));
    ds.read(0, ds.size(), part.data());
    got.insert(got.end(), part.begin(), part.end());
  }
  EXPECT_EQ(got, want);
}

}  // namespace
}  // namespace loom
