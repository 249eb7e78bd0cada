// tests/unit/test_megatron_dataset.cpp — Megatron-LM indexed datasets
// (io/megatron_dataset.h) and loom-data from-megatron / to-megatron.
//
// The pairs are written by a reference writer in this file that follows
// Megatron-LM's IndexedDatasetBuilder/_IndexWriter layout field by field
// (megatron/core/datasets/indexed_dataset.py) and shares no code with the reader:
// "MMIDIDX\0\0", u64 version 1, u8 dtype code, u64 sequence count, u64 document
// count (= documents + 1), int32 lengths, int64 byte pointers, int64 document
// indices starting at 0, optional int8 modes. Corrupted pairs are made by editing
// its bytes.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "io/megatron_dataset.h"
#include "io/token_dataset.h"
#include "programs.h"
#include "temp_dir.h"

namespace loom {
namespace {

namespace fs = std::filesystem;
using test::error_of;
using test::TempDir;

using Doc = std::vector<std::vector<std::int64_t>>;  // a document = its sequences

// Little-endian bytes of v, `size` of them.
void put(std::vector<unsigned char>& out, std::uint64_t v, int size) {
  for (int i = 0; i < size; ++i) out.push_back(static_cast<unsigned char>((v >> (8 * i)) & 0xff));
}

struct RefPair {
  std::vector<unsigned char> idx, bin;
};

// Megatron's layout, written independently of the reader. code: Megatron DType code;
// item: its byte size.
RefPair reference_pair(const std::vector<Doc>& docs, int code, int item, bool modes = false) {
  RefPair r;
  std::vector<std::int64_t> lengths, pointers, doc_idx{0};
  for (const Doc& d : docs) {
    for (const auto& seq : d) {
      pointers.push_back(static_cast<std::int64_t>(r.bin.size()));
      lengths.push_back(static_cast<std::int64_t>(seq.size()));
      for (std::int64_t t : seq) put(r.bin, static_cast<std::uint64_t>(t), item);
    }
    doc_idx.push_back(static_cast<std::int64_t>(lengths.size()));
  }
  const char magic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', 0, 0};
  r.idx.insert(r.idx.end(), magic, magic + 9);
  put(r.idx, 1, 8);
  put(r.idx, static_cast<std::uint64_t>(code), 1);
  put(r.idx, lengths.size(), 8);
  put(r.idx, doc_idx.size(), 8);
  for (auto v : lengths) put(r.idx, static_cast<std::uint64_t>(v), 4);
  for (auto v : pointers) put(r.idx, static_cast<std::uint64_t>(v), 8);
  for (auto v : doc_idx) put(r.idx, static_cast<std::uint64_t>(v), 8);
  if (modes) for (std::size_t i = 0; i < lengths.size(); ++i) put(r.idx, 0, 1);
  return r;
}

void save(const std::string& path, const std::vector<unsigned char>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}
std::vector<unsigned char> load_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
std::string save_pair(const TempDir& dir, const std::string& name, const RefPair& p) {
  const std::string prefix = dir.file(name);
  save(prefix + ".idx", p.idx);
  save(prefix + ".bin", p.bin);
  return prefix;
}

std::vector<std::int32_t> flat(const Doc& d) {
  std::vector<std::int32_t> out;
  for (const auto& s : d) out.insert(out.end(), s.begin(), s.end());
  return out;
}

// Several documents: many sequences, one sequence, an empty document, empty sequences.
std::vector<Doc> sample_docs() {
  return {
      Doc{{1, 2, 3}, {4}, {5, 6}, {}, {7, 8, 9, 10}},  // many sequences, one of them empty
      Doc{{11, 12, 13, 14, 15}},                        // one sequence
      Doc{},                                            // no sequences
      Doc{{40000, 65535}, {0}},                         // uint16 extremes
  };
}

void expect_reads_back(const MegatronDataset& m, const std::vector<Doc>& docs) {
  ASSERT_EQ(m.num_documents(), std::int64_t(docs.size()));
  std::int64_t seq = 0, tokens = 0;
  for (std::size_t d = 0; d < docs.size(); ++d) {
    EXPECT_EQ(m.document(std::int64_t(d)), flat(docs[d])) << "document " << d;
    EXPECT_EQ(m.document_tokens(std::int64_t(d)), std::int64_t(flat(docs[d]).size()));
    for (const auto& s : docs[d]) {
      EXPECT_EQ(m.sequence(seq), std::vector<std::int32_t>(s.begin(), s.end())) << "sequence " << seq;
      ++seq;
      tokens += std::int64_t(s.size());
    }
  }
  EXPECT_EQ(m.num_sequences(), seq);
  EXPECT_EQ(m.num_tokens(), tokens);
}

TEST(MegatronDataset, ReadsUint16DocumentsAndSequences) {
  TempDir dir("megatron");
  const auto docs = sample_docs();
  const std::string prefix = save_pair(dir, "u16", reference_pair(docs, 8, 2));
  const MegatronDataset m = MegatronDataset::open(prefix);
  EXPECT_EQ(m.dtype(), MegatronDType::uint16);
  EXPECT_FALSE(m.has_sequence_modes());
  expect_reads_back(m, docs);
  const std::vector<std::int64_t> doc_idx{0, 5, 6, 6, 8};
  EXPECT_EQ(std::vector<std::int64_t>(m.document_indices().begin(), m.document_indices().end()), doc_idx);
  EXPECT_EQ(m.sequence_pointers()[1], 6);  // 3 uint16 tokens
  // The .idx or .bin path works as well as the prefix.
  expect_reads_back(MegatronDataset::open(prefix + ".idx"), docs);
  expect_reads_back(MegatronDataset::open(prefix + ".bin"), docs);
}

TEST(MegatronDataset, ReadsOtherIntegerDtypes) {
  TempDir dir("megatron");
  const std::vector<Doc> big{Doc{{100000, 2147483647}, {0, 70000}}, Doc{{5}}};
  expect_reads_back(MegatronDataset::open(save_pair(dir, "i32", reference_pair(big, 4, 4))), big);
  expect_reads_back(MegatronDataset::open(save_pair(dir, "i64", reference_pair(big, 5, 8))), big);
  const std::vector<Doc> small{Doc{{1, 2, 127}}, Doc{{0}, {3}}};
  expect_reads_back(MegatronDataset::open(save_pair(dir, "u8", reference_pair(small, 1, 1))), small);
  expect_reads_back(MegatronDataset::open(save_pair(dir, "i8", reference_pair(small, 2, 1))), small);
  expect_reads_back(MegatronDataset::open(save_pair(dir, "i16", reference_pair(small, 3, 2))), small);
  // The multimodal trailer (one int8 mode per sequence) is accepted.
  const MegatronDataset mm = MegatronDataset::open(save_pair(dir, "mm", reference_pair(small, 8, 2, true)));
  EXPECT_TRUE(mm.has_sequence_modes());
  expect_reads_back(mm, small);
}

TEST(MegatronDataset, EmptyDocumentList) {
  TempDir dir("megatron");
  const std::string prefix = save_pair(dir, "empty", reference_pair({}, 8, 2));
  const MegatronDataset m = MegatronDataset::open(prefix);
  EXPECT_EQ(m.num_documents(), 0);
  EXPECT_EQ(m.num_sequences(), 0);
  EXPECT_EQ(m.num_tokens(), 0);
  FromMegatronOptions o;
  o.vocab_size = 100;
  o.eod_id = 0;
  EXPECT_NE(error_of([&] { megatron_to_loom(prefix, dir.file("x.h5"), o); }).find("0 document(s), only 0 token(s)"),
            std::string::npos);
}

TEST(MegatronDataset, TokensThatAreNotIds) {
  TempDir dir("megatron");
  const MegatronDataset wide =
      MegatronDataset::open(save_pair(dir, "wide", reference_pair({Doc{{1}, {2, 4294967296LL}}}, 5, 8)));
  EXPECT_EQ(wide.sequence(0), std::vector<std::int32_t>{1});
  const std::string e = error_of([&] { wide.document(0); });
  EXPECT_NE(e.find("wide.bin: sequence 1 token 1 is 4294967296, not a token id"), std::string::npos) << e;
  const MegatronDataset neg = MegatronDataset::open(save_pair(dir, "neg", reference_pair({Doc{{-3}}}, 3, 2)));
  EXPECT_NE(error_of([&] { neg.sequence(0); }).find("sequence 0 token 0 is -3"), std::string::npos);
}

// Patches `bytes` at `at` with the little-endian value v of `size` bytes.
void patch(std::vector<unsigned char>& bytes, std::size_t at, std::uint64_t v, int size) {
  for (int i = 0; i < size; ++i) bytes[at + std::size_t(i)] = static_cast<unsigned char>((v >> (8 * i)) & 0xff);
}

TEST(MegatronDataset, CorruptPairsNameTheFileAndTheProblem) {
  TempDir dir("megatron");
  const RefPair good = reference_pair(sample_docs(), 8, 2);  // 8 sequences, 5 document indices
  auto open_error = [&](const std::string& name, const RefPair& p) {
    const std::string prefix = save_pair(dir, name, p);
    return error_of([&] { MegatronDataset::open(prefix); });
  };
  auto expect_error = [&](const std::string& name, const RefPair& p, const std::string& what) {
    const std::string e = open_error(name, p);
    EXPECT_NE(e.find(dir.file(name)), std::string::npos) << name << ": " << e;
    EXPECT_NE(e.find(what), std::string::npos) << name << ": " << e;
    EXPECT_NE(e.find("HINT:"), std::string::npos) << name << ": " << e;
  };
  ASSERT_EQ(open_error("good", good), "");

  RefPair p = good;
  p.idx[3] = 'X';
  expect_error("magic", p, ".idx: bad magic");
  p = good;
  patch(p.idx, 9, 2, 8);
  expect_error("version", p, "unsupported index version 2");
  p = good;
  patch(p.idx, 17, 9, 1);
  expect_error("code9", p, "unsupported dtype code 9");
  p = good;
  patch(p.idx, 17, 7, 1);
  expect_error("float", p, "unsupported dtype float32");
  p = good;
  p.idx.resize(20);
  expect_error("short", p, "truncated index: 20 bytes, the header alone is 34");
  p = good;
  p.idx.resize(p.idx.size() - 3);
  expect_error("truncated", p, "truncated index");
  p = good;
  p.idx.push_back(0);
  expect_error("trailing", p, "1 bytes after the document indices");
  // The last pointer (sequence 7) past the end of the .bin.
  const std::size_t pointers = 34 + 8 * 4;
  p = good;
  patch(p.idx, pointers + 7 * 8, 1000, 8);
  expect_error("past_end", p, "sequence 7 (byte offset 1000, 1 tokens of 2 bytes) lies outside");
  // A length that disagrees with the next pointer.
  p = good;
  patch(p.idx, 34 + 0 * 4, 2, 4);
  expect_error("inconsistent", p, "lengths and pointers are inconsistent: sequence 1 starts at byte 6");
  p = good;
  p.bin.resize(p.bin.size() - 2);
  expect_error("short_bin", p, "lies outside");
  p = good;
  p.bin.push_back(0);
  expect_error("long_bin", p, "the index describes 36 bytes of tokens");
  const std::size_t doc_idx = pointers + 8 * 8;
  p = good;
  patch(p.idx, doc_idx, 1, 8);
  expect_error("doc_start", p, "document indices must start with 0");
  p = good;
  patch(p.idx, doc_idx + 2 * 8, 1, 8);
  expect_error("doc_order", p, "document indices decrease at entry 2");
  p = good;
  patch(p.idx, doc_idx + 4 * 8, 7, 8);
  expect_error("doc_end", p, "the last document index is 7, not the sequence count 8");

  fs::remove(dir.file("good") + ".bin");
  const std::string e = error_of([&] { MegatronDataset::open(dir.file("good")); });
  EXPECT_NE(e.find("good.bin' does not exist"), std::string::npos) << e;
}

TEST(MegatronDataset, WriterMatchesTheReferenceLayout) {
  TempDir dir("megatron");
  const auto docs = sample_docs();
  {
    MegatronWriter w(dir.file("w"), MegatronDType::uint16);
    for (const Doc& d : docs) {
      for (const auto& s : d) w.add_sequence(std::vector<std::int32_t>(s.begin(), s.end()));
      w.end_document();
    }
    w.finish();
  }
  const RefPair ref = reference_pair(docs, 8, 2);
  EXPECT_EQ(load_file(dir.file("w.idx")), ref.idx);
  EXPECT_EQ(load_file(dir.file("w.bin")), ref.bin);
  EXPECT_NE(error_of([&] { MegatronWriter(dir.file("w"), MegatronDType::uint16); }).find("already exists"),
            std::string::npos);
  MegatronWriter w(dir.file("x"), MegatronDType::uint16);
  EXPECT_NE(error_of([&] { w.add_sequence(std::vector<std::int32_t>{70000}); }).find("does not fit uint16"),
            std::string::npos);
}

// loom tokens of a split, all of them.
std::vector<std::int32_t> all_tokens(const TokenDataset& t) {
  std::vector<std::int32_t> out(static_cast<std::size_t>(t.size()));
  if (!out.empty()) t.read(0, t.size(), out.data());
  return out;
}

TEST(MegatronConversion, SingleSequenceDocumentsRoundTripByteForByte) {
  TempDir dir("megatron");
  // Documents ending with eod (preprocess_data.py --append-eod), one sequence each.
  std::vector<Doc> docs;
  for (int d = 0; d < 30; ++d) {
    std::vector<std::int64_t> s;
    for (int i = 0; i < 1 + (d * 7) % 13; ++i) s.push_back((d * 131 + i * 17) % 50000);
    s.push_back(50256);
    docs.push_back(Doc{s});
  }
  const RefPair ref = reference_pair(docs, 8, 2);
  const std::string prefix = save_pair(dir, "orig", ref);
  FromMegatronOptions o;
  o.vocab_size = 50257;
  o.eod_id = 50256;
  o.val_fraction = 0.25;
  const ConversionSummary s = megatron_to_loom(prefix + ".idx", dir.file("data.h5"), o);
  EXPECT_EQ(s.documents, 30);
  EXPECT_EQ(s.eod_added, 0);
  const TokenDataset train = TokenDataset::open(dir.file("data.h5"), "train");
  EXPECT_EQ(train.vocab_size(), 50257);
  EXPECT_EQ(train.meta().eod_token, 50256);
  EXPECT_EQ(train.meta().tokenizer, "megatron");
  EXPECT_EQ(s.train_tokens + s.val_tokens, s.tokens);
  // The split cuts a document (train does not end with eod): to-megatron must join it back.
  ASSERT_NE(all_tokens(train).back(), 50256);

  const ConversionSummary back = loom_to_megatron(dir.file("data.h5"), dir.file("back"), {});
  EXPECT_EQ(back.documents, 30);
  EXPECT_EQ(load_file(dir.file("back.idx")), ref.idx);
  EXPECT_EQ(load_file(dir.file("back.bin")), ref.bin);
}

TEST(MegatronConversion, MultiSequenceDocumentsKeepTheirTokensAndGainEod) {
  TempDir dir("megatron");
  const auto docs = sample_docs();  // no eod at the ends; eod id 9 ends none of them
  const std::string prefix = save_pair(dir, "orig", reference_pair(docs, 8, 2));
  FromMegatronOptions o;
  o.vocab_size = 65536;
  o.eod_id = 9;  // not at any document's end here, though it occurs inside document 0
  o.val_fraction = 0.3;
  const ConversionSummary s = megatron_to_loom(prefix, dir.file("data.h5"), o);
  EXPECT_EQ(s.eod_added, 4);
  // The loom stream is doc0 eod doc1 eod [] eod doc3 eod; doc_offsets mark the documents.
  std::vector<std::int32_t> expected;
  std::vector<std::uint64_t> starts;
  for (const Doc& d : docs) {
    starts.push_back(expected.size());
    const auto f = flat(d);
    expected.insert(expected.end(), f.begin(), f.end());
    expected.push_back(9);
  }
  const TokenDataset train = TokenDataset::open(dir.file("data.h5"), "train");
  const TokenDataset val = TokenDataset::open(dir.file("data.h5"), "val");
  auto stream = all_tokens(train);
  const auto v = all_tokens(val);
  stream.insert(stream.end(), v.begin(), v.end());
  EXPECT_EQ(stream, expected);
  const TrainValSplit split = split_train_val(std::int64_t(expected.size()), starts, 0.3);
  EXPECT_EQ(std::vector<std::uint64_t>(train.doc_offsets().begin(), train.doc_offsets().end()),
            split.train_doc_offsets);

  // Back to Megatron: one sequence per document, its eod included.
  loom_to_megatron(dir.file("data.h5"), dir.file("back"), {});
  const MegatronDataset back = MegatronDataset::open(dir.file("back"));
  EXPECT_EQ(back.dtype(), MegatronDType::uint16);
  ASSERT_EQ(back.num_documents(), 4);
  EXPECT_EQ(back.num_sequences(), 4);
  for (std::int64_t d = 0; d < 4; ++d) {
    auto f = flat(docs[std::size_t(d)]);
    f.push_back(9);
    EXPECT_EQ(back.document(d), f) << "document " << d;
  }
  // One split only: train's documents, the cut one as far as the boundary.
  ToMegatronOptions only;
  only.split = "val";
  loom_to_megatron(dir.file("data.h5"), dir.file("val"), only);
  const MegatronDataset vm = MegatronDataset::open(dir.file("val"));
  EXPECT_EQ(vm.num_tokens(), val.size());
  EXPECT_EQ(vm.num_documents(), std::int64_t(val.doc_offsets().size()));
}

TEST(MegatronConversion, LargeVocabularyExportsInt32AndChecksIds) {
  TempDir dir("megatron");
  const std::vector<Doc> docs{Doc{{70000, 1}, {99999}}, Doc{{3, 100}}};
  const std::string prefix = save_pair(dir, "orig", reference_pair(docs, 4, 4));
  FromMegatronOptions o;
  o.vocab_size = 100000;
  o.eod_id = 100;  // document 1 already ends with it
  const ConversionSummary s = megatron_to_loom(prefix, dir.file("data.h5"), o);
  EXPECT_EQ(s.eod_added, 1);
  loom_to_megatron(dir.file("data.h5"), dir.file("back"), {});
  const MegatronDataset back = MegatronDataset::open(dir.file("back"));
  EXPECT_EQ(back.dtype(), MegatronDType::int32);
  EXPECT_EQ(back.document(0), (std::vector<std::int32_t>{70000, 1, 99999, 100}));
  EXPECT_EQ(back.document(1), (std::vector<std::int32_t>{3, 100}));

  o.vocab_size = 99999;
  o.eod_id = 100;
  const std::string e = error_of([&] { megatron_to_loom(prefix, dir.file("small.h5"), o); });
  EXPECT_NE(e.find("orig.bin: sequence 1 holds token 99999, outside the vocabulary [0, 99999)"), std::string::npos)
      << e;
  o.vocab_size = 0;
  EXPECT_NE(error_of([&] { megatron_to_loom(prefix, dir.file("x.h5"), o); }).find("--vocab-size"), std::string::npos);
  o.vocab_size = 100000;
  o.eod_id = -1;
  EXPECT_NE(error_of([&] { megatron_to_loom(prefix, dir.file("x.h5"), o); }).find("--eod-id"), std::string::npos);
}

TEST(MegatronConversion, LoomDataSubcommands) {
  TempDir dir("megatron");
  const std::vector<Doc> docs{Doc{{1, 2, 3}, {4, 5}}, Doc{{6, 7, 8, 9, 10, 11}}, Doc{{12, 13}}};
  const std::string prefix = save_pair(dir, "orig", reference_pair(docs, 8, 2));
  auto r = test::run_program("loom-data", "from-megatron --input " + prefix + " --output " + dir.file("d.h5"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("no --vocab-size given"), std::string::npos) << r.output;
  r = test::run_program("loom-data", "from-megatron --input " + prefix + ".idx --output " + dir.file("d.h5") +
                                         " --vocab-size 16 --eod-id 0 --val-fraction 0.25");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("documents     3 (eod appended to 3)"), std::string::npos) << r.output;
  r = test::run_program("loom-data", "to-megatron --input " + dir.file("d.h5") + " --output " + dir.file("back"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const MegatronDataset back = MegatronDataset::open(dir.file("back"));
  ASSERT_EQ(back.num_documents(), 3);
  EXPECT_EQ(back.document(0), (std::vector<std::int32_t>{1, 2, 3, 4, 5, 0}));
  EXPECT_EQ(back.document(2), (std::vector<std::int32_t>{12, 13, 0}));
  r = test::run_program("loom-data", "to-megatron --input " + dir.file("d.h5") + " --output " + dir.file("back"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("already exists"), std::string::npos) << r.output;
  save(prefix + ".idx", {'n', 'o', 'p', 'e'});
  r = test::run_program("loom-data", "from-megatron --input " + prefix + " --output " + dir.file("e.h5") +
                                         " --vocab-size 16 --eod-id 0");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("orig.idx: bad magic"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace loom
