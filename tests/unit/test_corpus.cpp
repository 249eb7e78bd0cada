// tests/unit/test_corpus.cpp — corpora at scale (io/corpus.h) and loom-data on them:
// files, directories and globs; JSON Lines plain, gzip and zstd; several threads
// giving the same token stream as one; errors naming the file and the line, with no
// dataset left under the output name.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "io/corpus.h"
#include "io/hf_tokenizer.h"
#include "io/token_dataset.h"
#include "io/tokenizer.h"
#include "programs.h"
#include "temp_dir.h"

namespace loom {
namespace {

namespace fs = std::filesystem;
using test::error_of;
using test::TempDir;

using test::write_file;

bool have_tool(const std::string& name) { return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0; }

void shell(const std::string& cmd) { ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd; }

// A JSON Lines corpus of `n` records with pseudo-random texts (quotes, escapes, UTF-8,
// lengths from 0 to ~3 KB), plus a blank line now and then; returns the texts, "" included.
std::vector<std::string> write_jsonl(const std::string& path, int n, unsigned seed) {
  std::mt19937 rng(seed);
  const std::vector<std::string> words{"the", "earth", "\"quoted\"", "caf\u00e9", "tab\there", "\u65e5\u672c", "a\\b",
                                       "line\nbreak", "and", "void"};
  std::vector<std::string> texts;
  std::string file;
  for (int i = 0; i < n; ++i) {
    const int len = int(rng() % 400);
    std::string t;
    for (int w = 0; w < len; ++w) t += words[rng() % words.size()] + (w + 1 < len ? " " : "");
    texts.push_back(t);
    file += nlohmann::json{{"id", i}, {"text", t}}.dump() + "\n";
    if (rng() % 50 == 0) file += "\n";
  }
  write_file(path, file);
  return texts;
}

std::vector<std::int32_t> read_split(const std::string& path, const std::string& split) {
  const TokenDataset d = TokenDataset::open(path, split);
  std::vector<std::int32_t> out(d.size());
  d.read(0, d.size(), out.data());
  return out;
}

// Every observable part of a dataset except source_files (paths differ between runs).
struct DatasetContents {
  std::vector<std::int32_t> train, val;
  std::vector<std::uint64_t> train_docs, val_docs;
  std::uint32_t train_crc = 0, val_crc = 0;
  std::string tokenizer;
  std::int64_t vocab = 0;
  bool operator==(const DatasetContents&) const = default;
};
DatasetContents contents(const std::string& path) {
  DatasetContents c;
  const TokenDataset t = TokenDataset::open(path, "train"), v = TokenDataset::open(path, "val");
  c.train = read_split(path, "train");
  c.val = read_split(path, "val");
  c.train_docs.assign(t.doc_offsets().begin(), t.doc_offsets().end());
  c.val_docs.assign(v.doc_offsets().begin(), v.doc_offsets().end());
  c.train_crc = t.tokens_checksum();
  c.val_crc = v.tokens_checksum();
  c.tokenizer = t.meta().tokenizer;
  c.vocab = t.vocab_size();
  return c;
}

std::vector<std::int32_t> expected_stream(const std::vector<std::string>& docs) {
  std::vector<std::int32_t> s;
  for (const std::string& d : docs) {
    if (d.empty()) continue;
    encode_bytes_append(d, s);
    s.push_back(256);
  }
  return s;
}

TEST(Corpus, ThreadCountsGiveTheSameStreamAsOneThread) {
  TempDir dir("corpus");
  const auto texts = write_jsonl(dir.file("a.jsonl"), 600, 1);
  std::string big(std::size_t(2.5 * (1 << 20)), 'x');  // a text document longer than one read block
  for (std::size_t i = 0; i < big.size(); i += 997) big[i] = char(i % 256);
  write_file(dir.file("b.txt"), big);
  write_file(dir.file("c.txt"), "");
  const auto files = enumerate_corpus({dir.file("a.jsonl"), dir.file("b.txt"), dir.file("c.txt")});
  std::vector<std::string> docs = texts;
  docs.push_back(big);
  std::vector<std::int32_t> expect = expected_stream(docs);
  expect.push_back(256);  // the empty text file is a document of just eod
  const TokenizerInfo tok = tokenizer_by_name("bytes");
  for (std::size_t batch : {std::size_t(300), std::size_t(1) << 20}) {
    for (int threads : {1, 2, 4}) {
      CorpusOptions o;
      o.threads = threads;
      o.batch_bytes = batch;
      std::uint64_t last_bytes = 0;
      const EncodedCorpus c = encode_corpus(files, tok, o, [&](const CorpusProgress& p) {
        EXPECT_GE(p.raw_bytes, last_bytes);
        last_bytes = p.raw_bytes;
      });
      SCOPED_TRACE(fmt::format("threads {} batch {}", threads, batch));
      ASSERT_EQ(c.tokens, expect);
      const auto nonempty = std::count_if(texts.begin(), texts.end(), [](const std::string& t) { return !t.empty(); });
      ASSERT_EQ(c.doc_starts.size(), std::size_t(nonempty) + 2);
      EXPECT_EQ(c.doc_starts.front(), 0u);
      EXPECT_EQ(c.doc_starts.back(), expect.size() - 1);
      EXPECT_EQ(c.skipped_empty, texts.size() - std::size_t(nonempty));
      EXPECT_EQ(last_bytes, files[0].bytes + files[1].bytes);
      ASSERT_EQ(c.sources.size(), 3u);
      EXPECT_EQ(c.sources[1].bytes, big.size());
      EXPECT_EQ(c.sources[1].crc32, crc32_update(0, big.data(), big.size()));
    }
  }
}

// A tokenizer.json (each worker after the first loads its own instance): 1, 2 and 4
// threads give the stream of encoding each record alone.
TEST(Corpus, TokenizerJsonWithThreadsEncodesEachDocumentAsAlone) {
  TempDir dir("corpus");
  write_file(dir.file("tokenizer.json"), R"({"version": "1.0", "truncation": null, "padding": null,
  "added_tokens": [{"id": 8, "content": "<|endoftext|>", "single_word": false, "lstrip": false, "rstrip": false,
                    "normalized": false, "special": true}],
  "normalizer": null,
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
  "post_processor": null,
  "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
  "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
            "vocab": {"a": 0, "b": 1, "c": 2, "\u0120": 3, "ab": 4, "abc": 5, "\u0120a": 6, "bc": 7},
            "merges": ["a b", "ab c", "\u0120 a", "b c"]}})");
  std::mt19937 rng(7);
  std::string file;
  std::vector<std::string> texts;
  for (int i = 0; i < 2000; ++i) {
    std::string t;
    for (int k = int(rng() % 300); k > 0; --k) t += "abc "[rng() % 4];
    texts.push_back(t);
    file += nlohmann::json{{"text", t}}.dump() + "\n";
  }
  write_file(dir.file("a.jsonl"), file);
  const TokenizerInfo tok = tokenizer_by_name(dir.file("tokenizer.json"));
  ASSERT_EQ(tok.eod, 8);
  std::vector<std::int32_t> expect;
  for (const std::string& t : texts) {
    if (t.empty()) continue;
    tok.hf->encode_append(t, expect);
    expect.push_back(8);
  }
  for (int threads : {1, 2, 4}) {
    CorpusOptions o;
    o.threads = threads;
    o.batch_bytes = 1000;
    EXPECT_EQ(encode_corpus(enumerate_corpus({dir.file("a.jsonl")}), tok, o).tokens, expect) << threads << " threads";
  }
}

TEST(Corpus, LoomDataWithOneTwoAndFourThreadsWritesIdenticalDatasets) {
  TempDir dir("corpus");
  const auto texts = write_jsonl(dir.file("a.jsonl"), 3000, 2);
  const auto documents = std::count_if(texts.begin(), texts.end(), [](const std::string& t) { return !t.empty(); });
  DatasetContents first;
  for (int threads : {1, 2, 4}) {
    const std::string out = dir.file(fmt::format("t{}.h5", threads));
    const auto r = test::run_program(
        "loom-data", fmt::format("--input {} --output {} --threads {} --quiet", dir.file("a.jsonl"), out, threads));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const DatasetContents c = contents(out);
    EXPECT_GT(c.train.size(), 100000u);
    if (threads == 1) {
      first = c;
      // Progress when stderr is not a terminal: a line per 10% at most, with documents, tokens/s and ETA.
      const auto p = test::run_program(
          "loom-data", fmt::format("--input {} --output {} --threads 2", dir.file("a.jsonl"), dir.file("p.h5")));
      ASSERT_EQ(p.exit_code, 0) << p.output;
      std::size_t lines = 0;
      for (std::size_t at = 0; (at = p.output.find("loom-data: read ", at)) != std::string::npos; ++at) ++lines;
      EXPECT_GE(lines, 1u);
      EXPECT_LE(lines, 11u);
      EXPECT_NE(p.output.find(fmt::format("(100%), {} documents", documents)), std::string::npos) << p.output;
      EXPECT_NE(p.output.find("tokens/s, ETA"), std::string::npos) << p.output;
    }
    else EXPECT_TRUE(c == first) << "threads " << threads;
    // The files' bytes too, apart from nothing (source_files names the same input).
    if (threads > 1) {
      std::ifstream a(dir.file("t1.h5"), std::ios::binary), b(out, std::ios::binary);
      const std::string sa((std::istreambuf_iterator<char>(a)), {}), sb((std::istreambuf_iterator<char>(b)), {});
      EXPECT_TRUE(sa == sb) << "t1.h5 and " << out << " differ in bytes";
    }
  }
}

TEST(Corpus, JsonlPlainGzipAndZstdGiveTheSameDataset) {
  ASSERT_TRUE(have_tool("gzip") && have_tool("zstd")) << "the gzip and zstd tools are needed: launch/install-deps.sh";
  TempDir dir("corpus");
  write_jsonl(dir.file("a.jsonl"), 800, 3);
  write_jsonl(dir.file("b.jsonl"), 300, 4);
  shell(fmt::format("gzip -c {0} > {0}.gz && zstd -q -c {0} > {0}.zst", dir.file("a.jsonl")));
  // Concatenated gzip members (and zstd frames) are one valid stream.
  shell(fmt::format("(gzip -c {0}; gzip -c {1}) > {2} && (zstd -q -c {0}; zstd -q -c {1}) > {3} && cat {0} {1} > {4}",
                    dir.file("a.jsonl"), dir.file("b.jsonl"), dir.file("ab.jsonl.gz"), dir.file("ab.jsonl.zst"),
                    dir.file("ab.jsonl")));
  for (const std::string base : {"a.jsonl", "ab.jsonl"}) {
    DatasetContents plain;
    for (const std::string ext : {"", ".gz", ".zst"}) {
      const std::string out = dir.file(base + ext + ".h5");
      const auto r = test::run_program(
          "loom-data", fmt::format("--input {} --output {} --threads 2 --quiet", dir.file(base + ext), out));
      ASSERT_EQ(r.exit_code, 0) << r.output;
      const DatasetContents c = contents(out);
      if (ext.empty()) plain = c;
      else EXPECT_TRUE(c == plain) << base << ext;
    }
  }
  // A compressed text file is one document, as the plain one.
  write_file(dir.file("t.txt"), "In the beginning\nGod created");
  shell(fmt::format("gzip -c {0} > {0}.gz && zstd -q -c {0} > {0}.zst", dir.file("t.txt")));
  for (const std::string ext : {"", ".gz", ".zst"}) {
    const EncodedCorpus c =
        encode_corpus(enumerate_corpus({dir.file("t.txt" + ext)}), tokenizer_by_name("bytes"), CorpusOptions{});
    EXPECT_EQ(c.tokens, expected_stream({"In the beginning\nGod created"})) << ext;
  }
}

TEST(Corpus, DirectoriesAndGlobsExpandInSortedOrder) {
  TempDir dir("corpus");
  fs::create_directories(dir.path / "d" / "sub");
  write_file(dir.file("d/z.txt"), "z");
  write_file(dir.file("d/sub/m.txt"), "m");
  write_file(dir.file("d/a.jsonl"), "{\"text\":\"a1\"}\n{\"text\":\"a2\"}\n");
  write_file(dir.file("g2.txt"), "g2");
  write_file(dir.file("g10.txt"), "g10");
  const auto files = enumerate_corpus({dir.file("d"), dir.file("g*.txt")});
  std::vector<std::string> names;
  for (const CorpusFile& f : files) names.push_back(fs::relative(f.path, dir.path).string());
  EXPECT_EQ(names, (std::vector<std::string>{"d/a.jsonl", "d/sub/m.txt", "d/z.txt", "g10.txt", "g2.txt"}));
  EXPECT_EQ(files[0].format, CorpusFormat::jsonl);
  EXPECT_EQ(files[1].format, CorpusFormat::text);
  const EncodedCorpus c = encode_corpus(files, tokenizer_by_name("bytes"), CorpusOptions{});
  EXPECT_EQ(c.tokens, expected_stream({"a1", "a2", "m", "z", "g10", "g2"}));
  EXPECT_EQ(c.doc_starts, (std::vector<std::uint64_t>{0, 3, 6, 8, 10, 14}));
  EXPECT_NE(error_of([&] { enumerate_corpus({dir.file("nothing*.txt")}); }).find("matches no file"), std::string::npos);
  EXPECT_NE(error_of([&] { enumerate_corpus({dir.file("missing.txt")}); }).find("does not exist"), std::string::npos);
  fs::create_directories(dir.path / "empty");
  EXPECT_NE(error_of([&] { enumerate_corpus({dir.file("empty")}); }).find("holds no files"), std::string::npos);
  // loom-data takes them too.
  const auto r = test::run_program(
      "loom-data", fmt::format("--input {} '{}' --output {} --quiet", dir.file("d"), dir.file("g*.txt"), dir.file("o.h5")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto all = read_split(dir.file("o.h5"), "train");
  const auto val = read_split(dir.file("o.h5"), "val");
  all.insert(all.end(), val.begin(), val.end());
  EXPECT_EQ(all, c.tokens);
}

TEST(Corpus, BlankLinesAreSkippedAndCountInLineNumbers) {
  TempDir dir("corpus");
  write_file(dir.file("a.jsonl"), "\n{\"text\":\"one\"}\r\n  \n{\"text\":\"\"}\n{\"text\":\"two\"}");  // no final newline
  const EncodedCorpus c = encode_corpus(enumerate_corpus({dir.file("a.jsonl")}), tokenizer_by_name("bytes"), {});
  EXPECT_EQ(c.tokens, expected_stream({"one", "two"}));
  EXPECT_EQ(c.skipped_empty, 1u);
  write_file(dir.file("b.jsonl"), "\n{\"text\":\"one\"}\n\n{\"text\":1}\n");
  CorpusOptions o;
  o.threads = 3;
  EXPECT_NE(error_of([&] { encode_corpus(enumerate_corpus({dir.file("b.jsonl")}), tokenizer_by_name("bytes"), o); })
                .find("b.jsonl:4: field 'text' is not a string"),
            std::string::npos);
  o.jsonl_field = "body";
  write_file(dir.file("c.jsonl"), "{\"body\":\"x\"}\n");
  EXPECT_EQ(encode_corpus(enumerate_corpus({dir.file("c.jsonl")}), tokenizer_by_name("bytes"), o).tokens,
            expected_stream({"x"}));
}

// The first error in stream order is reported, whatever the thread count: a corrupt line
// still in flight when the reader meets a truncated archive after it wins.
TEST(Corpus, TheFirstErrorInStreamOrderWinsWhateverTheThreads) {
  ASSERT_TRUE(have_tool("gzip")) << "the gzip tool is needed: launch/install-deps.sh";
  TempDir dir("corpus");
  std::string lines;
  for (int i = 0; i < 200; ++i) lines += "{\"text\":\"fine line\"}\n";
  write_file(dir.file("bad.jsonl"), lines + "{\"text\": nope}\n");
  write_jsonl(dir.file("good.jsonl"), 2000, 6);
  // Cut right after the gzip header: the reader fails at once, with the bad batch in flight.
  shell(fmt::format("gzip -c {} | head -c 40 > {}", dir.file("good.jsonl"), dir.file("trunc.jsonl.gz")));
  const auto files = enumerate_corpus({dir.file("bad.jsonl"), dir.file("trunc.jsonl.gz")});
  for (int threads : {1, 2, 4, 8}) {
    CorpusOptions o;
    o.threads = threads;
    o.batch_bytes = 200;
    const std::string err = error_of([&] { encode_corpus(files, tokenizer_by_name("bytes"), o); });
    EXPECT_NE(err.find("bad.jsonl:201: invalid JSON line"), std::string::npos) << threads << " threads: " << err;
  }
  EXPECT_NE(error_of([&] { encode_corpus({files[1]}, tokenizer_by_name("bytes"), CorpusOptions{}); }).find("truncated"),
            std::string::npos);
}

// Bad input through loom-data: exit code 2, the message names the file (and line), and
// neither the output nor its temporary exists afterwards.
TEST(Corpus, BadInputIsReportedWithFileAndLineAndLeavesNoDataset) {
  ASSERT_TRUE(have_tool("gzip") && have_tool("zstd")) << "the gzip and zstd tools are needed: launch/install-deps.sh";
  TempDir dir("corpus");
  write_jsonl(dir.file("good.jsonl"), 2000, 5);
  std::string lines;
  for (int i = 0; i < 1500; ++i) lines += "{\"text\":\"fine line\"}\n";
  write_file(dir.file("corrupt.jsonl"), lines + "{\"text\": \"unterminated}\n" + lines);
  write_file(dir.file("missing.jsonl"), lines + "{\"body\":\"x\"}\n");
  write_file(dir.file("notobject.jsonl"), "[1, 2]\n");
  write_file(dir.file("utf8.jsonl"), "{\"text\":\"ok\"}\n{\"text\":\"\xff\xfe\"}\n");
  shell(fmt::format("gzip -c {0} | head -c 20000 > {1}.jsonl.gz && zstd -q -c {0} | head -c 20000 > {1}.jsonl.zst",
                    dir.file("good.jsonl"), dir.file("trunc")));
  ASSERT_LT(fs::file_size(dir.file("trunc.jsonl.zst")), fs::file_size(dir.file("good.jsonl")) / 4);
  write_file(dir.file("garbage.jsonl.gz"), "this is not gzip data at all");
  struct Case {
    std::string input, message;
  } cases[] = {
      {"corrupt.jsonl", "corrupt.jsonl:1501: invalid JSON line"},
      {"missing.jsonl", "missing.jsonl:1501: no field 'text'"},
      {"notobject.jsonl", "notobject.jsonl:1: not a JSON object"},
      {"utf8.jsonl", "utf8.jsonl:2: invalid JSON line"},
      {"trunc.jsonl.gz", "gzip input '" + dir.file("trunc.jsonl.gz") + "' is truncated"},
      {"trunc.jsonl.zst", "zstd input '" + dir.file("trunc.jsonl.zst") + "' is truncated"},
      {"garbage.jsonl.gz", "gzip input '" + dir.file("garbage.jsonl.gz") + "' is corrupt"},
  };
  for (const Case& k : cases) {
    for (int threads : {1, 4}) {
      const std::string out = dir.file("out.h5");
      const auto r = test::run_program("loom-data", fmt::format("--input {} {} --output {} --threads {} --quiet",
                                                                dir.file("good.jsonl"), dir.file(k.input), out, threads));
      EXPECT_EQ(r.exit_code, 2) << k.input << ": " << r.output;
      EXPECT_NE(r.output.find(k.message), std::string::npos) << "expected '" << k.message << "' in: " << r.output;
      EXPECT_FALSE(fs::exists(out)) << k.input;
      EXPECT_FALSE(fs::exists(out + ".tmp")) << k.input;
    }
  }
}

}  // namespace
}  // namespace loom
