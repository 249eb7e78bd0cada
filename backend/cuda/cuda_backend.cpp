// backend/cuda/cuda_backend.cpp — CudaBackend: allocator, copies, argument checks, op dispatch.
//
// Owns, from construction to destruction: one non-blocking CUDA stream (every
// op is enqueued on it, so ops are ordered; copies that touch host memory, sum
// and sum_squares wait for it), the reduction scratch and the cuBLASLt handle and
// workspace (matmul.h). Those two are not counted in live/peak bytes, which
// count Buffers only. Arguments are checked with backend/checks.h so CUDA and
// CPU reject bad input with the same message; kernels live in the .cu files.
#include "backend/cuda/cuda_backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <initializer_list>
#include <memory>
#include <string_view>
#include <utility>

#include <cuda_runtime_api.h>

#include "backend/adamw_math.h"
#include "backend/checks.h"
#include "backend/flash_checks.h"
#include "backend/cuda/attention.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/flash_attention.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/matmul.h"

namespace loom {

namespace {

using cuda::check_cuda;

constexpr std::size_t kLtWorkspaceBytes = std::size_t(32) << 20;  // cuBLASLt's advice for Hopper

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
      LOOM_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&bad_target_), sizeof(int)));
      LOOM_CUDA_CHECK(cudaMemsetAsync(bad_target_, 0, sizeof(int), stream_));
      lt_ = std::make_unique<cuda::LtMatmul>(kLtWorkspaceBytes);
      attention_ = std::make_unique<cuda::Attention>(stream_);
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
  cudaStream_t stream() const { return stream_; }
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

  // Staging memory is page-locked, so a copy from it can run while the host goes on
  // (upload_async); cudaFreeHost waits for the device, so freeing it is always safe.
  void* allocate_staging(std::size_t bytes) override {
    if (bytes == 0) return nullptr;
    activate();
    void* p = nullptr;
    const cudaError_t err = cudaHostAlloc(&p, bytes, cudaHostAllocDefault);
    if (err != cudaSuccess) {
      cudaGetLastError();  // not sticky
      throw Error(fmt::format("cudaHostAlloc of {} bytes of page-locked host memory (staging the batch's token "
                              "ids) failed: {}",
                              bytes, cudaGetErrorString(err)),
                  "page-locked memory is limited (ulimit -l, the container's memlock limit): raise it, or reduce "
                  "train.global_batch");
    }
    return p;
  }
  void deallocate_staging(void* p, std::size_t) noexcept override {
    if (p) cudaFreeHost(p);  // errors ignored: called from ~Buffer
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
    if (dst_host || src_host) {
      LOOM_CUDA_CHECK(cudaStreamSynchronize(stream_));
      report_bad_target();
    }
  }

  // Enqueued without waiting only from page-locked memory (a staging Buffer): from
  // pageable memory cudaMemcpyAsync would stage through the driver anyway, so that path
  // stays copy()'s, which waits.
  void upload_async(Tensor dst, Tensor src) override {
    LOOM_CHECK(dst.bytes() == src.bytes(), "", "upload_async: dst {} holds {} bytes but src {} holds {}",
               dst.str(), dst.bytes(), src.str(), src.bytes());
    check::device("upload_async", "src", src, Device::cpu);
    check::device("upload_async", "dst", dst, Device::cuda);
    if (dst.bytes() == 0 || !page_locked(src.ptr)) return copy(dst, src);
    activate();
    LOOM_CUDA_CHECK(cudaMemcpyAsync(dst.ptr, src.ptr, dst.bytes(), cudaMemcpyHostToDevice, stream_));
  }

  void synchronize() override {
    activate();
    LOOM_CUDA_CHECK(cudaStreamSynchronize(stream_));
    report_bad_target();
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
    const auto [M, N, K] = matmul_operands("matmul", out, a, b, bias, opts);
    if (M == 0 || N == 0) return;

    const bool accumulate = opts.accumulate == Accumulate::yes;
    float beta = accumulate ? 1.0f : 0.0f;
    // The bias in cuBLASLt's epilogue where an algorithm takes it (one kernel, matmul.h) ...
    if (!bias.empty() && K > 0 &&
        lt_->run(out, a, b, {.kind = cuda::Epilogue::Kind::bias, .bias = bias}, opts.trans_a, opts.trans_b, M, N,
                 K, opts.alpha, beta, stream_))
      return;
    if (!bias.empty()) {  // ... else out (+)= bias first, then the GEMM accumulates on top (as the CPU does)
      check_cuda(cuda::launch_bias_rows(out.ptr, out.dtype, bias.ptr, bias.dtype, M, N, accumulate, stream_),
                 "matmul bias kernel");
      beta = 1.0f;
    }
    if (K == 0) {  // op(a) op(b) is all zeros
      if (beta == 0.0f)
        check_cuda(cuda::launch_fill(out.ptr, out.dtype, out.numel(), 0.0f, stream_), "fill kernel");
      return;
    }
    lt_->run(out, a, b, {}, opts.trans_a, opts.trans_b, M, N, K, opts.alpha, beta, stream_);
  }

  // GELU in cuBLASLt's epilogue (GELU_AUX(_BIAS): g written as D, h as the aux matrix) where
  // an algorithm takes it; else the two ops (Backend's default).
  void matmul_gelu(Tensor h, Tensor g, Tensor a, Tensor b, Tensor bias, MatmulOpts opts) override {
    const char* op = "matmul_gelu";
    check_no_accumulate(op, opts);
    check::same_shape(op, "g", g, "h", h);
    check::same_dtype(op, "g", g, "h", h);
    on_device(op, {{"g", g}});
    const auto [M, N, K] = matmul_operands(op, h, a, b, bias, opts);
    if (M > 0 && N > 0 && K > 0 &&
        lt_->run(g, a, b, {.kind = cuda::Epilogue::Kind::gelu, .bias = bias, .aux = h}, opts.trans_a, opts.trans_b,
                 M, N, K, opts.alpha, 0.0f, stream_))
      return;
    Backend::matmul_gelu(h, g, a, b, bias, opts);
  }

  // DGELU in the epilogue (h read as the aux matrix) where an algorithm takes it; else the two ops.
  void matmul_dgelu(Tensor dh, Tensor a, Tensor b, Tensor h, MatmulOpts opts) override {
    const char* op = "matmul_dgelu";
    check_no_accumulate(op, opts);
    check::same_shape(op, "h", h, "dh", dh);
    check::same_dtype(op, "h", h, "dh", dh);
    on_device(op, {{"h", h}});
    const auto [M, N, K] = matmul_operands(op, dh, a, b, Tensor{}, opts);
    if (M > 0 && N > 0 && K > 0 &&
        lt_->run(dh, a, b, {.kind = cuda::Epilogue::Kind::dgelu, .aux = h}, opts.trans_a, opts.trans_b, M, N, K,
                 opts.alpha, 0.0f, stream_))
      return;
    Backend::matmul_dgelu(dh, a, b, h, opts);
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

  // ---- layernorm ------------------------------------------------------------------
  void layernorm_forward(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor weight, Tensor bias,
                         float eps) override {
    const char* op = "layernorm_forward";
    const std::int64_t N = x.shape.rows(), C = x.shape.last();
    check::same_shape(op, "out", out, "x", x);
    check::numel(op, "weight", weight, C);
    check::numel(op, "bias", bias, C);
    check::row_f32(op, "mean", mean, N);
    check::row_f32(op, "rstd", rstd, N);
    for (auto [name, t] : {std::pair{"out", out}, {"weight", weight}, {"bias", bias}}) check::same_dtype(op, name, t, "x", x);
    on_device(op, {{"out", out}, {"mean", mean}, {"rstd", rstd}, {"x", x}, {"weight", weight}, {"bias", bias}});
    if (N == 0 || C == 0) return;
    check_launch(cuda::launch_layernorm_forward(out.ptr, f32(mean), f32(rstd), x.ptr, weight.ptr, bias.ptr, x.dtype, N,
                                              C, eps, stream_), op, {x, weight});
  }

  void layernorm_backward(Tensor dx, Tensor dweight, Tensor dbias, Tensor dout, Tensor x, Tensor weight,
                          Tensor mean, Tensor rstd, Accumulate dx_acc) override {
    const char* op = "layernorm_backward";
    const std::int64_t N = x.shape.rows(), C = x.shape.last();
    check::same_shape(op, "dx", dx, "x", x);
    check::same_shape(op, "dout", dout, "x", x);
    check::numel(op, "weight", weight, C);
    check::numel(op, "dweight", dweight, C);
    check::numel(op, "dbias", dbias, C);
    check::row_f32(op, "mean", mean, N);
    check::row_f32(op, "rstd", rstd, N);
    for (auto [name, t] : {std::pair{"dx", dx}, {"dout", dout}, {"weight", weight}}) check::same_dtype(op, name, t, "x", x);
    check::same_dtype(op, "dbias", dbias, "dweight", dweight);
    on_device(op, {{"dx", dx}, {"dweight", dweight}, {"dbias", dbias}, {"dout", dout}, {"x", x}, {"weight", weight},
                   {"mean", mean}, {"rstd", rstd}});
    if (C == 0) return;
    if (N == 0) return;  // no rows: nothing to add to dweight / dbias
    float* scratch = workspace(cuda::layernorm_scratch_floats(N, C));
    check_launch(cuda::launch_layernorm_backward(dx.ptr, dweight.ptr, dbias.ptr, dweight.dtype, dout.ptr, x.ptr,
                                               weight.ptr, f32(mean), f32(rstd), x.dtype, N, C,
                                               dx_acc == Accumulate::yes, scratch, stream_), op, {x, dweight});
  }

  // ---- GELU and softmax ---------------------------------------------------------------
  void gelu_forward(Tensor out, Tensor x) override {
    const char* op = "gelu_forward";
    check::same_shape(op, "out", out, "x", x);
    check::same_dtype(op, "out", out, "x", x);
    on_device(op, {{"out", out}, {"x", x}});
    if (x.numel() == 0) return;
    check_launch(cuda::launch_gelu_forward(out.ptr, x.ptr, x.dtype, x.numel(), stream_), op, {x});
  }

  void gelu_backward(Tensor dx, Tensor dout, Tensor x) override {
    const char* op = "gelu_backward";
    check::same_shape(op, "dx", dx, "x", x);
    check::same_shape(op, "dout", dout, "x", x);
    check::same_dtype(op, "dx", dx, "x", x);
    check::same_dtype(op, "dout", dout, "x", x);
    on_device(op, {{"dx", dx}, {"dout", dout}, {"x", x}});
    if (x.numel() == 0) return;
    check_launch(cuda::launch_gelu_backward(dx.ptr, dout.ptr, x.ptr, x.dtype, x.numel(), stream_), op, {x});
  }

  void softmax_forward(Tensor out, Tensor x) override {
    const char* op = "softmax_forward";
    check::same_shape(op, "out", out, "x", x);
    check::same_dtype(op, "out", out, "x", x);
    on_device(op, {{"out", out}, {"x", x}});
    if (x.numel() == 0) return;
    check_launch(cuda::launch_softmax_forward(out.ptr, x.ptr, x.dtype, x.shape.rows(), x.shape.last(), stream_), op, {x});
  }

  void softmax_backward(Tensor dx, Tensor dout, Tensor y) override {
    const char* op = "softmax_backward";
    check::same_shape(op, "dx", dx, "y", y);
    check::same_shape(op, "dout", dout, "y", y);
    check::same_dtype(op, "dx", dx, "y", y);
    check::same_dtype(op, "dout", dout, "y", y);
    on_device(op, {{"dx", dx}, {"dout", dout}, {"y", y}});
    if (y.numel() == 0) return;
    check_launch(
        cuda::launch_softmax_backward(dx.ptr, dout.ptr, y.ptr, y.dtype, y.shape.rows(), y.shape.last(), stream_), op, {y});
  }

  // ---- attention ------------------------------------------------------------------------
  void attention_forward(Tensor out, Tensor probs, Tensor qkv, int heads) override {
    const char* op = "attention_forward";
    const auto [B, T, H, D] = check::attention_dims(op, qkv, probs, heads);
    LOOM_CHECK(out.shape == (Shape{B, T, H * D}) && out.dtype == qkv.dtype, "",
               "{}: out is {} but must be ({},{},{}) {}", op, out.str(), B, T, H * D, dtype_name(qkv.dtype));
    on_device(op, {{"out", out}, {"probs", probs}, {"qkv", qkv}});
    if (B == 0 || T == 0 || D == 0) return;
    const cuda::AttentionDims d{B, T, H, D};
    float* ws = workspace(cuda::Attention::workspace_floats(qkv.dtype, d, false));
    attention_->forward(out, probs, qkv, d, ws);
  }

  void attention_backward(Tensor dqkv, Tensor scratch, Tensor dout, Tensor qkv, Tensor probs, int heads) override {
    const char* op = "attention_backward";
    const auto [B, T, H, D] = check::attention_dims(op, qkv, probs, heads);
    check::same_shape(op, "dqkv", dqkv, "qkv", qkv);
    check::same_shape(op, "scratch", scratch, "probs", probs);
    check::dtype(op, "scratch", scratch, DType::f32);
    LOOM_CHECK(dout.shape == (Shape{B, T, H * D}), "", "{}: dout is {} but must be ({},{},{})", op, dout.str(), B, T,
               H * D);
    LOOM_CHECK(dqkv.dtype == qkv.dtype && dout.dtype == qkv.dtype, "", "{}: dtypes differ: qkv {}, dqkv {}, dout {}",
               op, qkv.str(), dqkv.str(), dout.str());
    on_device(op, {{"dqkv", dqkv}, {"scratch", scratch}, {"dout", dout}, {"qkv", qkv}, {"probs", probs}});
    if (B == 0 || T == 0 || D == 0) return;
    const cuda::AttentionDims d{B, T, H, D};
    float* ws = workspace(cuda::Attention::workspace_floats(qkv.dtype, d, true));
    attention_->backward(dqkv, scratch, dout, qkv, probs, d, ws);
  }

  // ---- memory-efficient tiled attention (flash_attention.cu) ------------------------------
  // The checks are backend/flash_checks.h's, as on the CPU, plus: every tensor on this
  // device, D <= 128, and key_lengths in device memory (its values are not checked here:
  // that would need a synchronisation; the kernels clamp them to [0, Tk]).
  void flash_attention_forward(Tensor out, Tensor lse, HeadsView qa, HeadsView ka, HeadsView va,
                               const AttentionSpec& spec) override {
    const char* op = "flash_attention_forward";
    const check::FlashHeads q = check::resolve_heads(op, "q", qa), k = check::resolve_heads(op, "k", ka),
                            v = check::resolve_heads(op, "v", va);
    const cuda::FlashGeometry g = flash_geometry(op, q, k, v, out, lse, spec);
    on_device(op, {{"out", out}, {"lse", lse}, {"q", qa.base}, {"k", ka.base}, {"v", va.base}});
    check_launch(cuda::launch_flash_attention_forward(out.ptr, f32(lse), operand(q), operand(k), operand(v), q.dtype,
                                                      g, stream_),
                 op, {out, qa.base, ka.base, va.base});
  }

  void flash_attention_backward(HeadsView dqa, HeadsView dka, HeadsView dva, Tensor dout, HeadsView qa,
                                HeadsView ka, HeadsView va, Tensor out, Tensor lse,
                                const AttentionSpec& spec) override {
    const char* op = "flash_attention_backward";
    const check::FlashHeads q = check::resolve_heads(op, "q", qa), k = check::resolve_heads(op, "k", ka),
                            v = check::resolve_heads(op, "v", va), dq = check::resolve_heads(op, "dq", dqa),
                            dk = check::resolve_heads(op, "dk", dka), dv = check::resolve_heads(op, "dv", dva);
    const cuda::FlashGeometry g = flash_geometry(op, q, k, v, out, lse, spec);
    check::check_flash_grads(op, dq, dk, dv, q, k, v, dout, out);
    on_device(op, {{"dq", dqa.base}, {"dk", dka.base}, {"dv", dva.base}, {"dout", dout}, {"q", qa.base},
                   {"k", ka.base}, {"v", va.base}, {"out", out}, {"lse", lse}});
    float* scratch = workspace(cuda::flash_backward_scratch_floats(g));
    check_launch(cuda::launch_flash_attention_backward(operand(dq), operand(dk), operand(dv), dout.ptr, operand(q),
                                                       operand(k), operand(v), out.ptr, f32(lse), q.dtype, g,
                                                       scratch, stream_),
                 op, {dout, qa.base, ka.base, va.base, spec.drel_bias});
  }

  // ---- embedding ----------------------------------------------------------------------
  void embedding_forward(Tensor out, TokenView tokens, Tensor wte, Tensor wpe, std::int64_t vocab_start) override {
    const char* op = "embedding_forward";
    check::embedding_tokens(op, tokens, out);
    const std::int64_t B = out.shape[0], T = out.shape[1], C = out.shape[2], Vs = wte.shape.rows();
    LOOM_CHECK(wte.shape.last() == C, "", "{}: wte is {} but out is {}; channels differ", op, wte.str(), out.str());
    LOOM_CHECK(wpe.empty() || (wpe.shape.last() == C && wpe.shape.rows() >= T), "",
               "{}: wpe is {} but must be (>= {}, {})", op, wpe.str(), T, C);
    check::same_dtype(op, "wte", wte, "out", out);
    if (!wpe.empty()) check::same_dtype(op, "wpe", wpe, "out", out);
    tokens_on_device(op, tokens);
    on_device(op, {{"out", out}, {"wte", wte}});
    if (!wpe.empty()) on_device(op, {{"wpe", wpe}});  // optional: Tensor{} means none
    if (out.numel() == 0) return;
    check_launch(cuda::launch_embedding_forward(out.ptr, tokens.ptr, wte.ptr, wpe.empty() ? nullptr : wpe.ptr,
                                              out.dtype, B, T, C, Vs, vocab_start, stream_), op, {out, wte});
  }

  void embedding_backward(Tensor dwte, Tensor dwpe, Tensor dout, TokenView tokens,
                          std::int64_t vocab_start) override {
    const char* op = "embedding_backward";
    check::embedding_tokens(op, tokens, dout);
    const std::int64_t B = dout.shape[0], T = dout.shape[1], C = dout.shape[2];
    const std::int64_t Vs = dwte.empty() ? 0 : dwte.shape.rows();
    LOOM_CHECK(dwte.empty() || dwte.shape.last() == C, "", "{}: dwte is {} but dout is {}", op, dwte.str(),
               dout.str());
    LOOM_CHECK(dwpe.empty() || (dwpe.shape.last() == C && dwpe.shape.rows() >= T), "",
               "{}: dwpe is {} but must be (>= {}, {})", op, dwpe.str(), T, C);
    LOOM_CHECK(dwte.empty() || dwpe.empty() || dwte.dtype == dwpe.dtype, "", "{}: dwte is {} but dwpe is {}", op,
               dwte.str(), dwpe.str());
    tokens_on_device(op, tokens);
    on_device(op, {{"dout", dout}});
    if (!dwte.empty()) on_device(op, {{"dwte", dwte}});  // optional: Tensor{} skips it
    if (!dwpe.empty()) on_device(op, {{"dwpe", dwpe}});
    if (dout.numel() == 0 || (dwte.empty() && dwpe.empty())) return;
    const DType gdt = dwte.empty() ? dwpe.dtype : dwte.dtype;
    check_launch(cuda::launch_embedding_backward(dwte.empty() ? nullptr : dwte.ptr, dwpe.empty() ? nullptr : dwpe.ptr,
                                               gdt, dout.ptr, dout.dtype, tokens.ptr, B, T, C, Vs, vocab_start,
                                               stream_), op, {dout, dwte, dwpe});
  }

  // ---- vocabulary-parallel cross-entropy ---------------------------------------------
  void cross_entropy_shard_max(Tensor max, Tensor logits, std::int64_t vocab_start, std::int64_t vocab) override {
    const char* op = "cross_entropy_shard_max";
    check::vocab_shard(op, logits, vocab_start, vocab);
    const std::int64_t N = logits.shape.rows(), Vs = logits.shape.last();
    check::row_f32(op, "max", max, N);
    on_device(op, {{"max", max}, {"logits", logits}});
    if (N == 0) return;
    check_launch(cuda::launch_cross_entropy_shard_max(f32(max), logits.ptr, logits.dtype, N, Vs,
                                                    valid_columns(vocab_start, Vs, vocab), stream_), op, {logits});
  }

  void cross_entropy_shard_sumexp(Tensor stats, Tensor logits, Tensor max, TokenView targets,
                                  std::int64_t vocab_start, std::int64_t vocab) override {
    const char* op = "cross_entropy_shard_sumexp";
    check::vocab_shard(op, logits, vocab_start, vocab);
    const std::int64_t N = logits.shape.rows(), Vs = logits.shape.last();
    check::planar_stats(op, stats, N);
    check::row_f32(op, "max", max, N);
    check::targets(op, targets, N, logits);
    tokens_on_device(op, targets);
    on_device(op, {{"stats", stats}, {"logits", logits}, {"max", max}});
    if (N == 0) return;
    checked_vocab_ = vocab;
    target_check_pending_ = true;
    check_launch(cuda::launch_cross_entropy_shard_sumexp(f32(stats), logits.ptr, logits.dtype, f32(max), targets.ptr,
                                                       N, Vs, valid_columns(vocab_start, Vs, vocab), vocab_start,
                                                       vocab, bad_target_, stream_), op, {logits});
  }

  void cross_entropy_loss(Tensor lse, Tensor losses, Tensor max, Tensor stats, TokenView targets) override {
    const char* op = "cross_entropy_loss";
    const std::int64_t N = max.numel();
    check::row_f32(op, "max", max, N);
    check::row_f32(op, "lse", lse, N);
    check::row_f32(op, "losses", losses, N);
    check::planar_stats(op, stats, N);
    check::targets(op, targets, N, max);
    tokens_on_device(op, targets);
    on_device(op, {{"lse", lse}, {"losses", losses}, {"max", max}, {"stats", stats}});
    if (N == 0) return;
    check_launch(cuda::launch_cross_entropy_loss(f32(lse), f32(losses), f32(max), f32(stats), targets.ptr, N, stream_), op, {max});
  }

  void cross_entropy_shard_backward(Tensor dlogits, Tensor logits, TokenView targets, std::int64_t vocab_start,
                                    std::int64_t vocab, Tensor lse, float dloss) override {
    const char* op = "cross_entropy_shard_backward";
    check::vocab_shard(op, logits, vocab_start, vocab);
    check::same_shape(op, "dlogits", dlogits, "logits", logits);
    check::dtype(op, "dlogits", dlogits, logits.dtype);
    const std::int64_t N = logits.shape.rows(), Vs = logits.shape.last();
    check::row_f32(op, "lse", lse, N);
    check::targets(op, targets, N, logits);
    tokens_on_device(op, targets);
    on_device(op, {{"dlogits", dlogits}, {"logits", logits}, {"lse", lse}});
    if (N == 0 || Vs == 0) return;
    check_launch(cuda::launch_cross_entropy_shard_backward(dlogits.ptr, logits.ptr, logits.dtype, targets.ptr, f32(lse),
                                                         N, Vs, valid_columns(vocab_start, Vs, vocab), vocab_start,
                                                         dloss, stream_), op, {logits});
  }

  // ---- the modern decoder's parts (RMSNorm, ReLU, SwiGLU, RoPE, GQA / ALiBi attention) ----
  // Arguments checked as backend/cpu checks them; kernels in rmsnorm.cu, relu_swiglu.cu,
  // rope.cu, grouped_attention.cu/.cpp.
  void rmsnorm_forward(Tensor out, Tensor rstd, Tensor x, Tensor weight, float eps) override {
    const char* op = "rmsnorm_forward";
    const std::int64_t N = x.shape.rows(), C = x.shape.last();
    check::same_shape(op, "out", out, "x", x);
    check::numel(op, "weight", weight, C);
    check::row_f32(op, "rstd", rstd, N);
    check::same_dtype(op, "out", out, "x", x);
    check::same_dtype(op, "weight", weight, "x", x);
    on_device(op, {{"out", out}, {"rstd", rstd}, {"x", x}, {"weight", weight}});
    if (N == 0 || C == 0) return;
    check_launch(cuda::launch_rmsnorm_forward(out.ptr, f32(rstd), x.ptr, weight.ptr, x.dtype, N, C, eps, stream_), op,
                 {x, weight});
  }

  void rmsnorm_backward(Tensor dx, Tensor dweight, Tensor dout, Tensor x, Tensor weight, Tensor rstd,
                        Accumulate dx_acc) override {
    const char* op = "rmsnorm_backward";
    const std::int64_t N = x.shape.rows(), C = x.shape.last();
    check::same_shape(op, "dx", dx, "x", x);
    check::same_shape(op, "dout", dout, "x", x);
    check::numel(op, "weight", weight, C);
    check::numel(op, "dweight", dweight, C);
    check::row_f32(op, "rstd", rstd, N);
    for (auto [name, t] : {std::pair{"dx", dx}, {"dout", dout}, {"weight", weight}}) check::same_dtype(op, name, t, "x", x);
    on_device(op, {{"dx", dx}, {"dweight", dweight}, {"dout", dout}, {"x", x}, {"weight", weight}, {"rstd", rstd}});
    if (N == 0 || C == 0) return;  // no rows: nothing to add to dweight
    float* scratch = workspace(std::int64_t(cuda::layernorm_param_groups(N)) * C);
    check_launch(cuda::launch_rmsnorm_backward(dx.ptr, dweight.ptr, dweight.dtype, dout.ptr, x.ptr, weight.ptr,
                                               f32(rstd), x.dtype, N, C, dx_acc == Accumulate::yes, scratch, stream_),
                 op, {x, dweight});
  }

  void relu_forward(Tensor out, Tensor x) override {
    const char* op = "relu_forward";
    check::same_shape(op, "out", out, "x", x);
    check::same_dtype(op, "out", out, "x", x);
    on_device(op, {{"out", out}, {"x", x}});
    if (x.numel() == 0) return;
    check_launch(cuda::launch_relu_forward(out.ptr, x.ptr, x.dtype, x.numel(), stream_), op, {x});
  }

  void relu_backward(Tensor dx, Tensor dout, Tensor x) override {
    const char* op = "relu_backward";
    check::same_shape(op, "dx", dx, "x", x);
    check::same_shape(op, "dout", dout, "x", x);
    check::same_dtype(op, "dx", dx, "x", x);
    check::same_dtype(op, "dout", dout, "x", x);
    on_device(op, {{"dx", dx}, {"dout", dout}, {"x", x}});
    if (x.numel() == 0) return;
    check_launch(cuda::launch_relu_backward(dx.ptr, dout.ptr, x.ptr, x.dtype, x.numel(), stream_), op, {x});
  }

  void swiglu_forward(Tensor out, Tensor h) override {
    const char* op = "swiglu_forward";
    check_swiglu(op, out, "out", h);
    on_device(op, {{"out", out}, {"h", h}});
    const std::int64_t N = h.shape.rows(), F = out.shape.last();
    if (N == 0 || F == 0) return;
    check_launch(cuda::launch_swiglu_forward(out.ptr, h.ptr, h.dtype, N, F, stream_), op, {out, h});
  }

  void swiglu_backward(Tensor dh, Tensor dout, Tensor h) override {
    const char* op = "swiglu_backward";
    check::same_shape(op, "dh", dh, "h", h);
    check_swiglu(op, dout, "dout", h);
    check::same_dtype(op, "dh", dh, "h", h);
    on_device(op, {{"dh", dh}, {"dout", dout}, {"h", h}});
    const std::int64_t N = h.shape.rows(), F = dout.shape.last();
    if (N == 0 || F == 0) return;
    check_launch(cuda::launch_swiglu_backward(dh.ptr, dout.ptr, h.ptr, h.dtype, N, F, stream_), op, {dout, h});
  }

  void rope_forward(Tensor qkv, int heads, int kv_heads, float base) override {
    rope("rope_forward", qkv, heads, kv_heads, base, false);
  }
  void rope_backward(Tensor dqkv, int heads, int kv_heads, float base) override {
    rope("rope_backward", dqkv, heads, kv_heads, base, true);
  }

  void grouped_attention_forward(Tensor out, Tensor probs, Tensor qkv, const AttentionHeads& a) override {
    const char* op = "grouped_attention_forward";
    const cuda::GroupedDims d = grouped_dims(op, qkv, probs, a);
    const auto [B, T, H, Hkv, D] = d;
    LOOM_CHECK(out.shape == (Shape{B, T, H * D}) && out.dtype == qkv.dtype, "",
               "{}: out is {} but must be ({},{},{}) {}", op, out.str(), B, T, H * D, dtype_name(qkv.dtype));
    on_device(op, {{"out", out}, {"probs", probs}, {"qkv", qkv}});
    if (!a.alibi_slopes.empty()) on_device(op, {{"alibi_slopes", a.alibi_slopes}});  // optional
    if (B == 0 || T == 0 || D == 0) return;
    float* ws = workspace(cuda::Attention::grouped_workspace_floats(qkv.dtype, d, false));
    attention_->grouped_forward(out, probs, qkv, a.alibi_slopes.empty() ? nullptr : f32(a.alibi_slopes), d, ws);
  }

  void grouped_attention_backward(Tensor dqkv, Tensor scratch, Tensor dout, Tensor qkv, Tensor probs,
                                  const AttentionHeads& a) override {
    const char* op = "grouped_attention_backward";
    const cuda::GroupedDims d = grouped_dims(op, qkv, probs, a);
    const auto [B, T, H, Hkv, D] = d;
    check::same_shape(op, "dqkv", dqkv, "qkv", qkv);
    check::same_shape(op, "scratch", scratch, "probs", probs);
    check::dtype(op, "scratch", scratch, DType::f32);
    LOOM_CHECK(dout.shape == (Shape{B, T, H * D}), "", "{}: dout is {} but must be ({},{},{})", op, dout.str(), B, T,
               H * D);
    LOOM_CHECK(dqkv.dtype == qkv.dtype && dout.dtype == qkv.dtype, "", "{}: dtypes differ: qkv {}, dqkv {}, dout {}",
               op, qkv.str(), dqkv.str(), dout.str());
    on_device(op, {{"dqkv", dqkv}, {"scratch", scratch}, {"dout", dout}, {"qkv", qkv}, {"probs", probs}});
    if (!a.alibi_slopes.empty()) on_device(op, {{"alibi_slopes", a.alibi_slopes}});  // checked, not read
    if (B == 0 || T == 0 || D == 0) return;
    float* ws = workspace(cuda::Attention::grouped_workspace_floats(qkv.dtype, d, true));
    attention_->grouped_backward(dqkv, scratch, dout, qkv, probs, d, ws);
  }

 private:
  struct Named {
    const char* name;
    const Tensor& t;
  };
  // Every tensor an op touches must be device memory with a pointer (unless it
  // holds no elements); then make this backend's device current for the launch.
  // Optional tensors (matmul's bias) are passed only when present.
  // A matmul's shapes (M, N, K), after checking them, the dtypes cuBLASLt takes and where the
  // tensors live.
  check::MatmulDims matmul_operands(const char* op, Tensor out, Tensor a, Tensor b, Tensor bias,
                                    const MatmulOpts& opts) {
    const check::MatmulDims dims = check::matmul_dims(out, a, b, bias, opts);
    LOOM_CHECK(a.dtype == b.dtype && (out.dtype == a.dtype || out.dtype == DType::f32),
               "cast the operands to one dtype first",
               "{}: out {}, a {}, b {}: the CUDA backend needs a and b of one dtype and out of that "
               "dtype or f32",
               op, out.str(), a.str(), b.str());
    on_device(op, {{"out", out}, {"a", a}, {"b", b}});
    if (!bias.empty()) on_device(op, {{"bias", bias}});  // optional: Tensor{} means none
    return dims;
  }
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
    report_bad_target();
    return result;
  }

  // swiglu's h (N, 2F) against out / dout (N, F), as backend/cpu/activations.cpp checks it.
  static void check_swiglu(const char* op, const Tensor& half, const char* half_name, const Tensor& h) {
    LOOM_CHECK(h.shape.last() % 2 == 0 && half.shape.rows() == h.shape.rows() &&
                   2 * half.shape.last() == h.shape.last() && half.dtype == h.dtype,
               "", "{}: h is {} ([gate | up], (N, 2F)) but {} is {}; it must be (N, F) of the same dtype", op, h.str(),
               half_name, half.str());
  }

  // RoPE, forward or inverse, with backend/cpu/rope.cpp's checks.
  void rope(const char* op, Tensor qkv, int heads, int kv_heads, float base, bool inverse) {
    LOOM_CHECK(qkv.shape.rank() == 3 && heads > 0 && kv_heads > 0 && heads % kv_heads == 0 &&
                   qkv.shape[2] % (heads + 2 * kv_heads) == 0 && (qkv.shape[2] / (heads + 2 * kv_heads)) % 2 == 0,
               "", "{}: qkv is {}; expected (B,T,(H + 2 Hkv) D) with H = {}, Hkv = {} dividing it and D even", op,
               qkv.str(), heads, kv_heads);
    LOOM_CHECK(base > 1.0f, "", "{}: base must be > 1, got {}", op, base);
    on_device(op, {{"qkv", qkv}});
    const std::int64_t B = qkv.shape[0], T = qkv.shape[1], W = qkv.shape[2], D = W / (heads + 2 * kv_heads);
    if (B == 0 || T == 0 || D == 0) return;
    check_launch(cuda::launch_rope(qkv.ptr, qkv.dtype, B, T, W, D, heads + kv_heads, base, inverse, stream_), op,
                 {qkv});
  }

  // Grouped attention's shapes, with backend/cpu/grouped_attention.cpp's checks.
  static cuda::GroupedDims grouped_dims(const char* op, const Tensor& qkv, const Tensor& probs,
                                        const AttentionHeads& a) {
    const int H = a.heads, Hkv = a.kv_heads;
    LOOM_CHECK(qkv.shape.rank() == 3 && H > 0 && Hkv > 0 && H % Hkv == 0 && qkv.shape[2] % (H + 2 * Hkv) == 0, "",
               "{}: qkv is {}; expected (B,T,(H + 2 Hkv) D) with H = {} query heads and Hkv = {} key/value heads "
               "dividing them",
               op, qkv.str(), H, Hkv);
    const cuda::GroupedDims d{qkv.shape[0], qkv.shape[1], H, Hkv, qkv.shape[2] / (H + 2 * Hkv)};
    LOOM_CHECK(probs.shape == (Shape{d.B, d.H, d.T, d.T}), "",
               "{}: probs is {} but must be ({},{},{},{}) for qkv {}", op, probs.str(), d.B, d.H, d.T, d.T, qkv.str());
    check::dtype(op, "probs", probs, DType::f32);
    if (!a.alibi_slopes.empty()) check::row_f32(op, "alibi_slopes", a.alibi_slopes, H);
    return d;
  }

  // The tiled attention's checked geometry (backend/flash_checks.h) and this backend's
  // limits: head size, grid dimensions, key_lengths and ALiBi slopes in device memory.
  static cuda::FlashGeometry flash_geometry(const char* op, const check::FlashHeads& q, const check::FlashHeads& k,
                                            const check::FlashHeads& v, const Tensor& out, const Tensor& lse,
                                            const AttentionSpec& spec) {
    const check::FlashShape f = check::check_flash(op, q, k, v, out, lse, spec);
    LOOM_CHECK(f.D <= cuda::kFlashMaxHeadDim, "use a head size of at most 128 (more heads), or the CPU backend",
               "{}: head size D = {} (q {} heads of {}) is above the CUDA kernel's limit of {}", op, f.D, f.Hq, f.D,
               cuda::kFlashMaxHeadDim);
    LOOM_CHECK(f.B <= 65535 && f.Hq <= 65535, "", "{}: B = {} and Hq = {} must each be at most 65535 (grid limits)",
               op, f.B, f.Hq);
    if (spec.key_lengths.ptr)
      LOOM_CHECK(spec.key_lengths.device == Device::cuda,
                 "copy the lengths to the device first (Backend::copy), once per batch",
                 "{}: key_lengths {} live on {} but this is the cuda backend", op, spec.key_lengths.shape.str(),
                 device_name(spec.key_lengths.device));
    if (!spec.alibi_slopes.empty()) {
      check::dtype(op, "alibi_slopes", spec.alibi_slopes, DType::f32);
      check::device(op, "alibi_slopes", spec.alibi_slopes, Device::cuda);
    }
    if (!spec.rel_bias.empty()) check::device(op, "rel_bias", spec.rel_bias, Device::cuda);
    if (!spec.drel_bias.empty()) check::device(op, "drel_bias", spec.drel_bias, Device::cuda);
    return {f.B,
            f.Tq,
            f.Tk,
            f.Hq,
            f.Hkv,
            f.D,
            f.scale,
            spec.causal,
            spec.window,
            spec.key_lengths.ptr,
            spec.alibi_slopes.empty() ? nullptr : f32(spec.alibi_slopes),
            spec.rel_bias.empty() ? nullptr : f32(spec.rel_bias),
            spec.drel_bias.empty() ? nullptr : f32(spec.drel_bias)};
  }
  static cuda::FlashOperand operand(const check::FlashHeads& x) { return {x.p, x.T, x.W}; }

  // Whether p is page-locked host memory (cudaHostAlloc'd or registered).
  static bool page_locked(const void* p) {
    cudaPointerAttributes a{};
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
      cudaGetLastError();  // an unknown pointer is not an error here: it is pageable
      return false;
    }
    return a.type == cudaMemoryTypeHost;
  }

  // Token ids are read by the kernels: they must be device memory.
  static void tokens_on_device(std::string_view op, const TokenView& t) {
    LOOM_CHECK(t.numel() == 0 || (t.device == Device::cuda && t.ptr != nullptr),
               "copy the ids to the device first (Backend::copy)", "{}: token ids {} live on {} but this is the cuda backend",
               op, t.shape.str(), device_name(t.device));
  }
  static float* f32(const Tensor& t) { return static_cast<float*>(t.ptr); }
  // Throws when a launch failed, naming "<op> kernel on <shapes>" and CUDA's message.
  static void check_launch(cudaError_t err, std::string_view op, std::initializer_list<Tensor> tensors) {
    if (err == cudaSuccess) return;
    std::string what = fmt::format("{} kernel on", op);
    for (const Tensor& t : tensors)
      if (!t.empty()) what += fmt::format(" {}", t.str());
    check_cuda(err, what.c_str());
  }
  // The real columns of a shard: [0, valid) of its Vs local columns (backend.h).
  static std::int64_t valid_columns(std::int64_t vocab_start, std::int64_t Vs, std::int64_t vocab) {
    return std::clamp<std::int64_t>(vocab - vocab_start, 0, Vs);
  }
  // Backend-owned f32 scratch for layernorm's parameter partials and attention's
  // f32 tiles; grows to the largest request (waiting for the stream before it
  // frees the old one), never shrinks, and is not counted in live/peak bytes.
  float* workspace(std::int64_t floats) {
    if (floats <= 0) return workspace_;
    const std::size_t bytes = std::size_t(floats) * sizeof(float);
    if (bytes > workspace_bytes_) {
      LOOM_CUDA_CHECK(cudaStreamSynchronize(stream_));
      if (workspace_) LOOM_CUDA_CHECK(cudaFree(workspace_));
      workspace_ = nullptr;
      workspace_bytes_ = 0;
      LOOM_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&workspace_), bytes));
      workspace_bytes_ = bytes;
    }
    return workspace_;
  }

  // After a host synchronisation: throws (once, clearing the flag) when a
  // cross-entropy target >= vocab reached shard_sumexp since the last check, where
  // the CPU backend throws at the call itself. One 4-byte read after each
  // shard_sumexp, none otherwise.
  void report_bad_target() {
    if (!target_check_pending_) return;  // no shard_sumexp since the last look
    target_check_pending_ = false;
    int bad = 0;
    LOOM_CUDA_CHECK(cudaMemcpy(&bad, bad_target_, sizeof(int), cudaMemcpyDeviceToHost));
    if (bad == 0) return;
    LOOM_CUDA_CHECK(cudaMemset(bad_target_, 0, sizeof(int)));
    throw Error(fmt::format("cross_entropy_shard_sumexp: a target is not below the vocabulary size {} (found on "
                            "the CUDA backend at its next synchronisation)",
                            checked_vocab_),
                "the dataset's vocabulary must fit the model's; negative ids mark positions without a target");
  }

  // Several backends (devices) may share a thread; cheap when already current.
  void activate() { LOOM_CUDA_CHECK(cudaSetDevice(ordinal_)); }

  void release() noexcept {
    lt_.reset();
    attention_.reset();
    if (workspace_) cudaFree(workspace_);
    workspace_ = nullptr;
    if (scratch_) cudaFree(scratch_);
    if (bad_target_) cudaFree(bad_target_);
    bad_target_ = nullptr;
    if (stream_) cudaStreamDestroy(stream_);
    scratch_ = nullptr;
    stream_ = nullptr;
  }

  int ordinal_;
  cudaStream_t stream_ = nullptr;
  double* scratch_ = nullptr;  // cuda::kReduceScratchBytes: sum and sum_squares
  std::unique_ptr<cuda::LtMatmul> lt_;
  std::unique_ptr<cuda::Attention> attention_;  // cuBLAS handle on stream_
  float* workspace_ = nullptr;                   // see workspace()
  int* bad_target_ = nullptr;                    // set by shard_sumexp for a target >= vocab
  std::int64_t checked_vocab_ = 0;               // the vocab of the last shard_sumexp, for the message
  bool target_check_pending_ = false;            // a shard_sumexp ran since report_bad_target last looked
  std::size_t workspace_bytes_ = 0;
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

void* cuda_backend_stream(Backend& be) noexcept {
  auto* cuda = dynamic_cast<CudaBackend*>(&be);
  return cuda ? static_cast<void*>(cuda->stream()) : nullptr;
}

}  // namespace loom
