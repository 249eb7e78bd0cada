// backend/flash_checks.h — the tiled attention's argument checks, shared by the CPU and CUDA
// backends so both reject bad input with the same message (backend/checks.h does this for
// the other ops).
//
// Glossary as backend.h: B batch, Tq query and Tk key positions, Hq query heads, Hkv
// key/value heads, G = Hq / Hkv, D head size. resolve_heads turns a HeadsView into the
// row geometry of its base tensor; check_flash checks q, k, v, out, lse and the spec's
// shapes (not where the memory lives, and not key_lengths' values: the CPU reads those
// on the host, the CUDA backend cannot without a synchronisation).
#pragma once

#include <cmath>
#include <cstdint>

#include "backend/backend.h"
#include "backend/checks.h"

namespace loom::check {

// A resolved HeadsView: element (b, t, h, d) at p + ((b * T + t) * W + h * D + d) * esize.
struct FlashHeads {
  char* p = nullptr;
  std::int64_t B = 0, T = 0, W = 0, H = 0, D = 0, esize = 4;
  DType dtype = DType::f32;
  char* at(std::int64_t b, std::int64_t t, std::int64_t h) const {
    return p + ((b * T + t) * W + h * D) * esize;
  }
};

inline FlashHeads resolve_heads(const char* op, const char* name, const HeadsView& a) {
  const Tensor& x = a.base;
  LOOM_CHECK(x.shape.rank() >= 3, "", "{}: {} is {}; expected (B,T,...) holding the heads", op, name,
             x.str());
  std::int64_t W = 1;
  for (int i = 2; i < x.shape.rank(); ++i) W *= x.shape[i];
  LOOM_CHECK(a.heads > 0 && a.head_dim > 0 && a.offset >= 0 && a.offset + a.heads * a.head_dim <= W, "",
             "{}: {} takes {} heads of {} at offset {} of {}, which does not fit its rows of {} elements", op,
             name, a.heads, a.head_dim, a.offset, x.str(), W);
  not_empty(op, name, x);
  const std::int64_t es = std::int64_t(dtype_size(x.dtype));
  return {
      static_cast<char*>(x.ptr) + a.offset * es, x.shape[0], x.shape[1], W, a.heads, a.head_dim, es, x.dtype};
}

// out / dout (B,T,H*D) as heads.
inline FlashHeads heads_of(Tensor t, std::int64_t H, std::int64_t D) {
  return {static_cast<char*>(t.ptr),         t.shape[0], t.shape[1], H * D, H, D,
          std::int64_t(dtype_size(t.dtype)), t.dtype};
}

struct FlashShape {
  std::int64_t B, Tq, Tk, Hq, Hkv, G, D;
  float scale;  // the spec's, or 1/sqrt(D) for 0
};

inline FlashShape check_flash(const char* op, const FlashHeads& q, const FlashHeads& k, const FlashHeads& v,
                              const Tensor& out, const Tensor& lse, const AttentionSpec& spec) {
  LOOM_CHECK(
      k.B == q.B && v.B == q.B && v.T == k.T && k.H == v.H && k.D == q.D && v.D == q.D && q.H % k.H == 0, "",
      "{}: q has B={} T={} {} heads of {}, k B={} T={} {} heads of {}, v B={} T={} {} heads of {}; k and v "
      "must agree, share q's B and D, and their head count must divide q's",
      op, q.B, q.T, q.H, q.D, k.B, k.T, k.H, k.D, v.B, v.T, v.H, v.D);
  LOOM_CHECK(k.dtype == q.dtype && v.dtype == q.dtype && out.dtype == q.dtype, "",
             "{}: dtypes differ: q {}, k {}, v {}, out {}", op, dtype_name(q.dtype), dtype_name(k.dtype),
             dtype_name(v.dtype), out.str());
  LOOM_CHECK(out.shape == (Shape{q.B, q.T, q.H * q.D}) || out.shape == (Shape{q.B, q.T, q.H, q.D}), "",
             "{}: out is {} but must be ({},{},{})", op, out.str(), q.B, q.T, q.H * q.D);
  LOOM_CHECK(lse.shape == (Shape{q.B, q.H, q.T}), "", "{}: lse is {} but must be ({},{},{})", op, lse.str(),
             q.B, q.H, q.T);
  dtype(op, "lse", lse, DType::f32);
  LOOM_CHECK(spec.window >= 0 && std::isfinite(spec.scale), "",
             "{}: window {} must be >= 0 and scale {} finite", op, spec.window, spec.scale);
  if (spec.key_lengths.ptr)
    LOOM_CHECK(spec.key_lengths.numel() == q.B, "",
               "{}: key_lengths {} must hold one length per sequence (B = {})", op,
               spec.key_lengths.shape.str(), q.B);
  if (!spec.alibi_slopes.empty()) numel(op, "alibi_slopes", spec.alibi_slopes, q.H);
  if (!spec.rel_bias.empty()) {
    LOOM_CHECK(spec.rel_bias.shape == (Shape{q.T + k.T - 1, q.H}), "",
               "{}: rel_bias is {} but must be (Tq + Tk - 1, Hq) = ({},{})", op, spec.rel_bias.str(),
               q.T + k.T - 1, q.H);
    dtype(op, "rel_bias", spec.rel_bias, DType::f32);
  }
  if (!spec.drel_bias.empty()) {
    LOOM_CHECK(!spec.rel_bias.empty(), "", "{}: drel_bias is given without rel_bias", op);
    LOOM_CHECK(spec.drel_bias.shape == (Shape{q.B, q.T + k.T - 1, q.H}), "",
               "{}: drel_bias is {} but must be (B, Tq + Tk - 1, Hq) = ({},{},{})", op, spec.drel_bias.str(),
               q.B, q.T + k.T - 1, q.H);
    dtype(op, "drel_bias", spec.drel_bias, DType::f32);
  }
  const float scale = spec.scale != 0.0f ? spec.scale : 1.0f / std::sqrt(float(q.D));
  return {q.B, q.T, k.T, q.H, k.H, q.H / k.H, q.D, scale};
}

// Backward's extra operands: dq, dk, dv like q, k, v; dout like out.
inline void check_flash_grads(const char* op, const FlashHeads& dq, const FlashHeads& dk,
                              const FlashHeads& dv, const FlashHeads& q, const FlashHeads& k,
                              const FlashHeads& v, const Tensor& dout, const Tensor& out) {
  auto same = [&](const char* n, const FlashHeads& d, const FlashHeads& x) {
    LOOM_CHECK(d.B == x.B && d.T == x.T && d.H == x.H && d.D == x.D && d.dtype == x.dtype, "",
               "{}: {} has B={} T={} {} heads of {} {} but must match ({},{},{} heads of {} {})", op, n, d.B,
               d.T, d.H, d.D, dtype_name(d.dtype), x.B, x.T, x.H, x.D, dtype_name(x.dtype));
  };
  same("dq", dq, q), same("dk", dk, k), same("dv", dv, v);
  same_shape(op, "dout", dout, "out", out);
  dtype(op, "dout", dout, q.dtype);
}

}  // namespace loom::check
