// backend/cpu/cpu_backend.cpp — CpuBackend: host memory and the forwarding of each op
// to its kernel (backend/cpu/*.cpp), after checking every tensor is host memory.
#include "backend/cpu/cpu_backend.h"

#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include "backend/checks.h"
#include "backend/cpu/kernels.h"

namespace loom {

namespace {

void on_host(const char* op, std::initializer_list<Tensor> ts) {
  for (const Tensor& t : ts) check::device(op, "a tensor", t, Device::cpu);
}

class CpuBackend final : public Backend {
public:
  Device device() const override { return Device::cpu; }

  void* allocate(std::size_t bytes) override {
    const std::size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    LOOM_CHECK(p != nullptr, "reduce the batch or model size; the memory plan printed at start says what needs it",
               "cpu allocate: out of memory allocating {} bytes", bytes);
    count_alloc(bytes);
    return p;
  }
  void deallocate(void* p, std::size_t bytes) override {
    std::free(p);
    count_free(bytes);
  }

  void copy(Tensor dst, Tensor src) override {
    on_host("copy", {dst, src});
    LOOM_CHECK(dst.bytes() == src.bytes(), "", "copy: dst {} and src {} differ in size", dst.str(), src.str());
    if (dst.ptr != src.ptr && src.bytes()) std::memcpy(dst.ptr, src.ptr, src.bytes());
  }
  void synchronize() override {}

  void fill(Tensor x, float v) override { on_host("fill", {x}), cpu::fill(x, v); }
  void scale(Tensor x, float a) override { on_host("scale", {x}), cpu::scale(x, a); }
  void axpy(Tensor y, float a, Tensor x) override { on_host("axpy", {y, x}), cpu::axpy(y, a, x); }
  void add(Tensor o, Tensor a, Tensor b) override { on_host("add", {o, a, b}), cpu::add(o, a, b); }
  void cast(Tensor d, Tensor s) override { on_host("cast", {d, s}), cpu::cast(d, s); }
  double sum(Tensor x) override { return on_host("sum", {x}), cpu::sum(x); }
  double sum_squares(Tensor x) override { return on_host("sum_squares", {x}), cpu::sum_squares(x); }

  void matmul(Tensor out, Tensor a, Tensor b, Tensor bias, MatmulOpts opts) override {
    on_host("matmul", {out, a, b, bias});
    cpu::matmul(ctx_, out, a, b, bias, opts);
  }
  void bias_backward(Tensor dbias, Tensor dout) override {
    on_host("bias_backward", {dbias, dout});
    cpu::bias_backward(dbias, dout);
  }

  void layernorm_forward(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor w, Tensor b,
                         float eps) override {
    on_host("layernorm_forward", {out, mean, rstd, x, w, b});
    cpu::layernorm_forward(out, mean, rstd, x, w, b, eps);
  }
  void layernorm_backward(Tensor dx, Tensor dw, Tensor db, Tensor dout, Tensor x, Tensor w, Tensor mean,
                          Tensor rstd, Accumulate acc) override {
    on_host("layernorm_backward", {dx, dw, db, dout, x, w, mean, rstd});
    cpu::layernorm_backward(dx, dw, db, dout, x, w, mean, rstd, acc);
  }

  void gelu_forward(Tensor out, Tensor x) override { on_host("gelu_forward", {out, x}), cpu::gelu_forward(out, x); }
  void gelu_backward(Tensor dx, Tensor dout, Tensor x) override {
    on_host("gelu_backward", {dx, dout, x});
    cpu::gelu_backward(dx, dout, x);
  }
  void softmax_forward(Tensor out, Tensor x) override {
    on_host("softmax_forward", {out, x});
    cpu::softmax_forward(out, x);
  }
  void softmax_backward(Tensor dx, Tensor dout, Tensor y) override {
    on_host("softmax_backward", {dx, dout, y});
    cpu::softmax_backward(dx, dout, y);
  }

  void attention_forward(Tensor out, Tensor probs, Tensor qkv, int heads) override {
    on_host("attention_forward", {out, probs, qkv});
    cpu::attention_forward(ctx_, out, probs, qkv, heads);
  }
  void attention_backward(Tensor dqkv, Tensor scratch, Tensor dout, Tensor qkv, Tensor probs, int heads) override {
    on_host("attention_backward", {dqkv, scratch, dout, qkv, probs});
    cpu::attention_backward(ctx_, dqkv, scratch, dout, qkv, probs, heads);
  }

  void rmsnorm_forward(Tensor out, Tensor rstd, Tensor x, Tensor w, float eps) override {
    on_host("rmsnorm_forward", {out, rstd, x, w});
    cpu::rmsnorm_forward(out, rstd, x, w, eps);
  }
  void rmsnorm_backward(Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w, Tensor rstd, Accumulate acc) override {
    on_host("rmsnorm_backward", {dx, dw, dout, x, w, rstd});
    cpu::rmsnorm_backward(dx, dw, dout, x, w, rstd, acc);
  }
  void relu_forward(Tensor out, Tensor x) override { on_host("relu_forward", {out, x}), cpu::relu_forward(out, x); }
  void relu_backward(Tensor dx, Tensor dout, Tensor x) override {
    on_host("relu_backward", {dx, dout, x});
    cpu::relu_backward(dx, dout, x);
  }
  void swiglu_forward(Tensor out, Tensor h) override { on_host("swiglu_forward", {out, h}), cpu::swiglu_forward(out, h); }
  void swiglu_backward(Tensor dh, Tensor dout, Tensor h) override {
    on_host("swiglu_backward", {dh, dout, h});
    cpu::swiglu_backward(dh, dout, h);
  }
  void rope_forward(Tensor qkv, int heads, int kv_heads, float base) override {
    on_host("rope_forward", {qkv});
    cpu::rope(qkv, heads, kv_heads, base, false);
  }
  void rope_backward(Tensor dqkv, int heads, int kv_heads, float base) override {
    on_host("rope_backward", {dqkv});
    cpu::rope(dqkv, heads, kv_heads, base, true);
  }
  void grouped_attention_forward(Tensor out, Tensor probs, Tensor qkv, const AttentionHeads& a) override {
    on_host("grouped_attention_forward", {out, probs, qkv, a.alibi_slopes});
    cpu::grouped_attention_forward(ctx_, out, probs, qkv, a);
  }
  void grouped_attention_backward(Tensor dqkv, Tensor scratch, Tensor dout, Tensor qkv, Tensor probs,
                                  const AttentionHeads& a) override {
    on_host("grouped_attention_backward", {dqkv, scratch, dout, qkv, probs, a.alibi_slopes});
    cpu::grouped_attention_backward(ctx_, dqkv, scratch, dout, qkv, probs, a);
  }

  void flash_attention_forward(Tensor out, Tensor lse, HeadsView q, HeadsView k, HeadsView v,
                               const AttentionSpec& spec) override {
    on_host("flash_attention_forward", {out, lse, q.base, k.base, v.base, spec.alibi_slopes, spec.rel_bias});
    check::device("flash_attention_forward", "key_lengths", Tensor{const_cast<std::int32_t*>(spec.key_lengths.ptr),
                  {}, DType::f32, spec.key_lengths.device}, Device::cpu);
    cpu::flash_attention_forward(ctx_, out, lse, q, k, v, spec);
  }
  void flash_attention_backward(HeadsView dq, HeadsView dk, HeadsView dv, Tensor dout, HeadsView q,
                                HeadsView k, HeadsView v, Tensor out, Tensor lse,
                                const AttentionSpec& spec) override {
    on_host("flash_attention_backward",
            {dq.base, dk.base, dv.base, dout, q.base, k.base, v.base, out, lse, spec.alibi_slopes, spec.rel_bias,
             spec.drel_bias});
    check::device("flash_attention_backward", "key_lengths", Tensor{const_cast<std::int32_t*>(spec.key_lengths.ptr),
                  {}, DType::f32, spec.key_lengths.device}, Device::cpu);
    cpu::flash_attention_backward(ctx_, dq, dk, dv, dout, q, k, v, out, lse, spec);
  }

  void embedding_forward(Tensor out, TokenView tokens, Tensor wte, Tensor wpe, std::int64_t vocab_start) override {
    on_host("embedding_forward", {out, wte, wpe});
    cpu::embedding_forward(out, tokens, wte, wpe, vocab_start);
  }
  void embedding_backward(Tensor dwte, Tensor dwpe, Tensor dout, TokenView tokens,
                          std::int64_t vocab_start) override {
    on_host("embedding_backward", {dwte, dwpe, dout});
    cpu::embedding_backward(dwte, dwpe, dout, tokens, vocab_start);
  }

  void cross_entropy_shard_max(Tensor max, Tensor logits, std::int64_t vocab_start,
                               std::int64_t vocab) override {
    on_host("cross_entropy_shard_max", {max, logits});
    cpu::cross_entropy_shard_max(max, logits, vocab_start, vocab);
  }
  void cross_entropy_shard_sumexp(Tensor stats, Tensor logits, Tensor max, TokenView targets,
                                  std::int64_t vocab_start, std::int64_t vocab) override {
    on_host("cross_entropy_shard_sumexp", {stats, logits, max});
    cpu::cross_entropy_shard_sumexp(stats, logits, max, targets, vocab_start, vocab);
  }
  void cross_entropy_loss(Tensor lse, Tensor losses, Tensor max, Tensor stats, TokenView targets) override {
    on_host("cross_entropy_loss", {lse, losses, max, stats});
    cpu::cross_entropy_loss(lse, losses, max, stats, targets);
  }
  void cross_entropy_shard_backward(Tensor dlogits, Tensor logits, TokenView targets, std::int64_t vocab_start,
                                    std::int64_t vocab, Tensor lse, float dloss) override {
    on_host("cross_entropy_shard_backward", {dlogits, logits, lse});
    cpu::cross_entropy_shard_backward(dlogits, logits, targets, vocab_start, vocab, lse, dloss);
  }

  void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWArgs& args) override {
    on_host("adamw", {param, grad, m, v});
    cpu::adamw(param, grad, m, v, args);
  }

private:
  cpu::Context ctx_;  // oneDNN primitive cache and per-thread scratch
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace loom
