// backend/cuda/grouped_attention.cpp — the GEMM half of grouped-query attention with
// optional ALiBi (see attention.h; the plain case stays in attention.cpp).
//
// attention.cpp's scheme generalised to Hkv key/value heads: query head h = kv * G + g
// uses kv head kv, so for each batch row b and each g < G one strided-batched SGEMM runs
// over the Hkv kv heads (q / out / probs of head kv*G + g at stride G heads, k / v at
// stride one head). Forward: S = scale Q K^T (into probs), one ALiBi-causal-softmax launch
// over all B*H*T rows (grouped_attention.cu), O = P V. Backward, per b and g: dP = dO V^T
// (into scratch), dV (+)= P^T dO; attention.cu's causal softmax backward turns dP into dS;
// then dQ = scale dS K, dK (+)= scale dS^T Q. dk and dv, the sums over a kv head's G query
// heads, are written by g = 0 (beta 0) and added to by g = 1..G-1 in that order (beta 1),
// as backend/cpu/grouped_attention.cpp does: deterministic, no atomics. f32 GEMMs
// (no TF32); 16-bit tensors are widened into the workspace first and rounded back.
#include <cmath>
#include <string>

#include "backend/cuda/attention.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

namespace loom::cuda {

namespace {

struct Operand {
  const float* p;
  std::int64_t ld, stride;
};
struct Output {
  float* p;
  std::int64_t ld, stride;
};

cublasOperation_t op_of(Trans t) { return t == Trans::yes ? CUBLAS_OP_T : CUBLAS_OP_N; }

std::string dims_str(const char* op, const GroupedDims& d) {
  return fmt::format("{} (B={}, T={}, H={}, Hkv={}, D={})", op, d.B, d.T, d.H, d.Hkv, d.D);
}

// c (M,N) = alpha op(a) op(b) + beta c, row-major, for `batch` heads (operands swapped for
// column-major cuBLAS, as attention.cpp).
void gemm(cublasHandle_t h, Trans ta, Trans tb, std::int64_t M, std::int64_t N, std::int64_t K, float alpha,
          Operand a, Operand b, float beta, Output c, std::int64_t batch, const char* op,
          const GroupedDims& d) {
  const cublasStatus_t status = cublasSgemmStridedBatched(
      h, op_of(tb), op_of(ta), int(N), int(M), int(K), &alpha, b.p, int(b.ld), b.stride, a.p, int(a.ld),
      a.stride, &beta, c.p, int(c.ld), c.stride, int(batch));
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw Error(
      fmt::format("{}: cublasSgemmStridedBatched failed: {}", dims_str(op, d), cublasGetStatusString(status)),
      "a cuBLAS failure on valid shapes is a loom bug; please report it with the shapes");
}

void check(cudaError_t err, const char* op, const char* what, const GroupedDims& d) {
  if (err == cudaSuccess) return;
  check_cuda(err, fmt::format("{}: {}", dims_str(op, d), what).c_str());
}

}  // namespace

std::int64_t Attention::grouped_workspace_floats(DType dt, const GroupedDims& d, bool backward) {
  if (dt == DType::f32) return 0;
  const std::int64_t qkv = d.B * d.T * d.W(), o = d.B * d.T * d.H * d.D;
  return backward ? 2 * qkv + o : qkv + o;  // qkv + dout + dqkv ; qkv + out
}

void Attention::grouped_forward(Tensor out, Tensor probs, Tensor qkv, const float* slopes,
                                const GroupedDims& d, float* ws) {
  const char* op = "grouped_attention_forward";
  const auto [B, T, H, Hkv, D] = d;
  const std::int64_t G = d.G(), W = d.W(), HD = H * D;
  const float scale = 1.0f / std::sqrt(float(D));
  const DType dt = qkv.dtype;
  const float* q32 = static_cast<const float*>(qkv.ptr);
  float* o32 = static_cast<float*>(out.ptr);
  if (dt != DType::f32) {
    check(launch_cast(ws, DType::f32, qkv.ptr, dt, B * T * W, stream_), op, "cast kernel (qkv to f32)", d);
    q32 = ws;
    o32 = ws + B * T * W;
  }
  float* P = static_cast<float*>(probs.ptr);
  for (std::int64_t b = 0; b < B; ++b) {
    const float* row0 = q32 + b * T * W;
    for (std::int64_t g = 0; g < G; ++g)  // S = scale Q K^T for heads kv*G + g, kv < Hkv
      gemm(blas_, Trans::no, Trans::yes, T, T, D, scale, {row0 + g * D, W, G * D}, {row0 + HD, W, D}, 0.0f,
           {P + (b * H + g) * T * T, T, G * T * T}, Hkv, op, d);
  }
  check(launch_alibi_causal_softmax(P, slopes, B * H * T, H, T, stream_), op, "ALiBi causal softmax kernel",
        d);
  for (std::int64_t b = 0; b < B; ++b) {
    const float* V = q32 + b * T * W + (H + Hkv) * D;
    for (std::int64_t g = 0; g < G; ++g)  // O = P V
      gemm(blas_, Trans::no, Trans::no, T, D, T, 1.0f, {P + (b * H + g) * T * T, T, G * T * T}, {V, W, D},
           0.0f, {o32 + b * T * HD + g * D, HD, G * D}, Hkv, op, d);
  }
  if (dt != DType::f32)
    check(launch_cast(out.ptr, dt, o32, DType::f32, B * T * HD, stream_), op, "cast kernel (out)", d);
}

void Attention::grouped_backward(Tensor dqkv, Tensor scratch, Tensor dout, Tensor qkv, Tensor probs,
                                 const GroupedDims& d, float* ws) {
  const char* op = "grouped_attention_backward";
  const auto [B, T, H, Hkv, D] = d;
  const std::int64_t G = d.G(), W = d.W(), HD = H * D;
  const float scale = 1.0f / std::sqrt(float(D));
  const DType dt = qkv.dtype;
  const float* q32 = static_cast<const float*>(qkv.ptr);
  const float* do32 = static_cast<const float*>(dout.ptr);
  float* dq32 = static_cast<float*>(dqkv.ptr);
  if (dt != DType::f32) {
    float* wdo = ws + B * T * W;
    check(launch_cast(ws, DType::f32, qkv.ptr, dt, B * T * W, stream_), op, "cast kernel (qkv to f32)", d);
    check(launch_cast(wdo, DType::f32, dout.ptr, dt, B * T * HD, stream_), op, "cast kernel (dout to f32)",
          d);
    q32 = ws;
    do32 = wdo;
    dq32 = ws + B * T * (W + HD);
  }
  const float* P = static_cast<const float*>(probs.ptr);
  float* dS = static_cast<float*>(scratch.ptr);
  for (std::int64_t b = 0; b < B; ++b) {
    const float* V = q32 + b * T * W + (H + Hkv) * D;
    float* dV = dq32 + b * T * W + (H + Hkv) * D;
    for (std::int64_t g = 0; g < G; ++g) {
      const Operand dO{do32 + b * T * HD + g * D, HD, G * D};
      const std::int64_t ph = (b * H + g) * T * T;  // probs of head g (kv 0); kv heads at stride G T T
      gemm(blas_, Trans::no, Trans::yes, T, T, D, 1.0f, dO, {V, W, D}, 0.0f, {dS + ph, T, G * T * T}, Hkv, op,
           d);
      gemm(blas_, Trans::yes, Trans::no, T, D, T, 1.0f, {P + ph, T, G * T * T}, dO, g == 0 ? 0.0f : 1.0f,
           {dV, W, D}, Hkv, op, d);
    }
  }
  check(launch_causal_softmax_backward(dS, P, B * H * T, T, stream_), op, "causal softmax backward kernel",
        d);
  for (std::int64_t b = 0; b < B; ++b) {
    const float* row0 = q32 + b * T * W;
    float* drow0 = dq32 + b * T * W;
    for (std::int64_t g = 0; g < G; ++g) {
      const Operand S{dS + (b * H + g) * T * T, T, G * T * T};
      gemm(blas_, Trans::no, Trans::no, T, D, T, scale, S, {row0 + HD, W, D}, 0.0f, {drow0 + g * D, W, G * D},
           Hkv, op, d);
      gemm(blas_, Trans::yes, Trans::no, T, D, T, scale, S, {row0 + g * D, W, G * D}, g == 0 ? 0.0f : 1.0f,
           {drow0 + HD, W, D}, Hkv, op, d);
    }
  }
  if (dt != DType::f32)
    check(launch_cast(dqkv.ptr, dt, dq32, DType::f32, B * T * W, stream_), op, "cast kernel (dqkv)", d);
}

}  // namespace loom::cuda
