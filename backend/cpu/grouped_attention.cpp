// backend/cpu/grouped_attention.cpp — causal attention with grouped key/value heads
// (GQA, Ainslie et al. 2023) and optional ALiBi biases (Press et al. 2022), forward and
// backward. attention.cpp is the plain case (kv_heads == heads, no bias), kept as is
// so GPT-2 runs the kernel it always ran.
//
// qkv (B,T,W), W = (H + 2 Hkv) D: [q heads (H D) | k heads (Hkv D) | v heads (Hkv D)].
// Query head h uses kv head h / G, G = H / Hkv. out (B,T,H D); probs (B,H,T,T) f32 =
// softmax(q k^T / sqrt(D) + bias) under the causal mask, bias[t][s] = -slope_h (t - s)
// when slopes are given (a constant per query row does not change the softmax, so
// ALiBi's bias needs nothing in backward). Forward: threads take (b, h) pairs.
// Backward: threads take (b, kv head) pairs and run the group's G query heads in turn,
// so dk and dv, the sums over the group, are accumulated by one thread (no races, the
// same order every run). 16-bit tensors go through f32 tiles (attention_tiles.h).
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "backend/checks.h"
#include "backend/cpu/attention_tiles.h"
#include "backend/cpu/fast_math.h"
#include "backend/cpu/kernels.h"

namespace loom::cpu {

namespace {

struct Dims {
  std::int64_t B, T, H, Hkv, D, W;
  std::int64_t G() const { return H / Hkv; }
  std::int64_t k_off() const { return H * D; }          // first k column of a row
  std::int64_t v_off() const { return (H + Hkv) * D; }  // first v column
};

Dims check_dims(const char* op, const Tensor& qkv, const Tensor& probs, const AttentionHeads& a) {
  const int H = a.heads, Hkv = a.kv_heads;
  LOOM_CHECK(qkv.shape.rank() == 3 && H > 0 && Hkv > 0 && H % Hkv == 0 && qkv.shape[2] % (H + 2 * Hkv) == 0, "",
             "{}: qkv is {}; expected (B,T,(H + 2 Hkv) D) with H = {} query heads and Hkv = {} key/value heads "
             "dividing them",
             op, qkv.str(), H, Hkv);
  const Dims d{qkv.shape[0], qkv.shape[1], H, Hkv, qkv.shape[2] / (H + 2 * Hkv), qkv.shape[2]};
  LOOM_CHECK(probs.shape == (Shape{d.B, d.H, d.T, d.T}), "", "{}: probs is {} but must be ({},{},{},{}) for qkv {}",
             op, probs.str(), d.B, d.H, d.T, d.T, qkv.str());
  check::dtype(op, "probs", probs, DType::f32);
  if (!a.alibi_slopes.empty()) check::row_f32(op, "alibi_slopes", a.alibi_slopes, H);
  return d;
}

}  // namespace

void grouped_attention_forward(Context& ctx, Tensor out, Tensor probs, Tensor qkv, const AttentionHeads& a) {
  const char* op = "grouped_attention_forward";
  const Dims d = check_dims(op, qkv, probs, a);
  const auto [B, T, H, Hkv, D, W] = d;
  LOOM_CHECK(out.shape == (Shape{B, T, H * D}) && out.dtype == qkv.dtype, "", "{}: out is {} but must be ({},{},{}) {}",
             op, out.str(), B, T, H * D, dtype_name(qkv.dtype));
  if (T == 0 || D == 0) return;
  const float scale = 1.0f / std::sqrt(float(D));
  const float* slopes = a.alibi_slopes.empty() ? nullptr : a.alibi_slopes.data<float>();
  const DType dt = qkv.dtype;
  const std::int64_t es = std::int64_t(dtype_size(dt)), G = d.G();
  char* base = static_cast<char*>(qkv.ptr);
  char* obase = static_cast<char*>(out.ptr);
  float* P = probs.data<float>();
  ctx.scratch.prepare();
#pragma omp parallel for schedule(dynamic)
  for (std::int64_t bh = 0; bh < B * H; ++bh) {
    const std::int64_t b = bh / H, h = bh % H, kv = h / G;
    char* row0 = base + b * T * W * es;
    Slices sl(dt, T, D, dt == DType::f32 ? nullptr : ctx.scratch.get(ThreadScratch::attention, 4 * T * D));
    const View Q = sl.in(0, row0 + h * D * es, W), K = sl.in(1, row0 + (d.k_off() + kv * D) * es, W),
               V = sl.in(2, row0 + (d.v_off() + kv * D) * es, W);
    const View O = sl.out(3, obase + (b * T * H * D + h * D) * es, H * D);
    float* S = P + bh * T * T;
    sgemm(ctx, Trans::no, Trans::yes, T, T, D, scale, Q.p, Q.ld, K.p, K.ld, 0.0f, S, T);
    const float slope = slopes ? slopes[h] : 0.0f;
    for (std::int64_t i = 0; i < T; ++i) {  // ALiBi bias, then the masked row softmax over j <= i
      float* row = S + i * T;
      if (slopes) {
#pragma omp simd
        for (std::int64_t j = 0; j <= i; ++j) row[j] -= slope * float(i - j);
      }
      causal_softmax_row(row, i, T);
    }
    sgemm(ctx, Trans::no, Trans::no, T, D, T, 1.0f, S, T, V.p, V.ld, 0.0f, O.p, O.ld);
  }
}

void grouped_attention_backward(Context& ctx, Tensor dqkv, Tensor scratch, Tensor dout, Tensor qkv, Tensor probs,
                                const AttentionHeads& a) {
  const char* op = "grouped_attention_backward";
  const Dims d = check_dims(op, qkv, probs, a);
  const auto [B, T, H, Hkv, D, W] = d;
  check::same_shape(op, "dqkv", dqkv, "qkv", qkv);
  check::same_shape(op, "scratch", scratch, "probs", probs);
  check::dtype(op, "scratch", scratch, DType::f32);
  LOOM_CHECK(dout.shape == (Shape{B, T, H * D}), "", "{}: dout is {} but must be ({},{},{})", op, dout.str(), B, T,
             H * D);
  LOOM_CHECK(dqkv.dtype == qkv.dtype && dout.dtype == qkv.dtype, "", "{}: dtypes differ: qkv {}, dqkv {}, dout {}",
             op, qkv.str(), dqkv.str(), dout.str());
  if (T == 0 || D == 0) return;
  const float scale = 1.0f / std::sqrt(float(D));
  const DType dt = qkv.dtype;
  const std::int64_t es = std::int64_t(dtype_size(dt)), G = d.G();
  char* base = static_cast<char*>(qkv.ptr);
  char* dbase = static_cast<char*>(dqkv.ptr);
  char* dobase = static_cast<char*>(dout.ptr);
  const float* P = probs.data<float>();
  float* dP = scratch.data<float>();
  ctx.scratch.prepare();
#pragma omp parallel for schedule(dynamic)
  for (std::int64_t bk = 0; bk < B * Hkv; ++bk) {
    const std::int64_t b = bk / Hkv, kv = bk % Hkv;
    char* row0 = base + b * T * W * es;
    char* drow0 = dbase + b * T * W * es;
    float* tiles = dt == DType::f32 ? nullptr : ctx.scratch.get(ThreadScratch::attention, 7 * T * D);
    Slices group(dt, T, D, tiles);  // tiles 0-3: k, v and their gradients, summed over the group
    const View K = group.in(0, row0 + (d.k_off() + kv * D) * es, W), V = group.in(1, row0 + (d.v_off() + kv * D) * es, W);
    const View dK = group.out(2, drow0 + (d.k_off() + kv * D) * es, W),
               dV = group.out(3, drow0 + (d.v_off() + kv * D) * es, W);
    for (std::int64_t h = kv * G; h < (kv + 1) * G; ++h) {
      const float beta = h == kv * G ? 0.0f : 1.0f;  // the group's first head writes dk, dv; the others add
      Slices head(dt, T, D, tiles ? tiles + 4 * T * D : nullptr);  // tiles 4-6: q, dout, dq
      const View Q = head.in(0, row0 + h * D * es, W);
      const View dO = head.in(1, dobase + (b * T * H * D + h * D) * es, H * D);
      const View dQ = head.out(2, drow0 + h * D * es, W);
      const float* Pb = P + (b * H + h) * T * T;
      float* dS = dP + (b * H + h) * T * T;
      // dP = dO v^T ; dv (+)= P^T dO
      sgemm(ctx, Trans::no, Trans::yes, T, T, D, 1.0f, dO.p, dO.ld, V.p, V.ld, 0.0f, dS, T);
      sgemm(ctx, Trans::yes, Trans::no, T, D, T, 1.0f, Pb, T, dO.p, dO.ld, beta, dV.p, dV.ld);
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
      // dq = scale * dS k ; dk (+)= scale * dS^T q
      sgemm(ctx, Trans::no, Trans::no, T, D, T, scale, dS, T, K.p, K.ld, 0.0f, dQ.p, dQ.ld);
      sgemm(ctx, Trans::yes, Trans::no, T, D, T, scale, dS, T, Q.p, Q.ld, beta, dK.p, dK.ld);
    }
  }
}

}  // namespace loom::cpu
