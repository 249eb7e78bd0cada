// launch/bench_main.cpp — loom-bench: measured figures, never asserted in tests.
//
//   loom-bench ops [options]    per-op times and our matmul vs raw sgemm (GPT-2-small shapes)
//
//   loom-bench train [options]  tokens/s, model FLOP/s, MFU of a training step (GPT-2 small)
//
//   mpirun -np N loom-bench checkpoint [options]  checkpoint save/load time and MB/s vs raw disk I/O
//
//   loom-bench scaling [options]  the measured scaling sweep: launch/scaling.py with this build
#include <cstdio>
#include <string>

#include "core/error.h"

namespace loom::bench {
int run_ops(int argc, char** argv);
int run_train(int argc, char** argv);
int run_checkpoint(int argc, char** argv);
int run_scaling(int argc, char** argv);
}

int main(int argc, char** argv) {
  const std::string usage =
      "usage: loom-bench <command> [options]\n"
      "commands:\n"
      "  ops     time every backend op at GPT-2-small shapes; our matmul vs raw cblas_sgemm\n"
      "  train   training throughput (tokens/s, model FLOP/s, MFU) of GPT-2 small on random tokens\n"
      "  checkpoint  save / load time and MB/s of a GPT-2-small checkpoint against raw disk I/O (under "
      "mpirun)\n"
      "  scaling strong / weak scaling sweep through mpirun: CSV, markdown, PNG plots, each run beside the\n"
      "          performance model's prediction (launch/scaling.py with this build; docs/scaling.md)\n"
      "run 'loom-bench <command> --help' for the options of a command\n";
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::fputs(usage.c_str(), argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  try {
    if (cmd == "ops") return loom::bench::run_ops(argc - 1, argv + 1);
    if (cmd == "train") return loom::bench::run_train(argc - 1, argv + 1);
    if (cmd == "checkpoint") return loom::bench::run_checkpoint(argc - 1, argv + 1);
    if (cmd == "scaling") return loom::bench::run_scaling(argc - 1, argv + 1);
    std::fprintf(stderr, "loom-bench: unknown command '%s'\n%s", cmd.c_str(), usage.c_str());
    return 2;
  } catch (const loom::Error& e) {
    std::fprintf(stderr, "loom-bench: error: %s\n", e.full_message().c_str());
    return 2;
  }
}
