// launch/bench_scaling.cpp — `loom-bench scaling [options]`: the measured scaling sweep.
//
// The sweep itself is launch/scaling.py (it starts one mpirun job per layout, which a
// subcommand running inside one job cannot, and draws its plots with matplotlib). This runs it
// with this build's binaries: python3 SOURCE/launch/scaling.py --build-dir BUILD [options];
// a --build-dir among the options wins (argparse keeps the last).
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"

namespace loom::bench {

int run_scaling(int argc, char** argv) {
  namespace fs = std::filesystem;
  const fs::path script = fs::path(LOOM_SOURCE_DIR) / "launch" / "scaling.py";
  LOOM_CHECK(fs::exists(script), "run launch/scaling.py from a loom checkout directly",
             "loom-bench scaling: the sweep script {} is missing (this build's source tree moved?)",
             script.string());
  // This binary is BUILD/launch/loom-bench; scaling.py wants BUILD.
  const std::string build = fs::read_symlink("/proc/self/exe").parent_path().parent_path().string();
  std::vector<std::string> args{"python3", script.string(), "--build-dir", build};
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  std::vector<char*> av;
  for (std::string& a : args) av.push_back(a.data());
  av.push_back(nullptr);
  std::fflush(stdout);
  execvp("python3", av.data());  // returns only on failure
  throw Error(fmt::format("loom-bench scaling: cannot run python3: {}", std::strerror(errno)),
              "install Python 3 (launch/test.sh installs it with matplotlib), or put python3 on PATH");
}

}  // namespace loom::bench
