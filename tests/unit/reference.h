// tests/unit/reference.h — naive double-precision references for the Backend ops, for tests.
//
// Written from the comments in backend/backend.h, not from any backend: every
// function here is the textbook loop in double. Also: host tensor helpers
// (make/read/write through to_float/from_float), a tolerance check that reports
// the worst element, and central finite differences of a scalar objective.
// Shapes follow the glossary: N rows, C channels, B, T, H heads, D head size, Vp.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numbers>
#include <random>
#include <sstream>
#include <vector>

#include "backend/backend.h"
#include "core/buffer.h"
#include "core/dtype.h"

namespace loom::ref {

using Vec = std::vector<double>;
using i64 = std::int64_t;

// ---- data ---------------------------------------------------------------------------

inline Vec randn(i64 n, std::uint64_t seed, double scale = 1.0, double mean = 0.0) {
  std::mt19937_64 g(seed);
  std::normal_distribution<double> d(mean, scale);
  Vec v(n);
  for (auto& x : v) x = d(g);
  return v;
}

inline std::vector<std::int32_t> rand_tokens(i64 n, std::int32_t lo, std::int32_t hi, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  std::uniform_int_distribution<std::int32_t> d(lo, hi - 1);
  std::vector<std::int32_t> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

inline void write(Tensor t, const Vec& v) {
  visit_dtype(t.dtype, [&](auto z) {
    using T = decltype(z);
    T* p = t.data<T>();
    for (i64 i = 0; i < t.numel(); ++i) p[i] = from_float<T>(float(v[i]));
  });
}

inline Vec read(Tensor t) {
  Vec v(t.numel());
  visit_dtype(t.dtype, [&](auto z) {
    using T = decltype(z);
    const T* p = t.data<T>();
    for (i64 i = 0; i < t.numel(); ++i) v[i] = double(to_float(p[i]));
  });
  return v;
}

// A buffer from the backend holding `v` rounded to `dt`; `v` is replaced by the
// stored (rounded) values so references see exactly what the op sees.
inline Buffer make(Allocator& a, Shape s, DType dt, Vec& v) {
  Buffer b(a, s, dt);
  write(b.tensor(), v);
  v = read(b.tensor());
  return b;
}
inline Buffer make(Allocator& a, Shape s, DType dt, Vec&& v) { return make(a, s, dt, v); }
inline Buffer filled(Allocator& a, Shape s, DType dt, double value) {
  Vec v(s.numel(), value);
  return make(a, s, dt, v);
}

inline TokenView tokens(const std::vector<std::int32_t>& t, Shape s) {
  return TokenView{t.data(), s, Device::cpu};
}

// ---- comparison -----------------------------------------------------------------------

inline double rms(const Vec& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return v.empty() ? 0 : std::sqrt(s / double(v.size()));
}

// Passes when |got - want| <= tol * (|want| + rms(want)) + atol for every element:
// relative error, with the tensor's typical size as the floor for elements near zero.
inline ::testing::AssertionResult near(const Vec& got, const Vec& want, double tol, double atol = 0) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " vs " << want.size();
  const double floor = rms(want);
  i64 bad = 0, worst = -1;
  double worst_ratio = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double bound = tol * (std::fabs(want[i]) + floor) + atol + 1e-30;
    const double ratio = std::fabs(got[i] - want[i]) / bound;
    if (!(ratio <= 1)) ++bad;
    if (!(ratio <= worst_ratio)) worst_ratio = ratio, worst = i64(i);
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << got.size() << " elements off (tol " << tol
                                       << ", rms " << floor << "); worst [" << worst << "] got " << got[worst]
                                       << " want " << want[worst] << " (" << worst_ratio << "x the bound)";
}

// Every element exactly equal.
inline ::testing::AssertionResult equal(const Vec& got, const Vec& want) {
  for (size_t i = 0; i < got.size(); ++i)
    if (!(got[i] == want[i]) && !(std::isnan(got[i]) && std::isnan(want[i])))
      return ::testing::AssertionFailure() << "[" << i << "] got " << got[i] << " want " << want[i];
  return ::testing::AssertionSuccess();
}

// ---- finite differences ------------------------------------------------------------------

// Indices to check: all when n <= cap, else the first, the last and cap-2 random ones.
inline std::vector<i64> sample(i64 n, i64 cap = 400, std::uint64_t seed = 5) {
  std::vector<i64> idx;
  if (n <= cap) {
    for (i64 i = 0; i < n; ++i) idx.push_back(i);
    return idx;
  }
  idx = {0, n - 1};
  std::mt19937_64 g(seed);
  std::uniform_int_distribution<i64> d(0, n - 1);
  while (i64(idx.size()) < cap) idx.push_back(d(g));
  return idx;
}

// (L(x + h e_i) - L(x - h e_i)) / 2h for i in idx, in double; x is restored.
inline Vec fd_grad(Vec& x, const std::function<double()>& L, const std::vector<i64>& idx, double h = 1e-4) {
  Vec g;
  for (i64 i : idx) {
    const double x0 = x[i];
    x[i] = x0 + h;
    const double lp = L();
    x[i] = x0 - h;
    const double lm = L();
    x[i] = x0;
    g.push_back((lp - lm) / (2 * h));
  }
  return g;
}

inline Vec gather(const Vec& v, const std::vector<i64>& idx) {
  Vec out;
  for (i64 i : idx) out.push_back(v[i]);
  return out;
}

// sum(a * b)
inline double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// ---- the ops, in double -------------------------------------------------------------------

// (M,N) = op(a) op(b); a is (M,K) or, transposed, (K,M); b is (K,N) or (N,K).
inline Vec matmul(const Vec& a, const Vec& b, i64 M, i64 N, i64 K, bool ta, bool tb) {
  Vec out(M * N, 0.0);
  for (i64 m = 0; m < M; ++m)
    for (i64 n = 0; n < N; ++n) {
      double s = 0;
      for (i64 k = 0; k < K; ++k)
        s += (ta ? a[k * M + m] : a[m * K + k]) * (tb ? b[n * K + k] : b[k * N + n]);
      out[m * N + n] = s;
    }
  return out;
}

// y (N,C) = (x - mean) / sqrt(var + eps) * w + b, var the biased (population) variance.
inline Vec layernorm(const Vec& x, const Vec& w, const Vec& b, i64 N, i64 C, double eps, Vec* mean = nullptr,
                     Vec* rstd = nullptr) {
  Vec y(N * C);
  if (mean) mean->assign(N, 0);
  if (rstd) rstd->assign(N, 0);
  for (i64 n = 0; n < N; ++n) {
    const double* r = &x[n * C];
    double mu = 0;
    for (i64 c = 0; c < C; ++c) mu += r[c];
    mu /= C;
    double var = 0;
    for (i64 c = 0; c < C; ++c) var += (r[c] - mu) * (r[c] - mu);
    var /= C;
    const double rs = 1 / std::sqrt(var + eps);
    for (i64 c = 0; c < C; ++c) y[n * C + c] = (r[c] - mu) * rs * w[c] + b[c];
    if (mean) (*mean)[n] = mu;
    if (rstd) (*rstd)[n] = rs;
  }
  return y;
}

inline double gelu(double x) {
  const double k = std::sqrt(2 / std::numbers::pi);
  return 0.5 * x * (1 + std::tanh(k * (x + 0.044715 * x * x * x)));
}
inline Vec gelu(const Vec& x) {
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = gelu(x[i]);
  return y;
}

// softmax over the last dim of (N,C) (max-subtracted, in double).
inline Vec softmax(const Vec& x, i64 N, i64 C) {
  Vec y(N * C);
  for (i64 n = 0; n < N; ++n) {
    double mx = -INFINITY, s = 0;
    for (i64 c = 0; c < C; ++c) mx = std::max(mx, x[n * C + c]);
    for (i64 c = 0; c < C; ++c) s += std::exp(x[n * C + c] - mx);
    for (i64 c = 0; c < C; ++c) y[n * C + c] = std::exp(x[n * C + c] - mx) / s;
  }
  return y;
}

// qkv (B,T,3*H*D): q | k | v on the last dim, head h at [h*D, (h+1)*D) inside each.
// Returns out (B,T,H*D); probs (B,H,T,T) with zeros above the diagonal.
inline Vec attention(const Vec& qkv, i64 B, i64 T, i64 H, i64 D, Vec* probs = nullptr) {
  const i64 C = H * D;
  Vec out(B * T * C, 0.0), p(B * H * T * T, 0.0);
  const double scale = 1 / std::sqrt(double(D));
  auto at = [&](i64 b, i64 t, i64 part, i64 h, i64 d) {
    return qkv[(b * T + t) * 3 * C + part * C + h * D + d];
  };
  for (i64 b = 0; b < B; ++b)
    for (i64 h = 0; h < H; ++h)
      for (i64 t = 0; t < T; ++t) {
        double* row = &p[((b * H + h) * T + t) * T];
        double mx = -INFINITY;
        for (i64 s = 0; s <= t; ++s) {
          double dot = 0;
          for (i64 d = 0; d < D; ++d) dot += at(b, t, 0, h, d) * at(b, s, 1, h, d);
          row[s] = dot * scale;
          mx = std::max(mx, row[s]);
        }
        double sum = 0;
        for (i64 s = 0; s <= t; ++s) sum += row[s] = std::exp(row[s] - mx);
        for (i64 s = 0; s <= t; ++s) row[s] /= sum;
        for (i64 d = 0; d < D; ++d) {
          double acc = 0;
          for (i64 s = 0; s <= t; ++s) acc += row[s] * at(b, s, 2, h, d);
          out[(b * T + t) * C + h * D + d] = acc;
        }
      }
  if (probs) *probs = p;
  return out;
}

// out (B,T,C) = wte[tok - vocab_start] (zero outside [vocab_start, vocab_start + V)) + wpe[t].
inline Vec embedding(const std::vector<std::int32_t>& tok, const Vec& wte, i64 V, const Vec& wpe, i64 B,
                     i64 T, i64 C, i64 vocab_start) {
  Vec out(B * T * C, 0.0);
  for (i64 b = 0; b < B; ++b)
    for (i64 t = 0; t < T; ++t) {
      const i64 row = i64(tok[b * T + t]) - vocab_start;
      for (i64 c = 0; c < C; ++c) {
        double v = (row >= 0 && row < V) ? wte[row * C + c] : 0.0;
        if (!wpe.empty()) v += wpe[t * C + c];
        out[(b * T + t) * C + c] = v;
      }
    }
  return out;
}

// log(sum(exp(logits[n, :vocab]))) per row (max-subtracted); logits (N, Vp).
inline Vec log_sum_exp(const Vec& logits, i64 N, i64 Vp, i64 vocab) {
  Vec lse(N);
  for (i64 n = 0; n < N; ++n) {
    const double* r = &logits[n * Vp];
    double mx = -INFINITY, s = 0;
    for (i64 c = 0; c < vocab; ++c) mx = std::max(mx, r[c]);
    for (i64 c = 0; c < vocab; ++c) s += std::exp(r[c] - mx);
    lse[n] = mx + std::log(s);
  }
  return lse;
}

// losses (N) = logsumexp(logits[n, :vocab]) - logits[n, target]; 0 where target < 0
// ("not a target"). logits (N, Vp).
inline Vec cross_entropy(const Vec& logits, const std::vector<std::int32_t>& target, i64 N, i64 Vp,
                         i64 vocab) {
  const Vec lse = log_sum_exp(logits, N, Vp, vocab);
  Vec loss(N, 0.0);
  for (i64 n = 0; n < N; ++n)
    if (target[n] >= 0) loss[n] = lse[n] - logits[n * Vp + target[n]];
  return loss;
}

// d(dloss * sum(losses)) / d logits (N, Vp): dloss * (softmax - onehot(target)) on
// the first `vocab` columns, 0 on padding and on rows whose target < 0.
inline Vec cross_entropy_grad(const Vec& logits, const std::vector<std::int32_t>& target, i64 N, i64 Vp,
                              i64 vocab, double dloss) {
  const Vec lse = log_sum_exp(logits, N, Vp, vocab);
  Vec g(N * Vp, 0.0);
  for (i64 n = 0; n < N; ++n)
    if (target[n] >= 0)
      for (i64 c = 0; c < vocab; ++c)
        g[n * Vp + c] = dloss * (std::exp(logits[n * Vp + c] - lse[n]) - (c == target[n] ? 1.0 : 0.0));
  return g;
}

// ---- the vocabulary-parallel loss, driven as the model drives it -----------------------

// logits (N, Vp) split by columns into `parts` shards of ceil(Vp / parts) columns
// (the last may be narrower, none empty), each a backend buffer of dtype dt
// holding the values rounded to dt.
struct Shards {
  std::vector<Buffer> logits;
  std::vector<i64> start;  // the global column of each shard's column 0
};
inline Shards split_columns(Allocator& a, const Vec& logits, i64 N, i64 Vp, int parts, DType dt) {
  const i64 width = (Vp + parts - 1) / parts;
  Shards s;
  for (i64 begin = 0; begin < Vp; begin += width) {
    const i64 Vs = std::min(width, Vp - begin);
    Vec part(N * Vs);
    for (i64 n = 0; n < N; ++n)
      for (i64 j = 0; j < Vs; ++j) part[n * Vs + j] = logits[n * Vp + begin + j];
    s.logits.push_back(make(a, {N, Vs}, dt, part));
    s.start.push_back(begin);
  }
  return s;
}

// max and sumexp of every shard, reduced over shards on the host as tp.all_reduce
// does (max, then sum), then cross_entropy_loss: lse (N) written, losses (N) +=.
inline void sharded_loss(Backend& be, const Shards& s, TokenView targets, i64 vocab, Tensor lse,
                         Tensor losses) {
  const i64 N = lse.numel();
  std::vector<float> max(N, -INFINITY), part_max(N), stats(2 * N, 0.0f), part(2 * N);
  for (const Buffer& b : s.logits) {
    const i64 r = &b - s.logits.data();
    be.cross_entropy_shard_max(host_tensor(part_max.data(), Shape{N}), b, s.start[r], vocab);
    for (i64 n = 0; n < N; ++n) max[n] = std::max(max[n], part_max[n]);
  }
  for (const Buffer& b : s.logits) {
    const i64 r = &b - s.logits.data();
    be.cross_entropy_shard_sumexp(host_tensor(part.data(), Shape{2, N}), b, host_tensor(max.data(), Shape{N}),
                                  targets, s.start[r], vocab);
    for (i64 k = 0; k < 2 * N; ++k) stats[k] += part[k];
  }
  be.cross_entropy_loss(lse, losses, host_tensor(max.data(), Shape{N}),
                        host_tensor(stats.data(), Shape{2, N}), targets);
}

// One torch.optim.AdamW step, element by element, in double.
inline void adamw(Vec& p, const Vec& grad, Vec& m, Vec& v, const AdamWArgs& a) {
  const double b1 = a.beta1, b2 = a.beta2;
  const double bc1 = 1 - std::pow(b1, double(a.step)), bc2 = 1 - std::pow(b2, double(a.step));
  for (size_t i = 0; i < p.size(); ++i) {
    const double g = grad[i] * double(a.grad_scale);
    p[i] *= 1 - double(a.lr) * double(a.weight_decay);
    m[i] = b1 * m[i] + (1 - b1) * g;
    v[i] = b2 * v[i] + (1 - b2) * g * g;
    const double denom = std::sqrt(v[i]) / std::sqrt(bc2) + double(a.eps);
    p[i] -= double(a.lr) / bc1 * m[i] / denom;
  }
}

}  // namespace loom::ref
