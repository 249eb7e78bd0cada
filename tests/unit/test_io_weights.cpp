// tests/unit/test_io_weights.cpp — the weights file (io/weights_file.h).
//
// Round trip: names (in write order), shapes (matrices, vectors, a scalar, an empty
// array) and values bit for bit, including -0, inf, NaN and denormals; the config
// JSON comes back verbatim. Errors: missing file, wrong magic (a token dataset),
// truncated file, missing parameter (named), shape and count mismatches (both
// shapes named), invalid or duplicate names, Overwrite::no refusing an existing file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "temp_dir.h"
#include "io/token_dataset.h"
#include "io/weights_file.h"

namespace loom {
namespace {

namespace fs = std::filesystem;

using test::TempDir;

using test::error_of;

struct Model {
  std::vector<float> wte, wpe, ln_w, scale;
  std::vector<NamedArray> arrays() const {
    return {{"wte", {13, 8}, wte.data()},
            {"wpe", {4, 8}, wpe.data()},
            {"h.0.ln_1.weight", {8}, ln_w.data()},
            {"scale", {}, scale.data()},
            {"empty", {0, 8}, nullptr}};
  }
};

Model make_model() {
  Model m;
  m.wte.resize(13 * 8);
  m.wpe.resize(4 * 8);
  m.ln_w.resize(8);
  m.scale = {0.5f};
  fill_normal(m.wte.data(), 13 * 8, 1, 1, 0, 0.0f, 0.02f);
  fill_normal(m.wpe.data(), 4 * 8, 1, 2, 0, 0.0f, 0.02f);
  m.ln_w = {-0.0f, std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(),
            std::numeric_limits<float>::denorm_min(), 1.0f, -1e30f, 3.14159f, 0.0f};
  return m;
}

const std::string kConfig = R"({"layers":1,"channels":8,"heads":2,"vocab":13,"seq_len":4})";

TEST(Weights, RoundTripIsBitExact) {
  TempDir dir;
  const std::string path = dir.file("w.h5");
  const Model m = make_model();
  write_weights(path, m.arrays(), kConfig);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  const WeightsReader r = WeightsReader::open(path);
  EXPECT_EQ(r.config_json(), kConfig);
  EXPECT_EQ(r.names(), (std::vector<std::string>{"wte", "wpe", "h.0.ln_1.weight", "scale", "empty"}));
  for (const NamedArray& a : m.arrays()) {
    EXPECT_TRUE(r.has(a.name));
    EXPECT_EQ(r.shape(a.name), a.shape) << a.name;
    std::int64_t n = 1;
    for (auto d : a.shape) n *= d;
    std::vector<float> got(n, 7.0f);
    r.read(a.name, a.shape, got.data());
    if (n > 0) {
      EXPECT_EQ(std::memcmp(got.data(), a.data, n * sizeof(float)), 0) << a.name;
    }
  }
  EXPECT_FALSE(r.has("lm_head.weight"));
}

TEST(Weights, MissingNameAndShapeMismatchAreNamed) {
  TempDir dir;
  const std::string path = dir.file("w.h5");
  const Model m = make_model();
  write_weights(path, m.arrays(), kConfig);
  const WeightsReader r = WeightsReader::open(path);
  std::vector<float> buf(1000);
  std::string msg = error_of([&] { r.read("h.1.ln_1.weight", buf.data(), 8); });
  EXPECT_NE(msg.find("no parameter 'h.1.ln_1.weight'"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("HINT:"), std::string::npos) << msg;
  msg = error_of([&] { r.read("wte", std::vector<std::int64_t>{8, 13}, buf.data()); });
  EXPECT_NE(msg.find("'wte' has shape [13, 8], the model expects [8, 13]"), std::string::npos) << msg;
  msg = error_of([&] { r.read("wpe", buf.data(), 31); });
  EXPECT_NE(msg.find("[4, 8] (32 values), but 31 values"), std::string::npos) << msg;
  EXPECT_THROW(r.shape("nope"), Error);
}

TEST(Weights, OpenErrors) {
  TempDir dir;
  std::string msg = error_of([&] { WeightsReader::open(dir.file("missing.h5")); });
  EXPECT_NE(msg.find("'" + dir.file("missing.h5") + "' does not exist"), std::string::npos) << msg;

  const std::string tokens = dir.file("tokens.h5");
  const std::vector<std::int32_t> t{1, 2, 3};
  const std::vector<std::uint64_t> docs{0};
  write_token_dataset(tokens, t, docs, t, docs, DatasetMeta{});
  msg = error_of([&] { WeightsReader::open(tokens); });
  EXPECT_NE(msg.find("is not a loom weights file"), std::string::npos) << msg;
  EXPECT_NE(msg.find("token dataset"), std::string::npos) << msg;
  const std::string path = dir.file("w.h5");
  write_weights(path, make_model().arrays(), kConfig);
  msg = error_of([&] { TokenDataset::open(path, "train"); });  // and the other way round
  EXPECT_NE(msg.find("weights file"), std::string::npos) << msg;

  fs::resize_file(path, fs::file_size(path) / 2);
  msg = error_of([&] { WeightsReader::open(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
}

TEST(Weights, WriterValidatesAndOverwritesOnlyWhenAllowed) {
  TempDir dir;
  const std::string path = dir.file("w.h5");
  const Model m = make_model();
  write_weights(path, m.arrays(), kConfig);
  EXPECT_NE(error_of([&] { write_weights(path, m.arrays(), kConfig, Overwrite::no); }).find("already exists"),
            std::string::npos);
  EXPECT_EQ(WeightsReader::open(path).names().size(), 5u);
  const float one = 1.0f;
  write_weights(path, {{"only", {1}, &one}}, "{}");  // replaces by default
  EXPECT_EQ(WeightsReader::open(path).names(), std::vector<std::string>{"only"});
  const std::string other = dir.file("bad.h5");
  EXPECT_THROW(write_weights(other, {{"h/0", {1}, &one}}, "{}"), Error);
  EXPECT_THROW(write_weights(other, {{"a", {1}, &one}, {"a", {1}, &one}}, "{}"), Error);
  EXPECT_THROW(write_weights(other, {{"a", {1}, &one}}, "{not json"), Error);
  EXPECT_THROW(write_weights(other, {{"a", {2}, nullptr}}, "{}"), Error);
  EXPECT_FALSE(fs::exists(other));
}

}  // namespace
}  // namespace loom
