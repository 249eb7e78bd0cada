// parallel/process_grid.cpp — rank <-> (dp, tp, pp) arithmetic and grid validation.
//
// rank = tp + TP * (dp + DP * pp): tp varies fastest, then dp, then pp. A group
// along one axis is obtained by fixing the other two coordinates and running the
// axis coordinate from 0 to its degree - 1, which is also the order of ranks
// inside the group. No MPI here: tests/unit/test_process_grid.cpp checks every
// grid of up to 64 ranks without launching anything.
#include "parallel/process_grid.h"

#include <fmt/format.h>

#include "core/error.h"

namespace loom {

void check_grid(const GridShape& g, int world) {
  LOOM_CHECK(g.dp >= 1 && g.tp >= 1 && g.pp >= 1,
             "set --parallel.tp, --parallel.pp (and --parallel.dp, if given) to integers >= 1",
             "parallel degrees must be >= 1, got dp={} tp={} pp={}", g.dp, g.tp, g.pp);
  LOOM_CHECK(world >= 1, "", "world size must be >= 1, got {}", world);
  LOOM_CHECK(g.size() == world,
             fmt::format("launch with mpirun -np {} or change --parallel.tp/--parallel.pp/--parallel.dp "
                         "so that dp*tp*pp = {}",
                         g.size(), world),
             "world size {} is not dp*tp*pp = {}*{}*{} = {}", world, g.dp, g.tp, g.pp, g.size());
}

GridShape make_grid(int world, int tp, int pp, std::optional<int> dp) {
  LOOM_CHECK(tp >= 1 && pp >= 1, "set --parallel.tp and --parallel.pp to integers >= 1",
             "parallel degrees must be >= 1, got tp={} pp={}", tp, pp);
  LOOM_CHECK(world >= 1, "", "world size must be >= 1, got {}", world);
  GridShape g{.dp = 0, .tp = tp, .pp = pp};
  if (dp) {
    g.dp = *dp;
  } else {
    LOOM_CHECK(world % (tp * pp) == 0,
               fmt::format("launch with a multiple of {} ranks (mpirun -np {}, {}, ...) or change "
                           "--parallel.tp/--parallel.pp",
                           tp * pp, tp * pp, 2 * tp * pp),
               "world size {} is not divisible by tp*pp = {}*{} = {}, so dp cannot be derived", world, tp, pp,
               tp * pp);
    g.dp = world / (tp * pp);
  }
  check_grid(g, world);
  return g;
}

std::string grid_str(const GridShape& g) { return fmt::format("dp={} tp={} pp={}", g.dp, g.tp, g.pp); }

GridCoord coord_of(const GridShape& g, int rank) {
  LOOM_CHECK(0 <= rank && rank < g.size(), "", "coord_of: rank {} out of range [0, {}) for grid {}", rank,
             g.size(), grid_str(g));
  return GridCoord{.dp = (rank / g.tp) % g.dp, .tp = rank % g.tp, .pp = rank / (g.tp * g.dp)};
}

int rank_of(const GridShape& g, const GridCoord& c) {
  LOOM_CHECK(0 <= c.dp && c.dp < g.dp && 0 <= c.tp && c.tp < g.tp && 0 <= c.pp && c.pp < g.pp, "",
             "rank_of: coordinate (dp={}, tp={}, pp={}) out of range for grid {}", c.dp, c.tp, c.pp,
             grid_str(g));
  return c.tp + g.tp * (c.dp + g.dp * c.pp);
}

namespace {

// The ranks obtained by running one coordinate of `rank`'s coordinate over [0, n).
template <class Set>
std::vector<int> group_along(const GridShape& g, int rank, int n, Set set) {
  const GridCoord base = coord_of(g, rank);
  std::vector<int> ranks(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    GridCoord c = base;
    set(c, i);
    ranks[std::size_t(i)] = rank_of(g, c);
  }
  return ranks;
}

}  // namespace

std::vector<int> tp_group(const GridShape& g, int rank) {
  return group_along(g, rank, g.tp, [](GridCoord& c, int i) { c.tp = i; });
}
std::vector<int> dp_group(const GridShape& g, int rank) {
  return group_along(g, rank, g.dp, [](GridCoord& c, int i) { c.dp = i; });
}
std::vector<int> pp_group(const GridShape& g, int rank) {
  return group_along(g, rank, g.pp, [](GridCoord& c, int i) { c.pp = i; });
}

}  // namespace loom
