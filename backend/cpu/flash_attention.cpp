// backend/cpu/flash_attention.cpp — memory-efficient tiled attention (FlashAttention-2 loop
// order, online softmax of Milakov & Gimelshein), forward and backward.
//
// Shapes (backend/backend.h): q (B,Tq,Hq,D), k and v (B,Tk,Hkv,D), read in place through
// HeadsView views (so the layer's fused qkv needs no copy); out (B,Tq,Hq*D) (=);
// lse (B,Hq,Tq) f32 (=). Backward writes dq, dk, dv (=).
// Forward: one work item per (b, query head, tile of kBr query rows), each looping over
// tiles of kBc keys: S = scale Q K^T by a single-threaded GEMM on the tile (sgemm.h:
// oneDNN's dnnl_sgemm where OpenBLAS runs generic kernels, else cblas_sgemm), the mask and
// ALiBi applied per row (every mask is an interval of keys per row, so a row's tile is a
// [a, e] range and whole tiles outside every row's range are skipped), the running max /
// sum / output rescaled, O += P V by sgemm. Backward: one work item per (b, kv head): for
// each key tile, over the query heads of the group and the query tiles that see it,
// recompute P = exp(S - lse), then dV += P^T dO, dP = dO V^T, dS = P (dP - rowsum(dO O)),
// dK += scale dS^T Q, dQ += scale dS K — dK/dV in per-tile f32 accumulators, dQ in place
// (f32) or in an f32 (G, Tq, D) buffer per thread (16-bit dq; O(T D), never O(T^2)).
// Scratch: the context's per-thread `attention` slot; 16-bit q/k/v/dout tiles are widened
// to f32 there and outputs rounded once when written back.
// Relative bias (spec.rel_bias, T5): a work item copies its head's column of the
// (Tq + Tk - 1, Hq) table into a contiguous row first, so a score row adds a contiguous
// slice of it; backward sums dS along each diagonal into a per-item (G, Tq + Tk - 1) row
// and adds it to drel_bias[b] once at the end (the item (b, kv head) is the only writer
// of those elements: the same bits for any thread count). Without rel_bias none of this runs.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "backend/checks.h"
#include "backend/flash_checks.h"
#include "backend/cpu/fast_math.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/sgemm.h"

namespace loom::cpu {

namespace {

constexpr std::int64_t kBr = 64;   // query rows per tile
constexpr std::int64_t kBc = 128;  // keys per tile: S is kBr x kBc f32 = 32 KiB (L1/L2)

using Heads = check::FlashHeads;  // backend/flash_checks.h

// Everything a kernel needs, checked once.
struct Geometry {
  std::int64_t B, Tq, Tk, Hq, Hkv, G, D;
  float scale;
  bool causal;
  std::int64_t window;
  const std::int32_t* len;  // (B) or nullptr
  const float* slopes;      // (Hq) or nullptr
  const float* rel;         // (Toff, Hq) or nullptr; Toff = Tq + Tk - 1
  float* drel;              // (B, Toff, Hq) or nullptr (backward)
  std::int64_t Toff;

  // The keys row t of sequence b sees: [lo, hi], empty when hi < lo. Both ends are
  // non-decreasing in t.
  std::int64_t lo(std::int64_t t) const { return window > 0 ? std::max<std::int64_t>(0, t - window + 1) : 0; }
  std::int64_t hi(std::int64_t b, std::int64_t t) const {
    std::int64_t h = causal ? t : (window > 0 ? t + window - 1 : Tk - 1);
    h = std::min(h, Tk - 1);
    return len ? std::min<std::int64_t>(h, len[b] - 1) : h;
  }
};

Geometry check_geometry(const char* op, const Heads& q, const Heads& k, const Heads& v, Tensor out,
                        Tensor lse, const AttentionSpec& spec) {
  const check::FlashShape f = check::check_flash(op, q, k, v, out, lse, spec);
  const std::int32_t* len = nullptr;
  if (spec.key_lengths.ptr) {  // host memory here: the values are checked too
    len = spec.key_lengths.ptr;
    for (std::int64_t b = 0; b < q.B; ++b)
      LOOM_CHECK(len[b] >= 0 && len[b] <= k.T, "", "{}: key_lengths[{}] = {} is outside [0, Tk = {}]", op, b,
                 len[b], k.T);
  }
  const float* slopes = spec.alibi_slopes.empty() ? nullptr : spec.alibi_slopes.data<float>();
  const float* rel = spec.rel_bias.empty() ? nullptr : spec.rel_bias.data<float>();
  float* drel = spec.drel_bias.empty() ? nullptr : spec.drel_bias.data<float>();
  return {f.B,   f.Tq,  f.Tk,         f.Hq, f.Hkv, f.G, f.D, f.scale, spec.causal, spec.window, len, slopes,
          rel, drel, f.Tq + f.Tk - 1};
}

// f32 rows [t0, t0 + n) of head h of `x` at batch b: straight into the tensor when it is
// f32 (row stride W), else widened into buf (row stride D).
struct F32Rows {
  const float* p;
  std::int64_t ld;
};
F32Rows f32_rows(const Heads& x, std::int64_t b, std::int64_t t0, std::int64_t n, std::int64_t h,
                 float* buf) {
  char* src = x.at(b, t0, h);
  if (x.dtype == DType::f32) return {reinterpret_cast<const float*>(src), x.W};
  visit_dtype(x.dtype, [&](auto z) {
    using T = decltype(z);
    convert_rows(buf, x.D, reinterpret_cast<const T*>(src), x.W, 0, n, x.D);
  });
  return {buf, x.D};
}
// rows [t0, t0 + n) of head h of `x` = src (f32, row stride lds), rounded.
void store_rows(const Heads& x, std::int64_t b, std::int64_t t0, std::int64_t n, std::int64_t h,
                const float* src, std::int64_t lds) {
  visit_dtype(x.dtype, [&](auto z) {
    using T = decltype(z);
    convert_rows(reinterpret_cast<T*>(x.at(b, t0, h)), x.W, src, lds, 0, n, x.D);
  });
}

using check::heads_of;
using check::resolve_heads;

// Head h's column of the relative bias table, contiguous: col[o] = rel[o][h].
void bias_column(float* col, const Geometry& g, std::int64_t h) {
  for (std::int64_t o = 0; o < g.Toff; ++o) col[o] = g.rel[o * g.Hq + h];
}
// Adds row t's slice of the bias column to a score row of keys c0.. (offset o = s - t + Tq - 1).
inline void add_bias(float* row, std::int64_t nc, const float* col, const Geometry& g, std::int64_t t,
                     std::int64_t c0) {
  const float* b = col + (c0 - t + g.Tq - 1);
#pragma omp simd
  for (std::int64_t j = 0; j < nc; ++j) row[j] += b[j];
}

// One row of a score tile: add ALiBi, keep [a, e], and turn it into probabilities
// exp(s - m) there, 0 elsewhere; returns their sum.
inline float exp_row(float* row, std::int64_t nc, std::int64_t a, std::int64_t e, float m, float slope,
                     std::int64_t t_minus_c0) {
  for (std::int64_t j = 0; j < a; ++j) row[j] = 0.0f;
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (std::int64_t j = a; j <= e; ++j) {
    const float s = row[j] - slope * std::fabs(float(t_minus_c0 - j));
    sum += (row[j] = fast_exp(s - m));
  }
  for (std::int64_t j = e + 1; j < nc; ++j) row[j] = 0.0f;
  return sum;
}

}  // namespace

void flash_attention_forward(Context& ctx, Tensor out, Tensor lse, HeadsView qa, HeadsView ka, HeadsView va,
                             const AttentionSpec& spec) {
  const char* op = "flash_attention_forward";
  const Heads q = resolve_heads(op, "q", qa), k = resolve_heads(op, "k", ka), v = resolve_heads(op, "v", va);
  const Geometry g = check_geometry(op, q, k, v, out, lse, spec);
  const std::int64_t B = g.B, Tq = g.Tq, Hq = g.Hq, G = g.G, D = g.D;
  if (B == 0 || Tq == 0) return;
  const Heads o = heads_of(out, Hq, D);
  float* L = lse.data<float>();
  const std::int64_t nq = (Tq + kBr - 1) / kBr;
  const std::size_t floats =
      std::size_t(2 * kBr * D + 2 * kBc * D + kBr * kBc + 2 * kBr + (g.rel ? g.Toff : 0));
  ctx.scratch.prepare();
#pragma omp parallel for schedule(dynamic)
  for (std::int64_t item = 0; item < B * Hq * nq; ++item) {
    // the longest rows (last query tiles, under a causal mask) first
    const std::int64_t qt = nq - 1 - item % nq, bh = item / nq, b = bh / Hq, h = bh % Hq, hk = h / G;
    const std::int64_t r0 = qt * kBr, nr = std::min(kBr, Tq - r0);
    float* buf = ctx.scratch.get(ThreadScratch::attention, floats);
    float *Qb = buf, *Kb = Qb + kBr * D, *Vb = Kb + kBc * D, *S = Vb + kBc * D, *O = S + kBr * kBc;
    float *m = O + kBr * D, *l = m + kBr, *col = l + kBr;
    if (g.rel) bias_column(col, g, h);
    const F32Rows Q = f32_rows(q, b, r0, nr, h, Qb);
    std::fill(O, O + nr * D, 0.0f);
    std::fill(m, m + nr, -std::numeric_limits<float>::infinity());
    std::fill(l, l + nr, 0.0f);
    const float slope = g.slopes ? g.slopes[h] : 0.0f;
    const std::int64_t kmin = g.lo(r0), kmax = g.hi(b, r0 + nr - 1);
    for (std::int64_t c0 = kmin; c0 <= kmax; c0 += kBc) {
      const std::int64_t nc = std::min(kBc, kmax + 1 - c0);
      const F32Rows K = f32_rows(k, b, c0, nc, hk, Kb), V = f32_rows(v, b, c0, nc, hk, Vb);
      sgemm(ctx, Trans::no, Trans::yes, nr, nc, D, g.scale, Q.p, Q.ld, K.p, K.ld, 0.0f, S, kBc);
      for (std::int64_t r = 0; r < nr; ++r) {
        const std::int64_t t = r0 + r;
        const std::int64_t a = std::max(g.lo(t), c0) - c0, e = std::min(g.hi(b, t), c0 + nc - 1) - c0;
        float* row = S + r * kBc;
        if (g.rel) add_bias(row, nc, col, g, t, c0);
        if (e < a) {  // this row sees no key of this tile
          std::fill(row, row + nc, 0.0f);
          continue;
        }
        float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
        for (std::int64_t j = a; j <= e; ++j)
          mx = std::max(mx, row[j] - slope * std::fabs(float(t - c0 - j)));
        const float m_new = std::max(m[r], mx);
        const float alpha = fast_exp(m[r] - m_new);  // 0 on the first tile (m = -inf)
        l[r] = l[r] * alpha + exp_row(row, nc, a, e, m_new, slope, t - c0);
        m[r] = m_new;
        if (alpha != 1.0f) {
          float* orow = O + r * D;
#pragma omp simd
          for (std::int64_t d = 0; d < D; ++d) orow[d] *= alpha;
        }
      }
      sgemm(ctx, Trans::no, Trans::no, nr, D, nc, 1.0f, S, kBc, V.p, V.ld, 1.0f, O, D);
    }
    for (std::int64_t r = 0; r < nr; ++r) {
      const float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;
      float* orow = O + r * D;
#pragma omp simd
      for (std::int64_t d = 0; d < D; ++d) orow[d] *= inv;
      L[(b * Hq + h) * Tq + r0 + r] = l[r] > 0 ? m[r] + std::log(l[r]) : -INFINITY;
    }
    store_rows(o, b, r0, nr, h, O, D);
  }
}

void flash_attention_backward(Context& ctx, HeadsView dqa, HeadsView dka, HeadsView dva, Tensor dout,
                              HeadsView qa, HeadsView ka, HeadsView va, Tensor out, Tensor lse,
                              const AttentionSpec& spec) {
  const char* op = "flash_attention_backward";
  const Heads q = resolve_heads(op, "q", qa), k = resolve_heads(op, "k", ka), v = resolve_heads(op, "v", va);
  const Heads dq = resolve_heads(op, "dq", dqa), dk = resolve_heads(op, "dk", dka), dv = resolve_heads(op, "dv", dva);
  const Geometry g = check_geometry(op, q, k, v, out, lse, spec);
  const std::int64_t B = g.B, Tq = g.Tq, Tk = g.Tk, Hq = g.Hq, Hkv = g.Hkv, G = g.G, D = g.D;
  check::check_flash_grads(op, dq, dk, dv, q, k, v, dout, out);
  if (B == 0 || (Tq == 0 && Tk == 0)) return;
  const Heads o = heads_of(out, Hq, D), dO_ = heads_of(dout, Hq, D);
  const float* L = lse.data<float>();
  const bool f32 = q.dtype == DType::f32;
  // per thread: Q, dO tiles; K, V tiles; S, dP; dK, dV accumulators; rowsum(dO O); dQ (16-bit dq only);
  // relative bias: the G heads' bias columns and their diagonal sums of dS
  const std::int64_t rel_floats = g.rel ? G * g.Toff * (g.drel ? 2 : 1) : 0;
  const std::size_t floats = std::size_t(2 * kBr * D + 2 * kBc * D + 2 * kBr * kBc + 2 * kBc * D + G * Tq +
                                         (f32 ? 0 : G * Tq * D) + rel_floats);
  ctx.scratch.prepare();
#pragma omp parallel for schedule(dynamic)
  for (std::int64_t item = 0; item < B * Hkv; ++item) {
    const std::int64_t b = item / Hkv, hk = item % Hkv;
    float* buf = ctx.scratch.get(ThreadScratch::attention, floats);
    float *Qb = buf, *dOb = Qb + kBr * D, *Kb = dOb + kBr * D, *Vb = Kb + kBc * D, *S = Vb + kBc * D;
    float *dP = S + kBr * kBc, *dK = dP + kBr * kBc, *dV = dK + kBc * D, *Dsum = dV + kBc * D,
          *dQbuf = Dsum + G * Tq;
    float* cols = dQbuf + (f32 ? 0 : G * Tq * D);  // (G, Toff) bias columns, then (G, Toff) dS diagonal sums
    float* dsum = cols + G * g.Toff;
    if (g.rel)
      for (std::int64_t gi = 0; gi < G; ++gi) bias_column(cols + gi * g.Toff, g, hk * G + gi);
    if (g.drel) std::fill(dsum, dsum + G * g.Toff, 0.0f);
    // Dsum[gi][t] = rowsum(dO * O); dQ zeroed (in place for f32, else the f32 buffer)
    for (std::int64_t gi = 0; gi < G; ++gi) {
      const std::int64_t h = hk * G + gi;
      visit_dtype(q.dtype, [&](auto z) {
        using T = decltype(z);
        for (std::int64_t t = 0; t < Tq; ++t) {
          const T* pd = reinterpret_cast<const T*>(dO_.at(b, t, h));
          const T* po = reinterpret_cast<const T*>(o.at(b, t, h));
          float s = 0;
#pragma omp simd reduction(+ : s)
          for (std::int64_t d = 0; d < D; ++d) s += ld(pd, d) * ld(po, d);
          Dsum[gi * Tq + t] = s;
        }
      });
      for (std::int64_t t = 0; t < Tq; ++t) {
        float* row = f32 ? reinterpret_cast<float*>(dq.at(b, t, h)) : dQbuf + (gi * Tq + t) * D;
        std::fill(row, row + D, 0.0f);
      }
    }
    for (std::int64_t c0 = 0; c0 < Tk; c0 += kBc) {
      const std::int64_t nc = std::min(kBc, Tk - c0), c1 = c0 + nc - 1;
      const F32Rows K = f32_rows(k, b, c0, nc, hk, Kb), V = f32_rows(v, b, c0, nc, hk, Vb);
      std::fill(dK, dK + nc * D, 0.0f);
      std::fill(dV, dV + nc * D, 0.0f);
      // the query rows that see a key of this tile: [t_first, t_last] (lo and hi are monotone)
      std::int64_t lo_t = 0, hi_t = Tq;  // t_first = first t with hi(t) >= c0
      while (lo_t < hi_t) {
        const std::int64_t mid = (lo_t + hi_t) / 2;
        (g.hi(b, mid) >= c0) ? hi_t = mid : lo_t = mid + 1;
      }
      const std::int64_t t_first = lo_t;
      lo_t = 0, hi_t = Tq;  // t_last + 1 = first t with lo(t) > c1
      while (lo_t < hi_t) {
        const std::int64_t mid = (lo_t + hi_t) / 2;
        (g.lo(mid) > c1) ? hi_t = mid : lo_t = mid + 1;
      }
      const std::int64_t t_end = lo_t;
      for (std::int64_t gi = 0; gi < G && t_first < t_end; ++gi) {
        const std::int64_t h = hk * G + gi;
        const float slope = g.slopes ? g.slopes[h] : 0.0f;
        for (std::int64_t r0 = t_first; r0 < t_end; r0 += kBr) {
          const std::int64_t nr = std::min(kBr, t_end - r0);
          const F32Rows Q = f32_rows(q, b, r0, nr, h, Qb), dOt = f32_rows(dO_, b, r0, nr, h, dOb);
          float* dQ = f32 ? reinterpret_cast<float*>(dq.at(b, r0, h)) : dQbuf + (gi * Tq + r0) * D;
          const std::int64_t ldq = f32 ? dq.W : D;
          sgemm(ctx, Trans::no, Trans::yes, nr, nc, D, g.scale, Q.p, Q.ld, K.p, K.ld, 0.0f, S, kBc);
          for (std::int64_t r = 0; r < nr; ++r) {  // P = exp(S - lse) on the row's keys, 0 elsewhere
            const std::int64_t t = r0 + r;
            const std::int64_t a = std::max(g.lo(t), c0) - c0, e = std::min(g.hi(b, t), c1) - c0;
            const float lse_t = L[(b * Hq + h) * Tq + t];
            float* row = S + r * kBc;
            if (g.rel) add_bias(row, nc, cols + gi * g.Toff, g, t, c0);
            if (e < a || !(lse_t > -INFINITY))
              std::fill(row, row + nc, 0.0f);
            else
              exp_row(row, nc, a, e, lse_t, slope, t - c0);
          }
          sgemm(ctx, Trans::yes, Trans::no, nc, D, nr, 1.0f, S, kBc, dOt.p, dOt.ld, 1.0f, dV, D);  // dV += P^T dO
          sgemm(ctx, Trans::no, Trans::yes, nr, nc, D, 1.0f, dOt.p, dOt.ld, V.p, V.ld, 0.0f, dP,
                kBc);                              // dP = dO V^T
          for (std::int64_t r = 0; r < nr; ++r) {  // dS = P (dP - rowsum(dO O)), in S
            float* p = S + r * kBc;
            const float* dp = dP + r * kBc;
            const float di = Dsum[gi * Tq + r0 + r];
#pragma omp simd
            for (std::int64_t j = 0; j < nc; ++j) p[j] = p[j] * (dp[j] - di);
            if (g.drel) {  // d rel_bias: dS (the score's gradient) summed along its diagonal
              float* diag = dsum + gi * g.Toff + (c0 - (r0 + r) + Tq - 1);
#pragma omp simd
              for (std::int64_t j = 0; j < nc; ++j) diag[j] += p[j];
            }
          }
          sgemm(ctx, Trans::yes, Trans::no, nc, D, nr, g.scale, S, kBc, Q.p, Q.ld, 1.0f, dK,
                D);  // dK += scale dS^T Q
          sgemm(ctx, Trans::no, Trans::no, nr, D, nc, g.scale, S, kBc, K.p, K.ld, 1.0f, dQ,
                ldq);  // dQ += scale dS K
        }
      }
      store_rows(dk, b, c0, nc, hk, dK, D);
      store_rows(dv, b, c0, nc, hk, dV, D);
    }
    if (!f32)
      for (std::int64_t gi = 0; gi < G; ++gi) store_rows(dq, b, 0, Tq, hk * G + gi, dQbuf + gi * Tq * D, D);
    if (g.drel)
      for (std::int64_t gi = 0; gi < G; ++gi)
        for (std::int64_t o = 0; o < g.Toff; ++o) g.drel[(b * g.Toff + o) * Hq + hk * G + gi] += dsum[gi * g.Toff + o];
  }
}

}  // namespace loom::cpu
