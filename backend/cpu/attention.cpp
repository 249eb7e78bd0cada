// backend/cpu/attention.cpp — causal multi-head self-attention, forward and backward.
//
// qkv (B,T,3*H*D): [q | k | v] on the last dim, heads contiguous inside each.
// out (B,T,H*D); probs (B,H,T,T) f32 = softmax(q k^T / sqrt(D)) with a causal
// mask (row t attends to 0..t, masked entries stored as 0); scratch (B,H,T,T)
// f32 holds dprobs during backward. Each (b, h) pair is independent: threads
// take whole pairs and run single-threaded GEMMs (sgemm.h) on strided views, so
// the work is GEMM-bound (the full T x T products are computed and the upper
// triangle discarded: simpler, and still GEMM speed). With bf16/f16 qkv each
// thread first widens its pair's q, k, v (and dout) slices into f32 tiles in the
// context's per-thread scratch and writes its outputs back rounded: O(T D)
// conversions next to O(T^2 D) sgemm work, so half precision runs at f32 GEMM
// speed (the generic half GEMM this replaced was ~20x slower).
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "backend/checks.h"
#include "backend/cpu/fast_math.h"
#include "backend/cpu/attention_tiles.h"
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

void attention_forward(Context& ctx, Tensor out, Tensor probs, Tensor qkv, int heads) {
  const char* op = "attention_forward";
  const auto [B, T, H, D] = check_dims(op, qkv, probs, heads);
  const std::int64_t C = H * D;
  LOOM_CHECK(out.shape == (Shape{B, T, C}) && out.dtype == qkv.dtype, "", "{}: out is {} but must be ({},{},{}) {}",
             op, out.str(), B, T, C, dtype_name(qkv.dtype));
  if (T == 0 || D == 0) return;
  const float scale = 1.0f / std::sqrt(float(D));
  const DType dt = qkv.dtype;
  const std::int64_t esize = std::int64_t(dtype_size(dt));
  char* base = static_cast<char*>(qkv.ptr);
  char* obase = static_cast<char*>(out.ptr);
  float* P = probs.data<float>();
  ctx.scratch.prepare();
#pragma omp parallel for schedule(dynamic)
  for (std::int64_t bh = 0; bh < B * H; ++bh) {
    const std::int64_t b = bh / H, h = bh % H;
    char* q = base + (b * T * 3 * C + h * D) * esize;
    Slices sl(dt, T, D, dt == DType::f32 ? nullptr : ctx.scratch.get(ThreadScratch::attention, 4 * T * D));
    const View Q = sl.in(0, q, 3 * C), K = sl.in(1, q + C * esize, 3 * C), V = sl.in(2, q + 2 * C * esize, 3 * C);
    const View O = sl.out(3, obase + (b * T * C + h * D) * esize, C);
    float* S = P + bh * T * T;
    sgemm(ctx, Trans::no, Trans::yes, T, T, D, scale, Q.p, Q.ld, K.p, K.ld, 0.0f, S, T);
    for (std::int64_t i = 0; i < T; ++i) causal_softmax_row(S + i * T, i, T);
    sgemm(ctx, Trans::no, Trans::no, T, D, T, 1.0f, S, T, V.p, V.ld, 0.0f, O.p, O.ld);
  }
}

void attention_backward(Context& ctx, Tensor dqkv, Tensor scratch, Tensor dout, Tensor qkv, Tensor probs,
                        int heads) {
  const char* op = "attention_backward";
  const auto [B, T, H, D] = check_dims(op, qkv, probs, heads);
  const std::int64_t C = H * D;
  check::same_shape(op, "dqkv", dqkv, "qkv", qkv);
  check::same_shape(op, "scratch", scratch, "probs", probs);
  check::dtype(op, "scratch", scratch, DType::f32);
  LOOM_CHECK(dout.shape == (Shape{B, T, C}), "", "{}: dout is {} but must be ({},{},{})", op, dout.str(), B, T, C);
  LOOM_CHECK(dqkv.dtype == qkv.dtype && dout.dtype == qkv.dtype, "", "{}: dtypes differ: qkv {}, dqkv {}, dout {}",
             op, qkv.str(), dqkv.str(), dout.str());
  if (T == 0 || D == 0) return;
  const float scale = 1.0f / std::sqrt(float(D));
  const DType dt = qkv.dtype;
  const std::int64_t esize = std::int64_t(dtype_size(dt));
  char* base = static_cast<char*>(qkv.ptr);
  char* dbase = static_cast<char*>(dqkv.ptr);
  char* dobase = static_cast<char*>(dout.ptr);
  const float* P = probs.data<float>();
  float* dP = scratch.data<float>();
  ctx.scratch.prepare();
#pragma omp parallel for schedule(dynamic)
  for (std::int64_t bh = 0; bh < B * H; ++bh) {
    const std::int64_t b = bh / H, h = bh % H;
    const std::int64_t off = (b * T * 3 * C + h * D) * esize;
    char *q = base + off, *dq = dbase + off;
    Slices sl(dt, T, D, dt == DType::f32 ? nullptr : ctx.scratch.get(ThreadScratch::attention, 7 * T * D));
    const View Q = sl.in(0, q, 3 * C), K = sl.in(1, q + C * esize, 3 * C), V = sl.in(2, q + 2 * C * esize, 3 * C);
    const View dO = sl.in(3, dobase + (b * T * C + h * D) * esize, C);
    const View dQ = sl.out(4, dq, 3 * C), dK = sl.out(5, dq + C * esize, 3 * C), dV = sl.out(6, dq + 2 * C * esize, 3 * C);
    const float* Pb = P + bh * T * T;
    float* dS = dP + bh * T * T;
    // dP = dO v^T ; dv = P^T dO
    sgemm(ctx, Trans::no, Trans::yes, T, T, D, 1.0f, dO.p, dO.ld, V.p, V.ld, 0.0f, dS, T);
    sgemm(ctx, Trans::yes, Trans::no, T, D, T, 1.0f, Pb, T, dO.p, dO.ld, 0.0f, dV.p, dV.ld);
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
    sgemm(ctx, Trans::no, Trans::no, T, D, T, scale, dS, T, K.p, K.ld, 0.0f, dQ.p, dQ.ld);
    sgemm(ctx, Trans::yes, Trans::no, T, D, T, scale, dS, T, Q.p, Q.ld, 0.0f, dK.p, dK.ld);
  }
}

}  // namespace loom::cpu
