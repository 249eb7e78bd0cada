// tests/mpi/test_nccl_collectives.cpp — the NCCL communicator against closed-form values (labels mpi, gpu).
//
// Each rank takes the GPU of its node-local index (parallel/device_comm.h) and a
// CUDA backend there; make_mpi_context + use_device_communicators give NCCL
// communicators for the world and the tp/dp/pp groups, and a split of the world
// by rank parity gives a sub-group. Group rank r of n contributes r + 1 + (i % P)
// with P per dtype so that every value and partial sum is exact in the dtype, as
// test_collectives.cpp does for MPI. Skips, on every rank and saying so, when this
// node shows fewer GPUs than it runs ranks (every CI machine). main() is
// mpi_gtest_main.cpp's.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/registry.h"
#include "core/buffer.h"
#include "core/range.h"
#include "parallel/device_comm.h"
#include "parallel/mpi_communicator.h"
#include "parallel/nccl/nccl_communicator.h"
#include "parallel/parallel_context.h"

namespace loom {
namespace {

constexpr DType kDTypes[] = {DType::f32, DType::bf16, DType::f16};
constexpr std::int64_t kSizes[] = {1, 3, 1000, 65537};

std::int64_t period(DType t) { return t == DType::f32 ? (1 << 20) : t == DType::bf16 ? 16 : 128; }
float value(int r, std::int64_t i, DType t) { return float(r + 1 + i % period(t)); }

// Ranks on this node (MPI_COMM_TYPE_SHARED), the same answer on every rank of the node.
int ranks_on_node() {
  MPI_Comm node = MPI_COMM_NULL;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int n = 0;
  MPI_Comm_size(node, &n);
  MPI_Comm_free(&node);
  return n;
}

// Every rank must agree to skip (collectives follow), so decide on the minimum over the world.
bool enough_gpus() {
  int ok = cuda_device_count() >= ranks_on_node() ? 1 : 0, all = 0;
  MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return all == 1;
}

std::vector<float> to_floats(const std::vector<std::byte>& bytes, DType t) {
  std::vector<float> out(bytes.size() / dtype_size(t));
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    const T* p = reinterpret_cast<const T*>(bytes.data());
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = to_float(p[i]);
  });
  return out;
}
std::vector<std::byte> from_floats(const std::vector<float>& v, DType t) {
  std::vector<std::byte> out(v.size() * dtype_size(t));
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    T* p = reinterpret_cast<T*>(out.data());
    for (std::size_t i = 0; i < v.size(); ++i) p[i] = from_float<T>(v[i]);
  });
  return out;
}

class NcclCollectives : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!enough_gpus()) GTEST_SKIP() << "fewer GPUs than ranks on this node (" << cuda_device_count() << " GPUs)";
    device_ = node_local_rank(MPI_COMM_WORLD);
    be_ = make_backend(Device::cuda, BackendOptions{.cuda_device = device_});
  }

  Buffer upload(const std::vector<float>& v, DType t) {
    Buffer b(*be_, Shape{std::int64_t(v.size())}, t);
    std::vector<std::byte> bytes = from_floats(v, t);
    be_->copy(b, Tensor{bytes.data(), b.tensor().shape, t, Device::cpu});
    return b;
  }
  std::vector<float> download(Tensor t) {
    std::vector<std::byte> bytes(t.bytes());
    be_->copy(Tensor{bytes.data(), t.shape, t.dtype, Device::cpu}, t);
    return to_floats(bytes, t.dtype);
  }

  // Every collective on group c, checked against closed forms.
  void check_group(Communicator& c, const std::string& name) {
    const int r = c.rank(), n = c.size();
    for (DType t : kDTypes)
      for (std::int64_t len : kSizes) {
        const std::string what = name + " " + std::string(dtype_name(t)) + " n=" + std::to_string(len);
        std::vector<float> mine(static_cast<std::size_t>(len)), sum(static_cast<std::size_t>(len)), max(static_cast<std::size_t>(len));
        for (std::int64_t i = 0; i < len; ++i) {
          mine[std::size_t(i)] = value(r, i, t);
          max[std::size_t(i)] = value(n - 1, i, t);
          for (int q = 0; q < n; ++q) sum[std::size_t(i)] += value(q, i, t);
        }
        Buffer x = upload(mine, t);
        c.all_reduce(x);
        EXPECT_EQ(download(x), sum) << "all_reduce sum " << what;
        Buffer y = upload(mine, t);
        c.all_reduce(y, ReduceOp::max);
        EXPECT_EQ(download(y), max) << "all_reduce max " << what;

        Buffer z = upload(mine, t);
        c.broadcast(z, n - 1);
        std::vector<float> root(static_cast<std::size_t>(len));
        for (std::int64_t i = 0; i < len; ++i) root[std::size_t(i)] = value(n - 1, i, t);
        EXPECT_EQ(download(z), root) << "broadcast " << what;

        // all_gather: chunk q of out is rank q's values.
        Buffer g(*be_, Shape{len * n}, t);
        c.all_gather(g, upload(mine, t));
        std::vector<float> gathered;
        for (int q = 0; q < n; ++q)
          for (std::int64_t i = 0; i < len; ++i) gathered.push_back(value(q, i, t));
        EXPECT_EQ(download(g), gathered) << "all_gather " << what;

        // reduce_scatter: in = n copies of mine; out = the sum.
        std::vector<float> in;
        for (int q = 0; q < n; ++q) in.insert(in.end(), mine.begin(), mine.end());
        Buffer rs_in = upload(in, t), rs_out(*be_, Shape{len}, t);
        c.reduce_scatter(rs_out, rs_in);
        EXPECT_EQ(download(rs_out), sum) << "reduce_scatter " << what;

        // Uneven, non-blocking reduce-scatter in place, then the uneven all-gather.
        Buffer flat = upload(mine, t);
        const Range part = shard_range(len, n, r);
        c.reduce_scatter_start(flat_range(flat, part), flat);
        c.wait_all();
        std::vector<float> got = download(flat);
        for (std::int64_t i = part.begin; i < part.end; ++i)
          EXPECT_EQ(got[std::size_t(i)], sum[std::size_t(i)]) << "reduce_scatter_start element " << i << " " << what;
        c.all_gather_parts(flat);
        EXPECT_EQ(download(flat), sum) << "all_gather_parts " << what;

        Buffer ar = upload(mine, t);
        c.all_reduce_start(ar);
        c.wait_all();
        EXPECT_EQ(download(ar), sum) << "all_reduce_start " << what;

        // Ring: send mine to r + 1, receive r - 1's.
        Buffer send = upload(mine, t), recv(*be_, Shape{len}, t);
        c.send_recv(send, (r + 1) % n, recv, (r + n - 1) % n);
        std::vector<float> prev(static_cast<std::size_t>(len));
        for (std::int64_t i = 0; i < len; ++i) prev[std::size_t(i)] = value((r + n - 1) % n, i, t);
        EXPECT_EQ(download(recv), prev) << "send_recv " << what;
      }
    // Host tensors still go over MPI.
    float host = float(r + 1);
    c.all_reduce(host_tensor(&host, Shape{1}));
    EXPECT_EQ(host, float(n * (n + 1) / 2)) << name << " host all_reduce";
    c.barrier();
  }

  int device_ = 0;
  std::unique_ptr<Backend> be_;
};

TEST_F(NcclCollectives, EveryCollectiveOnTheWorldAndTheGridGroups) {
  int world = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  ParallelContext ctx = make_mpi_context(MPI_COMM_WORLD, {world, 1, 1});  // dp = world
  use_device_communicators(ctx, Device::cuda, device_, cuda_stream_of(*be_));
  check_group(*ctx.world, "world");
  check_group(*ctx.dp, "dp");
  check_group(*ctx.tp, "tp");
}

TEST_F(NcclCollectives, EveryCollectiveOnASubGroup) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  auto parity = std::make_unique<MpiCommunicator>(MpiCommunicator::split(MPI_COMM_WORLD, rank % 2, rank, "parity"));
  std::unique_ptr<Communicator> c = make_nccl_communicator(std::move(parity), device_, cuda_stream_of(*be_));
  check_group(*c, "parity");
}

}  // namespace
}  // namespace loom
