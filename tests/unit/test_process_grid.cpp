// tests/unit/test_process_grid.cpp — the (dp, tp, pp) rank arithmetic, for every grid of up to 64 ranks.
//
// No MPI: for each factorisation dp*tp*pp <= 64, coord_of and rank_of are checked
// as inverse bijections against the independent closed form
// rank = tp + TP*(dp + DP*pp) written here by hand, groups have the right sizes,
// partition the world and hold each rank at the index of its coordinate.
// check_grid/make_grid messages are checked to name the numbers. Also the
// single-process ParallelContext (LocalCommunicator), which needs no MPI either.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "parallel/local_communicator.h"
#include "parallel/parallel_context.h"
#include "parallel/process_grid.h"

namespace loom {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

std::vector<GridShape> all_grids(int max_size) {
  std::vector<GridShape> grids;
  for (int dp = 1; dp <= max_size; ++dp)
    for (int tp = 1; dp * tp <= max_size; ++tp)
      for (int pp = 1; dp * tp * pp <= max_size; ++pp)
        grids.push_back(GridShape{.dp = dp, .tp = tp, .pp = pp});
  return grids;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.full_message();
  }
  return "(no error)";
}

TEST(ProcessGrid, EnumeratesEveryFactorisation) {
  // Number of ordered triples with product n, summed over n <= 64 (independent count).
  int expected = 0;
  for (int n = 1; n <= 64; ++n)
    for (int a = 1; a <= n; ++a)
      for (int b = 1; b <= n; ++b)
        if (n % (a * b) == 0) ++expected;
  EXPECT_EQ(int(all_grids(64).size()), expected);
}

TEST(ProcessGrid, CoordAndRankAreInverseBijections) {
  for (const GridShape& g : all_grids(64)) {
    SCOPED_TRACE(grid_str(g));
    ASSERT_NO_THROW(check_grid(g, g.size()));
    std::set<std::tuple<int, int, int>> seen;
    for (int r = 0; r < g.size(); ++r) {
      const GridCoord c = coord_of(g, r);
      ASSERT_TRUE(0 <= c.dp && c.dp < g.dp && 0 <= c.tp && c.tp < g.tp && 0 <= c.pp && c.pp < g.pp);
      ASSERT_EQ(c.tp + g.tp * (c.dp + g.dp * c.pp), r);  // the documented layout
      ASSERT_EQ(rank_of(g, c), r);
      seen.insert({c.dp, c.tp, c.pp});
    }
    ASSERT_EQ(int(seen.size()), g.size());  // injective on a finite set of equal size: bijective
    for (int pp = 0; pp < g.pp; ++pp)
      for (int dp = 0; dp < g.dp; ++dp)
        for (int tp = 0; tp < g.tp; ++tp) {
          const GridCoord c{.dp = dp, .tp = tp, .pp = pp};
          ASSERT_EQ(coord_of(g, rank_of(g, c)), c);
        }
  }
}

TEST(ProcessGrid, TpVariesFastestThenDpThenPp) {
  for (const GridShape& g : all_grids(64)) {
    SCOPED_TRACE(grid_str(g));
    for (int r = 0; r + 1 < g.size(); ++r) {
      const GridCoord a = coord_of(g, r), b = coord_of(g, r + 1);
      if (a.tp + 1 < g.tp) {
        ASSERT_EQ(b, (GridCoord{.dp = a.dp, .tp = a.tp + 1, .pp = a.pp}));
      } else if (a.dp + 1 < g.dp) {
        ASSERT_EQ(b, (GridCoord{.dp = a.dp + 1, .tp = 0, .pp = a.pp}));
      } else {
        ASSERT_EQ(b, (GridCoord{.dp = 0, .tp = 0, .pp = a.pp + 1}));
      }
    }
  }
}

struct Axis {
  const char* name;
  std::vector<int> (*group)(const GridShape&, int);
  int GridShape::*degree;
  int GridCoord::*coord;
};
const Axis kAxes[] = {{"tp", &tp_group, &GridShape::tp, &GridCoord::tp},
                      {"dp", &dp_group, &GridShape::dp, &GridCoord::dp},
                      {"pp", &pp_group, &GridShape::pp, &GridCoord::pp}};

TEST(ProcessGrid, GroupsPartitionTheWorldInCoordinateOrder) {
  for (const GridShape& g : all_grids(64)) {
    for (const Axis& axis : kAxes) {
      SCOPED_TRACE(grid_str(g) + " axis " + axis.name);
      std::vector<int> owner(std::size_t(g.size()), -1);  // which group (by first rank) holds each rank
      for (int r = 0; r < g.size(); ++r) {
        const std::vector<int> group = axis.group(g, r);
        const GridCoord c = coord_of(g, r);
        ASSERT_EQ(int(group.size()), g.*axis.degree);
        ASSERT_EQ(group[std::size_t(c.*axis.coord)], r);  // the rank sits at its coordinate
        for (int i = 0; i < int(group.size()); ++i) {
          const GridCoord m = coord_of(g, group[std::size_t(i)]);
          ASSERT_EQ(m.*axis.coord, i);  // ordered by the axis coordinate
          GridCoord other = m;          // ... and sharing the other two coordinates with r
          other.*axis.coord = c.*axis.coord;
          ASSERT_EQ(other, c);
        }
        // Every member computes the same group: the groups partition the world.
        ASSERT_EQ(axis.group(g, group.back()), group);
        if (owner[std::size_t(r)] == -1)
          for (int m : group) {
            ASSERT_EQ(owner[std::size_t(m)], -1) << "rank " << m << " in two groups";
            owner[std::size_t(m)] = group.front();
          }
        ASSERT_EQ(owner[std::size_t(r)], group.front());
      }
      // Number of distinct groups = size / degree.
      ASSERT_EQ(int(std::set<int>(owner.begin(), owner.end()).size()), g.size() / (g.*axis.degree));
    }
  }
}

TEST(ProcessGrid, TpGroupIsConsecutiveRanks) {
  const GridShape g{.dp = 2, .tp = 4, .pp = 2};
  EXPECT_EQ(tp_group(g, 9), (std::vector<int>{8, 9, 10, 11}));
  EXPECT_EQ(dp_group(g, 9), (std::vector<int>{9, 13}));
  EXPECT_EQ(pp_group(g, 9), (std::vector<int>{1, 9}));
  EXPECT_EQ(coord_of(g, 9), (GridCoord{.dp = 0, .tp = 1, .pp = 1}));
}

TEST(ProcessGrid, CheckGridRejectsMismatchedWorldNamingTheNumbers) {
  const std::string m = message_of([] { check_grid(GridShape{.dp = 2, .tp = 2, .pp = 2}, 6); });
  EXPECT_THAT(m, AllOf(HasSubstr("world size 6 is not dp*tp*pp = 2*2*2 = 8"), HasSubstr("HINT:"),
                       HasSubstr("mpirun -np 8"), HasSubstr("--parallel.tp")));
  EXPECT_NO_THROW(check_grid(GridShape{.dp = 3, .tp = 1, .pp = 2}, 6));
}

TEST(ProcessGrid, CheckGridRejectsDegreesBelowOne) {
  for (GridShape g : {GridShape{.dp = 0, .tp = 2, .pp = 1}, GridShape{.dp = 1, .tp = 0, .pp = 4},
                      GridShape{.dp = 2, .tp = 2, .pp = -1}}) {
    const std::string m = message_of([&] { check_grid(g, 4); });
    EXPECT_THAT(m, AllOf(HasSubstr("must be >= 1"),
                         HasSubstr(fmt::format("dp={} tp={} pp={}", g.dp, g.tp, g.pp)), HasSubstr("HINT:")));
  }
  EXPECT_THAT(message_of([] { check_grid(GridShape{}, 0); }), HasSubstr("world size must be >= 1, got 0"));
}

TEST(ProcessGrid, MakeGridDerivesDp) {
  EXPECT_EQ(make_grid(8, 2, 2), (GridShape{.dp = 2, .tp = 2, .pp = 2}));
  EXPECT_EQ(make_grid(12, 3, 1), (GridShape{.dp = 4, .tp = 3, .pp = 1}));
  EXPECT_EQ(make_grid(1, 1, 1), GridShape{});
  EXPECT_EQ(make_grid(4, 2, 1, 2), (GridShape{.dp = 2, .tp = 2, .pp = 1}));
  EXPECT_THAT(
      message_of([] { make_grid(6, 2, 2); }),
      AllOf(HasSubstr("world size 6 is not divisible by tp*pp = 2*2 = 4"), HasSubstr("mpirun -np 4")));
  EXPECT_THAT(message_of([] { make_grid(8, 2, 2, 1); }),
              HasSubstr("world size 8 is not dp*tp*pp = 1*2*2 = 4"));
  EXPECT_THAT(message_of([] { make_grid(8, 0, 2); }), HasSubstr("got tp=0 pp=2"));
}

TEST(ProcessGrid, OutOfRangeInputsThrow) {
  const GridShape g{.dp = 2, .tp = 2, .pp = 1};
  EXPECT_THAT(message_of([&] { coord_of(g, 4); }), HasSubstr("rank 4 out of range [0, 4)"));
  EXPECT_THAT(message_of([&] { coord_of(g, -1); }), HasSubstr("rank -1 out of range"));
  EXPECT_THAT(message_of([&] { rank_of(g, GridCoord{.dp = 0, .tp = 2, .pp = 0}); }),
              HasSubstr("(dp=0, tp=2, pp=0) out of range"));
}

// ---- the single-process context -----------------------------------------------------

TEST(LocalContext, IsTheOneRankGrid) {
  ParallelContext ctx = make_local_context();
  EXPECT_EQ(ctx.shape, GridShape{});
  EXPECT_EQ(ctx.coord, GridCoord{});
  EXPECT_TRUE(ctx.first_stage() && ctx.last_stage());
  for (Communicator* c : {ctx.world.get(), ctx.tp.get(), ctx.dp.get(), ctx.pp.get()}) {
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->rank(), 0);
    EXPECT_EQ(c->size(), 1);
  }
}

TEST(LocalContext, CollectivesOfOneRankAreIdentityOrCopy) {
  LocalCommunicator c;
  std::vector<float> x{1.5f, -2.f, 3.f}, y(3, 0.f);
  c.all_reduce(host_tensor(x.data(), Shape{3}), ReduceOp::max);
  c.broadcast(host_tensor(x.data(), Shape{3}), 0);
  c.barrier();
  EXPECT_EQ(x, (std::vector<float>{1.5f, -2.f, 3.f}));
  c.reduce_scatter(host_tensor(y.data(), Shape{3}), host_tensor(x.data(), Shape{3}));
  EXPECT_EQ(y, x);
  y.assign(3, 0.f);
  c.all_gather(host_tensor(y.data(), Shape{3}), host_tensor(x.data(), Shape{3}));
  EXPECT_EQ(y, x);
  y.assign(3, 0.f);
  c.send_recv(host_tensor(x.data(), Shape{3}), 0, host_tensor(y.data(), Shape{3}), 0);
  EXPECT_EQ(y, x);
  c.send_recv(Tensor{}, -1, Tensor{}, -1);  // both halves skipped
}

TEST(LocalContext, ChecksLikeTheMpiCommunicator) {
  LocalCommunicator c;
  std::vector<float> x(4), y(2);
  EXPECT_THAT(message_of([&] { c.broadcast(host_tensor(x.data(), Shape{4}), 1); }),
              HasSubstr("root 1 out of range"));
  EXPECT_THAT(
      message_of([&] { c.all_gather(host_tensor(x.data(), Shape{4}), host_tensor(y.data(), Shape{2})); }),
      HasSubstr("same numel"));
  EXPECT_THAT(message_of([&] { c.send_recv(host_tensor(x.data(), Shape{4}), 1, Tensor{}, -1); }),
              HasSubstr("dest 1 out of range"));
  EXPECT_THAT(message_of([&] { c.send_recv(host_tensor(x.data(), Shape{4}), 0, Tensor{}, -1); }),
              HasSubstr("never complete"));
}

}  // namespace
}  // namespace loom
