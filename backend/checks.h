// backend/checks.h — argument checks shared by every backend, so that CPU and CUDA
// reject the same bad input with the same message ("<op>: <what> ...").
#pragma once

#include <cmath>
#include <string_view>
#include <utility>

#include "backend/adamw_math.h"
#include "backend/backend.h"
#include "core/error.h"
#include "core/tensor.h"

namespace loom::check {

inline void same_shape(std::string_view op, std::string_view na, const Tensor& a, std::string_view nb,
                       const Tensor& b) {
  LOOM_CHECK(a.shape == b.shape, "", "{}: {} is {} but {} is {}; they must have the same shape", op, na,
             a.str(), nb, b.str());
}

inline void numel(std::string_view op, std::string_view name, const Tensor& t, std::int64_t n) {
  LOOM_CHECK(t.numel() == n, "", "{}: {} is {} but must hold {} elements", op, name, t.str(), n);
}

inline void dtype(std::string_view op, std::string_view name, const Tensor& t, DType want) {
  LOOM_CHECK(t.dtype == want, "", "{}: {} is {} but must be {}", op, name, t.str(), dtype_name(want));
}

inline void device(std::string_view op, std::string_view name, const Tensor& t, Device want) {
  LOOM_CHECK(t.empty() || t.device == want, "move the tensor to the backend's device first",
             "{}: {} lives on {} but this is the {} backend", op, name, device_name(t.device),
             device_name(want));
}

inline void not_empty(std::string_view op, std::string_view name, const Tensor& t) {
  LOOM_CHECK(!t.empty() || t.numel() == 0, "", "{}: {} {} has no memory", op, name, t.str());
}

// ---- cross-entropy (backend.h): logits (N, Vs) hold global vocabulary columns
// [vocab_start, vocab_start + Vs); per-row vectors are f32 (N), stats planar (2, N).
inline void vocab_shard(std::string_view op, const Tensor& logits, std::int64_t vocab_start,
                        std::int64_t vocab) {
  LOOM_CHECK(vocab > 0 && vocab_start >= 0, "",
             "{}: vocab {} must be positive and vocab_start {} non-negative (logits {})", op, vocab,
             vocab_start, logits.str());
}

inline void row_f32(std::string_view op, std::string_view name, const Tensor& t, std::int64_t rows) {
  numel(op, name, t, rows);
  dtype(op, name, t, DType::f32);
}

inline void planar_stats(std::string_view op, const Tensor& stats, std::int64_t rows) {
  LOOM_CHECK(stats.shape == (Shape{2, rows}), "", "{}: stats is {} but must be (2,{}) for {} rows", op,
             stats.str(), rows, rows);
  dtype(op, "stats", stats, DType::f32);
}

// One target id per row of `of` (the logits, or a per-row vector).
inline void targets(std::string_view op, const TokenView& targets, std::int64_t rows, const Tensor& of) {
  LOOM_CHECK(targets.numel() == rows, "", "{}: targets {} must hold one id per row of {} ({} rows)", op,
             targets.shape.str(), of.str(), rows);
}

// One dtype for several tensors of an op (the CUDA kernels take one storage type).
inline void same_dtype(std::string_view op, std::string_view na, const Tensor& a, std::string_view nb,
                       const Tensor& b) {
  LOOM_CHECK(a.dtype == b.dtype, "", "{}: {} is {} but {} is {}; they must have the same dtype", op, na, a.str(), nb,
             b.str());
}

// Causal attention (backend.h): qkv (B,T,3*H*D), probs (B,H,T,T) f32.
struct AttentionDims {
  std::int64_t B, T, H, D;
};
inline AttentionDims attention_dims(std::string_view op, const Tensor& qkv, const Tensor& probs, int heads) {
  LOOM_CHECK(qkv.shape.rank() == 3 && heads > 0 && qkv.shape[2] % (3 * heads) == 0, "",
             "{}: qkv is {}; expected (B,T,3*H*D) with H = {} heads", op, qkv.str(), heads);
  const AttentionDims d{qkv.shape[0], qkv.shape[1], heads, qkv.shape[2] / (3 * heads)};
  LOOM_CHECK(probs.shape == (Shape{d.B, d.H, d.T, d.T}), "", "{}: probs is {} but must be ({},{},{},{}) for qkv {}",
             op, probs.str(), d.B, d.H, d.T, d.T, qkv.str());
  dtype(op, "probs", probs, DType::f32);
  return d;
}

// Embedding (backend.h): tokens (B,T) and out / dout (B,T,C).
inline void embedding_tokens(std::string_view op, const TokenView& tokens, const Tensor& out) {
  LOOM_CHECK(out.shape.rank() == 3 && tokens.shape.rank() == 2 && out.shape[0] == tokens.shape[0] &&
                 out.shape[1] == tokens.shape[1],
             "", "{}: tokens are {} and out/dout is {}; expected tokens (B,T) and (B,T,C)", op, tokens.shape.str(),
             out.str());
}

// matmul's sizes from its operands: a is (M,K) or, transposed, (K,M); b is (K,N)
// or (N,K); leading dims are the last dims. Checks inner dims, out and bias.
struct MatmulDims {
  std::int64_t M, N, K;
};
inline MatmulDims matmul_dims(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& bias,
                              const MatmulOpts& opts) {
  const std::int64_t M = opts.trans_a == Trans::no ? a.shape.rows() : a.shape.last();
  const std::int64_t Ka = opts.trans_a == Trans::no ? a.shape.last() : a.shape.rows();
  const std::int64_t Kb = opts.trans_b == Trans::no ? b.shape.rows() : b.shape.last();
  const std::int64_t N = opts.trans_b == Trans::no ? b.shape.last() : b.shape.rows();
  LOOM_CHECK(Ka == Kb, "", "matmul: inner dimensions differ: a is {}{} and b is {}{}", a.str(),
             opts.trans_a == Trans::yes ? " (transposed)" : "", b.str(),
             opts.trans_b == Trans::yes ? " (transposed)" : "");
  LOOM_CHECK(out.shape.rows() == M && out.shape.last() == N, "",
             "matmul: out is {} but op(a) op(b) is ({},{}) for a {} and b {}", out.str(), M, N, a.str(), b.str());
  if (!bias.empty()) numel("matmul", "bias", bias, N);
  return {M, N, Ka};
}

// The AdamW arguments, checked, turned into the per-element scalars (bias
// corrections computed in double, once) that both backends' kernels use.
inline AdamWScalars adamw_args(Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWArgs& a) {
  for (auto [name, t] : {std::pair{"param", param}, {"grad", grad}, {"m", m}, {"v", v}})
    dtype("adamw", name, t, DType::f32);
  same_shape("adamw", "grad", grad, "param", param);
  same_shape("adamw", "m", m, "param", param);
  same_shape("adamw", "v", v, "param", param);
  LOOM_CHECK(a.step >= 1, "", "adamw: step must be >= 1 (1-based for bias correction), got {}", a.step);
  return AdamWScalars{a.lr,
                      a.beta1,
                      a.beta2,
                      a.eps,
                      a.weight_decay,
                      a.grad_scale,
                      float(1.0 - std::pow(double(a.beta1), double(a.step))),
                      float(1.0 - std::pow(double(a.beta2), double(a.step)))};
}

}  // namespace loom::check
