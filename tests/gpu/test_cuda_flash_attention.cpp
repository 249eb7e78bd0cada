// tests/gpu/test_cuda_flash_attention.cpp — the tiled (flash) attention ops and the staging
// copies on CUDA against the CPU backend.
//
// Every case runs flash_attention_forward and _backward on both backends from the same
// inputs (rounded to the dtype first, so both see the same bits) and compares out, lse,
// dq, dk, dv; every output starts poisoned (NaN), so an element a kernel forgets shows.
// Cases: causal self-attention through views into a fused qkv (and dqkv), bidirectional,
// sliding windows (causal and not), key lengths with a length-0 sequence, ALiBi, a custom
// scale, grouped-query heads (G = 3, Hkv = 1), cross-attention (Tq != Tk, separate q and
// k/v tensors), odd T and D, D above 64 (more than 48 KiB of shared memory) and D = 128,
// a relative bias (T5; rel_bias, and drel_bias accumulated onto a nonzero start);
// f32, bf16 and f16. Tolerances: op_tol relative to the largest magnitude (1e-5 f32,
// 1e-2 bf16, 2e-3 f16); lse 1e-5 relative (f32 in every case). Also: the backward is
// bitwise deterministic, bad input throws (D > 128, key lengths on the host), and
// upload_async from a staging Buffer equals copy. Skipped, saying so, without a GPU.
#include "tests/gpu/cuda_vs_cpu.h"

#include "core/error.h"

namespace loom {
namespace {

class CudaFlashVsCpu : public CudaVsCpu {};

struct Case {
  std::int64_t B, Tq, Hq, Hkv, D;
  bool causal = true;
  std::int64_t window = 0;
  std::vector<std::int32_t> len;  // empty: no padding mask
  bool alibi = false;
  float scale = 0.0f;
  std::int64_t Tk = 0;  // > 0: cross-attention, separate q and k/v tensors
  bool rel = false;     // a relative bias (Tq + Tk - 1, Hq) and its gradient (B, Tq + Tk - 1, Hq)
  std::int64_t keys() const { return Tk ? Tk : Tq; }
  std::string str(DType t) const {
    std::string s = label(t) + " B=" + std::to_string(B) + " Tq=" + std::to_string(Tq) +
                    " Tk=" + std::to_string(keys()) + " Hq=" + std::to_string(Hq) +
                    " Hkv=" + std::to_string(Hkv) + " D=" + std::to_string(D) +
                    (causal ? " causal" : " bidir");
    if (window) s += " window=" + std::to_string(window);
    if (!len.empty()) s += " padded";
    if (alibi) s += " alibi";
    if (scale != 0.0f) s += " scale";
    if (rel) s += " rel";
    return s;
  }
};

// One backend's operands of a case: q, k, v (views of a fused qkv for self-attention,
// separate tensors for cross-attention), their gradients (poisoned), out, lse (poisoned),
// dout, the key lengths and slopes in this backend's memory.
struct Operands {
  Buffer qkv, q, kv, dqkv, dq, dkv, out, lse, dout, len, slopes, rel, drel;
  HeadsView vq, vk, vv, vdq, vdk, vdv;
  AttentionSpec spec;

  Operands(Backend& be, const Case& c, DType t, std::uint64_t stream) {
    const std::int64_t B = c.B, Tq = c.Tq, Tk = c.keys(), Hq = c.Hq, Hkv = c.Hkv, D = c.D;
    if (c.Tk == 0) {  // self-attention through the layer's fused layout
      const Shape s{B, Tq, (Hq + 2 * Hkv) * D};
      qkv = upload(be, randn(s.numel(), stream + 1), s, t);
      dqkv = poisoned(be, s, t);
      vq = HeadsView::in(qkv, 0, Hq, D), vk = HeadsView::in(qkv, Hq * D, Hkv, D);
      vv = HeadsView::in(qkv, (Hq + Hkv) * D, Hkv, D);
      vdq = HeadsView::in(dqkv, 0, Hq, D), vdk = HeadsView::in(dqkv, Hq * D, Hkv, D);
      vdv = HeadsView::in(dqkv, (Hq + Hkv) * D, Hkv, D);
    } else {  // q (B,Tq,Hq*D); k and v side by side in one (B,Tk,2*Hkv*D) tensor
      const Shape sq{B, Tq, Hq * D}, skv{B, Tk, 2 * Hkv * D};
      q = upload(be, randn(sq.numel(), stream + 1), sq, t);
      kv = upload(be, randn(skv.numel(), stream + 2), skv, t);
      dq = poisoned(be, sq, t), dkv = poisoned(be, skv, t);
      vq = HeadsView::of(q, Hq), vk = HeadsView::in(kv, 0, Hkv, D), vv = HeadsView::in(kv, Hkv * D, Hkv, D);
      vdq = HeadsView::of(dq, Hq), vdk = HeadsView::in(dkv, 0, Hkv, D),
      vdv = HeadsView::in(dkv, Hkv * D, Hkv, D);
    }
    out = poisoned(be, {B, Tq, Hq * D}, t);
    lse = poisoned(be, {B, Hq, Tq}, DType::f32);
    dout = upload(be, randn(B * Tq * Hq * D, stream + 3), {B, Tq, Hq * D}, t);
    spec.causal = c.causal, spec.window = c.window, spec.scale = c.scale;
    if (!c.len.empty()) {
      len = upload_ids(be, c.len, {B});
      spec.key_lengths = ids_of(len, {B});
    }
    if (c.alibi) {
      std::vector<float> s(static_cast<std::size_t>(Hq));
      for (std::int64_t h = 0; h < Hq; ++h)
        s[std::size_t(h)] = std::pow(2.0f, -8.0f * float(h + 1) / float(Hq));
      slopes = upload(be, s, {Hq}, DType::f32);
      spec.alibi_slopes = slopes;
    }
    if (c.rel) {
      const std::int64_t Toff = Tq + Tk - 1;
      rel = upload(be, randn(Toff * Hq, stream + 4), {Toff, Hq}, DType::f32);
      drel = upload(be, std::vector<float>(std::size_t(B * Toff * Hq), 0.5f), {B, Toff, Hq}, DType::f32);
      spec.rel_bias = rel, spec.drel_bias = drel;
    }
  }
  void forward(Backend& be) { be.flash_attention_forward(out, lse, vq, vk, vv, spec); }
  void backward(Backend& be) { be.flash_attention_backward(vdq, vdk, vdv, dout, vq, vk, vv, out, lse, spec); }
};

const Case kCases[] = {
    {.B = 2, .Tq = 67, .Hq = 4, .Hkv = 4, .D = 32},                                // causal MHA, 3 tiles
    {.B = 1, .Tq = 45, .Hq = 6, .Hkv = 2, .D = 17, .alibi = true},                 // GQA, odd D, ALiBi
    {.B = 2, .Tq = 50, .Hq = 3, .Hkv = 1, .D = 64, .causal = false, .window = 9},  // MQA, local window
    {.B = 1, .Tq = 70, .Hq = 2, .Hkv = 2, .D = 128, .window = 33, .scale = 0.3f},  // causal window, D 128
    {.B = 3, .Tq = 29, .Hq = 4, .Hkv = 2, .D = 96, .causal = false, .len = {0, 23, 40}, .Tk = 40},  // cross,
                                                                                                    // padded
    {.B = 2, .Tq = 40, .Hq = 2, .Hkv = 1, .D = 8, .len = {19, 7}, .alibi = true, .Tk = 19},  // causal cross
    {.B = 2, .Tq = 1, .Hq = 1, .Hkv = 1, .D = 1, .causal = false},                           // the smallest
    {.B = 2, .Tq = 67, .Hq = 6, .Hkv = 2, .D = 32, .rel = true},                             // T5 decoder, GQA
    {.B = 3, .Tq = 29, .Hq = 4, .Hkv = 2, .D = 96, .causal = false, .len = {0, 23, 40}, .Tk = 40, .rel = true},
    {.B = 1, .Tq = 70, .Hq = 2, .Hkv = 2, .D = 128, .causal = false, .alibi = true, .rel = true},  // D 128
};

TEST_F(CudaFlashVsCpu, ForwardAndBackwardMatchCpu) {
  std::uint64_t stream = 9000;
  for (DType t : kDTypes)
    for (const Case& c : kCases) {
      const std::string what = c.str(t);
      stream += 10;
      Operands g(gpu(), c, t, stream), h(cpu(), c, t, stream);
      g.forward(gpu());
      h.forward(cpu());
      compare(gpu(), g.out, cpu(), h.out, op_tol(t), "out " + what);
      const std::vector<float> lse_g = download(gpu(), g.lse), lse_c = download(cpu(), h.lse);
      expect_no_nan(lse_g, "lse " + what);
      expect_close(lse_g, lse_c, 1e-5, 1e-5, "lse " + what);
      g.backward(gpu());
      h.backward(cpu());
      if (c.Tk == 0) {
        compare(gpu(), g.dqkv, cpu(), h.dqkv, op_tol(t), "dqkv " + what);
      } else {
        compare(gpu(), g.dq, cpu(), h.dq, op_tol(t), "dq " + what);
        compare(gpu(), g.dkv, cpu(), h.dkv, op_tol(t), "dk, dv " + what);
      }
      if (c.rel) compare(gpu(), g.drel, cpu(), h.drel, op_tol(t), "drel " + what);
    }
}

TEST_F(CudaFlashVsCpu, BackwardIsDeterministic) {
  const Case c{.B = 2, .Tq = 75, .Hq = 6, .Hkv = 2, .D = 40, .alibi = true};
  Operands g(gpu(), c, DType::f32, 9900);
  g.forward(gpu());
  g.backward(gpu());
  const std::vector<std::byte> first = bytes_of(gpu(), g.dqkv);
  for (int run = 0; run < 3; ++run) {
    gpu().fill(g.dqkv, std::numeric_limits<float>::quiet_NaN());
    g.backward(gpu());
    EXPECT_EQ(bytes_of(gpu(), g.dqkv), first) << "run " << run;
  }
  const Case r{.B = 2, .Tq = 75, .Hq = 4, .Hkv = 2, .D = 40, .causal = false, .rel = true};
  Operands h(gpu(), r, DType::f32, 9910);
  h.forward(gpu());
  h.backward(gpu());
  const std::vector<std::byte> drel = bytes_of(gpu(), h.drel);
  for (int run = 0; run < 3; ++run) {
    gpu().fill(h.drel, 0.5f);
    h.backward(gpu());
    EXPECT_EQ(bytes_of(gpu(), h.drel), drel) << "drel, run " << run;
  }
}

TEST_F(CudaFlashVsCpu, RefusesHeadsAbove128AndHostKeyLengths) {
  const Case big{.B = 1, .Tq = 4, .Hq = 1, .Hkv = 1, .D = 129};
  Operands g(gpu(), big, DType::f32, 9950);
  try {
    g.forward(gpu());
    FAIL() << "D = 129 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("head size D = 129"), std::string::npos) << e.what();
  }
  const Case small{.B = 1, .Tq = 4, .Hq = 1, .Hkv = 1, .D = 8};
  Operands s(gpu(), small, DType::f32, 9960);
  const std::int32_t host_len[1] = {3};
  s.spec.key_lengths = TokenView{host_len, Shape{1}, Device::cpu};
  try {
    s.forward(gpu());
    FAIL() << "key lengths in host memory were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("key_lengths"), std::string::npos) << e.what();
  }
}

// A staging Buffer is host memory (page-locked here) and upload_async from it lands what
// copy would; so does upload_async from ordinary host memory (the synchronous path).
TEST_F(CudaFlashVsCpu, UploadFromStagingMemoryEqualsCopy) {
  const std::int64_t n = 4099;
  const std::vector<float> v = randn(n, 9970);
  Buffer staging(gpu(), {n}, DType::f32, Memory::staging);
  ASSERT_EQ(staging.tensor().device, Device::cpu);
  std::copy(v.begin(), v.end(), staging.data<float>());
  Buffer a(gpu(), {n}, DType::f32), b(gpu(), {n}, DType::f32);
  gpu().upload_async(a, staging);
  std::vector<float> pageable = v;
  gpu().upload_async(b, host_tensor(pageable.data(), Shape{n}));
  gpu().synchronize();
  EXPECT_EQ(download(gpu(), a), v);
  EXPECT_EQ(download(gpu(), b), v);
}

}  // namespace
}  // namespace loom
