// tests/unit/temp_dir.h — test helpers for files: a fresh temporary folder per
// test (removed afterwards), whole-file reads and writes, and the message of the
// loom::Error a call throws.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"

namespace loom::test {

struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag = "test") {
    static std::atomic<int> counter{0};
    path = std::filesystem::temp_directory_path() / fmt::format("loom-{}-{}-{}", tag, getpid(), counter++);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// A file's bytes, and a file written with exactly these bytes.
inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
inline void write_file(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

// Whitespace-separated integers (token ids a reference script wrote).
inline std::vector<std::int32_t> read_ids(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::int32_t> ids;
  for (std::int32_t x; f >> x;) ids.push_back(x);
  return ids;
}

// Runs `fn` and returns the loom::Error's full message ("" if none was thrown).
template <class F>
std::string error_of(F&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.full_message();
  }
  return "";
}

}  // namespace loom::test
