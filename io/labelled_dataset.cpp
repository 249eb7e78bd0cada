// io/labelled_dataset.cpp — see labelled_dataset.h.
#include "io/labelled_dataset.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <numeric>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/rng.h"
#include "io/h5.h"

namespace loom {

namespace {

constexpr const char* kHint = "make it with loom-data classify (docs/data-format.md, \"Labelled datasets\")";

void write_ints(hid_t loc, const std::string& name, const std::vector<std::int32_t>& v,
                std::vector<hsize_t> dims) {
  h5::Handle space(h5::check(H5Screate_simple(int(dims.size()), dims.data(), nullptr), "dataspace " + name),
                   H5Sclose);
  h5::Handle set(
      h5::check(H5Dcreate2(loc, name.c_str(), H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                "create " + name),
      H5Dclose);
  if (!v.empty())
    h5::check_status(H5Dwrite(set, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()),
                     "write " + name);
}

std::vector<std::int32_t> read_ints(hid_t loc, const std::string& name, std::vector<std::int64_t> want,
                                    const std::string& where) {
  h5::Handle set = h5::open_dataset(loc, name, where);
  const std::vector<std::int64_t> shape = h5::shape_of(set);
  LOOM_CHECK(shape == want, kHint, "{}/{} has shape [{}], expected [{}]", where, name, fmt::join(shape, ", "),
             fmt::join(want, ", "));
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  std::vector<std::int32_t> v(static_cast<std::size_t>(n));
  if (n > 0)
    h5::check_status(H5Dread(set, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()),
                     "read " + where + "/" + name);
  return v;
}

std::string trim_cr(std::string s) {
  if (!s.empty() && s.back() == '\r') s.pop_back();
  return s;
}

}  // namespace

double LabelledSplit::majority_share(std::int64_t classes) const {
  if (labels.empty()) return 0;
  std::vector<std::int64_t> count(std::size_t(std::max<std::int64_t>(classes, 1)), 0);
  for (auto l : labels) ++count[std::size_t(l)];
  return double(*std::max_element(count.begin(), count.end())) / double(labels.size());
}

bool is_labelled_dataset(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec) || H5Fis_hdf5(path.c_str()) <= 0) return false;
  h5::Handle f = h5::open_file(path, kHint);
  return h5::read_string_attr(f, "magic", path).value_or("") == kLabelledMagic;
}

void write_labelled_dataset(const std::string& path, const LabelledDataset& d, Overwrite overwrite) {
  AtomicWrite out(path, overwrite, "labelled dataset");
  {
    h5::Handle f = h5::create_file(out.tmp_path());
    h5::write_attr(f, "magic", kLabelledMagic);
    h5::write_attr(f, "format_version", kLabelledFormatVersion);
    h5::write_attr(f, "seq_len", d.seq_len);
    h5::write_attr(f, "vocab_size", d.vocab_size);
    h5::write_attr(f, "pad_token", std::int64_t(d.pad_token));
    h5::write_attr(f, "label_names", nlohmann::json(d.label_names).dump());
    h5::write_attr(f, "tokenizer", d.tokenizer);
    h5::write_attr(f, "created_by", "loom-data classify");
    for (const auto& [k, v] : tokenizer_attrs(d.embedded)) h5::write_attr(f, k, v);
    for (const auto& [name, s] : {std::pair{"train", &d.train}, std::pair{"val", &d.val}}) {
      h5::Handle g = h5::create_group(f, name);
      const hsize_t n = hsize_t(s->size());
      write_ints(g, "tokens", s->tokens, {n, hsize_t(d.seq_len)});
      write_ints(g, "lengths", s->lengths, {n});
      write_ints(g, "labels", s->labels, {n});
    }
  }
  out.commit();
}

LabelledDataset read_labelled_dataset(const std::string& path) {
  std::error_code ec;
  LOOM_CHECK(std::filesystem::is_regular_file(path, ec), kHint, "labelled dataset '{}' does not exist", path);
  std::lock_guard lock(h5::library_lock());
  h5::Handle f = h5::open_file(path, kHint);
  const std::string magic = h5::read_string_attr(f, "magic", path).value_or("");
  LOOM_CHECK(magic == kLabelledMagic, "a classification run needs a labelled dataset: " + std::string(kHint),
             "'{}' is not a labelled dataset (magic '{}', expected '{}')", path, magic, kLabelledMagic);
  const std::int64_t version = h5::read_int_attr(f, "format_version", path).value_or(0);
  LOOM_CHECK(version == kLabelledFormatVersion, "rebuild it with this loom-data",
             "'{}' has labelled-dataset format version {}; this loom reads {}", path, version,
             kLabelledFormatVersion);
  LabelledDataset d;
  d.seq_len = h5::read_int_attr(f, "seq_len", path).value_or(0);
  d.vocab_size = h5::read_int_attr(f, "vocab_size", path).value_or(0);
  d.pad_token = std::int32_t(h5::read_int_attr(f, "pad_token", path).value_or(0));
  d.tokenizer = h5::read_string_attr(f, "tokenizer", path).value_or("");
  try {
    d.label_names = nlohmann::json::parse(h5::read_string_attr(f, "label_names", path).value_or("[]"))
                        .get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("'{}': label_names is not a JSON array of strings ({})", path, e.what()), kHint);
  }
  LOOM_CHECK(d.seq_len > 0 && d.vocab_size > 0 && !d.label_names.empty(), kHint,
             "'{}': seq_len, vocab_size and label_names must be set and positive", path);
  const auto embedded =
      tokenizer_from_attrs([&](const std::string& a) { return h5::read_string_attr(f, a, path); }, path);
  d.embedded = embedded.value_or(EmbeddedTokenizer{d.tokenizer == "bytes" ? "bytes" : "", d.tokenizer, ""});
  for (const auto& [name, s] : {std::pair{"train", &d.train}, std::pair{"val", &d.val}}) {
    const std::string where = path + ":/" + name;
    h5::Handle g = h5::open_group(f, name, where);
    h5::Handle labels = h5::open_dataset(g, "labels", where);
    const std::int64_t n = h5::shape_of(labels).at(0);
    s->labels = read_ints(g, "labels", {n}, where);
    s->lengths = read_ints(g, "lengths", {n}, where);
    s->tokens = read_ints(g, "tokens", {n, d.seq_len}, where);
    for (std::int64_t i = 0; i < n; ++i) {
      const auto l = s->labels[std::size_t(i)], len = s->lengths[std::size_t(i)];
      LOOM_CHECK(0 <= l && l < d.classes() && 1 <= len && len <= d.seq_len, kHint,
                 "{}: example {} has label {} (classes {}) and length {} (seq_len {})", where, i, l,
                 d.classes(), len, d.seq_len);
    }
    for (auto t : s->tokens)
      LOOM_CHECK(0 <= t && t < d.vocab_size, kHint, "{}: token {} outside the vocabulary [0, {})", where, t,
                 d.vocab_size);
  }
  return d;
}

LabelledDataset build_labelled_dataset(std::istream& tsv, const TokenizerInfo& tok,
                                       const ClassifyBuildOptions& o) {
  LOOM_CHECK(o.seq_len >= 1, "pass --seq-len >= 1", "--seq-len must be >= 1, got {}", o.seq_len);
  LOOM_CHECK(o.val_fraction > 0 && o.val_fraction < 1, "pass a --val-fraction in (0, 1), e.g. 0.1",
             "--val-fraction must be in (0, 1), got {}", o.val_fraction);
  const std::string fix = "each line must be text<TAB>label, with exactly one tab and neither part empty";
  LabelledDataset d;
  d.seq_len = o.seq_len;
  d.vocab_size = tok.vocab_size;
  d.pad_token = tok.eod;
  d.tokenizer = tok.name;
  std::map<std::string, std::int32_t> ids;
  LabelledSplit all;
  std::string line;
  std::vector<std::int32_t> t;
  for (std::int64_t no = 1; std::getline(tsv, line); ++no) {
    line = trim_cr(line);
    if (line.empty()) continue;
    const std::size_t tab = line.find('\t');
    LOOM_CHECK(tab != std::string::npos, fix, "{} line {}: no tab between text and label", o.source, no);
    LOOM_CHECK(line.find('\t', tab + 1) == std::string::npos, fix + " (a tab inside the text must go)",
               "{} line {}: more than one tab", o.source, no);
    const std::string text = line.substr(0, tab), label = line.substr(tab + 1);
    LOOM_CHECK(!text.empty() && !label.empty(), fix, "{} line {}: empty {}", o.source, no,
               text.empty() ? "text" : "label");
    t.clear();
    encode_append(tok, text, t);
    LOOM_CHECK(!t.empty(), fix, "{} line {}: the text tokenises to nothing", o.source, no);
    const auto [it, added] = ids.try_emplace(label, std::int32_t(d.label_names.size()));
    if (added) d.label_names.push_back(label);
    const std::int64_t len = std::min<std::int64_t>(std::int64_t(t.size()), o.seq_len);
    t.resize(std::size_t(o.seq_len), tok.eod);  // truncate, or pad after the end
    all.tokens.insert(all.tokens.end(), t.begin(), t.end());
    all.lengths.push_back(std::int32_t(len));
    all.labels.push_back(it->second);
  }
  const std::int64_t n = all.size();
  const std::int64_t n_val = std::int64_t(std::llround(o.val_fraction * double(n)));
  LOOM_CHECK(
      n >= 2 && n_val >= 1 && n_val < n, "give more lines, or change --val-fraction",
      "{}: {} example(s) with --val-fraction {} leave {} for val and {} for train; both need at least one",
      o.source, n, o.val_fraction, n_val, n - n_val);
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) {
    return rng_u64(o.seed, 0, std::uint64_t(a)) < rng_u64(o.seed, 0, std::uint64_t(b));
  });
  std::vector<bool> in_val(std::size_t(n), false);
  for (std::int64_t k = 0; k < n_val; ++k) in_val[std::size_t(order[std::size_t(k)])] = true;
  for (std::int64_t i = 0; i < n; ++i) {
    LabelledSplit& s = in_val[std::size_t(i)] ? d.val : d.train;
    const auto row = all.tokens.begin() + i * o.seq_len;
    s.tokens.insert(s.tokens.end(), row, row + o.seq_len);
    s.lengths.push_back(all.lengths[std::size_t(i)]);
    s.labels.push_back(all.labels[std::size_t(i)]);
  }
  return d;
}

void classify_row(const LabelledSplit& s, std::int64_t i, std::int64_t T, bool pool_first, std::int32_t* x,
                  std::int32_t* y) {
  const std::int64_t stored = std::int64_t(s.tokens.size()) / std::max<std::int64_t>(s.size(), 1);
  LOOM_CHECK(T <= stored, "set train.seq_len to at most the dataset's seq_len",
             "the training sequence ({}) is longer than the labelled dataset's seq_len ({})", T, stored);
  const std::int32_t* row = s.tokens.data() + i * stored;
  std::copy(row, row + T, x);
  std::fill(y, y + T, -1);
  const std::int64_t len =
      std::min<std::int64_t>(s.lengths[std::size_t(i)], T);  // a shorter T truncates again
  y[pool_first ? 0 : len - 1] = s.labels[std::size_t(i)];
}

}  // namespace loom
