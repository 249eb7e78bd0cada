// tests/unit/test_io_dataset.cpp — the byte tokenizer, the train/val split and the
// HDF5 token dataset (io/tokenizer.h, io/token_dataset.h), plus loom-data end to end.
//
// Round trips: bytes -> tokens -> bytes, and through a written and reopened file
// (resident and streamed reads agree). Every open error is provoked on a real
// file (missing, not HDF5, truncated, wrong magic/version, missing split, tokens
// out of range, checksum) and must name the file. Files live in a fresh temporary
// directory that each test removes.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "temp_dir.h"
#include "io/h5.h"
#include "io/token_dataset.h"
#include "io/tokenizer.h"

namespace loom {
namespace {

namespace fs = std::filesystem;

using test::TempDir;

// Two documents, each followed by eod, split by split_train_val; returns the stream.
std::vector<std::int32_t> write_two_docs(const std::string& path, const std::string& a, const std::string& b,
                                         double val_fraction = 0.25) {
  std::vector<std::int32_t> stream = encode_bytes(a);
  stream.push_back(256);
  const std::uint64_t second = stream.size();
  encode_bytes_append(b, stream);
  stream.push_back(256);
  const std::vector<std::uint64_t> starts{0, second};
  const TrainValSplit s = split_train_val(std::int64_t(stream.size()), starts, val_fraction);
  const std::span<const std::int32_t> all(stream);
  write_token_dataset(path, all.first(s.train_tokens), s.train_doc_offsets, all.subspan(s.train_tokens),
                      s.val_doc_offsets, DatasetMeta{});
  return stream;
}

std::vector<std::int32_t> read_all(const TokenDataset& d) {
  std::vector<std::int32_t> out(d.size());
  d.read(0, d.size(), out.data());
  return out;
}

using test::error_of;

using namespace std::string_literals;
const std::string kText = "In the beginning God created the heaven and the earth.\n\xff\x00\x01 bytes"s;
const std::string kText2 = "And the earth was without form, and void; and darkness was upon the face of the deep.";

TEST(Tokenizer, RoundTripsEveryByte) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  const auto tokens = encode_bytes(all);
  ASSERT_EQ(tokens.size(), 256u);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(tokens[b], b);
  EXPECT_EQ(decode_bytes(tokens), all);
  const std::vector<std::int32_t> with_eod{'a', 256, 'b'};
  EXPECT_EQ(decode_bytes(with_eod), "ab");
  EXPECT_EQ(decode_bytes(with_eod, "\n\n"), "a\n\nb");
  EXPECT_THROW(decode_bytes(std::vector<std::int32_t>{257}), Error);
  EXPECT_THROW(tokenizer_by_name("gpt2"), Error);
  EXPECT_EQ(tokenizer_by_name("bytes").vocab_size, 257);
}

TEST(TokenDataset, SplitHasNoOverlapAndCoversTheStream) {
  const std::vector<std::uint64_t> starts{0, 10, 60, 95};
  const TrainValSplit s = split_train_val(100, starts, 0.1);
  EXPECT_EQ(s.train_tokens, 90);
  EXPECT_EQ(s.val_tokens, 10);
  EXPECT_EQ(s.train_doc_offsets, (std::vector<std::uint64_t>{0, 10, 60}));
  EXPECT_EQ(s.val_doc_offsets, (std::vector<std::uint64_t>{0, 5}));  // 90 is mid-document
  const TrainValSplit t = split_train_val(100, starts, 0.4);           // cut exactly at a document start
  EXPECT_EQ(t.val_doc_offsets, (std::vector<std::uint64_t>{0, 35}));
  EXPECT_EQ(split_train_val(2, std::vector<std::uint64_t>{0}, 0.001).val_tokens, 1);  // at least one token each side
  EXPECT_EQ(split_train_val(2, std::vector<std::uint64_t>{0}, 0.999).train_tokens, 1);
  EXPECT_THROW(split_train_val(100, starts, 0.0), Error);
  EXPECT_THROW(split_train_val(100, starts, 1.0), Error);
}

TEST(TokenDataset, WrittenAndReopenedRoundTripsToTheBytes) {
  TempDir dir;
  const std::string path = dir.file("data.h5");
  const auto stream = write_two_docs(path, kText, kText2);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  const TokenDataset train = TokenDataset::open(path, "train");
  const TokenDataset val = TokenDataset::open(path, "val");
  EXPECT_TRUE(train.resident());
  EXPECT_EQ(train.size() + val.size(), std::int64_t(stream.size()));
  EXPECT_EQ(train.vocab_size(), 257);
  EXPECT_EQ(train.meta().tokenizer, "bytes");
  EXPECT_EQ(train.meta().eod_token, 256);
  EXPECT_EQ(train.meta().format_version, 1);
  EXPECT_EQ(train.doc_offsets()[0], 0u);
  auto joined = read_all(train);
  const auto v = read_all(val);
  EXPECT_EQ(train.tokens_checksum(), tokens_crc32(0, std::span<const std::int32_t>(joined)));
  joined.insert(joined.end(), v.begin(), v.end());
  EXPECT_EQ(joined, stream);  // train ++ val is the tokenised input, nothing lost or repeated
  EXPECT_EQ(decode_bytes(joined), kText + kText2);
  std::vector<std::int32_t> part(5);
  train.read(3, 5, part.data());
  EXPECT_EQ(std::vector<std::int32_t>(stream.begin() + 3, stream.begin() + 8), part);
  EXPECT_THROW(train.read(train.size() - 2, 5, part.data()), Error);
}

TEST(TokenDataset, StreamedReadsEqualResidentReads) {
  TempDir dir;
  const std::string path = dir.file("data.h5");
  const auto stream = write_two_docs(path, kText, kText2);
  const TokenDataset resident = TokenDataset::open(path, "train");
  const TokenDataset streamed = TokenDataset::open(path, "train", TokenReadOptions{.max_resident_bytes = 0});
  EXPECT_FALSE(streamed.resident());
  EXPECT_EQ(read_all(streamed), read_all(resident));
  std::vector<std::int32_t> a(7), b(7);
  resident.read(11, 7, a.data());
  streamed.read(11, 7, b.data());
  EXPECT_EQ(a, b);
  EXPECT_NO_THROW(streamed.verify());
}

TEST(TokenDataset, LargeVocabularyIsStoredAsUint32) {
  TempDir dir;
  const std::string path = dir.file("big.h5");
  std::vector<std::int32_t> train{0, 65535, 65536, 69999, 12}, val{69998, 1};
  DatasetMeta meta;
  meta.tokenizer = "test";
  meta.vocab_size = 70000;
  meta.eod_token = 69999;
  write_token_dataset(path, train, std::vector<std::uint64_t>{0, 4}, val, std::vector<std::uint64_t>{0}, meta);
  const TokenDataset d = TokenDataset::open(path, "train");
  EXPECT_EQ(read_all(d), train);
  EXPECT_EQ(read_all(TokenDataset::open(path, "val", TokenReadOptions{.max_resident_bytes = 0})), val);
  h5::Handle file = h5::open_file(path, "");
  h5::Handle tokens = h5::open_dataset(file, "train/tokens", "open");
  EXPECT_EQ(h5::type_name(tokens), "uint32");
}

TEST(TokenDataset, WriterRefusesToOverwriteAndBadInput) {
  TempDir dir;
  const std::string path = dir.file("data.h5");
  write_two_docs(path, kText, kText2);
  const auto size = fs::file_size(path);
  EXPECT_NE(error_of([&] { write_two_docs(path, "x", "y"); }).find("already exists"), std::string::npos);
  EXPECT_EQ(fs::file_size(path), size);
  const std::vector<std::int32_t> t{1, 2, 3};
  const std::vector<std::uint64_t> docs{0};
  TokenWriteOptions force;
  force.overwrite = Overwrite::yes;
  write_token_dataset(path, t, docs, t, docs, DatasetMeta{}, force);
  EXPECT_EQ(TokenDataset::open(path, "val").size(), 3);
  const std::string other = dir.file("other.h5");
  EXPECT_THROW(write_token_dataset(other, std::vector<std::int32_t>{1, 300}, docs, t, docs, DatasetMeta{}), Error);
  EXPECT_THROW(write_token_dataset(other, t, std::vector<std::uint64_t>{1}, t, docs, DatasetMeta{}), Error);
  EXPECT_THROW(write_token_dataset(other, t, std::vector<std::uint64_t>{0, 2, 2}, t, docs, DatasetMeta{}), Error);
  EXPECT_FALSE(fs::exists(other));
  EXPECT_FALSE(fs::exists(other + ".tmp"));
  EXPECT_THROW(write_token_dataset(dir.file("no/such/dir.h5"), t, docs, t, docs, DatasetMeta{}), Error);
}

TEST(TokenDatasetErrors, MissingNotHdf5AndTruncatedFilesNameThePath) {
  TempDir dir;
  const std::string missing = dir.file("missing.h5");
  std::string msg = error_of([&] { TokenDataset::open(missing, "train"); });
  EXPECT_NE(msg.find(missing), std::string::npos) << msg;
  EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;
  EXPECT_NE(msg.find("HINT: create it with: loom-data"), std::string::npos) << msg;

  const std::string text = dir.file("text.h5");
  std::ofstream(text) << "not an HDF5 file at all\n";
  msg = error_of([&] { TokenDataset::open(text, "train"); });
  EXPECT_NE(msg.find(text), std::string::npos) << msg;
  EXPECT_NE(msg.find("not a readable HDF5 file"), std::string::npos) << msg;

  const std::string cut = dir.file("cut.h5");
  write_two_docs(cut, kText, kText2);
  fs::resize_file(cut, fs::file_size(cut) / 2);
  msg = error_of([&] { TokenDataset::open(cut, "train"); });
  EXPECT_NE(msg.find(cut), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  EXPECT_NE(msg.find("HINT:"), std::string::npos) << msg;
}

// Opens `path` read-write and lets `edit` change it with raw HDF5 calls.
template <class F>
void edit_file(const std::string& path, F&& edit) {
  h5::quiet();
  h5::Handle file(h5::check(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), "open rw"), H5Fclose);
  edit(file.get());
}

TEST(TokenDatasetErrors, WrongMagicVersionOrMissingSplit) {
  TempDir dir;
  const std::string path = dir.file("data.h5");
  write_two_docs(path, kText, kText2);
  edit_file(path, [](hid_t f) { h5::write_attr(f, "magic", std::string_view("something-else")); });
  std::string msg = error_of([&] { TokenDataset::open(path, "train"); });
  EXPECT_NE(msg.find("'" + path + "' is not a loom token dataset"), std::string::npos) << msg;
  EXPECT_NE(msg.find("something-else"), std::string::npos) << msg;

  edit_file(path, [](hid_t f) {
    h5::write_attr(f, "magic", std::string_view("loom-tokens"));
    h5::write_attr(f, "format_version", std::int64_t(7));
  });
  msg = error_of([&] { TokenDataset::open(path, "train"); });
  EXPECT_NE(msg.find("version 7"), std::string::npos) << msg;

  edit_file(path, [](hid_t f) {
    h5::write_attr(f, "format_version", std::int64_t(1));
    H5Ldelete(f, "val", H5P_DEFAULT);
  });
  EXPECT_NO_THROW(TokenDataset::open(path, "train"));
  msg = error_of([&] { TokenDataset::open(path, "val"); });
  EXPECT_NE(msg.find("has no 'val' split"), std::string::npos) << msg;
  EXPECT_THROW(TokenDataset::open(path, "test"), Error);
}

TEST(TokenDatasetErrors, TokensOutsideTheVocabulary) {
  TempDir dir;
  const std::string path = dir.file("data.h5");
  write_two_docs(path, kText, kText2);
  edit_file(path, [](hid_t f) { h5::write_attr(f, "vocab_size", std::int64_t(100)); });
  const std::string msg = error_of([&] { TokenDataset::open(path, "train"); });
  EXPECT_NE(msg.find("outside the vocabulary [0, 100)"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  // Streamed: found by the read that meets it, and by verify().
  const TokenDataset d = TokenDataset::open(path, "train", TokenReadOptions{.max_resident_bytes = 0});
  std::vector<std::int32_t> out(d.size());
  EXPECT_THROW(d.read(0, d.size(), out.data()), Error);
  EXPECT_THROW(d.verify(), Error);
}

TEST(TokenDatasetErrors, ChecksumMismatch) {
  TempDir dir;
  const std::string path = dir.file("data.h5");
  write_two_docs(path, kText, kText2);
  edit_file(path, [](hid_t f) {
    h5::Handle d = h5::open_dataset(f, "train/tokens", "open");
    h5::Handle fspace(H5Dget_space(d), H5Sclose);
    const hsize_t start = 4, count = 1;
    H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, nullptr, &count, nullptr);
    h5::Handle mspace(H5Screate_simple(1, &count, nullptr), H5Sclose);
    const std::int32_t v = 'Z';
    h5::check_status(H5Dwrite(d, H5T_NATIVE_INT32, mspace, fspace, H5P_DEFAULT, &v), "write");
  });
  const std::string msg = error_of([&] { TokenDataset::open(path, "train"); });
  EXPECT_NE(msg.find("checksum"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NO_THROW(TokenDataset::open(path, "val"));
  const TokenDataset streamed = TokenDataset::open(path, "train", TokenReadOptions{.max_resident_bytes = 0});
  EXPECT_THROW(streamed.verify(), Error);
}

// The loom-data program: $LOOM_BUILD_DIR/launch/loom-data, else next to this test's
// build folder (BUILD/tests/test_io_dataset -> BUILD/launch/loom-data).
fs::path loom_data_program() {
  const char* build = std::getenv("LOOM_BUILD_DIR");
  std::error_code ec;
  const fs::path root = build ? fs::path(build) : fs::read_symlink("/proc/self/exe", ec).parent_path().parent_path();
  return root / "launch" / "loom-data";
}

// loom-data end to end (the test target depends on loom-data, so it is built).
TEST(LoomData, WritesTheSplitStreamAndRejectsBadInput) {
  const fs::path exe = loom_data_program();
  ASSERT_TRUE(fs::exists(exe)) << "loom-data is not built (looked for " << exe << ")";
  TempDir dir;
  std::ofstream(dir.file("a.txt"), std::ios::binary) << kText;
  std::ofstream(dir.file("b.txt"), std::ios::binary) << kText2;
  const std::string out = dir.file("out.h5");
  auto run = [&](const std::string& args) {
    const int status = std::system((exe.string() + " " + args + " >/dev/null 2>&1").c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  const std::string inputs = "--input " + dir.file("a.txt") + " " + dir.file("b.txt");
  ASSERT_EQ(run(inputs + " --output " + out + " --val-fraction 0.3 --quiet"), 0);
  std::vector<std::int32_t> expect = encode_bytes(kText);
  expect.push_back(256);
  encode_bytes_append(kText2, expect);
  expect.push_back(256);
  auto joined = read_all(TokenDataset::open(out, "train"));
  const auto val = read_all(TokenDataset::open(out, "val"));
  EXPECT_NEAR(double(val.size()), 0.3 * double(expect.size()), 1.0);
  joined.insert(joined.end(), val.begin(), val.end());
  EXPECT_EQ(joined, expect);
  EXPECT_EQ(run(inputs + " --output " + out), 2);  // exists, no --force
  EXPECT_EQ(run(inputs + " --output " + out + " --force --quiet"), 0);
  EXPECT_EQ(run("--input " + dir.file("nope.txt") + " --output " + dir.file("x.h5")), 2);
  EXPECT_EQ(run(inputs + " --output " + dir.file("x.h5") + " --val-fraction 1"), 2);
  EXPECT_EQ(run(inputs + " --output " + dir.file("x.h5") + " --no-such-option"), 2);
  std::ofstream(dir.file("empty.txt")).flush();
  EXPECT_EQ(run("--input " + dir.file("empty.txt") + " --output " + dir.file("x.h5")), 2);
  EXPECT_FALSE(fs::exists(dir.file("x.h5")));
}

// ---- TokenStreamWriter: the bounded-memory writer loom-data uses ----------------------

// A random stream of `docs` documents (each ends in eod = vocab - 1) and its document starts.
struct Stream {
  std::vector<std::int32_t> tokens;
  std::vector<std::uint64_t> starts;
};
Stream random_stream(std::int64_t vocab, int docs, unsigned seed) {
  Stream s;
  std::srand(seed);
  for (int d = 0; d < docs; ++d) {
    s.starts.push_back(s.tokens.size());
    const int len = std::rand() % 300;
    for (int i = 0; i < len; ++i) s.tokens.push_back(std::int32_t(std::rand() % (vocab - 1)));
    s.tokens.push_back(std::int32_t(vocab - 1));
  }
  return s;
}

// Appends the stream in pieces of `piece` tokens, each with the document starts inside it.
void append_in_pieces(TokenStreamWriter& w, const Stream& s, std::size_t piece) {
  std::size_t d = 0;
  for (std::size_t at = 0; at < s.tokens.size(); at += piece) {
    const std::size_t n = std::min(piece, s.tokens.size() - at);
    const std::size_t d0 = d;
    while (d < s.starts.size() && s.starts[d] < at + n) ++d;
    w.append(std::span(s.tokens).subspan(at, n), std::span(s.starts).subspan(d0, d - d0));
  }
}

std::vector<std::string> names_in(const TempDir& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir.path)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(TokenStreamWriter, WritesTheSameFileAsTheInMemoryWriterForAnyPieceSize) {
  for (const std::int64_t vocab : {std::int64_t(300), std::int64_t(70000)}) {  // uint16 and uint32 on disk
    TempDir dir("stream");
    const Stream s = random_stream(vocab, 40, unsigned(vocab));
    DatasetMeta meta;
    meta.tokenizer = "test";
    meta.vocab_size = vocab;
    meta.eod_token = std::int32_t(vocab - 1);
    TokenWriteOptions opt;
    opt.chunk_tokens = 97;  // several chunks, and blocks of whole chunks that end mid-split
    const TrainValSplit split = split_train_val(std::int64_t(s.tokens.size()), s.starts, 0.2);
    const std::span<const std::int32_t> all(s.tokens);
    write_token_dataset(dir.file("ref.h5"), all.first(split.train_tokens), split.train_doc_offsets,
                        all.subspan(split.train_tokens), split.val_doc_offsets, meta, opt);
    for (const std::size_t piece : {std::size_t(1), std::size_t(13), std::size_t(4096), s.tokens.size()}) {
      const std::string out = dir.file(fmt::format("s{}.h5", piece));
      TokenStreamWriter w(out, meta, opt);
      append_in_pieces(w, s, piece);
      EXPECT_EQ(w.tokens(), std::int64_t(s.tokens.size()));
      EXPECT_EQ(w.documents(), 40);
      const TrainValSplit got = w.finish(0.2);
      EXPECT_EQ(got.train_tokens, split.train_tokens);
      EXPECT_EQ(got.val_doc_offsets, split.val_doc_offsets);
      EXPECT_EQ(test::read_file(out), test::read_file(dir.file("ref.h5"))) << "vocab " << vocab << " piece " << piece;
      auto joined = read_all(TokenDataset::open(out, "train"));
      const auto val = read_all(TokenDataset::open(out, "val"));
      joined.insert(joined.end(), val.begin(), val.end());
      EXPECT_EQ(joined, s.tokens);
    }
  }
}

TEST(TokenStreamWriter, LeavesNothingBehindOnABadTokenOrWithoutFinish) {
  TempDir dir("stream-bad");
  DatasetMeta meta;  // bytes: vocab 257
  const std::vector<std::int32_t> good{1, 2, 3, 256}, bad{4, 300};
  const std::vector<std::uint64_t> start0{0};
  {
    TokenStreamWriter w(dir.file("a.h5"), meta);
    w.append(good, start0);
    const std::string err = error_of([&] { w.append(bad, {}); });
    EXPECT_NE(err.find("token 300 at position 5"), std::string::npos) << err;
  }
  {
    TokenStreamWriter w(dir.file("b.h5"), meta);  // abandoned: an error elsewhere, say
    w.append(good, start0);
  }
  EXPECT_TRUE(names_in(dir).empty()) << names_in(dir).front();  // no output, no .tmp, no spool
  // The first piece must start a document; starts must lie inside their piece.
  TokenStreamWriter w(dir.file("c.h5"), meta);
  EXPECT_NE(error_of([&] { w.append(good, {}); }).find("must start with a document"), std::string::npos);
  const std::vector<std::uint64_t> outside{0, 9};
  EXPECT_NE(error_of([&] { w.append(good, outside); }).find("document start 9"), std::string::npos);
}

TEST(TokenStreamWriter, RefusesAnExistingOutputBeforeAnyTokenIsMade) {
  TempDir dir("stream-exists");
  test::write_file(dir.file("out.h5"), "precious");
  EXPECT_NE(error_of([&] { TokenStreamWriter w(dir.file("out.h5"), DatasetMeta{}); }).find("already exists"),
            std::string::npos);
  EXPECT_EQ(test::read_file(dir.file("out.h5")), "precious");
  EXPECT_EQ(names_in(dir), std::vector<std::string>{"out.h5"});
}

}  // namespace
}  // namespace loom
