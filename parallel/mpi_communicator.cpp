// parallel/mpi_communicator.cpp — MpiCommunicator: loom's collectives on MPI, host tensors.
//
// f32 is MPI_FLOAT with MPI_SUM / MPI_MAX. bf16/f16 travel as one contiguous 2-byte
// datatype; their sum and max are commutative user-defined MPI_Ops that convert to
// f32, combine and round once with from_float (core/dtype.h): a group of two rounds
// exactly once, larger groups once per combine (as NCCL does). The datatype and ops
// belong to the communicator (MpiHalfOps). Buffers are the callers'; no allocation.
// Every operation makes the blocking MPI call (for the non-blocking starts, wait_all's
// MPI_Waitall) inside a Watchdog::Pending scope: with an armed watchdog that records
// the call's start and a describer, formatted only if the watchdog's thread fires
// (watchdog.h); the MPI calls are the same whether it is armed or not.
#include "parallel/mpi_communicator.h"

#include <climits>
#include <cstring>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace loom {

namespace {

bool mpi_finalized() {
  int done = 0;
  MPI_Finalized(&done);
  return done != 0;
}

// The user function of a half-precision MPI_Op: inout[i] = op(in[i], inout[i]) in f32.
template <class T, ReduceOp Op>
void combine_half(void* in, void* inout, int* len, MPI_Datatype*) {
  const T* a = static_cast<const T*>(in);
  T* b = static_cast<T*>(inout);
  for (int i = 0; i < *len; ++i) {
    const float x = to_float(a[i]), y = to_float(b[i]);
    float r;
    if constexpr (Op == ReduceOp::sum) {
      r = x + y;
    } else {
      r = (x > y || x != x) ? x : y;  // max; a NaN on either side wins
    }
    b[i] = from_float<T>(r);
  }
}

MPI_Op create_op(MPI_User_function* fn) {
  MPI_Op op = MPI_OP_NULL;
  LOOM_CHECK(MPI_Op_create(fn, /*commute=*/1, &op) == MPI_SUCCESS, "", "MPI_Op_create failed");
  return op;
}

// Host memory ranges [a, a + bytes) and [b, b + bytes) share at least one byte.
bool overlaps(const Tensor& a, const Tensor& b) {
  if (a.bytes() == 0 || b.bytes() == 0) return false;
  const char* pa = static_cast<const char*>(a.ptr);
  const char* pb = static_cast<const char*>(b.ptr);
  return pa < pb + b.bytes() && pb < pa + a.bytes();
}

void check_host(const Tensor& t, const char* op, const char* arg) {
  LOOM_CHECK(t.device == Device::cpu,
             "MpiCommunicator moves host memory; copy the tensor to the host or use a device communicator",
             "{}: {} is a {} tensor {}, MpiCommunicator needs cpu tensors", op, arg, device_name(t.device),
             t.str());
  LOOM_CHECK(t.numel() == 0 || t.ptr != nullptr, "", "{}: {} {} has no memory (null pointer)", op, arg,
             t.str());
}

// The MPI_COMM_WORLD rank of each member of comm, for messages that name a group's ranks.
std::vector<int> ranks_in_world(MPI_Comm comm, int size) {
  MPI_Group group = MPI_GROUP_NULL, world = MPI_GROUP_NULL;
  MPI_Comm_group(comm, &group);
  MPI_Comm_group(MPI_COMM_WORLD, &world);
  std::vector<int> mine(std::size_t(size), 0), out(std::size_t(size), MPI_UNDEFINED);
  for (int r = 0; r < size; ++r) mine[std::size_t(r)] = r;
  MPI_Group_translate_ranks(group, size, mine.data(), world, out.data());
  MPI_Group_free(&group);
  MPI_Group_free(&world);
  return out;
}

int count_of(const Tensor& t, const char* op) {
  LOOM_CHECK(t.numel() <= INT_MAX, "split the tensor into pieces of at most 2^31-1 elements",
             "{}: {} has {} elements, more than one MPI call can move ({})", op, t.str(), t.numel(), INT_MAX);
  return int(t.numel());
}

}  // namespace

// The bf16/f16 datatype and reduction ops; created after MPI_Init, freed before
// MPI_Finalize (skipped when MPI is already finalized, so a late destructor is harmless).
struct MpiHalfOps {
  MPI_Datatype half = MPI_DATATYPE_NULL;
  MPI_Op bf16_sum = MPI_OP_NULL, bf16_max = MPI_OP_NULL, f16_sum = MPI_OP_NULL, f16_max = MPI_OP_NULL;

  MpiHalfOps() {
    LOOM_CHECK(
        MPI_Type_contiguous(2, MPI_BYTE, &half) == MPI_SUCCESS && MPI_Type_commit(&half) == MPI_SUCCESS, "",
        "MPI_Type_contiguous / MPI_Type_commit of the 2-byte half datatype failed");
    try {
      bf16_sum = create_op(&combine_half<bf16, ReduceOp::sum>);
      bf16_max = create_op(&combine_half<bf16, ReduceOp::max>);
      f16_sum = create_op(&combine_half<f16, ReduceOp::sum>);
      f16_max = create_op(&combine_half<f16, ReduceOp::max>);
    } catch (...) {
      release();
      throw;
    }
  }
  ~MpiHalfOps() { release(); }
  MpiHalfOps(const MpiHalfOps&) = delete;
  MpiHalfOps& operator=(const MpiHalfOps&) = delete;

  void release() noexcept {
    if (mpi_finalized()) return;
    for (MPI_Op* op : {&bf16_sum, &bf16_max, &f16_sum, &f16_max})
      if (*op != MPI_OP_NULL) MPI_Op_free(op);
    if (half != MPI_DATATYPE_NULL) MPI_Type_free(&half);
  }
};

// ---- lifetime --------------------------------------------------------------------

MpiCommunicator::MpiCommunicator(MPI_Comm owned, std::string name) : comm_(owned), name_(std::move(name)) {
  try {
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_set_name(comm_, name_.c_str());
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    world_ranks_ = ranks_in_world(comm_, size_);
    half_ = std::make_unique<MpiHalfOps>();
  } catch (...) {
    MPI_Comm_free(&comm_);
    throw;
  }
}

MpiCommunicator MpiCommunicator::dup(MPI_Comm parent, std::string name) {
  MPI_Comm c = MPI_COMM_NULL;
  LOOM_CHECK(MPI_Comm_dup(parent, &c) == MPI_SUCCESS, "", "MPI_Comm_dup for group '{}' failed", name);
  return MpiCommunicator(c, std::move(name));
}

MpiCommunicator MpiCommunicator::split(MPI_Comm parent, int color, int key, std::string name) {
  LOOM_CHECK(color >= 0, "", "MpiCommunicator::split('{}'): color must be >= 0, got {}", name, color);
  MPI_Comm c = MPI_COMM_NULL;
  LOOM_CHECK(MPI_Comm_split(parent, color, key, &c) == MPI_SUCCESS, "",
             "MPI_Comm_split for group '{}' failed", name);
  return MpiCommunicator(c, std::move(name));
}

MpiCommunicator::MpiCommunicator(MpiCommunicator&& o) noexcept
    : comm_(std::exchange(o.comm_, MPI_COMM_NULL)),
      rank_(std::exchange(o.rank_, 0)),
      size_(std::exchange(o.size_, 0)),
      name_(std::move(o.name_)),
      world_ranks_(std::move(o.world_ranks_)),
      half_(std::move(o.half_)),
      watchdog_(std::exchange(o.watchdog_, nullptr)) {}

MpiCommunicator& MpiCommunicator::operator=(MpiCommunicator&& o) noexcept {
  if (this != &o) {
    reset();
    comm_ = std::exchange(o.comm_, MPI_COMM_NULL);
    rank_ = std::exchange(o.rank_, 0);
    size_ = std::exchange(o.size_, 0);
    name_ = std::move(o.name_);
    world_ranks_ = std::move(o.world_ranks_);
    half_ = std::move(o.half_);
    watchdog_ = std::exchange(o.watchdog_, nullptr);
  }
  return *this;
}

MpiCommunicator::~MpiCommunicator() { reset(); }

void MpiCommunicator::reset() noexcept {
  half_.reset();
  if (comm_ != MPI_COMM_NULL && !mpi_finalized()) MPI_Comm_free(&comm_);
  comm_ = MPI_COMM_NULL;
}

// ---- helpers ---------------------------------------------------------------------

void MpiCommunicator::check_live() const {
  LOOM_CHECK(comm_ != MPI_COMM_NULL, "", "MpiCommunicator: use of a moved-from communicator");
}

MPI_Datatype MpiCommunicator::datatype(DType t) const {
  check_live();
  return t == DType::f32 ? MPI_FLOAT : half_->half;
}

MPI_Op MpiCommunicator::reduce_op(DType t, ReduceOp op) const {
  check_live();
  const bool sum = op == ReduceOp::sum;
  switch (t) {
    case DType::f32:
      return sum ? MPI_SUM : MPI_MAX;
    case DType::bf16:
      return sum ? half_->bf16_sum : half_->bf16_max;
    case DType::f16:
      return sum ? half_->f16_sum : half_->f16_max;
  }
  throw Error("MpiCommunicator: invalid dtype value");
}

void MpiCommunicator::check_mpi(int rc, const char* what) const {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw Error(fmt::format("{} on group '{}' (rank {} of {}) failed: {}", what, name_, rank_, size_,
                          std::string(text, std::size_t(len))),
              "every rank of the group must make the same calls with matching sizes and dtypes");
}

template <class Describe>
std::string MpiCommunicator::describe(const char* mpi_call, const Describe& op) const {
  return fmt::format("{} ({}) on group '{}' (world ranks {}; this is its rank {} of {})", op(), mpi_call, name_,
                     fmt::join(world_ranks_, ","), rank_, size_);
}

template <class Describe>
void MpiCommunicator::wait(int n, MPI_Request* requests, MPI_Status* statuses, const char* mpi_call, Describe&& op) {
  int rc = MPI_SUCCESS;
  {
    const auto full = [&] { return describe(mpi_call, op); };
    const Watchdog::Pending pending(watchdog_, full);
    rc = MPI_Waitall(n, requests, statuses);
  }
  // A multi-request wait reports MPI_ERR_IN_STATUS; the request's own error says what failed.
  if (rc == MPI_ERR_IN_STATUS && statuses != MPI_STATUSES_IGNORE)
    for (int k = 0; k < n; ++k)
      if (statuses[k].MPI_ERROR != MPI_SUCCESS && statuses[k].MPI_ERROR != MPI_ERR_PENDING) {
        rc = statuses[k].MPI_ERROR;
        break;
      }
  check_mpi(rc, mpi_call);
}

template <class Call, class Describe>
void MpiCommunicator::blocking(const char* mpi_call, Call&& call, Describe&& op) {
  int rc = MPI_SUCCESS;
  {
    const auto full = [&] { return describe(mpi_call, op); };
    const Watchdog::Pending pending(watchdog_, full);
    rc = call();
  }
  check_mpi(rc, mpi_call);
}

// ---- collectives -----------------------------------------------------------------

void MpiCommunicator::all_reduce(Tensor x, ReduceOp op) {
  check_host(x, "all_reduce", "x");
  const int n = count_of(x, "all_reduce");
  const MPI_Datatype dt = datatype(x.dtype);
  const MPI_Op mop = reduce_op(x.dtype, op);
  blocking(
      "MPI_Allreduce", [&] { return MPI_Allreduce(MPI_IN_PLACE, x.ptr, n, dt, mop, comm_); },
      [&] { return fmt::format("all_reduce of {}", x.str()); });
}

void MpiCommunicator::all_reduce_start(Tensor x) {
  check_host(x, "all_reduce_start", "x");
  const int n = count_of(x, "all_reduce_start");
  pending_.push_back(MPI_REQUEST_NULL);
  check_mpi(MPI_Iallreduce(MPI_IN_PLACE, x.ptr, n, datatype(x.dtype), reduce_op(x.dtype, ReduceOp::sum), comm_,
                           &pending_.back()),
            "MPI_Iallreduce");
}

namespace {
// MPI's counts and displacements for the parts of n elements (shard_range).
void parts_of(std::int64_t n, int size, std::vector<int>& counts, std::vector<int>& displs) {
  counts.resize(std::size_t(size));
  displs.resize(std::size_t(size));
  for (int r = 0; r < size; ++r) {
    const Range p = shard_range(n, size, r);
    counts[std::size_t(r)] = int(p.size());
    displs[std::size_t(r)] = int(p.begin);
  }
}
}  // namespace

void MpiCommunicator::reduce_scatter_start(Tensor out, Tensor in) {
  check_host(out, "reduce_scatter_start", "out");
  check_host(in, "reduce_scatter_start", "in");
  LOOM_CHECK(out.dtype == in.dtype, "", "reduce_scatter_start: out is {} but in is {}", dtype_name(out.dtype),
             dtype_name(in.dtype));
  count_of(in, "reduce_scatter_start");
  const Range mine = shard_range(in.numel(), size_, rank_);
  LOOM_CHECK(out.numel() == mine.size(), "out holds this rank's part of in (shard_range)",
             "reduce_scatter_start on group '{}': out has {} elements, this rank's part of {} has {}", name_,
             out.numel(), in.numel(), mine.size());
  const bool in_place = out.ptr == static_cast<char*>(in.ptr) + std::size_t(mine.begin) * dtype_size(in.dtype);
  LOOM_CHECK(in_place || !overlaps(out, in), "pass separate buffers, or out = exactly this rank's part of in",
             "reduce_scatter_start: out and in overlap");
  // MPI keeps the counts array until the request completes: one per pending request.
  pending_counts_.emplace_back();
  std::vector<int> displs;
  parts_of(in.numel(), size_, pending_counts_.back(), displs);
  pending_.push_back(MPI_REQUEST_NULL);
  // In place, MPI leaves this rank's part at the start of in; wait_all moves it to its place.
  if (in_place && mine.begin > 0) pending_moves_.push_back({out.ptr, in.ptr, out.bytes()});
  check_mpi(MPI_Ireduce_scatter(in_place ? MPI_IN_PLACE : in.ptr, in_place ? in.ptr : out.ptr,
                                pending_counts_.back().data(), datatype(in.dtype), reduce_op(in.dtype, ReduceOp::sum),
                                comm_, &pending_.back()),
            "MPI_Ireduce_scatter");
}

void MpiCommunicator::all_gather_parts(Tensor x) {
  check_host(x, "all_gather_parts", "x");
  count_of(x, "all_gather_parts");
  std::vector<int> counts, displs;
  parts_of(x.numel(), size_, counts, displs);
  const MPI_Datatype dt = datatype(x.dtype);
  blocking(
      "MPI_Allgatherv", [&] { return MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x.ptr, counts.data(), displs.data(), dt, comm_); },
      [&] { return fmt::format("all_gather_parts of {}", x.str()); });
}

void MpiCommunicator::wait_all() {
  if (pending_.empty()) return;
  wait(int(pending_.size()), pending_.data(), MPI_STATUSES_IGNORE, "MPI_Waitall", [&] {
    return fmt::format("wait_all: completing {} non-blocking reduction(s) started by all_reduce_start / "
                       "reduce_scatter_start",
                       pending_.size());
  });
  pending_.clear();
  pending_counts_.clear();
  for (const Move& m : pending_moves_) std::memmove(m.to, m.from, m.bytes);
  pending_moves_.clear();
}

void MpiCommunicator::reduce_scatter(Tensor out, Tensor in) {
  check_host(out, "reduce_scatter", "out");
  check_host(in, "reduce_scatter", "in");
  LOOM_CHECK(out.dtype == in.dtype, "", "reduce_scatter: out is {} but in is {}", dtype_name(out.dtype),
             dtype_name(in.dtype));
  LOOM_CHECK(in.numel() == std::int64_t(size_) * out.numel(),
             "in holds one chunk of out's size per rank of the group",
             "reduce_scatter on group '{}': in.numel() = {} must be size()*out.numel() = {}*{} = {}", name_,
             in.numel(), size_, out.numel(), std::int64_t(size_) * out.numel());
  const int n = count_of(out, "reduce_scatter");
  const MPI_Datatype dt = datatype(in.dtype);
  const MPI_Op sum = reduce_op(in.dtype, ReduceOp::sum);
  char* own = static_cast<char*>(in.ptr) + std::size_t(rank_) * out.bytes();
  if (out.bytes() > 0 && out.ptr == own) {
    // In place (out is this rank's chunk of in): MPI leaves the result at the start of in.
    blocking(
      "MPI_Reduce_scatter_block", [&] { return MPI_Reduce_scatter_block(MPI_IN_PLACE, in.ptr, n, dt, sum, comm_); },
      [&] { return fmt::format("reduce_scatter of {} (in place)", in.str()); });
    if (rank_ != 0) std::memmove(own, in.ptr, out.bytes());
    return;
  }
  LOOM_CHECK(!overlaps(out, in), "pass separate buffers, or out = exactly chunk rank() of in",
             "reduce_scatter: out and in overlap");
  blocking(
      "MPI_Reduce_scatter_block", [&] { return MPI_Reduce_scatter_block(in.ptr, out.ptr, n, dt, sum, comm_); },
      [&] { return fmt::format("reduce_scatter of {} into {}", in.str(), out.str()); });
}

void MpiCommunicator::all_gather(Tensor out, Tensor in) {
  check_host(out, "all_gather", "out");
  check_host(in, "all_gather", "in");
  LOOM_CHECK(out.dtype == in.dtype, "", "all_gather: out is {} but in is {}", dtype_name(out.dtype),
             dtype_name(in.dtype));
  LOOM_CHECK(out.numel() == std::int64_t(size_) * in.numel(),
             "out holds one chunk of in's size per rank of the group",
             "all_gather on group '{}': out.numel() = {} must be size()*in.numel() = {}*{} = {}", name_,
             out.numel(), size_, in.numel(), std::int64_t(size_) * in.numel());
  const int n = count_of(in, "all_gather");
  const MPI_Datatype dt = datatype(in.dtype);
  char* own = static_cast<char*>(out.ptr) + std::size_t(rank_) * in.bytes();
  const bool in_place = in.bytes() > 0 && in.ptr == own;
  LOOM_CHECK(in_place || !overlaps(out, in), "pass separate buffers, or in = exactly chunk rank() of out",
             "all_gather: out and in overlap");
  const void* send = in_place ? MPI_IN_PLACE : in.ptr;
  const int scount = in_place ? 0 : n;
  const MPI_Datatype sdt = in_place ? MPI_DATATYPE_NULL : dt;
  blocking(
      "MPI_Allgather", [&] { return MPI_Allgather(send, scount, sdt, out.ptr, n, dt, comm_); },
      [&] { return fmt::format("all_gather of {} into {}", in.str(), out.str()); });
}

void MpiCommunicator::broadcast(Tensor x, int root) {
  check_host(x, "broadcast", "x");
  LOOM_CHECK(0 <= root && root < size_, "", "broadcast on group '{}': root {} out of range [0, {})", name_,
             root, size_);
  const int n = count_of(x, "broadcast");
  const MPI_Datatype dt = datatype(x.dtype);
  blocking(
      "MPI_Bcast", [&] { return MPI_Bcast(x.ptr, n, dt, root, comm_); },
      [&] { return fmt::format("broadcast of {} from rank {}", x.str(), root); });
}

void MpiCommunicator::send_recv(Tensor send, int dest, Tensor recv, int source) {
  const bool sending = !send.empty() && dest >= 0;
  const bool receiving = !recv.empty() && source >= 0;
  if (sending) {
    check_host(send, "send_recv", "send");
    LOOM_CHECK(dest < size_, "", "send_recv on group '{}': dest {} out of range [0, {})", name_, dest, size_);
  }
  if (receiving) {
    check_host(recv, "send_recv", "recv");
    LOOM_CHECK(source < size_, "", "send_recv on group '{}': source {} out of range [0, {})", name_, source,
               size_);
  }
  LOOM_CHECK(!(sending && receiving && overlaps(send, recv)), "", "send_recv: send and recv overlap");
  // MPI copies a message to oneself without reporting truncation: check it here.
  LOOM_CHECK(!(sending && receiving && dest == rank_ && source == rank_) ||
                 (send.numel() == recv.numel() && send.dtype == recv.dtype),
             "both sides of a send_recv must agree on the tensor's size and dtype",
             "send_recv on group '{}': rank {} sends {} to itself but receives {}", name_, rank_, send.str(),
             recv.str());
  constexpr int kTag = 0;  // blocking and paired: messages between two ranks cannot overtake
  const MPI_Datatype sdt = datatype(send.dtype), rdt = datatype(recv.dtype);
  const int scount = sending ? count_of(send, "send_recv") : 0;
  const int rcount = receiving ? count_of(recv, "send_recv") : 0;
  MPI_Status status[2];
  blocking(
      "MPI_Sendrecv",
      [&] {
        return MPI_Sendrecv(sending ? send.ptr : nullptr, scount, sdt, sending ? dest : MPI_PROC_NULL, kTag,
                            receiving ? recv.ptr : nullptr, rcount, rdt, receiving ? source : MPI_PROC_NULL, kTag,
                            comm_, &status[0]);
      },
      [&] {
        return fmt::format("send_recv: send {} to rank {}, receive {} from rank {}", sending ? send.str() : "nothing",
                           sending ? dest : -1, receiving ? recv.str() : "nothing", receiving ? source : -1);
      });
  if (receiving) {
    int got = 0;
    MPI_Get_count(&status[0], rdt, &got);
    LOOM_CHECK(got == rcount, "both sides of a send_recv must agree on the tensor's size and dtype",
               "send_recv on group '{}': received {} elements from rank {}, expected {} ({})", name_, got,
               source, rcount, recv.str());
  }
}

void MpiCommunicator::exchange(const std::vector<P2P>& ops) {
  check_live();
  constexpr int kTag = 1;  // one stream per ordered pair of ranks: posting order is matching order
  std::vector<MPI_Request> requests(ops.size(), MPI_REQUEST_NULL);
  for (std::size_t k = 0; k < ops.size(); ++k) {
    const P2P& op = ops[k];
    const bool send = op.kind == P2P::Kind::send;
    check_host(op.tensor, "exchange", send ? "send" : "recv");
    LOOM_CHECK(0 <= op.peer && op.peer < size_, "", "exchange on group '{}': peer {} out of range [0, {})", name_,
               op.peer, size_);
    const int n = count_of(op.tensor, "exchange");
    if (send)
      check_mpi(MPI_Isend(op.tensor.ptr, n, datatype(op.tensor.dtype), op.peer, kTag, comm_, &requests[k]), "MPI_Isend");
    else
      check_mpi(MPI_Irecv(op.tensor.ptr, n, datatype(op.tensor.dtype), op.peer, kTag, comm_, &requests[k]), "MPI_Irecv");
  }
  std::vector<MPI_Status> status(ops.size());
  // The description reads `ops`, which outlives the wait (watchdog.h).
  wait(int(requests.size()), requests.data(), status.data(), "MPI_Isend/MPI_Irecv", [&] {
    std::string parts;
    for (const P2P& op : ops)
      parts += fmt::format("{}{} {} {} rank {}", parts.empty() ? "" : ", ", op.kind == P2P::Kind::send ? "send" : "receive",
                           op.tensor.str(), op.kind == P2P::Kind::send ? "to" : "from", op.peer);
    return fmt::format("exchange (pipeline transfer: {})", parts);
  });
  for (std::size_t k = 0; k < ops.size(); ++k) {
    if (ops[k].kind != P2P::Kind::recv) continue;
    int got = 0;
    MPI_Get_count(&status[k], datatype(ops[k].tensor.dtype), &got);
    LOOM_CHECK(got == ops[k].tensor.numel(), "both sides of an exchange must agree on the tensor's size and dtype",
               "exchange on group '{}': received {} elements from rank {}, expected {} ({})", name_, got, ops[k].peer,
               ops[k].tensor.numel(), ops[k].tensor.str());
  }
}

void MpiCommunicator::barrier() {
  check_live();
  blocking(
      "MPI_Barrier", [&] { return MPI_Barrier(comm_); },
      [] { return std::string("barrier"); });
}

}  // namespace loom
