// parallel/process_grid.h — the (dp, tp, pp) process grid as pure rank arithmetic (no MPI).
//
// Ranks are laid out tp fastest, then dp, then pp (Megatron's order), so a
// tensor-parallel group is a run of consecutive ranks and sits inside a node:
//     rank = tp + TP * (dp + DP * pp)
// Groups: the tp group of a rank is the ranks that share its (dp, pp); the dp
// group shares (tp, pp); the pp group shares (tp, dp). Ranks inside a group are
// ordered by their coordinate along that axis. Everything here is a pure function.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace loom {

struct GridShape {
  int dp = 1, tp = 1, pp = 1;
  int size() const { return dp * tp * pp; }
  bool operator==(const GridShape&) const = default;
};

struct GridCoord {
  int dp = 0, tp = 0, pp = 0;
  bool operator==(const GridCoord&) const = default;
};

// Throws loom::Error naming the constraint when any degree is < 1 or when
// `world` != dp * tp * pp; the hint says which mpirun -np or option fixes it.
void check_grid(const GridShape& g, int world);

// The grid for `world` ranks with the given tp and pp. dp, when not given, is
// derived as world / (tp * pp) (an error if that does not divide); when given it
// must match. The result has passed check_grid.
GridShape make_grid(int world, int tp, int pp, std::optional<int> dp = std::nullopt);

// "dp=2 tp=2 pp=1", for logs and messages.
std::string grid_str(const GridShape& g);

// Inverse bijections between [0, g.size()) and coordinates; throw on out-of-range input.
GridCoord coord_of(const GridShape& g, int rank);
int rank_of(const GridShape& g, const GridCoord& c);

// World ranks of each group containing `rank`, in group order (so `rank` sits at
// index coord_of(g, rank).tp / .dp / .pp respectively).
std::vector<int> tp_group(const GridShape& g, int rank);
std::vector<int> dp_group(const GridShape& g, int rank);
std::vector<int> pp_group(const GridShape& g, int rank);

}  // namespace loom
