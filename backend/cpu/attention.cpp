// backend/cpu/attention.cpp — causal multi-head self-attention, forward and backward.
//
// qkv (B,T,3*H*D): [q | k | v] on the last dim, heads contiguous inside each.
// out (B,T,H*D); probs (B,H,T,T) f32 = softmax(q k^T / sqrt(D)) with a causal
// mask (row t attends to 0..t, masked entries stored as 0); scratch (B,H,T,T)
// f32 holds dprobs during backward. Each (b, h) pair is independent: threads
// take whole pairs and run single-threaded GEMMs on strided views, so the
// work is GEMM-bound (the full T x T products are computed and the upper
// triangle discarded: simpler, and still sgemm speed).
#include <algorithm>
#include <cmath>

#include "backend/checks.h"
#include "backend/cpu/fast_math.h"
#include "backend/cpu/kernels.h"

namespace loom::cpu {

namespace {

struct Dims {
  std::int64_t B, T, H, D;
};

Dims check_dims(const char* op, Tensor qkv, Tensor probs, int heads) {
  LOOM_CHECK(qkv.shape.rank() == 3 && heads > 0 && qkv.shape[2] % (3 * heads) == 0, "",
             "{}: qkv is {}; expected (B,T,3*H*D) with H = {} heads", op, qkv.str(), heads);
  const Dims d{qkv.shape[0], qkv.shape[1], heads, qkv.shape[2] / (3 * heads)};
  LOOM_CHECK(probs.shape == (Shape{d.B, d.H, d.T, d.T}), "", "{}: probs is {} but must be ({},{},{},{}) for qkv {}",
             op, probs.str(), d.B, d.H, d.T, d.T, qkv.str());
  check::dtype(op, "probs", probs, DType::f32);
  return d;
}

}  // namespace

void attention_forward(Tensor out, Tensor probs, Tensor qkv, int heads) {
  const char* op = "attention_forward";
  const auto [B, T, H, D] = check_dims(op, qkv, probs, heads);
  const std::int64_t C = H * D;
  LOOM_CHECK(out.shape == (Shape{B, T, C}) && out.dtype == qkv.dtype, "", "{}: out is {} but must be ({},{},{}) {}",
             op, out.str(), B, T, C, dtype_name(qkv.dtype));
  const float scale = 1.0f / std::sqrt(float(D));
  const std::int64_t esize = std::int64_t(dtype_size(qkv.dtype));
  char* base = static_cast<char*>(qkv.ptr);
  char* obase = static_cast<char*>(out.ptr);
  float* P = probs.data<float>();
#pragma omp parallel for schedule(dynamic)
  for (std::int64_t bh = 0; bh < B * H; ++bh) {
    const std::int64_t b = bh / H, h = bh % H;
    char* q = base + (b * T * 3 * C + h * D) * esize;
    char* k = q + C * esize;
    char* v = q + 2 * C * esize;
    float* S = P + bh * T * T;
    gemm(Trans::no, Trans::yes, T, T, D, scale, {qkv.dtype, q, 3 * C}, {qkv.dtype, k, 3 * C}, 0.0f,
         {DType::f32, S, T});
    for (std::int64_t i = 0; i < T; ++i) {  // masked row softmax over j <= i
      float* row = S + i * T;
      float mx = -INFINITY;
      #pragma omp simd reduction(max : mx)
      for (std::int64_t j = 0; j <= i; ++j) mx = std::max(mx, row[j]);
      float sum = 0;
#pragma omp simd reduction(+ : sum)
      for (std::int64_t j = 0; j <= i; ++j) sum += (row[j] = fast_exp(row[j] - mx));
      const float inv = 1.0f / sum;
#pragma omp simd
      for (std::int64_t j = 0; j <= i; ++j) row[j] *= inv;
      for (std::int64_t j = i + 1; j < T; ++j) row[j] = 0.0f;
    }
    gemm(Trans::no, Trans::no, T, D, T, 1.0f, {DType::f32, S, T}, {qkv.dtype, v, 3 * C}, 0.0f,
         {out.dtype, obase + (b * T * C + h * D) * esize, C});
  }
}

void attention_backward(Tensor dqkv, Tensor scratch, Tensor dout, Tensor qkv, Tensor probs, int heads) {
  const char* op = "attention_backward";
  const auto [B, T, H, D] = check_dims(op, qkv, probs, heads);
  const std::int64_t C = H * D;
  check::same_shape(op, "dqkv", dqkv, "qkv", qkv);
  check::same_shape(op, "scratch", scratch, "probs", probs);
  check::dtype(op, "scratch", scratch, DType::f32);
  LOOM_CHECK(dout.shape == (Shape{B, T, C}), "", "{}: dout is {} but must be ({},{},{})", op, dout.str(), B, T, C);
  LOOM_CHECK(dqkv.dtype == qkv.dtype && dout.dtype == qkv.dtype, "", "{}: dtypes differ: qkv {}, dqkv {}, dout {}",
             op, qkv.str(), dqkv.str(), dout.str());
  const float scale = 1.0f / std::sqrt(float(D));
  const DType dt = qkv.dtype;
  const std::int64_t esize = std::int64_t(dtype_size(dt));
  char* base = static_cast<char*>(qkv.ptr);
  char* dbase = static_cast<char*>(dqkv.ptr);
  char* dobase = static_cast<char*>(dout.ptr);
  const float* P = probs.data<float>();
  float* dP = scratch.data<float>();
#pragma omp parallel for schedule(dynamic)
  for (std::int64_t bh = 0; bh < B * H; ++bh) {
    const std::int64_t b = bh / H, h = bh % H;
    const std::int64_t off = (b * T * 3 * C + h * D) * esize;
    char *q = base + off, *k = q + C * esize, *v = q + 2 * C * esize;
    char *dq = dbase + off, *dk = dq + C * esize, *dv = dq + 2 * C * esize;
    char* dO = dobase + (b * T * C + h * D) * esize;
    const float* Pb = P + bh * T * T;
    float* dS = dP + bh * T * T;
    // dP = dO v^T ; dv = P^T dO
    gemm(Trans::no, Trans::yes, T, T, D, 1.0f, {dt, dO, C}, {dt, v, 3 * C}, 0.0f, {DType::f32, dS, T});
    gemm(Trans::yes, Trans::no, T, D, T, 1.0f, {DType::f32, Pb, T}, {dt, dO, C}, 0.0f, {dt, dv, 3 * C});
    // dS = P * (dP - rowsum(dP * P)); masked entries have P = 0 and so dS = 0.
    for (std::int64_t i = 0; i < T; ++i) {
      const float* p = Pb + i * T;
      float* g = dS + i * T;
      float dot = 0;
#pragma omp simd reduction(+ : dot)
      for (std::int64_t j = 0; j <= i; ++j) dot += p[j] * g[j];
#pragma omp simd
      for (std::int64_t j = 0; j <= i; ++j) g[j] = p[j] * (g[j] - dot);
      for (std::int64_t j = i + 1; j < T; ++j) g[j] = 0.0f;
    }
    // dq = scale * dS k ; dk = scale * dS^T q
    gemm(Trans::no, Trans::no, T, D, T, scale, {DType::f32, dS, T}, {dt, k, 3 * C}, 0.0f, {dt, dq, 3 * C});
    gemm(Trans::yes, Trans::no, T, D, T, scale, {DType::f32, dS, T}, {dt, q, 3 * C}, 0.0f, {dt, dk, 3 * C});
  }
}

}  // namespace loom::cpu
