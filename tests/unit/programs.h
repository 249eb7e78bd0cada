// tests/unit/programs.h — run loom's programs from tests: find them in the build
// tree (BUILD/tests/test_x -> BUILD/launch/<name>) and capture exit code + output.
// The test targets depend on the programs (tests/CMakeLists.txt), so they exist.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace loom::test {

inline std::filesystem::path program(const std::string& name) {
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/self/exe", ec).parent_path().parent_path() / "launch" / name;
}

struct RunResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs `program(name) args` through the shell with a 120 s limit.
inline RunResult run_program(const std::string& name, const std::string& args) {
  const std::string cmd = "timeout 120 " + program(name).string() + " " + args + " 2>&1";
  RunResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  while (std::fgets(buf.data(), int(buf.size()), p)) r.output += buf.data();
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// `dir` (created) with a small byte-level dataset, dir/data.h5 (400 short lines through loom-data), for tests that run loom-train.
// Returns loom-data's result (exit code 0 when the dataset is there).
inline RunResult make_small_dataset(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  {
    std::ofstream text(dir / "text.txt");
    for (int i = 0; i < 400; ++i) text << "In the beginning was the word, and the word was " << i << ".\n";
  }
  return run_program("loom-data", "--quiet --input " + (dir / "text.txt").string() + " --output " +
                                      (dir / "data.h5").string());
}

}  // namespace loom::test
