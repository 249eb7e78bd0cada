// tests/gpu/test_cuda_ops_vs_cpu.cpp — the model's ops on CUDA against the CPU reference.
//
// Layernorm, GELU, softmax, causal attention, embedding, the four
// vocabulary-parallel cross-entropy ops, and the modern decoder's RMSNorm, ReLU,
// SwiGLU, RoPE and grouped-query / ALiBi attention, forward and backward, in f32,
// bf16 and f16, on random inputs with odd sizes. Every written output is poisoned (NaN)
// first, so an element the kernel forgets shows up; accumulated outputs start
// from random values. Tolerances (relative, or relative to the largest magnitude
// where sums may cancel): 1e-5 f32, 1e-2 bf16, 2e-3 f16 (op_tol). Skipped, saying
// so, without a GPU (cuda_vs_cpu.h).
#include "tests/gpu/cuda_vs_cpu.h"

namespace loom {
namespace {

class CudaOpsVsCpu : public CudaVsCpu {};

// Uniform ids in [lo, hi) from the test's seed.
std::vector<std::int32_t> random_ids(std::int64_t n, std::uint64_t stream, std::int32_t lo, std::int32_t hi) {
  const std::vector<float> u = randu(n, stream, 0.0f, 1.0f);
  std::vector<std::int32_t> ids(u.size());
  for (std::size_t i = 0; i < u.size(); ++i)
    ids[i] = std::min(hi - 1, lo + std::int32_t(u[i] * float(hi - lo)));
  return ids;
}

std::string shape_label(DType t, std::initializer_list<std::int64_t> dims) {
  std::string s = label(t) + " (";
  for (std::int64_t d : dims) s += std::to_string(d) + ",";
  s.back() = ')';
  return s;
}

// ---- layernorm ----------------------------------------------------------------------

TEST_F(CudaOpsVsCpu, LayernormForwardAndBackwardMatchCpu) {
  struct NC {
    std::int64_t N, C;
  };
  std::uint64_t stream = 2000;
  for (DType t : kDTypes)
    for (DType tg : {t, DType::f32})  // parameter gradients in the working dtype or f32 (main_grad)
      for (NC s : {NC{1, 1}, NC{3, 17}, NC{65, 768}, NC{300, 65}, NC{7, 4099}})
        for (Accumulate acc : {Accumulate::no, Accumulate::yes}) {
          const std::string what = shape_label(t, {s.N, s.C}) + " grads " + label(tg) +
                                   (acc == Accumulate::yes ? " dx +=" : " dx =");
          const Shape sx{s.N, s.C}, sc{s.C}, sn{s.N};
          const std::vector<float> x = randn(s.N * s.C, ++stream, 2.0f), w = randn(s.C, ++stream),
                                   b = randn(s.C, ++stream), dout = randn(s.N * s.C, ++stream),
                                   dx0 = randn(s.N * s.C, ++stream), dw0 = randn(s.C, ++stream),
                                   db0 = randn(s.C, ++stream);
          Buffer gx = upload(gpu(), x, sx, t), gw = upload(gpu(), w, sc, t), gb = upload(gpu(), b, sc, t);
          Buffer cx = upload(cpu(), x, sx, t), cw = upload(cpu(), w, sc, t), cb = upload(cpu(), b, sc, t);
          Buffer go = poisoned(gpu(), sx, t), gm = poisoned(gpu(), sn, DType::f32),
                 gr = poisoned(gpu(), sn, DType::f32);
          Buffer co(cpu(), sx, t), cm(cpu(), sn, DType::f32), cr(cpu(), sn, DType::f32);
          gpu().layernorm_forward(go, gm, gr, gx, gw, gb, 1e-5f);
          cpu().layernorm_forward(co, cm, cr, cx, cw, cb, 1e-5f);
          compare(gpu(), go, cpu(), co, op_tol(t), "layernorm out " + what);
          compare(gpu(), gm, cpu(), cm, 1e-5, "layernorm mean " + what);
          compare(gpu(), gr, cpu(), cr, 1e-5, "layernorm rstd " + what);

          Buffer gd = upload(gpu(), dout, sx, t), cd = upload(cpu(), dout, sx, t);
          Buffer gdx = acc == Accumulate::yes ? upload(gpu(), dx0, sx, t) : poisoned(gpu(), sx, t);
          Buffer cdx = upload(cpu(), dx0, sx, t);
          Buffer gdw = upload(gpu(), dw0, sc, tg), gdb = upload(gpu(), db0, sc, tg);
          Buffer cdw = upload(cpu(), dw0, sc, tg), cdb = upload(cpu(), db0, sc, tg);
          // The CPU's saved statistics for both, so backward is compared on its own.
          gpu().copy(gm, cm);
          gpu().copy(gr, cr);
          gpu().layernorm_backward(gdx, gdw, gdb, gd, gx, gw, gm, gr, acc);
          cpu().layernorm_backward(cdx, cdw, cdb, cd, cx, cw, cm, cr, acc);
          compare(gpu(), gdx, cpu(), cdx, op_tol(t), "layernorm dx " + what);
          compare(gpu(), gdw, cpu(), cdw, op_tol(tg == DType::f32 ? t : tg), "layernorm dweight " + what);
          compare(gpu(), gdb, cpu(), cdb, op_tol(tg == DType::f32 ? t : tg), "layernorm dbias " + what);
          if (HasFailure()) return;
        }
}

TEST_F(CudaOpsVsCpu, LayernormBackwardIsDeterministic) {
  const std::int64_t N = 4099, C = 257;
  const std::vector<float> x = randn(N * C, 2100), w = randn(C, 2101), dout = randn(N * C, 2102);
  Buffer gx = upload(gpu(), x, {N, C}, DType::bf16), gw = upload(gpu(), w, {C}, DType::bf16),
         gb = upload(gpu(), w, {C}, DType::bf16), gd = upload(gpu(), dout, {N, C}, DType::bf16);
  Buffer go(gpu(), {N, C}, DType::bf16), gm(gpu(), {N}, DType::f32), gr(gpu(), {N}, DType::f32),
      gdx(gpu(), {N, C}, DType::bf16);
  gpu().layernorm_forward(go, gm, gr, gx, gw, gb, 1e-5f);
  std::vector<std::vector<std::byte>> runs;
  for (int run = 0; run < 2; ++run) {
    Buffer gdw(gpu(), {C}, DType::f32), gdb(gpu(), {C}, DType::f32);
    gpu().fill(gdw, 0.0f);
    gpu().fill(gdb, 0.0f);
    gpu().layernorm_backward(gdx, gdw, gdb, gd, gx, gw, gm, gr, Accumulate::no);
    runs.push_back(bytes_of(gpu(), gdw));
    runs.push_back(bytes_of(gpu(), gdb));
  }
  EXPECT_EQ(runs[0], runs[2]) << "dweight differs run to run";
  EXPECT_EQ(runs[1], runs[3]) << "dbias differs run to run";
}

// ---- GELU and softmax -----------------------------------------------------------------

TEST_F(CudaOpsVsCpu, GeluForwardAndBackwardMatchCpu) {
  for (DType t : kDTypes)
    for (std::int64_t n : kSizes) {
      const std::string what = shape_label(t, {n});
      const std::vector<float> x = randn(n, 2200, 3.0f), dout = randn(n, 2201);
      Buffer gx = upload(gpu(), x, {n}, t), cx = upload(cpu(), x, {n}, t);
      Buffer go = poisoned(gpu(), {n}, t), co(cpu(), {n}, t);
      gpu().gelu_forward(go, gx);
      cpu().gelu_forward(co, cx);
      compare(gpu(), go, cpu(), co, op_tol(t), "gelu out " + what);
      Buffer gd = upload(gpu(), dout, {n}, t), cd = upload(cpu(), dout, {n}, t);
      Buffer gdx = poisoned(gpu(), {n}, t), cdx(cpu(), {n}, t);
      gpu().gelu_backward(gdx, gd, gx);
      cpu().gelu_backward(cdx, cd, cx);
      compare(gpu(), gdx, cpu(), cdx, op_tol(t), "gelu dx " + what);
      gpu().gelu_backward(gd, gd, gx);  // dx aliases dout
      compare(gpu(), gd, cpu(), cdx, op_tol(t), "gelu dx in place " + what);
    }
}

TEST_F(CudaOpsVsCpu, SoftmaxForwardAndBackwardMatchCpu) {
  struct RN {
    std::int64_t rows, n;
  };
  for (DType t : kDTypes)
    for (RN s : {RN{1, 1}, RN{3, 17}, RN{65, 768}, RN{2, 4099}, RN{1000, 3}}) {
      const std::string what = shape_label(t, {s.rows, s.n});
      const Shape sh{s.rows, s.n};
      const std::vector<float> x = randn(s.rows * s.n, 2300, 4.0f), dout = randn(s.rows * s.n, 2301);
      Buffer gx = upload(gpu(), x, sh, t), cx = upload(cpu(), x, sh, t);
      Buffer gy = poisoned(gpu(), sh, t), cy(cpu(), sh, t);
      gpu().softmax_forward(gy, gx);
      cpu().softmax_forward(cy, cx);
      compare(gpu(), gy, cpu(), cy, op_tol(t), "softmax out " + what);
      Buffer gd = upload(gpu(), dout, sh, t), cd = upload(cpu(), dout, sh, t);
      Buffer gdx = poisoned(gpu(), sh, t), cdx(cpu(), sh, t);
      gpu().copy(gy, cy);  // the same y for both
      gpu().softmax_backward(gdx, gd, gy);
      cpu().softmax_backward(cdx, cd, cy);
      compare(gpu(), gdx, cpu(), cdx, op_tol(t), "softmax dx " + what);
    }
}

// ---- attention ----------------------------------------------------------------------

TEST_F(CudaOpsVsCpu, AttentionForwardAndBackwardMatchCpu) {
  struct Dims {
    std::int64_t B, T, H, D;
  };
  std::uint64_t stream = 2400;
  for (DType t : kDTypes)
    for (Dims d : {Dims{1, 1, 1, 1}, Dims{2, 5, 3, 4}, Dims{1, 17, 2, 8}, Dims{3, 33, 1, 7}, Dims{2, 64, 4, 16}}) {
      const std::string what = shape_label(t, {d.B, d.T, d.H, d.D});
      const std::int64_t C = d.H * d.D;
      const Shape sqkv{d.B, d.T, 3 * C}, sout{d.B, d.T, C}, sp{d.B, d.H, d.T, d.T};
      const std::vector<float> qkv = randn(d.B * d.T * 3 * C, ++stream), dout = randn(d.B * d.T * C, ++stream);
      Buffer gq = upload(gpu(), qkv, sqkv, t), cq = upload(cpu(), qkv, sqkv, t);
      Buffer go = poisoned(gpu(), sout, t), gp = poisoned(gpu(), sp, DType::f32);
      Buffer co(cpu(), sout, t), cp(cpu(), sp, DType::f32);
      gpu().attention_forward(go, gp, gq, int(d.H));
      cpu().attention_forward(co, cp, cq, int(d.H));
      compare(gpu(), gp, cpu(), cp, 1e-5, "attention probs " + what);
      compare(gpu(), go, cpu(), co, op_tol(t), "attention out " + what);

      Buffer gd = upload(gpu(), dout, sout, t), cd = upload(cpu(), dout, sout, t);
      Buffer gdq = poisoned(gpu(), sqkv, t), gs = poisoned(gpu(), sp, DType::f32);
      Buffer cdq(cpu(), sqkv, t), cs(cpu(), sp, DType::f32);
      gpu().copy(gp, cp);  // the same probabilities for both
      gpu().attention_backward(gdq, gs, gd, gq, gp, int(d.H));
      cpu().attention_backward(cdq, cs, cd, cq, cp, int(d.H));
      compare(gpu(), gdq, cpu(), cdq, op_tol(t), "attention dqkv " + what);
      if (HasFailure()) return;
    }
}

// ---- embedding ----------------------------------------------------------------------

TEST_F(CudaOpsVsCpu, EmbeddingForwardAndBackwardMatchCpu) {
  struct Case {
    std::int64_t B, T, C, Vs, vocab_start;
    bool wpe;
  };
  // Tokens are drawn from [0, 2 Vs + vocab_start): some fall outside the shard.
  const Case cases[] = {{1, 1, 1, 1, 0, true},     {2, 5, 17, 7, 0, true},    {3, 17, 65, 11, 5, false},
                        {2, 33, 768, 50, 25, true}, {4, 300, 3, 4, 0, true}};
  std::uint64_t stream = 2500;
  for (DType t : kDTypes)
    for (DType tg : {t, DType::f32})
      for (const Case& k : cases) {
        const std::string what = shape_label(t, {k.B, k.T, k.C, k.Vs, k.vocab_start}) + " grads " + label(tg) +
                                 (k.wpe ? "" : " no wpe");
        const Shape sout{k.B, k.T, k.C}, ste{k.Vs, k.C}, spe{k.T + 2, k.C}, stok{k.B, k.T};
        const std::vector<std::int32_t> ids =
            random_ids(k.B * k.T, ++stream, 0, std::int32_t(2 * k.Vs + k.vocab_start));
        const std::vector<float> wte = randn(k.Vs * k.C, ++stream), wpe = randn((k.T + 2) * k.C, ++stream),
                                 dout = randn(k.B * k.T * k.C, ++stream), dwte0 = randn(k.Vs * k.C, ++stream),
                                 dwpe0 = randn((k.T + 2) * k.C, ++stream);
        Buffer gids = upload_ids(gpu(), ids, stok);
        Buffer gte = upload(gpu(), wte, ste, t), gpe = upload(gpu(), wpe, spe, t);
        Buffer cte = upload(cpu(), wte, ste, t), cpe = upload(cpu(), wpe, spe, t);
        Buffer go = poisoned(gpu(), sout, t), co(cpu(), sout, t);
        const TokenView host_ids{ids.data(), stok, Device::cpu};
        gpu().embedding_forward(go, ids_of(gids, stok), gte, k.wpe ? gpe.tensor() : Tensor{}, k.vocab_start);
        cpu().embedding_forward(co, host_ids, cte, k.wpe ? cpe.tensor() : Tensor{}, k.vocab_start);
        compare(gpu(), go, cpu(), co, op_tol(t), "embedding out " + what);

        Buffer gd = upload(gpu(), dout, sout, t), cd = upload(cpu(), dout, sout, t);
        Buffer gdte = upload(gpu(), dwte0, ste, tg), gdpe = upload(gpu(), dwpe0, spe, tg);
        Buffer cdte = upload(cpu(), dwte0, ste, tg), cdpe = upload(cpu(), dwpe0, spe, tg);
        gpu().embedding_backward(gdte, k.wpe ? gdpe.tensor() : Tensor{}, gd, ids_of(gids, stok), k.vocab_start);
        cpu().embedding_backward(cdte, k.wpe ? cdpe.tensor() : Tensor{}, cd, host_ids, k.vocab_start);
        // Same order of adds, same rounding: equal up to f32 contraction differences.
        compare(gpu(), gdte, cpu(), cdte, op_tol(tg), "embedding dwte " + what);
        compare(gpu(), gdpe, cpu(), cdpe, op_tol(tg), "embedding dwpe " + what);
        gpu().embedding_backward(Tensor{}, gdpe, gd, ids_of(gids, stok), k.vocab_start);  // dwte skipped
        cpu().embedding_backward(Tensor{}, cdpe, cd, host_ids, k.vocab_start);
        compare(gpu(), gdpe, cpu(), cdpe, op_tol(tg), "embedding dwpe only " + what);
        if (HasFailure()) return;
      }
}

TEST_F(CudaOpsVsCpu, EmbeddingBackwardIsDeterministicAndRefusesHostIds) {
  const std::int64_t B = 8, T = 256, C = 96, V = 40;  // many repeats of each token
  const std::vector<std::int32_t> ids = random_ids(B * T, 2600, 0, std::int32_t(V));
  const std::vector<float> dout = randn(B * T * C, 2601);
  Buffer gids = upload_ids(gpu(), ids, {B, T}), gd = upload(gpu(), dout, {B, T, C}, DType::bf16);
  std::vector<std::vector<std::byte>> runs;
  for (int run = 0; run < 2; ++run) {
    Buffer gdte(gpu(), {V, C}, DType::f32);
    gpu().fill(gdte, 0.0f);
    gpu().embedding_backward(gdte, Tensor{}, gd, ids_of(gids, {B, T}), 0);
    runs.push_back(bytes_of(gpu(), gdte));
  }
  EXPECT_EQ(runs[0], runs[1]) << "dwte differs run to run";
  Buffer go(gpu(), {B, T, C}, DType::bf16), gte(gpu(), {V, C}, DType::bf16);
  EXPECT_THROW(gpu().embedding_forward(go, TokenView{ids.data(), {B, T}, Device::cpu}, gte, Tensor{}, 0), Error);
}

// ---- cross-entropy --------------------------------------------------------------------

TEST_F(CudaOpsVsCpu, CrossEntropyOpsMatchCpu) {
  struct Case {
    std::int64_t N, Vs, vocab_start, vocab;
  };
  // vocab_start 0 and Vs = Vp (one rank), a middle shard, a shard with padding, and
  // a shard holding padding only.
  const Case cases[] = {{1, 1, 0, 1},        {3, 17, 0, 15},      {65, 768, 0, 700}, {7, 65, 65, 200},
                        {33, 129, 129, 200}, {5, 64, 256, 256},   {2, 4099, 0, 4097}};
  std::uint64_t stream = 2700;
  for (DType t : kDTypes)
    for (const Case& k : cases) {
      const std::string what = shape_label(t, {k.N, k.Vs, k.vocab_start, k.vocab});
      const Shape sl{k.N, k.Vs}, sn{k.N}, ss{2, k.N};
      std::vector<std::int32_t> targets = random_ids(k.N, ++stream, 0, std::int32_t(k.vocab));
      for (std::size_t i = 0; i < targets.size(); i += 3) targets[i] = -1;  // ignored rows
      if (k.N > 1) targets[1] = std::int32_t(std::min(k.vocab - 1, k.vocab_start));  // one on this shard
      const std::vector<float> logits = randn(k.N * k.Vs, ++stream, 3.0f), loss0 = randn(k.N, ++stream);
      Buffer gl = upload(gpu(), logits, sl, t), cl = upload(cpu(), logits, sl, t);
      Buffer gt = upload_ids(gpu(), targets, sn);
      const TokenView gtv = ids_of(gt, sn), ctv{targets.data(), sn, Device::cpu};

      Buffer gmax = poisoned(gpu(), sn, DType::f32), cmax(cpu(), sn, DType::f32);
      gpu().cross_entropy_shard_max(gmax, gl, k.vocab_start, k.vocab);
      cpu().cross_entropy_shard_max(cmax, cl, k.vocab_start, k.vocab);
      const std::vector<float> got_max = download(gpu(), gmax), want_max = download(cpu(), cmax);
      expect_no_nan(got_max, "shard_max " + what);
      expect_close(got_max, want_max, 0.0, 0.0, "shard_max " + what);  // a max is exact (-inf included)

      // The rest from a finite global max (a shard of padding only has max -inf).
      std::vector<float> global_max = want_max;
      for (float& m : global_max) m = std::isinf(m) ? 1.0f : m;
      Buffer gm = upload(gpu(), global_max, sn, DType::f32), cm = upload(cpu(), global_max, sn, DType::f32);
      Buffer gs = poisoned(gpu(), ss, DType::f32), cs(cpu(), ss, DType::f32);
      gpu().cross_entropy_shard_sumexp(gs, gl, gm, gtv, k.vocab_start, k.vocab);
      cpu().cross_entropy_shard_sumexp(cs, cl, cm, ctv, k.vocab_start, k.vocab);
      compare(gpu(), gs, cpu(), cs, 1e-5, "shard_sumexp " + what);

      // loss on the CPU's stats, with a positive sum everywhere (padding-only shards have 0).
      std::vector<float> stats = download(cpu(), cs);
      for (std::int64_t i = 0; i < k.N; ++i) stats[std::size_t(i)] += 0.5f;
      Buffer gst = upload(gpu(), stats, ss, DType::f32), cst = upload(cpu(), stats, ss, DType::f32);
      Buffer glse = poisoned(gpu(), sn, DType::f32), clse(cpu(), sn, DType::f32);
      Buffer gloss = upload(gpu(), loss0, sn, DType::f32), closs = upload(cpu(), loss0, sn, DType::f32);
      gpu().cross_entropy_loss(glse, gloss, gm, gst, gtv);
      cpu().cross_entropy_loss(clse, closs, cm, cst, ctv);
      compare(gpu(), glse, cpu(), clse, 1e-5, "cross_entropy_loss lse " + what);
      compare(gpu(), gloss, cpu(), closs, 1e-5, "cross_entropy_loss losses " + what);

      // Backward on the GPU's lse for both (it equals the CPU's within 1e-5).
      Buffer clse_gpu = upload(cpu(), download(gpu(), glse), sn, DType::f32);
      Buffer gdl = poisoned(gpu(), sl, t), cdl2(cpu(), sl, t);
      gpu().cross_entropy_shard_backward(gdl, gl, gtv, k.vocab_start, k.vocab, glse, 0.37f);
      cpu().cross_entropy_shard_backward(cdl2, cl, ctv, k.vocab_start, k.vocab, clse_gpu, 0.37f);
      compare(gpu(), gdl, cpu(), cdl2, op_tol(t), "shard_backward " + what);
      gpu().cross_entropy_shard_backward(gl, gl, gtv, k.vocab_start, k.vocab, glse, 0.37f);  // in place
      compare(gpu(), gl, cpu(), cdl2, op_tol(t), "shard_backward in place " + what);
      if (HasFailure()) return;
    }
}

TEST_F(CudaOpsVsCpu, TargetAtOrAboveTheVocabularyThrowsAtTheNextSynchronisation) {
  const std::int64_t N = 4, V = 10;
  const std::vector<std::int32_t> targets = {1, -1, 10, 3};  // 10 is not below V
  Buffer gl = upload(gpu(), randn(N * V, 2800), {N, V}, DType::f32), gt = upload_ids(gpu(), targets, {N});
  Buffer gm(gpu(), {N}, DType::f32), gs(gpu(), {2, N}, DType::f32);
  gpu().cross_entropy_shard_max(gm, gl, 0, V);
  gpu().cross_entropy_shard_sumexp(gs, gl, gm, ids_of(gt, {N}), 0, V);
  try {
    gpu().synchronize();
    ADD_FAILURE() << "no error for target 10 with vocab 10";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vocabulary size 10"), std::string::npos) << e.what();
  }
  gpu().synchronize();  // reported once
  // The CPU backend throws at the call.
  Buffer cl = upload(cpu(), randn(N * V, 2800), {N, V}, DType::f32), cm(cpu(), {N}, DType::f32),
         cs(cpu(), {2, N}, DType::f32);
  EXPECT_THROW(cpu().cross_entropy_shard_sumexp(cs, cl, cm, TokenView{targets.data(), {N}, Device::cpu}, 0, V),
               Error);
}

// ---- the modern decoder's parts: RMSNorm, ReLU, SwiGLU, RoPE, grouped / ALiBi attention ----

TEST_F(CudaOpsVsCpu, RmsnormForwardAndBackwardMatchCpu) {
  struct NC {
    std::int64_t N, C;
  };
  std::uint64_t stream = 3000;
  for (DType t : kDTypes)
    for (DType tg : {t, DType::f32})  // dweight in the working dtype or f32 (main_grad)
      for (NC s : {NC{1, 1}, NC{3, 17}, NC{65, 768}, NC{300, 65}, NC{7, 4099}})
        for (Accumulate acc : {Accumulate::no, Accumulate::yes}) {
          const std::string what = shape_label(t, {s.N, s.C}) + " grads " + label(tg) +
                                   (acc == Accumulate::yes ? " dx +=" : " dx =");
          const Shape sx{s.N, s.C}, sc{s.C}, sn{s.N};
          const std::vector<float> x = randn(s.N * s.C, ++stream, 2.0f), w = randn(s.C, ++stream),
                                   dout = randn(s.N * s.C, ++stream), dx0 = randn(s.N * s.C, ++stream),
                                   dw0 = randn(s.C, ++stream);
          Buffer gx = upload(gpu(), x, sx, t), gw = upload(gpu(), w, sc, t);
          Buffer cx = upload(cpu(), x, sx, t), cw = upload(cpu(), w, sc, t);
          Buffer go = poisoned(gpu(), sx, t), gr = poisoned(gpu(), sn, DType::f32);
          Buffer co(cpu(), sx, t), cr(cpu(), sn, DType::f32);
          gpu().rmsnorm_forward(go, gr, gx, gw, 1e-5f);
          cpu().rmsnorm_forward(co, cr, cx, cw, 1e-5f);
          compare(gpu(), go, cpu(), co, op_tol(t), "rmsnorm out " + what);
          compare(gpu(), gr, cpu(), cr, 1e-5, "rmsnorm rstd " + what);

          Buffer gd = upload(gpu(), dout, sx, t), cd = upload(cpu(), dout, sx, t);
          Buffer gdx = acc == Accumulate::yes ? upload(gpu(), dx0, sx, t) : poisoned(gpu(), sx, t);
          Buffer cdx = upload(cpu(), dx0, sx, t);
          Buffer gdw = upload(gpu(), dw0, sc, tg), cdw = upload(cpu(), dw0, sc, tg);
          gpu().copy(gr, cr);  // the CPU's rstd for both: backward is compared on its own
          gpu().rmsnorm_backward(gdx, gdw, gd, gx, gw, gr, acc);
          cpu().rmsnorm_backward(cdx, cdw, cd, cx, cw, cr, acc);
          compare(gpu(), gdx, cpu(), cdx, op_tol(t), "rmsnorm dx " + what);
          compare(gpu(), gdw, cpu(), cdw, op_tol(tg == DType::f32 ? t : tg), "rmsnorm dweight " + what);
          if (HasFailure()) return;
        }
}

TEST_F(CudaOpsVsCpu, RmsnormBackwardIsDeterministic) {
  const std::int64_t N = 4099, C = 257;
  const std::vector<float> x = randn(N * C, 3100), w = randn(C, 3101), dout = randn(N * C, 3102);
  Buffer gx = upload(gpu(), x, {N, C}, DType::bf16), gw = upload(gpu(), w, {C}, DType::bf16),
         gd = upload(gpu(), dout, {N, C}, DType::bf16);
  Buffer go(gpu(), {N, C}, DType::bf16), gr(gpu(), {N}, DType::f32), gdx(gpu(), {N, C}, DType::bf16);
  gpu().rmsnorm_forward(go, gr, gx, gw, 1e-5f);
  std::vector<std::vector<std::byte>> runs;
  for (int run = 0; run < 2; ++run) {
    Buffer gdw(gpu(), {C}, DType::f32);
    gpu().fill(gdw, 0.0f);
    gpu().rmsnorm_backward(gdx, gdw, gd, gx, gw, gr, Accumulate::no);
    runs.push_back(bytes_of(gpu(), gdw));
  }
  EXPECT_EQ(runs[0], runs[1]) << "dweight differs run to run";
}

TEST_F(CudaOpsVsCpu, ReluForwardAndBackwardMatchCpu) {
  for (DType t : kDTypes)
    for (std::int64_t n : kSizes) {
      const std::string what = shape_label(t, {n});
      const std::vector<float> x = randn(n, 3200, 3.0f), dout = randn(n, 3201);
      Buffer gx = upload(gpu(), x, {n}, t), cx = upload(cpu(), x, {n}, t);
      Buffer go = poisoned(gpu(), {n}, t), co(cpu(), {n}, t);
      gpu().relu_forward(go, gx);
      cpu().relu_forward(co, cx);
      compare(gpu(), go, cpu(), co, 0.0, "relu out " + what);  // exact: no arithmetic
      Buffer gd = upload(gpu(), dout, {n}, t), cd = upload(cpu(), dout, {n}, t);
      Buffer gdx = poisoned(gpu(), {n}, t), cdx(cpu(), {n}, t);
      gpu().relu_backward(gdx, gd, gx);
      cpu().relu_backward(cdx, cd, cx);
      compare(gpu(), gdx, cpu(), cdx, 0.0, "relu dx " + what);
      gpu().relu_backward(gd, gd, gx);  // dx aliases dout
      compare(gpu(), gd, cpu(), cdx, 0.0, "relu dx in place " + what);
    }
}

TEST_F(CudaOpsVsCpu, SwigluForwardAndBackwardMatchCpu) {
  struct NF {
    std::int64_t N, F;
  };
  std::uint64_t stream = 3300;
  for (DType t : kDTypes)
    for (NF s : {NF{1, 1}, NF{3, 17}, NF{65, 768}, NF{2, 4099}, NF{1000, 3}}) {
      const std::string what = shape_label(t, {s.N, s.F});
      const Shape sh{s.N, 2 * s.F}, so{s.N, s.F};
      const std::vector<float> h = randn(s.N * 2 * s.F, ++stream, 3.0f), dout = randn(s.N * s.F, ++stream);
      Buffer gh = upload(gpu(), h, sh, t), ch = upload(cpu(), h, sh, t);
      Buffer go = poisoned(gpu(), so, t), co(cpu(), so, t);
      gpu().swiglu_forward(go, gh);
      cpu().swiglu_forward(co, ch);
      compare(gpu(), go, cpu(), co, op_tol(t), "swiglu out " + what);
      Buffer gd = upload(gpu(), dout, so, t), cd = upload(cpu(), dout, so, t);
      Buffer gdh = poisoned(gpu(), sh, t), cdh(cpu(), sh, t);
      gpu().swiglu_backward(gdh, gd, gh);
      cpu().swiglu_backward(cdh, cd, ch);
      compare(gpu(), gdh, cpu(), cdh, op_tol(t), "swiglu dh " + what);
      if (HasFailure()) return;
    }
}

struct GqaDims {
  std::int64_t B, T, H, Hkv, D;
};
// Odd sizes, every group size from 1 (plain heads) to H (multi-query).
const GqaDims kGqaDims[] = {{1, 1, 1, 1, 2}, {2, 5, 4, 2, 6}, {1, 17, 3, 1, 8}, {3, 33, 2, 2, 4}, {2, 64, 8, 2, 16},
                            {1, 9, 6, 3, 10}};

TEST_F(CudaOpsVsCpu, RopeForwardAndBackwardMatchCpu) {
  std::uint64_t stream = 3400;
  for (DType t : kDTypes)
    for (GqaDims d : kGqaDims)
      for (float base : {10000.0f, 500000.0f}) {
        const std::string what = shape_label(t, {d.B, d.T, d.H, d.Hkv, d.D}) + " base " + std::to_string(base);
        const Shape s{d.B, d.T, (d.H + 2 * d.Hkv) * d.D};
        const std::vector<float> x = randn(s.numel(), ++stream);
        Buffer gx = upload(gpu(), x, s, t), cx = upload(cpu(), x, s, t);
        gpu().rope_forward(gx, int(d.H), int(d.Hkv), base);
        cpu().rope_forward(cx, int(d.H), int(d.Hkv), base);
        compare(gpu(), gx, cpu(), cx, op_tol(t), "rope forward (v untouched) " + what);
        gpu().rope_backward(gx, int(d.H), int(d.Hkv), base);
        cpu().rope_backward(cx, int(d.H), int(d.Hkv), base);
        compare(gpu(), gx, cpu(), cx, op_tol(t), "rope backward " + what);
        if (HasFailure()) return;
      }
}

TEST_F(CudaOpsVsCpu, GroupedAttentionForwardAndBackwardMatchCpu) {
  std::uint64_t stream = 3500;
  for (DType t : kDTypes)
    for (GqaDims d : kGqaDims)
      for (bool alibi : {false, true}) {
        const std::string what = shape_label(t, {d.B, d.T, d.H, d.Hkv, d.D}) + (alibi ? " alibi" : "");
        const std::int64_t W = (d.H + 2 * d.Hkv) * d.D, HD = d.H * d.D;
        const Shape sqkv{d.B, d.T, W}, sout{d.B, d.T, HD}, sp{d.B, d.H, d.T, d.T};
        const std::vector<float> qkv = randn(sqkv.numel(), ++stream), dout = randn(sout.numel(), ++stream);
        // Slopes of 2H "global" heads; this "rank" holds heads [H, 2H): the op reads a view
        // that starts H floats into the buffer, as a tp rank's slice does.
        const std::vector<float> all = randu(2 * d.H, ++stream, 0.01f, 1.0f);
        Buffer gall = upload(gpu(), all, {2 * d.H}, DType::f32), call = upload(cpu(), all, {2 * d.H}, DType::f32);
        auto slice = [&](const Buffer& b) {
          const Tensor full = b.tensor();
          return Tensor{static_cast<float*>(full.ptr) + d.H, Shape{d.H}, DType::f32, full.device};
        };
        const AttentionHeads ga{int(d.H), int(d.Hkv), alibi ? slice(gall) : Tensor{}},
            ca{int(d.H), int(d.Hkv), alibi ? slice(call) : Tensor{}};
        Buffer gq = upload(gpu(), qkv, sqkv, t), cq = upload(cpu(), qkv, sqkv, t);
        Buffer go = poisoned(gpu(), sout, t), gp = poisoned(gpu(), sp, DType::f32);
        Buffer co(cpu(), sout, t), cp(cpu(), sp, DType::f32);
        gpu().grouped_attention_forward(go, gp, gq, ga);
        cpu().grouped_attention_forward(co, cp, cq, ca);
        compare(gpu(), gp, cpu(), cp, 1e-5, "grouped attention probs " + what);
        compare(gpu(), go, cpu(), co, op_tol(t), "grouped attention out " + what);

        Buffer gd = upload(gpu(), dout, sout, t), cd = upload(cpu(), dout, sout, t);
        Buffer gdq = poisoned(gpu(), sqkv, t), gs = poisoned(gpu(), sp, DType::f32);
        Buffer cdq(cpu(), sqkv, t), cs(cpu(), sp, DType::f32);
        gpu().copy(gp, cp);  // the same probabilities for both
        gpu().grouped_attention_backward(gdq, gs, gd, gq, gp, ga);
        cpu().grouped_attention_backward(cdq, cs, cd, cq, cp, ca);
        compare(gpu(), gdq, cpu(), cdq, op_tol(t), "grouped attention dqkv " + what);
        if (HasFailure()) return;
      }
}

TEST_F(CudaOpsVsCpu, GroupedAttentionWithoutGroupsOrAlibiIsAttention) {
  const std::int64_t B = 2, T = 33, H = 3, D = 8, C = H * D;
  const std::vector<float> qkv = randn(B * T * 3 * C, 3600), dout = randn(B * T * C, 3601);
  Buffer gq = upload(gpu(), qkv, {B, T, 3 * C}, DType::f32), gd = upload(gpu(), dout, {B, T, C}, DType::f32);
  Buffer o1(gpu(), {B, T, C}, DType::f32), o2(gpu(), {B, T, C}, DType::f32);
  Buffer p1(gpu(), {B, H, T, T}, DType::f32), p2(gpu(), {B, H, T, T}, DType::f32);
  Buffer s(gpu(), {B, H, T, T}, DType::f32);
  Buffer d1(gpu(), {B, T, 3 * C}, DType::f32), d2(gpu(), {B, T, 3 * C}, DType::f32);
  gpu().attention_forward(o1, p1, gq, int(H));
  gpu().grouped_attention_forward(o2, p2, gq, {int(H), int(H), Tensor{}});
  gpu().attention_backward(d1, s, gd, gq, p1, int(H));
  gpu().grouped_attention_backward(d2, s, gd, gq, p1, {int(H), int(H), Tensor{}});
  expect_close(download(gpu(), o2), download(gpu(), o1), 1e-6, 1e-6, "out");
  expect_close(download(gpu(), p2), download(gpu(), p1), 1e-6, 1e-6, "probs");
  expect_close(download(gpu(), d2), download(gpu(), d1), 1e-6, 1e-6, "dqkv");
}

TEST_F(CudaOpsVsCpu, GroupedAttentionBackwardIsDeterministic) {
  const std::int64_t B = 2, T = 65, H = 8, Hkv = 2, D = 16, W = (H + 2 * Hkv) * D;
  const std::vector<float> qkv = randn(B * T * W, 3700), dout = randn(B * T * H * D, 3701);
  Buffer gq = upload(gpu(), qkv, {B, T, W}, DType::bf16), gd = upload(gpu(), dout, {B, T, H * D}, DType::bf16);
  Buffer go(gpu(), {B, T, H * D}, DType::bf16), gp(gpu(), {B, H, T, T}, DType::f32), gs(gpu(), {B, H, T, T}, DType::f32);
  const AttentionHeads a{int(H), int(Hkv), Tensor{}};
  gpu().grouped_attention_forward(go, gp, gq, a);
  std::vector<std::vector<std::byte>> runs;
  for (int run = 0; run < 2; ++run) {
    Buffer gdq = poisoned(gpu(), {B, T, W}, DType::bf16);
    gpu().grouped_attention_backward(gdq, gs, gd, gq, gp, a);
    runs.push_back(bytes_of(gpu(), gdq));
  }
  EXPECT_EQ(runs[0], runs[1]) << "dqkv (the group sums of dk, dv) differs run to run";
}

}  // namespace
}  // namespace loom
