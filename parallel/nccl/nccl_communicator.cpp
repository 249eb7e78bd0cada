// parallel/nccl/nccl_communicator.cpp — NcclCommunicator (see nccl_communicator.h).
//
// Each device operation: record `ready` on the compute stream, make the comm
// stream wait for it, enqueue the NCCL call(s) (several inside one
// ncclGroupStart/End), record `done` on the comm stream and make the compute
// stream wait for it; blocking operations then synchronise the comm stream. The
// uneven reduce-scatter and all-gather (shard_range parts) are a group of one
// ncclReduce / ncclBroadcast per rank. barrier is an all-reduce of one float
// plus MPI_Barrier. Every CUDA and NCCL return code is checked; messages name the
// operation, the group, the tensors and the library's error string. Waiting for the
// comm stream is marked pending in the group's watchdog, as MpiCommunicator's calls are.
#include "parallel/nccl/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <mpi.h>
#include <nccl.h>

#include <fmt/format.h>

#include <utility>
#include <vector>

#include "core/error.h"
#include "core/range.h"
#include "parallel/watchdog.h"

namespace loom {

namespace {

ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::f32:
      return ncclFloat32;
    case DType::bf16:
      return ncclBfloat16;
    case DType::f16:
      return ncclFloat16;
  }
  throw Error("nccl_type: invalid dtype value");
}

bool on_device(const Tensor& t) { return t.device == Device::cuda; }

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::unique_ptr<MpiCommunicator> host, int device, cudaStream_t compute)
      : host_(std::move(host)), device_(device), compute_(compute) {
    LOOM_CHECK(host_ != nullptr, "", "make_nccl_communicator: no MPI communicator for the group");
    cuda(cudaSetDevice(device_), "cudaSetDevice");
    ncclUniqueId id{};
    if (host_->rank() == 0) nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    LOOM_CHECK(MPI_Bcast(&id, int(sizeof(id)), MPI_BYTE, 0, host_->comm()) == MPI_SUCCESS, "",
               "NCCL bootstrap of group '{}': MPI_Bcast of the unique id failed", host_->name());
    try {
      cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
      cuda(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming), "cudaEventCreateWithFlags");
      cuda(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming), "cudaEventCreateWithFlags");
      cuda(cudaMalloc(reinterpret_cast<void**>(&one_), sizeof(float)), "cudaMalloc (barrier scratch)");
      nccl(ncclCommInitRank(&comm_, host_->size(), id, host_->rank()), "ncclCommInitRank");
    } catch (...) {
      release();
      throw;
    }
  }
  ~NcclCommunicator() override { release(); }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }

  void all_reduce(Tensor x, ReduceOp op = ReduceOp::sum) override {
    if (!on_device(x)) return host_->all_reduce(x, op);
    check(x, "all_reduce", "x");
    run("all_reduce", true, [&] {
      nccl(ncclAllReduce(x.ptr, x.ptr, count(x), nccl_type(x.dtype), op == ReduceOp::sum ? ncclSum : ncclMax, comm_,
                         stream_),
           "ncclAllReduce", x);
    });
  }

  void reduce_scatter(Tensor out, Tensor in) override {
    if (!on_device(out) && !on_device(in)) return host_->reduce_scatter(out, in);
    check(out, "reduce_scatter", "out");
    check(in, "reduce_scatter", "in");
    same_dtype("reduce_scatter", out, in);
    LOOM_CHECK(in.numel() == out.numel() * size(), "", "reduce_scatter on group '{}': in {} must hold {} chunks of out {}",
               host_->name(), in.str(), size(), out.str());
    run("reduce_scatter", true, [&] {
      nccl(ncclReduceScatter(in.ptr, out.ptr, count(out), nccl_type(out.dtype), ncclSum, comm_, stream_),
           "ncclReduceScatter", in);
    });
  }

  void all_gather(Tensor out, Tensor in) override {
    if (!on_device(out) && !on_device(in)) return host_->all_gather(out, in);
    check(out, "all_gather", "out");
    check(in, "all_gather", "in");
    same_dtype("all_gather", out, in);
    LOOM_CHECK(out.numel() == in.numel() * size(), "", "all_gather on group '{}': out {} must hold {} chunks of in {}",
               host_->name(), out.str(), size(), in.str());
    run("all_gather", true, [&] {
      nccl(ncclAllGather(in.ptr, out.ptr, count(in), nccl_type(in.dtype), comm_, stream_), "ncclAllGather", out);
    });
  }

  void broadcast(Tensor x, int root) override {
    if (!on_device(x)) return host_->broadcast(x, root);
    check(x, "broadcast", "x");
    LOOM_CHECK(root >= 0 && root < size(), "", "broadcast on group '{}': root {} is not a rank of {}", host_->name(),
               root, size());
    run("broadcast", true, [&] {
      nccl(ncclBroadcast(x.ptr, x.ptr, count(x), nccl_type(x.dtype), root, comm_, stream_), "ncclBroadcast", x);
    });
  }

  void send_recv(Tensor send, int dest, Tensor recv, int source) override {
    std::vector<P2P> ops;
    if (!send.empty() && dest >= 0) ops.push_back({P2P::Kind::send, send, dest});
    if (!recv.empty() && source >= 0) ops.push_back({P2P::Kind::recv, recv, source});
    exchange(ops);
  }

  void exchange(const std::vector<P2P>& ops) override {
    bool any_device = false, any_host = false;
    for (const P2P& p : ops) (on_device(p.tensor) ? any_device : any_host) = true;
    LOOM_CHECK(!(any_device && any_host), "exchange host and device tensors in separate calls",
               "exchange on group '{}': host and device tensors mixed in one exchange", host_->name());
    if (!any_device) return host_->exchange(ops);
    for (const P2P& p : ops) {
      check(p.tensor, "exchange", p.kind == P2P::Kind::send ? "send" : "recv");
      LOOM_CHECK(p.peer >= 0 && p.peer < size(), "", "exchange on group '{}': peer {} is not a rank of {}",
                 host_->name(), p.peer, size());
    }
    run("exchange", true, [&] {
      nccl(ncclGroupStart(), "ncclGroupStart");
      for (const P2P& p : ops) {
        if (p.kind == P2P::Kind::send)
          nccl(ncclSend(p.tensor.ptr, count(p.tensor), nccl_type(p.tensor.dtype), p.peer, comm_, stream_), "ncclSend",
               p.tensor);
        else
          nccl(ncclRecv(p.tensor.ptr, count(p.tensor), nccl_type(p.tensor.dtype), p.peer, comm_, stream_), "ncclRecv",
               p.tensor);
      }
      nccl(ncclGroupEnd(), "ncclGroupEnd");
    });
  }

  void barrier() override {
    run("barrier", true, [&] {
      nccl(ncclAllReduce(one_, one_, 1, ncclFloat32, ncclSum, comm_, stream_), "ncclAllReduce (barrier)");
    });
    host_->barrier();
  }

  void all_reduce_start(Tensor x) override {
    if (!on_device(x)) return host_->all_reduce_start(x);
    check(x, "all_reduce_start", "x");
    started_ = true;
    run("all_reduce_start", false, [&] {
      nccl(ncclAllReduce(x.ptr, x.ptr, count(x), nccl_type(x.dtype), ncclSum, comm_, stream_), "ncclAllReduce", x);
    });
  }

  void reduce_scatter_start(Tensor out, Tensor in) override {
    if (!on_device(out) && !on_device(in)) return host_->reduce_scatter_start(out, in);
    check(out, "reduce_scatter_start", "out");
    check(in, "reduce_scatter_start", "in");
    same_dtype("reduce_scatter_start", out, in);
    const Range mine = shard_range(in.numel(), size(), rank());
    LOOM_CHECK(out.numel() == mine.size(), "", "reduce_scatter_start on group '{}': out {} must hold part {} of in {} ({} elements)",
               host_->name(), out.str(), rank(), in.str(), mine.size());
    started_ = true;
    run("reduce_scatter_start", false, [&] {
      nccl(ncclGroupStart(), "ncclGroupStart");
      for (int r = 0; r < size(); ++r) {
        const Tensor part = flat_range(in.view(Shape{in.numel()}), shard_range(in.numel(), size(), r));
        if (part.numel() == 0) continue;
        void* recv = r == rank() ? out.ptr : part.ptr;  // recvbuff is only used on the root
        nccl(ncclReduce(part.ptr, recv, count(part), nccl_type(in.dtype), ncclSum, r, comm_, stream_), "ncclReduce",
             in);
      }
      nccl(ncclGroupEnd(), "ncclGroupEnd");
    });
  }

  void all_gather_parts(Tensor x) override {
    if (!on_device(x)) return host_->all_gather_parts(x);
    check(x, "all_gather_parts", "x");
    run("all_gather_parts", true, [&] {
      nccl(ncclGroupStart(), "ncclGroupStart");
      for (int r = 0; r < size(); ++r) {
        const Tensor part = flat_range(x.view(Shape{x.numel()}), shard_range(x.numel(), size(), r));
        if (part.numel() == 0) continue;
        nccl(ncclBroadcast(part.ptr, part.ptr, count(part), nccl_type(x.dtype), r, comm_, stream_), "ncclBroadcast",
             x);
      }
      nccl(ncclGroupEnd(), "ncclGroupEnd");
    });
  }

  void wait_all() override {
    host_->wait_all();
    if (!started_) return;
    started_ = false;
    cuda(cudaSetDevice(device_), "cudaSetDevice");
    op_ = "wait_all";
    wait_for_stream("cudaStreamSynchronize (wait_all)");
  }

 private:
  // Orders `enqueue` after the compute stream and the compute stream after it;
  // blocking: wait for the comm stream before returning.
  template <class Enqueue>
  void run(const char* op, bool blocking, Enqueue&& enqueue) {
    op_ = op;
    cuda(cudaSetDevice(device_), "cudaSetDevice");
    cuda(cudaEventRecord(ready_, compute_), "cudaEventRecord (compute)");
    cuda(cudaStreamWaitEvent(stream_, ready_, 0), "cudaStreamWaitEvent (comm after compute)");
    enqueue();
    cuda(cudaEventRecord(done_, stream_), "cudaEventRecord (comm)");
    cuda(cudaStreamWaitEvent(compute_, done_, 0), "cudaStreamWaitEvent (compute after comm)");
    if (blocking) wait_for_stream("cudaStreamSynchronize");
  }

  // Waits for the comm stream, marked pending in the group's watchdog (watchdog.h), if
  // it has one: a stalled peer then ends the job naming this operation and group.
  void wait_for_stream(const char* call) {
    const auto describe = [this] {
      return fmt::format("{} (NCCL, waiting for its stream) on group '{}' (CUDA device {}; this is its rank {} of {})",
                         op_, host_->name(), device_, host_->rank(), host_->size());
    };
    Watchdog::Pending pending(host_->watchdog(), describe);
    cuda(cudaStreamSynchronize(stream_), call);
  }

  void check(const Tensor& t, const char* op, const char* arg) const {
    LOOM_CHECK(t.device == Device::cuda, "pass device tensors (or host tensors for every argument)",
               "{} on group '{}': {} {} lives on {}, the other arguments on the GPU", op, host_->name(), arg, t.str(),
               device_name(t.device));
    LOOM_CHECK(t.numel() == 0 || t.ptr != nullptr, "", "{} on group '{}': {} {} has no memory", op, host_->name(), arg,
               t.str());
  }
  void same_dtype(const char* op, const Tensor& a, const Tensor& b) const {
    LOOM_CHECK(a.dtype == b.dtype, "", "{} on group '{}': dtypes differ: {} and {}", op, host_->name(), a.str(), b.str());
  }
  static std::size_t count(const Tensor& t) { return std::size_t(t.numel()); }

  void cuda(cudaError_t err, const char* call) const {
    if (err == cudaSuccess) return;
    throw Error(fmt::format("{} on group '{}' (CUDA device {}): {} failed: {}", op_, host_->name(), device_, call,
                            cudaGetErrorString(err)),
                "check nvidia-smi and the driver; CUDA_LAUNCH_BLOCKING=1 pins an asynchronous error to its call");
  }
  void nccl(ncclResult_t r, const char* call) const {
    if (r == ncclSuccess) return;
    throw Error(fmt::format("{} on group '{}' (rank {} of {}, CUDA device {}): {} failed: {} ({})", op_, host_->name(),
                            host_->rank(), host_->size(), device_, call, ncclGetErrorString(r), ncclGetLastError(comm_)),
                "NCCL_DEBUG=INFO shows NCCL's view; every rank of the group must make the same calls");
  }
  void nccl(ncclResult_t r, const char* call, const Tensor& t) const {
    if (r == ncclSuccess) return;
    throw Error(fmt::format("{} of {} on group '{}' (rank {} of {}, CUDA device {}): {} failed: {} ({})", op_, t.str(),
                            host_->name(), host_->rank(), host_->size(), device_, call, ncclGetErrorString(r),
                            ncclGetLastError(comm_)),
                "NCCL_DEBUG=INFO shows NCCL's view; every rank of the group must make the same calls");
  }

  void release() noexcept {
    cudaSetDevice(device_);
    if (stream_) cudaStreamSynchronize(stream_);  // errors ignored: destructors must not throw
    if (comm_) ncclCommDestroy(comm_);
    if (one_) cudaFree(one_);
    if (done_) cudaEventDestroy(done_);
    if (ready_) cudaEventDestroy(ready_);
    if (stream_) cudaStreamDestroy(stream_);
    comm_ = nullptr;
    one_ = nullptr;
    done_ = ready_ = nullptr;
    stream_ = nullptr;
  }

  std::unique_ptr<MpiCommunicator> host_;
  int device_;
  cudaStream_t compute_;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr, done_ = nullptr;
  ncclComm_t comm_ = nullptr;
  float* one_ = nullptr;     // barrier's one-element buffer
  bool started_ = false;     // a non-blocking device collective is in flight
  const char* op_ = "NCCL setup";  // for messages
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<MpiCommunicator> host, int device,
                                                     void* compute_stream) {
  return std::make_unique<NcclCommunicator>(std::move(host), device, static_cast<cudaStream_t>(compute_stream));
}

}  // namespace loom
