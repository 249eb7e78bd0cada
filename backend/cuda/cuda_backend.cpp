// backend/cuda/cuda_backend.cpp — CudaBackend: allocator, copies, argument checks, op dispatch.
//
// Owns, from construction to destruction: one non-blocking CUDA stream (every
// op is enqueued on it, so ops are ordered; copies that touch host memory, sum
// and sum_squares wait for it), the reduction scratch and the cuBLASLt handle and
// workspace (matmul.h). Those two are not counted in live/peak bytes, which
// count Buffers only. Arguments are checked with backend/checks.h so CUDA and
// CPU reject bad input with the same message; kernels live in the .cu files.
#include "backend/cuda/cuda_backend.h"

#include <cmath>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <string_view>
#include <utility>

#include <cuda_runtime_api.h>

#include "backend/adamw_math.h"
#include "backend/checks.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/matmul.h"

namespace loom {

namespace {

using cuda::check_cuda;

constexpr std::size_t kLtWorkspaceBytes = std::size_t(32) << 20;  // cuBLASLt's advice for Hopper

[[noreturn]] void not_yet_available(std::string_view op) {
  throw Error(fmt::format("{}: not yet available on the CUDA backend", op),
              "use --device cpu; the full CUDA backend is a later issue");
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int ordinal) : ordinal_(ordinal) {
    const int count = cuda_visible_devices();
    LOOM_CHECK(ordinal >= 0 && ordinal < count,
               "pick a device below that count (nvidia-smi, CUDA_VISIBLE_DEVICES)",
               "CUDA device {} does not exist: this process sees {} CUDA device(s)", ordinal, count);
    try {
      LOOM_CUDA_CHECK(cudaSetDevice(ordinal_));
      LOOM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
      LOOM_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&scratch_), cuda::kReduceScratchBytes));
      lt_ = std::make_unique<cuda::LtMatmul>(kLtWorkspaceBytes);
    } catch (...) {
      release();
      throw;
    }
  }
  ~CudaBackend() override {
    cudaSetDevice(ordinal_);
    cudaStreamSynchronize(stream_);  // errors ignored: destructors must not throw
    release();
  }
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  // ---- Allocator --------------------------------------------------------------
  Device device() const override { return Device::cuda; }

  void* allocate(std::size_t bytes) override {
    if (bytes == 0) return nullptr;
    activate();
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, bytes);  // 256-byte aligned
    if (err != cudaSuccess) {
      cudaGetLastError();  // clear it: an allocation failure is not sticky
      throw Error(fmt::format("cudaMalloc of {} bytes failed on CUDA device {}: {} (live {} bytes, peak {})",
                              bytes, ordinal_, cudaGetErrorString(err), live_bytes(), peak_bytes()),
                  "the GPU is out of memory: reduce train.micro_batch or the model, or add ranks");
    }
    count_alloc(bytes);
    return p;
  }

  void deallocate(void* p, std::size_t bytes) override {
    if (!p) return;
    cudaSetDevice(ordinal_);
    cudaFree(p);  // called from ~Buffer: never throws; a failure here shows at the next checked call
    count_free(bytes);
  }

  // ---- memory -----------------------------------------------------------------
  void copy(Tensor dst, Tensor src) override {
    LOOM_CHECK(dst.bytes() == src.bytes(), "", "copy: dst {} holds {} bytes but src {} holds {}", dst.str(),
               dst.bytes(), src.str(), src.bytes());
    check::not_empty("copy", "dst", dst);
    check::not_empty("copy", "src", src);
    if (dst.bytes() == 0) return;
    const bool dst_host = dst.device == Device::cpu, src_host = src.device == Device::cpu;
    if (dst_host && src_host) {
      std::memcpy(dst.ptr, src.ptr, dst.bytes());
      return;
    }
    const cudaMemcpyKind kind = src_host   ? cudaMemcpyHostToDevice
                                : dst_host ? cudaMemcpyDeviceToHost
                                           : cudaMemcpyDeviceToDevice;
    activate();
    LOOM_CUDA_CHECK(cudaMemcpyAsync(dst.ptr, src.ptr, dst.bytes(), kind, stream_));
    // Host memory is the caller's to read or reuse as soon as copy returns.
    if (dst_host || src_host) LOOM_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  void synchronize() override {
    activate();
    LOOM_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  // ---- elementwise and reductions ------------------------------------------------
  void fill(Tensor x, float value) override {
    on_device("fill", {{"x", x}});
    if (x.numel() == 0) return;
    check_cuda(cuda::launch_fill(x.ptr, x.dtype, x.numel(), value, stream_), "fill kernel");
  }

  void scale(Tensor x, float alpha) override {
    on_device("scale", {{"x", x}});
    if (x.numel() == 0) return;
    check_cuda(cuda::launch_scale(x.ptr, x.dtype, x.numel(), alpha, stream_), "scale kernel");
  }

  void axpy(Tensor y, float alpha, Tensor x) override {
    check::numel("axpy", "y", y, x.numel());
    on_device("axpy", {{"y", y}, {"x", x}});
    if (y.numel() == 0) return;
    check_cuda(cuda::launch_axpy(y.ptr, y.dtype, alpha, x.ptr, x.dtype, y.numel(), stream_), "axpy kernel");
  }

  void add(Tensor out, Tensor a, Tensor b) override {
    check::numel("add", "a", a, out.numel());
    check::numel("add", "b", b, out.numel());
    LOOM_CHECK(a.dtype == out.dtype && b.dtype == out.dtype, "", "add: dtypes differ: out {}, a {}, b {}",
               out.str(), a.str(), b.str());
    on_device("add", {{"out", out}, {"a", a}, {"b", b}});
    if (out.numel() == 0) return;
    check_cuda(cuda::launch_add(out.ptr, a.ptr, b.ptr, out.dtype, out.numel(), stream_), "add kernel");
  }

  void cast(Tensor dst, Tensor src) override {
    check::numel("cast", "dst", dst, src.numel());
    on_device("cast", {{"dst", dst}, {"src", src}});
    if (dst.numel() == 0) return;
    check_cuda(cuda::launch_cast(dst.ptr, dst.dtype, src.ptr, src.dtype, dst.numel(), stream_),
               "cast kernel");
  }

  double sum(Tensor x) override { return reduce("sum", "sum kernel", x, cuda::launch_sum); }
  double sum_squares(Tensor x) override {
    return reduce("sum_squares", "sum_squares kernel", x, cuda::launch_sum_squares);
  }

  // ---- matmul -----------------------------------------------------------------
  void matmul(Tensor out, Tensor a, Tensor b, Tensor bias, MatmulOpts opts) override {
    const auto [M, N, K] = check::matmul_dims(out, a, b, bias, opts);
    LOOM_CHECK(a.dtype == b.dtype && (out.dtype == a.dtype || out.dtype == DType::f32),
               "cast the operands to one dtype first",
               "matmul: out {}, a {}, b {}: the CUDA backend needs a and b of one dtype and out of that "
               "dtype or f32",
               out.str(), a.str(), b.str());
    on_device("matmul", {{"out", out}, {"a", a}, {"b", b}});
    if (!bias.empty()) on_device("matmul", {{"bias", bias}});  // optional: Tensor{} means none
    if (M == 0 || N == 0) return;

    const bool accumulate = opts.accumulate == Accumulate::yes;
    float beta = accumulate ? 1.0f : 0.0f;
    if (!bias.empty()) {  // out (+)= bias first, then the GEMM accumulates on top (as the CPU does)
      check_cuda(cuda::launch_bias_rows(out.ptr, out.dtype, bias.ptr, bias.dtype, M, N, accumulate, stream_),
                 "matmul bias kernel");
      beta = 1.0f;
    }
    if (K == 0) {  // op(a) op(b) is all zeros
      if (beta == 0.0f)
        check_cuda(cuda::launch_fill(out.ptr, out.dtype, out.numel(), 0.0f, stream_), "fill kernel");
      return;
    }
    lt_->run(out, a, b, opts.trans_a, opts.trans_b, M, N, K, opts.alpha, beta, stream_);
  }

  void bias_backward(Tensor dbias, Tensor dout) override {
    const std::int64_t N = dout.shape.last(), rows = dout.shape.rows();
    check::numel("bias_backward", "dbias", dbias, N);
    on_device("bias_backward", {{"dbias", dbias}, {"dout", dout}});
    if (N == 0 || rows == 0) return;
    check_cuda(cuda::launch_bias_backward(dbias.ptr, dbias.dtype, dout.ptr, dout.dtype, rows, N, stream_),
               "bias_backward kernel");
  }

  // ---- optimizer --------------------------------------------------------------
  void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWArgs& a) override {
    const AdamWScalars s = check::adamw_args(param, grad, m, v, a);
    on_device("adamw", {{"param", param}, {"grad", grad}, {"m", m}, {"v", v}});
    if (param.numel() == 0) return;
    check_cuda(
        cuda::launch_adamw(static_cast<float*>(param.ptr), static_cast<const float*>(grad.ptr),
                           static_cast<float*>(m.ptr), static_cast<float*>(v.ptr), param.numel(), s, stream_),
        "adamw kernel");
  }

  // ---- not yet on the GPU (a later issue) ----------------------------------------
  void layernorm_forward(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, float) override {
    not_yet_available("layernorm_forward");
  }
  void layernorm_backward(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor,
                          Accumulate) override {
    not_yet_available("layernorm_backward");
  }
  void gelu_forward(Tensor, Tensor) override { not_yet_available("gelu_forward"); }
  void gelu_backward(Tensor, Tensor, Tensor) override { not_yet_available("gelu_backward"); }
  void softmax_forward(Tensor, Tensor) override { not_yet_available("softmax_forward"); }
  void softmax_backward(Tensor, Tensor, Tensor) override { not_yet_available("softmax_backward"); }
  void attention_forward(Tensor, Tensor, Tensor, int) override { not_yet_available("attention_forward"); }
  void attention_backward(Tensor, Tensor, Tensor, Tensor, Tensor, int) override {
    not_yet_available("attention_backward");
  }
  void embedding_forward(Tensor, TokenView, Tensor, Tensor, std::int64_t) override {
    not_yet_available("embedding_forward");
  }
  void embedding_backward(Tensor, Tensor, Tensor, TokenView, std::int64_t) override {
    not_yet_available("embedding_backward");
  }
  void cross_entropy_shard_max(Tensor, Tensor, std::int64_t, std::int64_t) override {
    not_yet_available("cross_entropy_shard_max");
  }
  void cross_entropy_shard_sumexp(Tensor, Tensor, Tensor, TokenView, std::int64_t, std::int64_t) override {
    not_yet_available("cross_entropy_shard_sumexp");
  }
  void cross_entropy_loss(Tensor, Tensor, Tensor, Tensor, TokenView) override {
    not_yet_available("cross_entropy_loss");
  }
  void cross_entropy_shard_backward(Tensor, Tensor, TokenView, std::int64_t, std::int64_t, Tensor, float) override {
    not_yet_available("cross_entropy_shard_backward");
  }

  // ---- decoder-parts ops (issue 11: RMSNorm, ReLU, SwiGLU, RoPE, GQA / ALiBi attention) ----
  // Not on the GPU yet; one block so a CUDA implementation replaces it in one place.
  void rmsnorm_forward(Tensor, Tensor, Tensor, Tensor, float) override { not_yet_available("rmsnorm_forward"); }
  void rmsnorm_backward(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Accumulate) override {
    not_yet_available("rmsnorm_backward");
  }
  void relu_forward(Tensor, Tensor) override { not_yet_available("relu_forward"); }
  void relu_backward(Tensor, Tensor, Tensor) override { not_yet_available("relu_backward"); }
  void swiglu_forward(Tensor, Tensor) override { not_yet_available("swiglu_forward"); }
  void swiglu_backward(Tensor, Tensor, Tensor) override { not_yet_available("swiglu_backward"); }
  void rope_forward(Tensor, int, int, float) override { not_yet_available("rope_forward"); }
  void rope_backward(Tensor, int, int, float) override { not_yet_available("rope_backward"); }
  void grouped_attention_forward(Tensor, Tensor, Tensor, const AttentionHeads&) override {
    not_yet_available("grouped_attention_forward");
  }
  void grouped_attention_backward(Tensor, Tensor, Tensor, Tensor, Tensor, const AttentionHeads&) override {
    not_yet_available("grouped_attention_backward");
  }
  // ---- end of decoder-parts ops

 private:
  struct Named {
    const char* name;
    const Tensor& t;
  };
  // Every tensor an op touches must be device memory with a pointer (unless it
  // holds no elements); then make this backend's device current for the launch.
  // Optional tensors (matmul's bias) are passed only when present.
  void on_device(std::string_view op, std::initializer_list<Named> tensors) {
    for (const Named& n : tensors) {
      check::device(op, n.name, n.t, Device::cuda);
      check::not_empty(op, n.name, n.t);
    }
    activate();
  }
  // sum or sum_squares: the launcher leaves the double result at
  // scratch_[kReduceBlocks]; copy it back and wait for it.
  using ReduceLauncher = cudaError_t (*)(const void*, DType, std::int64_t, double*, cudaStream_t);
  double reduce(const char* op, const char* kernel, Tensor x, ReduceLauncher launch) {
    on_device(op, {{"x", x}});
    if (x.numel() == 0) return 0.0;
    check_cuda(launch(x.ptr, x.dtype, x.numel(), scratch_, stream_), kernel);
    double result = 0;
    LOOM_CUDA_CHECK(cudaMemcpyAsync(&result, scratch_ + cuda::kReduceBlocks, sizeof(double),
                                    cudaMemcpyDeviceToHost, stream_));
    LOOM_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return result;
  }

  // Several backends (devices) may share a thread; cheap when already current.
  void activate() { LOOM_CUDA_CHECK(cudaSetDevice(ordinal_)); }

  void release() noexcept {
    lt_.reset();
    if (scratch_) cudaFree(scratch_);
    if (stream_) cudaStreamDestroy(stream_);
    scratch_ = nullptr;
    stream_ = nullptr;
  }

  int ordinal_;
  cudaStream_t stream_ = nullptr;
  double* scratch_ = nullptr;  // cuda::kReduceScratchBytes: sum and sum_squares
  std::unique_ptr<cuda::LtMatmul> lt_;
};

}  // namespace

int cuda_visible_devices() noexcept {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // no driver / no device: clear the error, report none
    return 0;
  }
  return count;
}

std::unique_ptr<Backend> make_cuda_backend(int ordinal) { return std::make_unique<CudaBackend>(ordinal); }

}  // namespace loom
