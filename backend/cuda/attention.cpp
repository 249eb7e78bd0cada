// backend/cuda/attention.cpp — the GEMM half of causal attention (see attention.h).
//
// Row-major to column-major as in matmul.cpp: row-major C (M,N) = op(A) op(B) is
// column-major C^T = op(B)^T op(A)^T, one cublasSgemmStridedBatched call with the
// operands swapped. Forward, per b: S = scale Q K^T (into probs), then one
// causal-softmax launch over all B*H*T rows, then O = P V. Backward, per b:
// dP = dO V^T (into scratch), dV = P^T dO; one causal-softmax-backward launch
// turns dP into dS; then dQ = scale dS K, dK = scale dS^T Q. Every element of
// out / dqkv is written by some GEMM (each head's D columns for every t).
#include "backend/cuda/attention.h"

#include <cmath>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

namespace loom::cuda {

namespace {

void check_blas(cublasStatus_t status, const char* call, const AttentionDims& d) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw Error(fmt::format("attention: {} failed: {} (B={}, T={}, H={}, D={})", call, cublasGetStatusString(status),
                          d.B, d.T, d.H, d.D),
              "a cuBLAS failure on valid shapes is a loom bug; please report it with the shapes");
}

// A row-major view for one GEMM operand: pointer, row stride, batch (head) stride.
struct Operand {
  const float* p;
  std::int64_t ld, stride;
};
struct Output {
  float* p;
  std::int64_t ld, stride;
};

cublasOperation_t op_of(Trans t) { return t == Trans::yes ? CUBLAS_OP_T : CUBLAS_OP_N; }

// c (M,N) = alpha op(a) op(b), row-major, for `batch` heads.
void gemm(cublasHandle_t h, Trans ta, Trans tb, std::int64_t M, std::int64_t N, std::int64_t K, float alpha,
          Operand a, Operand b, Output c, std::int64_t batch, const AttentionDims& d) {
  const float beta = 0.0f;
  check_blas(cublasSgemmStridedBatched(h, op_of(tb), op_of(ta), int(N), int(M), int(K), &alpha, b.p, int(b.ld),
                                       b.stride, a.p, int(a.ld), a.stride, &beta, c.p, int(c.ld), c.stride,
                                       int(batch)),
             "cublasSgemmStridedBatched", d);
}

void cast(void* dst, DType td, const void* src, DType ts, std::int64_t n, cudaStream_t stream) {
  check_cuda(launch_cast(dst, td, src, ts, n, stream), "attention: cast kernel");
}

}  // namespace

Attention::Attention(cudaStream_t stream) : stream_(stream) {
  const cublasStatus_t st = cublasCreate(&blas_);
  if (st != CUBLAS_STATUS_SUCCESS)
    throw Error(fmt::format("cublasCreate failed: {}", cublasGetStatusString(st)),
                "check nvidia-smi and the driver");
  if (cublasSetStream(blas_, stream_) != CUBLAS_STATUS_SUCCESS ||
      cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH) != CUBLAS_STATUS_SUCCESS) {
    cublasDestroy(blas_);
    throw Error("cublasSetStream / cublasSetMathMode failed", "check nvidia-smi and the driver");
  }
}

Attention::~Attention() { cublasDestroy(blas_); }

std::int64_t Attention::workspace_floats(DType dt, const AttentionDims& d, bool backward) {
  if (dt == DType::f32) return 0;
  const std::int64_t btc = d.B * d.T * d.H * d.D;
  return backward ? 7 * btc : 4 * btc;  // qkv + out; qkv + dout + dqkv
}

void Attention::forward(Tensor out, Tensor probs, Tensor qkv, const AttentionDims& d, float* ws) {
  const auto [B, T, H, D] = d;
  const std::int64_t C = H * D, BTC = B * T * C;
  const float scale = 1.0f / std::sqrt(float(D));
  const DType dt = qkv.dtype;
  const float* q32 = static_cast<const float*>(qkv.ptr);
  float* o32 = static_cast<float*>(out.ptr);
  if (dt != DType::f32) {
    float* wq = ws;
    cast(wq, DType::f32, qkv.ptr, dt, 3 * BTC, stream_);
    q32 = wq;
    o32 = ws + 3 * BTC;
  }
  float* P = static_cast<float*>(probs.ptr);
  for (std::int64_t b = 0; b < B; ++b) {
    const float* Q = q32 + b * T * 3 * C;
    gemm(blas_, Trans::no, Trans::yes, T, T, D, scale, {Q, 3 * C, D}, {Q + C, 3 * C, D}, {P + b * H * T * T, T, T * T},
         H, d);
  }
  check_cuda(launch_causal_softmax(P, B * H * T, T, stream_), "attention_forward: causal softmax kernel");
  for (std::int64_t b = 0; b < B; ++b) {
    const float* V = q32 + b * T * 3 * C + 2 * C;
    gemm(blas_, Trans::no, Trans::no, T, D, T, 1.0f, {P + b * H * T * T, T, T * T}, {V, 3 * C, D},
         {o32 + b * T * C, C, D}, H, d);
  }
  if (dt != DType::f32) cast(out.ptr, dt, o32, DType::f32, BTC, stream_);
}

void Attention::backward(Tensor dqkv, Tensor scratch, Tensor dout, Tensor qkv, Tensor probs, const AttentionDims& d,
                         float* ws) {
  const auto [B, T, H, D] = d;
  const std::int64_t C = H * D, BTC = B * T * C;
  const float scale = 1.0f / std::sqrt(float(D));
  const DType dt = qkv.dtype;
  const float* q32 = static_cast<const float*>(qkv.ptr);
  const float* do32 = static_cast<const float*>(dout.ptr);
  float* dq32 = static_cast<float*>(dqkv.ptr);
  if (dt != DType::f32) {
    float* wq = ws;
    float* wdo = ws + 3 * BTC;
    cast(wq, DType::f32, qkv.ptr, dt, 3 * BTC, stream_);
    cast(wdo, DType::f32, dout.ptr, dt, BTC, stream_);
    q32 = wq;
    do32 = wdo;
    dq32 = ws + 4 * BTC;
  }
  const float* P = static_cast<const float*>(probs.ptr);
  float* dS = static_cast<float*>(scratch.ptr);
  for (std::int64_t b = 0; b < B; ++b) {
    const float* V = q32 + b * T * 3 * C + 2 * C;
    const Operand dO{do32 + b * T * C, C, D};
    gemm(blas_, Trans::no, Trans::yes, T, T, D, 1.0f, dO, {V, 3 * C, D}, {dS + b * H * T * T, T, T * T}, H, d);
    gemm(blas_, Trans::yes, Trans::no, T, D, T, 1.0f, {P + b * H * T * T, T, T * T}, dO,
         {dq32 + b * T * 3 * C + 2 * C, 3 * C, D}, H, d);
  }
  check_cuda(launch_causal_softmax_backward(dS, P, B * H * T, T, stream_),
             "attention_backward: causal softmax backward kernel");
  for (std::int64_t b = 0; b < B; ++b) {
    const float* Q = q32 + b * T * 3 * C;
    const Operand S{dS + b * H * T * T, T, T * T};
    float* dQ = dq32 + b * T * 3 * C;
    gemm(blas_, Trans::no, Trans::no, T, D, T, scale, S, {Q + C, 3 * C, D}, {dQ, 3 * C, D}, H, d);
    gemm(blas_, Trans::yes, Trans::no, T, D, T, scale, S, {Q, 3 * C, D}, {dQ + C, 3 * C, D}, H, d);
  }
  if (dt != DType::f32) cast(dqkv.ptr, dt, dq32, DType::f32, 3 * BTC, stream_);
}

}  // namespace loom::cuda
