// tests/unit/test_labelled_dataset.cpp — the labelled dataset (io/labelled_dataset.h) and
// `loom-data classify`: label ids in order of first appearance, the seeded train/val split,
// truncation and padding to seq_len, bad TSV lines named by number, the HDF5 round trip,
// and where classify_row puts the label (the pooled position).
#include <sstream>

#include <gtest/gtest.h>

#include "io/labelled_dataset.h"
#include "programs.h"
#include "temp_dir.h"

namespace loom {
namespace {

LabelledDataset build(const std::string& tsv, std::int64_t T = 8, double val = 0.25, std::uint64_t seed = 1) {
  std::istringstream in(tsv);
  return build_labelled_dataset(in, tokenizer_by_name("bytes"),
                                {.seq_len = T, .val_fraction = val, .seed = seed});
}

std::string lines(int n) {
  std::string s;
  const char* labels[] = {"pos", "neg", "neu"};
  for (int i = 0; i < n; ++i) s += "text " + std::to_string(i) + "\t" + labels[i % 3] + "\n";
  return s;
}

TEST(LabelledDataset, LabelsAreNumberedInOrderOfFirstAppearance) {
  const LabelledDataset d = build("a\tzebra\nb\tapple\r\nc\tzebra\n\nd\tmango\n", 8, 0.25);
  EXPECT_EQ(d.label_names, (std::vector<std::string>{"zebra", "apple", "mango"}));  // not sorted; \r dropped
  std::vector<std::int32_t> all = d.train.labels;
  all.insert(all.end(), d.val.labels.begin(), d.val.labels.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, (std::vector<std::int32_t>{0, 0, 1, 2}));  // the empty line is skipped
}

TEST(LabelledDataset, SplitIsSeededSizedAndKeepsFileOrder) {
  const LabelledDataset a = build(lines(40), 8, 0.25, 7), b = build(lines(40), 8, 0.25, 7),
                        c = build(lines(40), 8, 0.25, 8);
  EXPECT_EQ(a.val.size(), 10);
  EXPECT_EQ(a.train.size(), 30);
  EXPECT_EQ(a.val.tokens, b.val.tokens);  // the same seed, the same split
  EXPECT_NE(a.val.tokens, c.val.tokens);  // another seed, another split
  // File order inside a split: "text N" with N increasing (the digits after "text ").
  auto number = [&](const LabelledSplit& s, std::int64_t i) {
    std::string t;
    for (std::int64_t k = 5; k < s.lengths[std::size_t(i)]; ++k) t += char(s.tokens[std::size_t(i * 8 + k)]);
    return std::stoi(t);
  };
  for (std::int64_t i = 1; i < a.val.size(); ++i) EXPECT_LT(number(a.val, i - 1), number(a.val, i));
  // Not simply the tail of the file: a file sorted by label still gets every label in val.
  EXPECT_LT(number(a.val, 0), 30);
}

TEST(LabelledDataset, TruncatesAndPadsToSeqLen) {
  const LabelledDataset d = build("abcdefghijkl\tx\nab\ty\nabc\tx\nabcd\ty\n", 4, 0.25);
  for (const LabelledSplit* s : {&d.train, &d.val})
    for (std::int64_t i = 0; i < s->size(); ++i) {
      const std::int32_t* row = s->tokens.data() + i * 4;
      const std::int32_t len = s->lengths[std::size_t(i)];
      EXPECT_EQ(row[0], 'a');
      for (std::int32_t k = 0; k < len; ++k) EXPECT_EQ(row[k], 'a' + k);  // the text's first tokens
      for (std::int32_t k = len; k < 4; ++k) EXPECT_EQ(row[k], 256);      // eod pads
    }
  std::vector<std::int32_t> lens = d.train.lengths;
  lens.insert(lens.end(), d.val.lengths.begin(), d.val.lengths.end());
  std::sort(lens.begin(), lens.end());
  EXPECT_EQ(lens, (std::vector<std::int32_t>{2, 3, 4, 4}));  // 12 bytes truncated to 4
}

TEST(LabelledDataset, BadLinesAreNamedByNumber) {
  using test::error_of;
  EXPECT_NE(error_of([] { build("a\tx\nno tab here\nb\ty\n"); }).find("input line 2: no tab"),
            std::string::npos);
  EXPECT_NE(error_of([] { build("a\tx\nb\ty\nc\td\te\n"); }).find("input line 3: more than one tab"),
            std::string::npos);
  EXPECT_NE(error_of([] { build("a\tx\n\tx\n"); }).find("input line 2: empty text"), std::string::npos);
  EXPECT_NE(error_of([] { build("a\t\n"); }).find("input line 1: empty label"), std::string::npos);
  EXPECT_NE(error_of([] { build("a\tx\n"); }).find("both need at least one"), std::string::npos);
  EXPECT_NE(error_of([] { build(lines(10), 8, 1.5); }).find("--val-fraction"), std::string::npos);
}

TEST(LabelledDataset, RoundTripsThroughHdf5AndLoomData) {
  test::TempDir dir("labelled");
  const std::string tsv = dir.file("in.tsv"), out = dir.file("cls.h5");
  test::write_file(tsv, lines(30));
  auto r = test::run_program("loom-data", "classify --input " + tsv + " --output " + out +
                                              " --seq-len 8 --val-fraction 0.2 --seed 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(is_labelled_dataset(out));
  const LabelledDataset d = read_labelled_dataset(out), want = build(lines(30), 8, 0.2, 1);
  EXPECT_EQ(d.label_names, want.label_names);
  EXPECT_EQ(d.train.tokens, want.train.tokens);
  EXPECT_EQ(d.val.labels, want.val.labels);
  EXPECT_EQ(d.val.lengths, want.val.lengths);
  EXPECT_EQ(d.seq_len, 8);
  EXPECT_EQ(d.embedded.kind, "bytes");
  // A bad line: exit code 2, the line named, nothing written.
  test::write_file(tsv, "good\tx\nbad line\n");
  r = test::run_program("loom-data", "classify --input " + tsv + " --output " + dir.file("bad.h5"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("line 2: no tab"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir.file("bad.h5")));
}

TEST(LabelledDataset, ClassifyRowPutsTheLabelAtThePooledPosition) {
  const LabelledDataset d = build("abcdef\tx\nab\ty\nabc\tx\nabcd\ty\n", 8, 0.25);
  const LabelledSplit& s = d.train;
  std::vector<std::int32_t> x(6), y(6);
  for (std::int64_t i = 0; i < s.size(); ++i) {
    const std::int32_t len = s.lengths[std::size_t(i)], label = s.labels[std::size_t(i)];
    classify_row(s, i, 6, false, x.data(), y.data());  // decoder: the last real token
    const std::int64_t last = std::min<std::int64_t>(len, 6) - 1;
    for (std::int64_t t = 0; t < 6; ++t) EXPECT_EQ(y[std::size_t(t)], t == last ? label : -1);
    EXPECT_EQ(x[0], 'a');
    classify_row(s, i, 6, true, x.data(), y.data());  // encoder: the first token
    for (std::int64_t t = 0; t < 6; ++t) EXPECT_EQ(y[std::size_t(t)], t == 0 ? label : -1);
  }
  EXPECT_NE(test::error_of([&] { classify_row(s, 0, 9, false, x.data(), y.data()); }).find("seq_len"),
            std::string::npos);
}

}  // namespace
}  // namespace loom
