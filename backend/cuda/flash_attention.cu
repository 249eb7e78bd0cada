// backend/cuda/flash_attention.cu — tiled (flash-style) attention kernels, forward and backward.
//
// Shapes and semantics: backend.h's flash_attention_forward/backward (flash_attention.h
// has the launchers). The CPU reference is backend/cpu/flash_attention.cpp; the
// algorithm is the same (FlashAttention-2 loop order, online softmax; docs/attention.md).
//
// Tiles: a block is 4 warps (128 threads) and owns a tile of 32 rows (query rows in the
// forward and dQ kernels, key rows in the dK/dV kernel); warp w owns rows w, w+4, ..., so
// each warp's score rows live in its own registers and shared-memory rows (__syncwarp,
// not __syncthreads, between computing P and using it). The other operand streams
// through shared memory 32 rows at a time, widened to f32, one row per lane: lane j holds
// score (row, j). Each lane keeps output columns lane, lane+32, lane+64, lane+96 of its
// warp's rows in registers (D <= 128). Shared rows have an odd stride (D | 1), so a
// warp reading 32 rows' element d hits 32 different banks. All arithmetic is f32
// (expf, not __expf); 16-bit inputs are widened on load and outputs rounded once.
//
// Masks: row t sees keys [lo(t), hi(t)] (causal, window, key length), so a block visits
// only the key tiles between its first row's lo and its last row's hi.
//
// Backward without atomics (deterministic, as the CPU): (1) rowsum(dO * O) per query
// row into scratch; (2) one block per (b, kv head, 32 keys) accumulates dK and dV in
// registers over the group's query heads and the query tiles that see its keys, in that
// order, and writes them once; (3) one block per (b, query head, 32 query rows)
// accumulates dQ over its key tiles. P is recomputed from q, k and lse in both (2) and
// (3): two score recomputations instead of FA-2's one, the price of no float atomics.
// With a relative bias (T5), every score adds rel_bias[s - t + Tq - 1][h], and (4) one block
// per (b, query head, 32 diagonals o) recomputes dS along its diagonals, query tile by query
// tile, and adds the sums to drel_bias[b][o][h] (+=): the block is the only writer of those
// elements, so the order is fixed (a third recomputation, only when drel_bias is asked for).
#include <cmath>

#include "backend/cuda/block_reduce.cuh"
#include "backend/cuda/device_dtype.cuh"
#include "backend/cuda/flash_attention.h"

namespace loom::cuda {

namespace {

constexpr int kTile = 32;                            // rows a block owns = rows a shared tile streams
constexpr int kWarps = 4;                            // warps a block
constexpr int kBlock = 32 * kWarps;                  // threads a block
constexpr int kRowsPerWarp = kTile / kWarps;         // 8
constexpr int kChunks = int(kFlashMaxHeadDim) / 32;  // output columns a lane keeps per row
constexpr int kPs = kTile + 1;                       // stride of the 32 x 32 P / dS tiles

using i64 = std::int64_t;

// Row t's visible keys [lo, hi] (empty when hi < lo), as backend/cpu/flash_attention.cpp's
// Geometry; both ends are non-decreasing in t. len is the sequence's key length.
__device__ __forceinline__ i64 key_lo(const FlashGeometry& g, i64 t) {
  return g.window > 0 ? (t - g.window + 1 > 0 ? t - g.window + 1 : 0) : 0;
}
__device__ __forceinline__ i64 key_hi(const FlashGeometry& g, i64 len, i64 t) {
  i64 h = g.causal ? t : (g.window > 0 ? t + g.window - 1 : g.Tk - 1);
  h = h < g.Tk - 1 ? h : g.Tk - 1;
  return h < len - 1 ? h : len - 1;
}
// The relative bias of query t, key s, head h (0 without one); only for a visible (t, s).
__device__ __forceinline__ float rel_at(const FlashGeometry& g, i64 t, i64 s, i64 h) {
  return g.rel_bias ? g.rel_bias[(s - t + g.Tq - 1) * g.Hq + h] : 0.0f;
}
__device__ __forceinline__ i64 key_length(const FlashGeometry& g, i64 b) {
  if (!g.key_lengths) return g.Tk;
  const i64 n = g.key_lengths[b];
  return n < 0 ? 0 : (n > g.Tk ? g.Tk : n);
}

// Rows [t0, t0 + n) of head h of x (batch b) into dst (kTile rows of stride lds, f32);
// rows n.. are zero. All threads of the block take part.
template <class T>
__device__ void load_rows(float* dst, int lds, FlashOperand x, i64 b, i64 t0, int n, i64 h, int D) {
  const T* base = static_cast<const T*>(x.p) + (b * x.T + t0) * x.W + h * D;
  for (int i = threadIdx.x; i < kTile * D; i += kBlock) {
    const int r = i / D, d = i - r * D;
    dst[r * lds + d] = r < n ? ld(base + i64(r) * x.W, d) : 0.0f;
  }
}

// ---- forward: one block per (32 query rows, query head, batch row) --------------------

template <class T>
__global__ void __launch_bounds__(kBlock)
    flash_forward_kernel(T* out, float* lse, FlashOperand q, FlashOperand k, FlashOperand v,
                         FlashGeometry g) {
  extern __shared__ float smem[];
  const int D = int(g.D), lds = D | 1;
  float *Qs = smem, *Ks = Qs + kTile * lds, *Vs = Ks + kTile * lds, *Ps = Vs + kTile * lds;
  const i64 r0 = i64(blockIdx.x) * kTile, h = blockIdx.y, b = blockIdx.z, hk = h / (g.Hq / g.Hkv);
  const int nr = int(g.Tq - r0 < kTile ? g.Tq - r0 : kTile);
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const i64 len = key_length(g, b);
  const float slope = g.slopes ? g.slopes[h] : 0.0f;
  load_rows<T>(Qs, lds, q, b, r0, nr, h, D);

  float m[kRowsPerWarp], l[kRowsPerWarp], o[kRowsPerWarp][kChunks];
  for (int i = 0; i < kRowsPerWarp; ++i) {
    m[i] = -INFINITY, l[i] = 0.0f;
    for (int j = 0; j < kChunks; ++j) o[i][j] = 0.0f;
  }
  const i64 kmin = key_lo(g, r0), kmax = key_hi(g, len, r0 + nr - 1);
  for (i64 c0 = kmin; c0 <= kmax; c0 += kTile) {
    const int nc = int(kmax + 1 - c0 < kTile ? kmax + 1 - c0 : kTile);
    __syncthreads();  // Q loaded; the previous tile's K and V no longer read
    load_rows<T>(Ks, lds, k, b, c0, nc, hk, D);
    load_rows<T>(Vs, lds, v, b, c0, nc, hk, D);
    __syncthreads();
    float acc[kRowsPerWarp] = {};
    for (int d = 0; d < D; ++d) {
      const float kd = Ks[lane * lds + d];
#pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) acc[i] += Qs[(warp + kWarps * i) * lds + d] * kd;
    }
    const i64 s = c0 + lane;
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const int r = warp + kWarps * i;
      const i64 t = r0 + r;
      const bool visible = r < nr && lane < nc && s >= key_lo(g, t) && s <= key_hi(g, len, t);
      const float x = visible ? g.scale * acc[i] - slope * fabsf(float(t - s)) + rel_at(g, t, s, h) : -INFINITY;
      const float m_new = fmaxf(m[i], warp_max(x));
      float p = 0.0f, alpha = 1.0f;
      if (m_new != -INFINITY) {  // else the row has seen no key yet: nothing to rescale
        p = visible ? expf(x - m_new) : 0.0f;
        alpha = expf(m[i] - m_new);  // 0 on the row's first visible tile
      }
      l[i] = l[i] * alpha + warp_sum(p);
      m[i] = m_new;
      Ps[r * kPs + lane] = p;
#pragma unroll
      for (int j = 0; j < kChunks; ++j) o[i][j] *= alpha;
    }
    __syncwarp();  // the warp's P rows are written
    // O += P V. Loop order c, j, i with j fully unrolled: a `break` out of an unrolled j
    // loop around the runtime c loop makes cicc take many minutes.
    for (int c = 0; c < nc; ++c) {
      float p[kRowsPerWarp];
#pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) p[i] = Ps[(warp + kWarps * i) * kPs + c];
#pragma unroll
      for (int j = 0; j < kChunks; ++j) {
        if (lane + 32 * j >= D) continue;
        const float vd = Vs[c * lds + lane + 32 * j];
#pragma unroll
        for (int i = 0; i < kRowsPerWarp; ++i) o[i][j] += p[i] * vd;
      }
    }
  }
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int r = warp + kWarps * i;
    if (r >= nr) continue;
    const i64 t = r0 + r;
    const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
    T* orow = out + ((b * g.Tq + t) * g.Hq + h) * D;
#pragma unroll
    for (int j = 0; j < kChunks; ++j)
      if (lane + 32 * j < D) st(orow, lane + 32 * j, o[i][j] * inv);
    if (lane == 0) lse[(b * g.Hq + h) * g.Tq + t] = l[i] > 0.0f ? m[i] + logf(l[i]) : -INFINITY;
  }
}

// ---- backward (1): rowdot = rowsum(dO * O), one warp per (b, query head, t) ------------

template <class T>
__global__ void __launch_bounds__(kBlock)
    flash_rowdot_kernel(float* rowdot, const T* dout, const T* out, FlashGeometry g) {
  const i64 row = i64(blockIdx.x) * kWarps + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= g.B * g.Hq * g.Tq) return;  // whole warps leave together
  const i64 t = row % g.Tq, h = (row / g.Tq) % g.Hq, b = row / (g.Tq * g.Hq);
  const i64 at = ((b * g.Tq + t) * g.Hq + h) * g.D;
  float s = 0.0f;
  for (i64 d = lane; d < g.D; d += 32) s += ld(dout + at, d) * ld(out + at, d);
  s = warp_sum(s);
  if (lane == 0) rowdot[row] = s;
}

// ---- backward (2): dK, dV; one block per (32 keys, kv head, batch row) -----------------

template <class T>
__global__ void __launch_bounds__(kBlock)
    flash_dkdv_kernel(FlashOperand dk, FlashOperand dv, FlashOperand dout, FlashOperand q, FlashOperand k,
                      FlashOperand v, const float* lse, const float* rowdot, FlashGeometry g) {
  extern __shared__ float smem[];
  const int D = int(g.D), lds = D | 1;
  float *Ks = smem, *Vs = Ks + kTile * lds, *Qs = Vs + kTile * lds, *dOs = Qs + kTile * lds;
  float *Ps = dOs + kTile * lds, *dSs = Ps + kTile * kPs, *lse_s = dSs + kTile * kPs, *rd_s = lse_s + kTile;
  const i64 c0 = i64(blockIdx.x) * kTile, hk = blockIdx.y, b = blockIdx.z, G = g.Hq / g.Hkv;
  const int nc = int(g.Tk - c0 < kTile ? g.Tk - c0 : kTile);
  const i64 c1 = c0 + nc - 1;
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const i64 len = key_length(g, b);
  load_rows<T>(Ks, lds, k, b, c0, nc, hk, D);
  load_rows<T>(Vs, lds, v, b, c0, nc, hk, D);

  // The query rows that see a key of this tile, [t_first, t_end): the first t with
  // hi(t) >= c0 and the first t with lo(t) > c1 (both ends are monotone in t).
  i64 a = 0, z = g.Tq;
  while (a < z) {
    const i64 mid = (a + z) / 2;
    if (key_hi(g, len, mid) >= c0)
      z = mid;
    else
      a = mid + 1;
  }
  const i64 t_first = a;
  a = 0, z = g.Tq;
  while (a < z) {
    const i64 mid = (a + z) / 2;
    if (key_lo(g, mid) > c1)
      z = mid;
    else
      a = mid + 1;
  }
  const i64 t_end = a;

  float dk_acc[kRowsPerWarp][kChunks] = {}, dv_acc[kRowsPerWarp][kChunks] = {};
  for (i64 gi = 0; gi < G && t_first < t_end; ++gi) {
    const i64 h = hk * G + gi;
    const float slope = g.slopes ? g.slopes[h] : 0.0f;
    for (i64 r0 = t_first; r0 < t_end; r0 += kTile) {
      const int nr = int(t_end - r0 < kTile ? t_end - r0 : kTile);
      __syncthreads();  // K, V loaded; the previous Q, dO, P, dS no longer read
      load_rows<T>(Qs, lds, q, b, r0, nr, h, D);
      load_rows<T>(dOs, lds, dout, b, r0, nr, h, D);
      if (int(threadIdx.x) < kTile) {
        const int r = int(threadIdx.x);
        const i64 at = (b * g.Hq + h) * g.Tq + r0 + r;
        lse_s[r] = r < nr ? lse[at] : -INFINITY;
        rd_s[r] = r < nr ? rowdot[at] : 0.0f;
      }
      __syncthreads();
      // lane = query row r0 + lane; the warp's keys c = warp + 4 i
      float sc[kRowsPerWarp] = {}, dp[kRowsPerWarp] = {};
      for (int d = 0; d < D; ++d) {
        const float qd = Qs[lane * lds + d], dod = dOs[lane * lds + d];
#pragma unroll
        for (int i = 0; i < kRowsPerWarp; ++i) {
          sc[i] += Ks[(warp + kWarps * i) * lds + d] * qd;
          dp[i] += Vs[(warp + kWarps * i) * lds + d] * dod;
        }
      }
      const i64 t = r0 + lane;
      const float lse_t = lse_s[lane], rd_t = rd_s[lane];
      const i64 lo = key_lo(g, t), hi = key_hi(g, len, t);
#pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) {
        const int c = warp + kWarps * i;
        const i64 s = c0 + c;
        const bool visible = lane < nr && c < nc && s >= lo && s <= hi && lse_t > -INFINITY;
        const float p =
            visible ? expf(g.scale * sc[i] - slope * fabsf(float(t - s)) + rel_at(g, t, s, h) - lse_t) : 0.0f;
        Ps[c * kPs + lane] = p;
        dSs[c * kPs + lane] = p * (dp[i] - rd_t);
      }
      __syncwarp();                   // the warp's P and dS rows are written
      for (int r = 0; r < nr; ++r) {  // dV += P^T dO, dK += dS^T Q (scale applied at the end)
        float p[kRowsPerWarp], ds[kRowsPerWarp];
#pragma unroll
        for (int i = 0; i < kRowsPerWarp; ++i) {
          p[i] = Ps[(warp + kWarps * i) * kPs + r];
          ds[i] = dSs[(warp + kWarps * i) * kPs + r];
        }
#pragma unroll
        for (int j = 0; j < kChunks; ++j) {
          if (lane + 32 * j >= D) continue;
          const float qd = Qs[r * lds + lane + 32 * j], dod = dOs[r * lds + lane + 32 * j];
#pragma unroll
          for (int i = 0; i < kRowsPerWarp; ++i) {
            dv_acc[i][j] += p[i] * dod;
            dk_acc[i][j] += ds[i] * qd;
          }
        }
      }
    }
  }
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int c = warp + kWarps * i;
    if (c >= nc) continue;
    T* dkrow = static_cast<T*>(dk.p) + (b * dk.T + c0 + c) * dk.W + hk * D;
    T* dvrow = static_cast<T*>(dv.p) + (b * dv.T + c0 + c) * dv.W + hk * D;
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      const int d = lane + 32 * j;
      if (d < D) {
        st(dkrow, d, g.scale * dk_acc[i][j]);
        st(dvrow, d, dv_acc[i][j]);
      }
    }
  }
}

// ---- backward (3): dQ; one block per (32 query rows, query head, batch row) -------------

template <class T>
__global__ void __launch_bounds__(kBlock)
    flash_dq_kernel(FlashOperand dq, FlashOperand dout, FlashOperand q, FlashOperand k, FlashOperand v,
                    const float* lse, const float* rowdot, FlashGeometry g) {
  extern __shared__ float smem[];
  const int D = int(g.D), lds = D | 1;
  float *Qs = smem, *dOs = Qs + kTile * lds, *Ks = dOs + kTile * lds, *Vs = Ks + kTile * lds;
  float* dSs = Vs + kTile * lds;
  const i64 r0 = i64(blockIdx.x) * kTile, h = blockIdx.y, b = blockIdx.z, hk = h / (g.Hq / g.Hkv);
  const int nr = int(g.Tq - r0 < kTile ? g.Tq - r0 : kTile);
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const i64 len = key_length(g, b);
  const float slope = g.slopes ? g.slopes[h] : 0.0f;
  load_rows<T>(Qs, lds, q, b, r0, nr, h, D);
  load_rows<T>(dOs, lds, dout, b, r0, nr, h, D);
  float lse_r[kRowsPerWarp], rd_r[kRowsPerWarp], dq_acc[kRowsPerWarp][kChunks] = {};
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int r = warp + kWarps * i;
    const i64 at = (b * g.Hq + h) * g.Tq + r0 + r;
    lse_r[i] = r < nr ? lse[at] : -INFINITY;
    rd_r[i] = r < nr ? rowdot[at] : 0.0f;
  }
  const i64 kmin = key_lo(g, r0), kmax = key_hi(g, len, r0 + nr - 1);
  for (i64 c0 = kmin; c0 <= kmax; c0 += kTile) {
    const int nc = int(kmax + 1 - c0 < kTile ? kmax + 1 - c0 : kTile);
    __syncthreads();  // Q, dO loaded; the previous K, V no longer read
    load_rows<T>(Ks, lds, k, b, c0, nc, hk, D);
    load_rows<T>(Vs, lds, v, b, c0, nc, hk, D);
    __syncthreads();
    // lane = key c0 + lane; the warp's query rows r = warp + 4 i
    float sc[kRowsPerWarp] = {}, dp[kRowsPerWarp] = {};
    for (int d = 0; d < D; ++d) {
      const float kd = Ks[lane * lds + d], vd = Vs[lane * lds + d];
#pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) {
        sc[i] += Qs[(warp + kWarps * i) * lds + d] * kd;
        dp[i] += dOs[(warp + kWarps * i) * lds + d] * vd;
      }
    }
    const i64 s = c0 + lane;
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const int r = warp + kWarps * i;
      const i64 t = r0 + r;
      const bool visible =
          r < nr && lane < nc && s >= key_lo(g, t) && s <= key_hi(g, len, t) && lse_r[i] > -INFINITY;
      const float p =
          visible ? expf(g.scale * sc[i] - slope * fabsf(float(t - s)) + rel_at(g, t, s, h) - lse_r[i]) : 0.0f;
      dSs[r * kPs + lane] = p * (dp[i] - rd_r[i]);
    }
    __syncwarp();                   // the warp's dS rows are written
    for (int c = 0; c < nc; ++c) {  // dQ += dS K (scale applied at the end)
      float ds[kRowsPerWarp];
#pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) ds[i] = dSs[(warp + kWarps * i) * kPs + c];
#pragma unroll
      for (int j = 0; j < kChunks; ++j) {
        if (lane + 32 * j >= D) continue;
        const float kd = Ks[c * lds + lane + 32 * j];
#pragma unroll
        for (int i = 0; i < kRowsPerWarp; ++i) dq_acc[i][j] += ds[i] * kd;
      }
    }
  }
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int r = warp + kWarps * i;
    if (r >= nr) continue;
    T* dqrow = static_cast<T*>(dq.p) + (b * dq.T + r0 + r) * dq.W + h * D;
#pragma unroll
    for (int j = 0; j < kChunks; ++j)
      if (lane + 32 * j < D) st(dqrow, lane + 32 * j, g.scale * dq_acc[i][j]);
  }
}

// ---- backward (4): d rel_bias; one block per (32 diagonals, query head, batch row) ------

// 2 * kTile rows of head h of x from key s0 on (s0 may be negative) into dst (stride lds,
// f32); rows outside [0, Tk) are zero. All threads of the block take part.
template <class T>
__device__ void load_keys(float* dst, int lds, FlashOperand x, i64 b, i64 s0, i64 h, int D, i64 Tk) {
  for (int i = threadIdx.x; i < 2 * kTile * D; i += kBlock) {
    const int r = i / D, d = i - r * D;
    const i64 s = s0 + r;
    dst[r * lds + d] = s >= 0 && s < Tk ? ld(static_cast<const T*>(x.p) + (b * x.T + s) * x.W + h * D, d) : 0.0f;
  }
}

// Lane j owns diagonal o = o0 + j: key s = t + shift + j for query t, shift = o0 - (Tq - 1).
// A 32-row query tile [r0, r0 + 32) meets keys [r0 + shift, r0 + shift + 63); row r of the
// tile and lane j use key row r + j of that 64-row window (odd stride: no bank conflicts).
// Warp w sums rows w, w + 4, ... of every tile; the 4 warps' sums are added in order.
template <class T>
__global__ void __launch_bounds__(kBlock)
    flash_drel_kernel(FlashOperand dout, FlashOperand q, FlashOperand k, FlashOperand v, const float* lse,
                      const float* rowdot, FlashGeometry g) {
  extern __shared__ float smem[];
  const int D = int(g.D), lds = D | 1;
  float *Qs = smem, *dOs = Qs + kTile * lds, *Ks = dOs + kTile * lds, *Vs = Ks + 2 * kTile * lds;
  float *lse_s = Vs + 2 * kTile * lds, *rd_s = lse_s + kTile, *part = rd_s + kTile;
  const i64 Toff = g.Tq + g.Tk - 1;
  const i64 o0 = i64(blockIdx.x) * kTile, h = blockIdx.y, b = blockIdx.z, hk = h / (g.Hq / g.Hkv);
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const i64 len = key_length(g, b);
  const float slope = g.slopes ? g.slopes[h] : 0.0f;
  const i64 shift = o0 - (g.Tq - 1);
  // the rows whose diagonals o0.. o0 + 31 hold a key in [0, Tk); under a causal mask no
  // key after the query is visible (shift > 0: none of these diagonals)
  const i64 t_begin = -(shift + kTile - 1) > 0 ? -(shift + kTile - 1) : 0;
  i64 t_end = g.Tk - shift < g.Tq ? g.Tk - shift : g.Tq;
  if (g.causal && shift > 0) t_end = t_begin;
  float acc = 0.0f;
  for (i64 r0 = t_begin; r0 < t_end; r0 += kTile) {
    const int nr = int(t_end - r0 < kTile ? t_end - r0 : kTile);
    __syncthreads();  // the previous tile no longer read
    load_rows<T>(Qs, lds, q, b, r0, nr, h, D);
    load_rows<T>(dOs, lds, dout, b, r0, nr, h, D);
    load_keys<T>(Ks, lds, k, b, r0 + shift, hk, D, g.Tk);
    load_keys<T>(Vs, lds, v, b, r0 + shift, hk, D, g.Tk);
    if (int(threadIdx.x) < kTile) {
      const int r = int(threadIdx.x);
      const i64 at = (b * g.Hq + h) * g.Tq + r0 + r;
      lse_s[r] = r < nr ? lse[at] : -INFINITY;
      rd_s[r] = r < nr ? rowdot[at] : 0.0f;
    }
    __syncthreads();
    float sc[kRowsPerWarp] = {}, dp[kRowsPerWarp] = {};
    for (int d = 0; d < D; ++d) {
#pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) {
        const int r = warp + kWarps * i;
        sc[i] += Qs[r * lds + d] * Ks[(r + lane) * lds + d];
        dp[i] += dOs[r * lds + d] * Vs[(r + lane) * lds + d];
      }
    }
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const int r = warp + kWarps * i;
      const i64 t = r0 + r, s = t + shift + lane;
      const bool visible = r < nr && o0 + lane < Toff && s >= key_lo(g, t) && s <= key_hi(g, len, t) &&
                           lse_s[r] > -INFINITY;
      const float p =
          visible ? expf(g.scale * sc[i] - slope * fabsf(float(t - s)) + rel_at(g, t, s, h) - lse_s[r]) : 0.0f;
      acc += p * (dp[i] - rd_s[r]);
    }
  }
  part[warp * 32 + lane] = acc;
  __syncthreads();
  if (warp == 0 && o0 + lane < Toff) {
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) sum += part[w * 32 + lane];
    g.drel_bias[(b * Toff + o0 + lane) * g.Hq + h] += sum;
  }
}

// Shared memory (bytes) of each kernel for head size D.
std::size_t forward_smem(i64 D) { return sizeof(float) * std::size_t(3 * kTile * (D | 1) + kTile * kPs); }
std::size_t dkdv_smem(i64 D) {
  return sizeof(float) * std::size_t(4 * kTile * (D | 1) + 2 * kTile * kPs + 2 * kTile);
}
std::size_t dq_smem(i64 D) { return sizeof(float) * std::size_t(4 * kTile * (D | 1) + kTile * kPs); }
std::size_t drel_smem(i64 D) {
  return sizeof(float) * std::size_t(6 * kTile * (D | 1) + 2 * kTile + kWarps * 32);
}

// Launches `kernel` with `smem` bytes of dynamic shared memory, raising the kernel's
// limit first when it exceeds the default 48 KiB (D > 64 needs up to 75 KiB; sm_80 and
// sm_90 allow 163 and 227 KiB a block).
template <class Kernel, class... Args>
cudaError_t launch(Kernel kernel, dim3 grid, std::size_t smem, cudaStream_t stream, Args... args) {
  if (smem > 48 * 1024) {
    const cudaError_t err =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    if (err != cudaSuccess) return err;
  }
  kernel<<<grid, kBlock, smem, stream>>>(args...);
  return cudaGetLastError();
}

unsigned tiles(i64 n) { return unsigned((n + kTile - 1) / kTile); }

}  // namespace

cudaError_t launch_flash_attention_forward(void* out, float* lse, FlashOperand q, FlashOperand k,
                                           FlashOperand v, DType t, const FlashGeometry& g,
                                           cudaStream_t stream) {
  if (g.B == 0 || g.Tq == 0) return cudaSuccess;
  const dim3 grid(tiles(g.Tq), unsigned(g.Hq), unsigned(g.B));
  return visit_dtype(t, [&](auto z) {
    using T = decltype(z);
    return launch(flash_forward_kernel<T>, grid, forward_smem(g.D), stream, static_cast<T*>(out), lse, q, k,
                  v, g);
  });
}

cudaError_t launch_flash_attention_backward(FlashOperand dq, FlashOperand dk, FlashOperand dv,
                                            const void* dout, FlashOperand q, FlashOperand k, FlashOperand v,
                                            const void* out, const float* lse, DType t,
                                            const FlashGeometry& g, float* scratch, cudaStream_t stream) {
  if (g.B == 0) return cudaSuccess;
  const FlashOperand dO{const_cast<void*>(dout), g.Tq, g.Hq * g.D};
  return visit_dtype(t, [&](auto z) -> cudaError_t {
    using T = decltype(z);
    cudaError_t err = cudaSuccess;
    if (g.Tq > 0) {
      const i64 rows = g.B * g.Hq * g.Tq;
      err = launch(flash_rowdot_kernel<T>, dim3(unsigned((rows + kWarps - 1) / kWarps)), 0, stream, scratch,
                   static_cast<const T*>(dout), static_cast<const T*>(out), g);
      if (err != cudaSuccess) return err;
    }
    if (g.Tk > 0) {  // every dk, dv row is written, also those no query sees (0)
      err = launch(flash_dkdv_kernel<T>, dim3(tiles(g.Tk), unsigned(g.Hkv), unsigned(g.B)), dkdv_smem(g.D),
                   stream, dk, dv, dO, q, k, v, lse, static_cast<const float*>(scratch), g);
      if (err != cudaSuccess) return err;
    }
    if (g.Tq > 0) {
      err = launch(flash_dq_kernel<T>, dim3(tiles(g.Tq), unsigned(g.Hq), unsigned(g.B)), dq_smem(g.D), stream,
                   dq, dO, q, k, v, lse, static_cast<const float*>(scratch), g);
      if (err != cudaSuccess) return err;
    }
    if (g.drel_bias && g.Tq > 0 && g.Tk > 0)
      err = launch(flash_drel_kernel<T>, dim3(tiles(g.Tq + g.Tk - 1), unsigned(g.Hq), unsigned(g.B)),
                   drel_smem(g.D), stream, dO, q, k, v, lse, static_cast<const float*>(scratch), g);
    return err;
  });
}

}  // namespace loom::cuda
