// backend/cpu/kernels.h — the CPU kernels behind CpuBackend, one file per family.
//
// Each function validates its arguments (backend/checks.h) and runs an OpenMP
// kernel; the CpuBackend class (cpu_backend.cpp) only forwards to these.
// Semantics are those documented in backend/backend.h.
#pragma once

#include "backend/backend.h"
#include "backend/cpu/context.h"
#include "backend/cpu/convert.h"

namespace loom::cpu {

// ---- gemm.cpp: the one GEMM entry point. f32 -> OpenBLAS sgemm (oneDNN where
// OpenBLAS is generic: Context::f32_on_dnnl); bf16 x bf16 -> bf16/f32 -> oneDNN
// matmul (AMX / AVX-512 BF16); anything else (f16, mixed dtypes, or bf16 inside an
// OpenMP parallel region) is widened to f32 in the context's scratch and run by
// sgemm.h's sgemm. Row-major; ld* are row strides.
struct ConstMat { DType dtype; const void* ptr; std::int64_t ld; };
struct Mat { DType dtype; void* ptr; std::int64_t ld; };
void gemm(Context& ctx, Trans ta, Trans tb, std::int64_t M, std::int64_t N, std::int64_t K, float alpha,
          ConstMat a, ConstMat b, float beta, Mat c);

void matmul(Context& ctx, Tensor out, Tensor a, Tensor b, Tensor bias, MatmulOpts opts);
void bias_backward(Tensor dbias, Tensor dout);

// ---- elementwise.cpp
void fill(Tensor x, float value);
void scale(Tensor x, float alpha);
void axpy(Tensor y, float alpha, Tensor x);
void add(Tensor out, Tensor a, Tensor b);
void cast(Tensor dst, Tensor src);
double sum(Tensor x);
double sum_squares(Tensor x);
void gelu_forward(Tensor out, Tensor x);
void gelu_backward(Tensor dx, Tensor dout, Tensor x);
void softmax_forward(Tensor out, Tensor x);
void softmax_backward(Tensor dx, Tensor dout, Tensor y);
void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWArgs& args);

// ---- layernorm.cpp
void layernorm_forward(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor weight, Tensor bias, float eps);
void layernorm_backward(Tensor dx, Tensor dweight, Tensor dbias, Tensor dout, Tensor x, Tensor weight,
                        Tensor mean, Tensor rstd, Accumulate dx_acc);

// ---- attention.cpp
void attention_forward(Context& ctx, Tensor out, Tensor probs, Tensor qkv, int heads);
void attention_backward(Context& ctx, Tensor dqkv, Tensor scratch, Tensor dout, Tensor qkv, Tensor probs,
                        int heads);

// ---- rmsnorm.cpp
void rmsnorm_forward(Tensor out, Tensor rstd, Tensor x, Tensor weight, float eps);
void rmsnorm_backward(Tensor dx, Tensor dweight, Tensor dout, Tensor x, Tensor weight, Tensor rstd,
                      Accumulate dx_acc);

// ---- activations.cpp
void relu_forward(Tensor out, Tensor x);
void relu_backward(Tensor dx, Tensor dout, Tensor x);
void swiglu_forward(Tensor out, Tensor h);
void swiglu_backward(Tensor dh, Tensor dout, Tensor h);

// ---- rope.cpp
void rope(Tensor qkv, int heads, int kv_heads, float base, bool inverse);

// ---- grouped_attention.cpp
void grouped_attention_forward(Context& ctx, Tensor out, Tensor probs, Tensor qkv, const AttentionHeads& a);
void grouped_attention_backward(Context& ctx, Tensor dqkv, Tensor scratch, Tensor dout, Tensor qkv, Tensor probs,
                                const AttentionHeads& a);

// ---- flash_attention.cpp: the tiled attention (backend.h, "memory-efficient tiled attention")
void flash_attention_forward(Context& ctx, Tensor out, Tensor lse, HeadsView q, HeadsView k,
                             HeadsView v, const AttentionSpec& spec);
void flash_attention_backward(Context& ctx, HeadsView dq, HeadsView dk, HeadsView dv, Tensor dout,
                              HeadsView q, HeadsView k, HeadsView v, Tensor out, Tensor lse,
                              const AttentionSpec& spec);

// ---- embedding.cpp
void embedding_forward(Tensor out, TokenView tokens, Tensor wte, Tensor wpe, std::int64_t vocab_start);
void embedding_backward(Tensor dwte, Tensor dwpe, Tensor dout, TokenView tokens, std::int64_t vocab_start);

// ---- cross_entropy.cpp
void cross_entropy_shard_max(Tensor max, Tensor logits, std::int64_t vocab_start, std::int64_t vocab);
void cross_entropy_shard_sumexp(Tensor stats, Tensor logits, Tensor max, TokenView targets,
                                std::int64_t vocab_start, std::int64_t vocab);
void cross_entropy_loss(Tensor lse, Tensor losses, Tensor max, Tensor stats, TokenView targets);
void cross_entropy_shard_backward(Tensor dlogits, Tensor logits, TokenView targets, std::int64_t vocab_start,
                                  std::int64_t vocab, Tensor lse, float dloss);

// Typed element access for the kernels (ld: load as f32, st: store with rounding)
// is in backend/cpu/convert.h.

}  // namespace loom::cpu
