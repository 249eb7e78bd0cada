// tests/mpi/mpi_gtest_main.cpp — main() for GoogleTest programs run under mpiexec.
//
// Every rank runs every test (the tests make collective calls, so all ranks must
// run the same ones in the same order: use EXPECT_*, which keeps going, where a
// failure on one rank must not skip a collective). Rank 0 prints GoogleTest's usual
// report; the other ranks print only their failures, prefixed "[rank R]". The exit
// code is non-zero on every rank when any rank failed (MPI_Allreduce of the flag).
#include <gtest/gtest.h>

#include <cstdio>

#include "parallel/parallel_context.h"

namespace {

class RankFailurePrinter : public ::testing::EmptyTestEventListener {
public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed())
      std::printf("[rank %d] %s:%d: Failure\n%s\n", rank_, r.file_name() ? r.file_name() : "?",
                  r.line_number(), r.summary());
  }
  void OnTestEnd(const ::testing::TestInfo& t) override {
    if (t.result()->Failed()) std::printf("[rank %d] FAILED %s.%s\n", rank_, t.test_suite_name(), t.name());
    std::fflush(stdout);
  }

private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  loom::MpiSession mpi(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(rank));
  }
  const int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  int any_failed = 0;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0 && any_failed && !failed) std::printf("FAILED on another rank (see the [rank R] lines)\n");
  return any_failed;
}
