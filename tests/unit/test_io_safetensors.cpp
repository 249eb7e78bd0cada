// tests/unit/test_io_safetensors.cpp — io/safetensors.h on hand-made files.
//
// Round trip (order, shapes incl. a scalar and an empty tensor, bits incl. -0, inf, NaN,
// denormals, metadata, 8-byte aligned data); F16 and BF16 widening; and the refusals,
// each naming the file: short file, header length past the end, bad JSON, a missing
// key, unknown dtype, wrong byte count, overlap, hole, trailing bytes, a non-float read,
// an unknown tensor, and Overwrite::no.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "core/dtype.h"
#include "io/safetensors.h"
#include "temp_dir.h"

namespace loom {
namespace {

using test::error_of;
using test::TempDir;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A safetensors file from a header text and data bytes.
std::string file_bytes(const std::string& header, const std::string& data) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[std::size_t(i)] = char((header.size() >> (8 * i)) & 0xFF);
  return s + header + data;
}

TEST(Safetensors, RoundTripIsBitExact) {
  TempDir dir("st");
  const std::string path = dir.file("m.safetensors");
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> a = {-0.0f, inf, -inf, std::numeric_limits<float>::denorm_min(), 1.5f, -2.0f},
                           s = {3.25f};
  write_safetensors(path,
                    {{"b.weight", {2, 3}, a.data()}, {"a.scalar", {}, s.data()}, {"empty", {0, 4}, nullptr}},
                    {{"format", "pt"}}, Overwrite::no);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  const std::string bytes = test::read_file(path);
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u);  // data 8-byte aligned
  EXPECT_EQ(bytes.size(), 8 + n + 4 * 7);

  const SafetensorsReader r = SafetensorsReader::open(path);
  ASSERT_EQ(r.entries().size(), 3u);
  EXPECT_EQ(r.entries()[0].name, "b.weight");  // offset order, which is the written order
  EXPECT_EQ(r.entries()[2].name, "empty");
  EXPECT_EQ(r.entries()[2].begin, 28u);
  EXPECT_EQ(r.entry("b.weight").shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(r.entry("a.scalar").shape, std::vector<std::int64_t>{});
  EXPECT_EQ(r.entry("b.weight").dtype, "F32");
  EXPECT_EQ(r.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  const std::vector<float> got = r.read("b.weight");
  EXPECT_EQ(std::memcmp(got.data(), a.data(), sizeof(float) * a.size()), 0);
  EXPECT_EQ(r.read("a.scalar"), s);
  EXPECT_TRUE(r.read("empty").empty());
  EXPECT_TRUE(contains(error_of([&] { (void)r.entry("c"); }), "has no tensor 'c'"));
  EXPECT_TRUE(contains(error_of([&] { write_safetensors(path, {}, {}, Overwrite::no); }), "already exists"));
  std::vector<float> nan = {std::numeric_limits<float>::quiet_NaN()};
  write_safetensors(path, {{"nan", {1}, nan.data()}}, {}, Overwrite::yes);
  EXPECT_TRUE(std::isnan(SafetensorsReader::open(path).read("nan")[0]));
}

TEST(Safetensors, HalfTypesWiden) {
  TempDir dir("st");
  const std::string path = dir.file("h.safetensors");
  const std::vector<float> v = {1.0f, -2.5f, 6.1e-5f, 65504.0f};
  std::string data;
  auto put = [&](std::uint16_t bits) { data += std::string(reinterpret_cast<const char*>(&bits), 2); };
  for (float x : v) put(from_float<f16>(x).bits);
  for (float x : v) put(from_float<bf16>(x).bits);
  test::write_file(path, file_bytes(R"({"h":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},)"
                                    R"("b":{"dtype":"BF16","shape":[2,2],"data_offsets":[8,16]}})",
                                    data));
  const SafetensorsReader r = SafetensorsReader::open(path);
  for (std::size_t i = 0; i < v.size(); ++i) {
    EXPECT_EQ(r.read("h")[i], to_float(from_float<f16>(v[i])));
    EXPECT_EQ(r.read("b")[i], to_float(from_float<bf16>(v[i])));
  }
}

TEST(Safetensors, CorruptFilesAreRefusedNamingTheFile) {
  TempDir dir("st");
  const std::string path = dir.file("bad.safetensors");
  const std::string d8(8, '\0');
  const std::vector<std::pair<std::string, std::string>> cases = {
      {std::string(5, '\0'), "too short"},
      {std::string("\xff\xff\0\0\0\0\0\0{}", 10), "does not fit"},
      {file_bytes("{\"a\": ", ""), "bad header"},
      {file_bytes("[1]", ""), "not a JSON object"},
      {file_bytes(R"({"a":{"dtype":"F32","shape":[2]}})", d8), "needs dtype, shape and data_offsets"},
      {file_bytes(R"({"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", d8), "unknown dtype 'Q4'"},
      {file_bytes(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", d8), "not 12 bytes"},
      {file_bytes(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}})", d8), "invalid extent"},
      {file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                  d8),
       "must not overlap"},
      {file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", d8), "starts at byte 4"},
      {file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", d8 + "xx"), "holds 10"},
      {file_bytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", d8), "holds 8"},
  };
  for (const auto& [bytes, message] : cases) {
    test::write_file(path, bytes);
    const std::string e = error_of([&] { (void)SafetensorsReader::open(path); });
    EXPECT_TRUE(contains(e, path) && contains(e, message)) << message << ": " << e;
  }
  EXPECT_TRUE(contains(error_of([&] { (void)SafetensorsReader::open(dir.file("none")); }), "cannot open"));
  test::write_file(path, file_bytes(R"({"i":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", d8));
  EXPECT_TRUE(contains(error_of([&] { (void)SafetensorsReader::open(path).read("i"); }), "is I64"));
}

}  // namespace
}  // namespace loom
