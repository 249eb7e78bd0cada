// tests/mpi/test_collectives.cpp — every collective against closed-form values, on every group.
//
// Group rank r of n contributes values like r + 1 + (i % P), P chosen per dtype so
// that every value and every partial sum is an integer the dtype holds exactly
// (bf16: <= 256, f16: <= 2048), hence the expected results are exact in f32, bf16
// and f16. Sizes 1, 3, 1000 and 65537 (the last forces MPI to pipeline segments
// through the user-defined half ops). Run on the world and on the tp/dp/pp groups of
// every grid that fits the world. main() is mpi_gtest_main.cpp's.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "parallel/mpi_communicator.h"
#include "parallel/parallel_context.h"
#include "parallel/watchdog.h"

namespace loom {
namespace {

using ::testing::HasSubstr;

constexpr DType kDTypes[] = {DType::f32, DType::bf16, DType::f16};
constexpr std::int64_t kSizes[] = {1, 3, 1000, 65537};

// Values cycle with this period so that every partial result stays exact (n <= 8).
std::int64_t period(DType t) { return t == DType::f32 ? (1 << 20) : t == DType::bf16 ? 16 : 128; }

// A host array of any dtype, read and written as floats; refuses inexact values.
class HostArray {
public:
  HostArray(DType t, std::int64_t n) : dtype_(t), n_(n), bytes_(std::size_t(n) * dtype_size(t)) {}
  Tensor tensor() const {
    return Tensor{const_cast<std::byte*>(bytes_.data()), Shape{n_}, dtype_, Device::cpu};
  }
  // Elements [k*c, (k+1)*c): chunk k of c elements.
  Tensor chunk(std::int64_t k, std::int64_t c) const { return tensor().slice_rows(k * c, (k + 1) * c); }
  std::int64_t size() const { return n_; }
  void set(std::int64_t i, float v) {
    visit_dtype(dtype_, [&](auto tag) {
      using T = decltype(tag);
      const T h = from_float<T>(v);
      if (to_float(h) != v)
        throw Error(fmt::format("test value {} is not exact in {}", v, dtype_name(dtype_)));
      reinterpret_cast<T*>(bytes_.data())[i] = h;
    });
  }
  float get(std::int64_t i) const {
    return visit_dtype(dtype_, [&](auto tag) {
      using T = decltype(tag);
      return to_float(reinterpret_cast<const T*>(bytes_.data())[i]);
    });
  }
  template <class F>
  void fill(F value) {
    for (std::int64_t i = 0; i < n_; ++i) set(i, value(i));
  }

private:
  DType dtype_;
  std::int64_t n_;
  std::vector<std::byte> bytes_;
};

// "" when a[i] == expected(i) for all i, else the count and the first mismatch.
template <class F>
std::string mismatches(const HostArray& a, F expected) {
  std::int64_t bad = 0;
  std::string first;
  for (std::int64_t i = 0; i < a.size(); ++i) {
    const float e = expected(i);
    if (a.get(i) != e) {
      if (bad++ == 0) first = fmt::format("[{}] = {}, expected {}", i, a.get(i), e);
    }
  }
  return bad ? fmt::format("{} of {} wrong, first {}", bad, a.size(), first) : "";
}

std::string where(const Communicator& c, DType t, std::int64_t n) {
  return fmt::format("group rank {} of {}, {}, {} elements", c.rank(), c.size(), dtype_name(t), n);
}

// ---- one check per collective; every rank of `c` calls it with the same arguments ----

void check_all_reduce(Communicator& c, DType t, std::int64_t n) {
  SCOPED_TRACE(where(c, t, n));
  const int r = c.rank(), g = c.size();
  const std::int64_t p = period(t);
  HostArray x(t, n);
  x.fill([&](std::int64_t i) { return float(r + 1 + i % p); });
  c.all_reduce(x.tensor(), ReduceOp::sum);
  EXPECT_EQ(mismatches(x, [&](std::int64_t i) { return float(g * (g + 1) / 2 + g * (i % p)); }), "");

  // max: which rank holds the maximum changes with i; values go negative too.
  x.fill([&](std::int64_t i) { return float((r + i) % g - i % p); });
  c.all_reduce(x.tensor(), ReduceOp::max);
  EXPECT_EQ(mismatches(x, [&](std::int64_t i) { return float(g - 1 - i % p); }), "");
}

void check_reduce_scatter(Communicator& c, DType t, std::int64_t n) {
  SCOPED_TRACE(where(c, t, n));
  const int r = c.rank(), g = c.size();
  const std::int64_t p = period(t);
  auto input = [&](std::int64_t k) { return float(r + 1 + k % p); };
  auto expected = [&](std::int64_t j) { return float(g * (g + 1) / 2 + g * ((r * n + j) % p)); };
  HostArray in(t, g * n), out(t, n);
  in.fill(input);
  c.reduce_scatter(out.tensor(), in.tensor());
  EXPECT_EQ(mismatches(out, expected), "");
  // In place: out is this rank's chunk of in (every rank does the same).
  in.fill(input);
  c.reduce_scatter(in.chunk(r, n), in.tensor());
  HostArray own(t, n);
  for (std::int64_t j = 0; j < n; ++j) own.set(j, in.get(r * n + j));
  EXPECT_EQ(mismatches(own, expected), "") << "(in place)";
}

void check_all_gather(Communicator& c, DType t, std::int64_t n) {
  SCOPED_TRACE(where(c, t, n));
  const int r = c.rank(), g = c.size();
  const std::int64_t p = period(t);
  auto expected = [&](std::int64_t k) { return float(k / n + 1 + (k % n) % p); };
  HostArray in(t, n), out(t, g * n);
  in.fill([&](std::int64_t j) { return float(r + 1 + j % p); });
  out.fill([](std::int64_t) { return -1.0f; });
  c.all_gather(out.tensor(), in.tensor());
  EXPECT_EQ(mismatches(out, expected), "");
  // In place: in is this rank's chunk of out.
  out.fill([&](std::int64_t k) { return k / n == r ? float(r + 1 + (k % n) % p) : -1.0f; });
  c.all_gather(out.tensor(), out.chunk(r, n));
  EXPECT_EQ(mismatches(out, expected), "") << "(in place)";
}

// ZeRO-1's uneven pair: n elements split by shard_range (n need not divide by the group).
void check_uneven_parts(Communicator& c, DType t, std::int64_t n) {
  SCOPED_TRACE(where(c, t, n));
  const int r = c.rank(), g = c.size();
  const std::int64_t p = period(t);
  const Range mine = shard_range(n, g, r);
  HostArray in(t, n), out(t, mine.size());
  in.fill([&](std::int64_t k) { return float(r + 1 + k % p); });
  out.fill([](std::int64_t) { return -1.0f; });
  c.reduce_scatter_start(out.tensor(), in.tensor());
  c.wait_all();
  EXPECT_EQ(mismatches(out, [&](std::int64_t j) { return float(g * (g + 1) / 2 + g * ((mine.begin + j) % p)); }), "");
  // In place: out is this rank's part of in (the result lands there after wait_all).
  in.fill([&](std::int64_t k) { return float(r + 1 + k % p); });
  c.reduce_scatter_start(in.tensor().slice_rows(mine.begin, mine.end), in.tensor());
  c.wait_all();
  for (std::int64_t j = 0; j < mine.size(); ++j)
    EXPECT_EQ(in.get(mine.begin + j), float(g * (g + 1) / 2 + g * ((mine.begin + j) % p))) << "in place, element " << j;
  // Gather: rank q's part holds q + 1 + k % p; other parts start as garbage.
  HostArray x(t, n);
  x.fill([&](std::int64_t k) { return k >= mine.begin && k < mine.end ? float(r + 1 + k % p) : -7.0f; });
  c.all_gather_parts(x.tensor());
  EXPECT_EQ(mismatches(x, [&](std::int64_t k) {
              int q = 0;
              while (!(k >= shard_range(n, g, q).begin && k < shard_range(n, g, q).end)) ++q;
              return float(q + 1 + k % p);
            }),
            "");
}

void check_broadcast(Communicator& c, DType t, std::int64_t n) {
  SCOPED_TRACE(where(c, t, n));
  const int root = c.size() - 1;  // not 0 whenever the group has more than one rank
  const std::int64_t p = period(t);
  HostArray x(t, n);
  x.fill([&](std::int64_t i) { return c.rank() == root ? float(100 + i % p) : -1.0f; });
  c.broadcast(x.tensor(), root);
  EXPECT_EQ(mismatches(x, [&](std::int64_t i) { return float(100 + i % p); }), "");
}

void check_send_recv(Communicator& c, DType t, std::int64_t n) {
  SCOPED_TRACE(where(c, t, n));
  const int r = c.rank(), g = c.size();
  const int right = (r + 1) % g, left = (r + g - 1) % g;
  const std::int64_t p = period(t);
  auto value = [&](int rank) { return [=](std::int64_t i) { return float(rank + 1 + i % p); }; };
  HostArray send(t, n), recv(t, n);
  send.fill(value(r));
  // Ring, both directions.
  c.send_recv(send.tensor(), right, recv.tensor(), left);
  EXPECT_EQ(mismatches(recv, value(left)), "") << "(ring, to the right)";
  c.send_recv(send.tensor(), left, recv.tensor(), right);
  EXPECT_EQ(mismatches(recv, value(right)), "") << "(ring, to the left)";
  // Chain, as pipeline stages do: the ends skip a half (empty tensor / negative rank).
  recv.fill([](std::int64_t) { return -7.0f; });
  c.send_recv(r + 1 < g ? send.tensor() : Tensor{}, r + 1 < g ? r + 1 : -1, recv.tensor(),
              r > 0 ? r - 1 : -1);
  if (r > 0) {
    EXPECT_EQ(mismatches(recv, value(r - 1)), "") << "(chain)";
  } else {
    EXPECT_EQ(mismatches(recv, [](std::int64_t) { return -7.0f; }), "")
        << "(chain: first rank receives nothing)";
  }
}

void check_everything(Communicator& c, const std::vector<std::int64_t>& sizes) {
  for (DType t : kDTypes)
    for (std::int64_t n : sizes) {
      check_all_reduce(c, t, n);
      check_reduce_scatter(c, t, n);
      check_all_gather(c, t, n);
      check_broadcast(c, t, n);
      check_send_recv(c, t, n);
    }
}

MpiCommunicator world_copy() { return MpiCommunicator::dup(MPI_COMM_WORLD, "world"); }

// ---- the world communicator --------------------------------------------------------

TEST(World, AllReduce) {
  MpiCommunicator c = world_copy();
  for (DType t : kDTypes)
    for (std::int64_t n : kSizes) check_all_reduce(c, t, n);
}

TEST(World, ReduceScatter) {
  MpiCommunicator c = world_copy();
  for (DType t : kDTypes)
    for (std::int64_t n : kSizes) check_reduce_scatter(c, t, n);
}

TEST(World, AllGather) {
  MpiCommunicator c = world_copy();
  for (DType t : kDTypes)
    for (std::int64_t n : kSizes) check_all_gather(c, t, n);
}

TEST(World, UnevenReduceScatterAndAllGather) {
  MpiCommunicator c = world_copy();
  for (DType t : kDTypes)
    for (std::int64_t n : {std::int64_t(1), std::int64_t(5), std::int64_t(1001), std::int64_t(65537)})
      check_uneven_parts(c, t, n);
}

TEST(World, Broadcast) {
  MpiCommunicator c = world_copy();
  for (DType t : kDTypes)
    for (std::int64_t n : kSizes) check_broadcast(c, t, n);
}

TEST(World, SendRecv) {
  MpiCommunicator c = world_copy();
  for (DType t : kDTypes)
    for (std::int64_t n : kSizes) check_send_recv(c, t, n);
}

TEST(World, BarrierWaitsForTheLastRank) {
  MpiCommunicator c = world_copy();
  c.barrier();
  const auto t0 = std::chrono::steady_clock::now();
  if (c.rank() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  c.barrier();
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Rank 0 entered the second barrier 300 ms after leaving the first; a generous
  // margin for ranks that left the first barrier late on an oversubscribed machine.
  EXPECT_GE(waited, 0.15) << "rank " << c.rank() << " left the barrier before rank 0 entered it";
}

// Half sums are computed in f32 and rounded once per combine: for two ranks the
// result is exactly from_float(a + b), for random values that need rounding.
TEST(World, HalfSumOfTwoRoundsOnceFromF32) {
  const int wr = world_copy().rank();
  MpiCommunicator pair = MpiCommunicator::split(MPI_COMM_WORLD, wr / 2, wr % 2, "pair");
  const std::int64_t n = 4096;
  auto value = [](int rank, std::int64_t i) {  // deterministic, mixed signs and magnitudes
    const std::uint32_t h = std::uint32_t(i * 2654435761u) ^ std::uint32_t(rank * 40503u + 17u);
    return (float(h % 20001) - 10000.0f) * (h & 1u ? 1.0f / 64 : 1.0f / 4096);
  };
  for (DType t : {DType::bf16, DType::f16}) {
    HostArray x(t, n), a(t, n), b(t, n);
    visit_dtype(t, [&](auto tag) {
      using T = decltype(tag);
      for (std::int64_t i = 0; i < n; ++i) {
        a.set(i, to_float(from_float<T>(value(0, i))));
        b.set(i, to_float(from_float<T>(value(1, i))));
        x.set(i, pair.rank() == 0 ? a.get(i) : b.get(i));
      }
      pair.all_reduce(x.tensor(), ReduceOp::sum);
      const bool alone = pair.size() == 1;  // odd world: the last rank is a group of one
      EXPECT_EQ(mismatches(x,
                           [&](std::int64_t i) {
                             return alone ? a.get(i) : to_float(from_float<T>(a.get(i) + b.get(i)));
                           }),
                "")
          << dtype_name(t);
    });
  }
}

TEST(World, BadCallsThrowTheSameErrorOnEveryRank) {
  MpiCommunicator c = world_copy();
  const int g = c.size();
  std::vector<float> a(std::size_t(g) * 4 + 1), b(8);
  Tensor dev = host_tensor(a.data(), Shape{4});
  dev.device = Device::cuda;
  EXPECT_THAT([&] { c.all_reduce(dev); }, ::testing::ThrowsMessage<Error>(HasSubstr("needs cpu tensors")));
  EXPECT_THAT(
      [&] { c.reduce_scatter(host_tensor(b.data(), Shape{4}), host_tensor(a.data(), Shape{g * 4 + 1})); },
      ::testing::ThrowsMessage<Error>(HasSubstr(
          fmt::format("in.numel() = {} must be size()*out.numel() = {}*4 = {}", g * 4 + 1, g, g * 4))));
  EXPECT_THAT([&] { c.all_gather(host_tensor(a.data(), Shape{g * 4 + 1}), host_tensor(b.data(), Shape{4})); },
              ::testing::ThrowsMessage<Error>(HasSubstr("out.numel()")));
  EXPECT_THAT([&] { c.broadcast(host_tensor(b.data(), Shape{4}), g); },
              ::testing::ThrowsMessage<Error>(HasSubstr(fmt::format("root {} out of range [0, {})", g, g))));
  EXPECT_THAT([&] { c.send_recv(host_tensor(b.data(), Shape{4}), g, Tensor{}, -1); },
              ::testing::ThrowsMessage<Error>(HasSubstr("dest")));
  std::vector<std::uint16_t> h(4);
  EXPECT_THAT(
      [&] {
        c.all_gather(host_tensor(a.data(), Shape{g * 4}),
                     host_tensor(reinterpret_cast<bf16*>(h.data()), Shape{4}));
      },
      ::testing::ThrowsMessage<Error>(HasSubstr("out is f32 but in is bf16")));
  // The group is still usable after all that.
  check_all_reduce(c, DType::f32, 3);
}

TEST(World, SendRecvSizeMismatchIsReported) {
  MpiCommunicator c = world_copy();
  const int r = c.rank(), g = c.size();
  std::vector<float> s(6, 1.0f), d(6, 0.0f);
  // Every rank sends 5 and expects 6 from its left neighbour: each one completes and reports.
  EXPECT_THAT(
      [&] {
        c.send_recv(host_tensor(s.data(), Shape{5}), (r + 1) % g, host_tensor(d.data(), Shape{6}),
                    (r + g - 1) % g);
      },
      ::testing::ThrowsMessage<Error>(HasSubstr(g == 1 ? "to itself" : "received 5 elements")));
  // ... and sends 6 where 5 are expected: MPI's truncation error, as a loom::Error (checked
  // by MpiCommunicator itself for a message to oneself, which MPI truncates silently).
  EXPECT_THAT(
      [&] {
        c.send_recv(host_tensor(s.data(), Shape{6}), (r + 1) % g, host_tensor(d.data(), Shape{5}),
                    (r + g - 1) % g);
      },
      ::testing::ThrowsMessage<Error>(HasSubstr(g == 1 ? "to itself" : "MPI_ERR_TRUNCATE")));
  c.barrier();
  check_send_recv(c, DType::f32, 3);  // still usable
}

// ---- the watchdog (parallel/watchdog.h) ----------------------------------------------

// Armed, every operation makes the same blocking MPI calls inside a Watchdog::Pending
// scope: the same results, mismatched sizes still reported, the group usable afterwards.
// (A rank that waits past the timeout ends its process: test_abort_watchdog_late.)
TEST(Watchdog, ArmedOperationsGiveTheSameResults) {
  MpiCommunicator c = world_copy();
  Watchdog w(120, c.world_ranks()[std::size_t(c.rank())]);
  c.set_watchdog(&w);
  check_everything(c, {std::begin(kSizes), std::end(kSizes)});
  for (DType t : kDTypes) check_uneven_parts(c, t, 1001);
  const int r = c.rank(), g = c.size();
  std::vector<float> s(6, 1.0f), d(6, 0.0f);
  if (g > 1) {
    EXPECT_THAT([&] { c.send_recv(host_tensor(s.data(), Shape{6}), (r + 1) % g, host_tensor(d.data(), Shape{5}),
                                  (r + g - 1) % g); },
                ::testing::ThrowsMessage<Error>(HasSubstr("MPI_ERR_TRUNCATE")));
  }
  c.barrier();
  check_send_recv(c, DType::f32, 3);
}

// ---- the groups of every grid that fits the world ----------------------------------

std::vector<GridShape> grids_of(int world) {
  std::vector<GridShape> grids;
  for (int dp = 1; dp <= world; ++dp)
    for (int tp = 1; tp <= world; ++tp)
      if (world % (dp * tp) == 0) grids.push_back(GridShape{.dp = dp, .tp = tp, .pp = world / (dp * tp)});
  return grids;
}

// The world ranks in `c`, gathered through `c` itself.
std::vector<int> members(Communicator& c, int world_rank) {
  HostArray in(DType::f32, 1), out(DType::f32, c.size());
  in.set(0, float(world_rank));
  c.all_gather(out.tensor(), in.tensor());
  std::vector<int> ranks;
  for (std::int64_t i = 0; i < out.size(); ++i) ranks.push_back(int(out.get(i)));
  return ranks;
}

TEST(Grids, GroupsHoldTheGridRanksInCoordinateOrder) {
  const int world = world_copy().size();
  for (const GridShape& g : grids_of(world)) {
    SCOPED_TRACE(grid_str(g));
    ParallelContext ctx = make_mpi_context(MPI_COMM_WORLD, g);
    EXPECT_EQ(ctx.coord, coord_of(g, ctx.world_rank));
    EXPECT_EQ(ctx.world->rank(), ctx.world_rank);
    EXPECT_EQ(ctx.tp->rank(), ctx.coord.tp);
    EXPECT_EQ(ctx.dp->rank(), ctx.coord.dp);
    EXPECT_EQ(ctx.pp->rank(), ctx.coord.pp);
    EXPECT_EQ(members(*ctx.tp, ctx.world_rank), tp_group(g, ctx.world_rank));
    EXPECT_EQ(members(*ctx.dp, ctx.world_rank), dp_group(g, ctx.world_rank));
    EXPECT_EQ(members(*ctx.pp, ctx.world_rank), pp_group(g, ctx.world_rank));
    EXPECT_EQ(int(members(*ctx.world, ctx.world_rank).size()), world);
  }
}

TEST(Grids, CollectivesOnEveryGroup) {
  const int world = world_copy().size();
  for (const GridShape& g : grids_of(world)) {
    SCOPED_TRACE(grid_str(g));
    ParallelContext ctx = make_mpi_context(MPI_COMM_WORLD, g);
    // The groups of one kind run concurrently and independently of each other.
    for (Communicator* c : {ctx.tp.get(), ctx.dp.get(), ctx.pp.get()}) check_everything(*c, {3, 1000});
  }
}

TEST(Grids, TwoContextsSideBySide) {
  const int world = world_copy().size();
  ParallelContext a = make_mpi_context(MPI_COMM_WORLD, GridShape{.dp = world, .tp = 1, .pp = 1});
  ParallelContext b = make_mpi_context(MPI_COMM_WORLD, GridShape{.dp = 1, .tp = world, .pp = 1});
  EXPECT_EQ(a.tp->size(), 1);
  EXPECT_EQ(b.tp->size(), world);
  check_all_reduce(*a.tp, DType::f32, 3);
  check_all_reduce(*b.tp, DType::bf16, 1000);
  check_all_reduce(*a.dp, DType::f16, 1000);
}

TEST(Grids, MismatchedGridIsRejectedOnEveryRank) {
  const int world = world_copy().size();
  EXPECT_THAT(
      [&] { make_mpi_context(MPI_COMM_WORLD, GridShape{.dp = 1, .tp = 2, .pp = world}); },
      ::testing::ThrowsMessage<Error>(HasSubstr(fmt::format("world size {} is not dp*tp*pp", world))));
}

TEST(Communicator, MovedCommunicatorKeepsWorking) {
  MpiCommunicator a = world_copy();
  MpiCommunicator b = std::move(a);
  check_all_reduce(b, DType::f32, 3);
  a = std::move(b);
  check_all_reduce(a, DType::bf16, 3);
  EXPECT_EQ(b.comm(), MPI_COMM_NULL);
  std::vector<std::uint16_t> h(3);
  EXPECT_THAT([&] { b.all_reduce(host_tensor(reinterpret_cast<bf16*>(h.data()), Shape{3})); },
              ::testing::ThrowsMessage<Error>(HasSubstr("moved-from")));
  EXPECT_THAT([&] { b.barrier(); }, ::testing::ThrowsMessage<Error>(HasSubstr("moved-from")));
}

}  // namespace
}  // namespace loom
