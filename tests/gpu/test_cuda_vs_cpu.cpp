// tests/gpu/test_cuda_vs_cpu.cpp — memory, elementwise, reductions, AdamW and matmul: CUDA vs the CPU.
// (test_cuda_ops_vs_cpu.cpp covers the model's ops; cuda_vs_cpu.h holds the helpers.)
//
// Every test skips (saying so) when no CUDA device is visible, so this program
// passes on machines without a GPU. Inputs come from core/rng.h on the host and
// are rounded to bf16/f16 by core/dtype.h before upload, so both backends see
// identical bits. Tolerances: conversions and fills bit for bit; AdamW 1e-6
// relative; f32 matmul 1e-4 and bf16 1e-2 relative to the output's largest
// magnitude (cuBLASLt runs CUBLAS_COMPUTE_32F, so f32 stays f32, not TF32).
#include "tests/gpu/cuda_vs_cpu.h"

namespace loom {
namespace {

// ---- memory ---------------------------------------------------------------------

TEST_F(CudaVsCpu, AllocatorCountsLiveAndPeakBytes) {
  const std::size_t live0 = gpu().live_bytes();
  {
    Buffer a(gpu(), {1000}, DType::f32);
    EXPECT_EQ(gpu().live_bytes(), live0 + 4000);
    Buffer b(gpu(), {17}, DType::bf16);
    EXPECT_EQ(gpu().live_bytes(), live0 + 4034);
    EXPECT_EQ(a.tensor().device, Device::cuda);
  }
  EXPECT_EQ(gpu().live_bytes(), live0);
  EXPECT_GE(gpu().peak_bytes(), live0 + 4034);
}

TEST_F(CudaVsCpu, CopyRoundTripsHostDeviceDeviceHost) {
  for (DType t : kDTypes) {
    const std::vector<float> v = randn(4099, 1);
    Buffer d1 = upload(gpu(), v, {4099}, t);
    Buffer d2(gpu(), {4099}, t);
    gpu().copy(d2, d1);
    EXPECT_EQ(bytes_of(gpu(), d2), encode(v, t)) << label(t);
  }
}

// ---- elementwise ------------------------------------------------------------------

TEST_F(CudaVsCpu, FillMatchesCpuBitForBit) {
  const float values[] = {0.0f, -0.0f, 1.0f, -2.5f, 0.1f, 3.14159265f, 1e-6f, 7e4f, -1e30f, 65519.0f};
  for (DType t : kDTypes)
    for (std::int64_t n : kSizes)
      for (float value : values) {
        Buffer g(gpu(), {n}, t), c(cpu(), {n}, t);
        gpu().fill(g, value);
        cpu().fill(c, value);
        EXPECT_EQ(bytes_of(gpu(), g), bytes_of(cpu(), c)) << label(t) << " n=" << n << " value=" << value;
      }
}

TEST_F(CudaVsCpu, CastMatchesCpuBitForBit) {
  // Normal values over a wide range plus the edges of bf16/f16: subnormals, the
  // largest finite values, overflow to inf, ties.
  std::vector<float> v = randn(4099, 2, 100.0f);
  for (float x : {0.0f, -0.0f, 1e-7f, 6e-8f, 3e-8f, 65504.0f, 65520.0f, 1e5f, -1e5f, 1e-40f, 3e38f,
                  1.00390625f, 1.001953125f, 2049.0f})
    v.push_back(x);
  const auto n = std::int64_t(v.size());
  for (DType from : kDTypes)
    for (DType to : kDTypes) {
      Buffer gs = upload(gpu(), v, {n}, from), cs = upload(cpu(), v, {n}, from);
      Buffer gd(gpu(), {n}, to), cd(cpu(), {n}, to);
      gpu().cast(gd, gs);
      cpu().cast(cd, cs);
      EXPECT_EQ(bytes_of(gpu(), gd), bytes_of(cpu(), cd)) << label(from) << " -> " << label(to);
    }
}

TEST_F(CudaVsCpu, CastRoundTripRoundsToNearestEven) {
  std::vector<float> v = randn(4099, 3, 10.0f);
  const auto n = std::int64_t(v.size());
  for (DType half : {DType::bf16, DType::f16}) {
    Buffer f = upload(gpu(), v, {n}, DType::f32);
    Buffer h(gpu(), {n}, half), back(gpu(), {n}, DType::f32);
    gpu().cast(h, f);
    gpu().cast(back, h);
    EXPECT_EQ(download(gpu(), back), decode(encode(v, half), half)) << label(half);
  }
}

TEST_F(CudaVsCpu, ScaleAxpyAddMatchCpu) {
  for (DType t : kDTypes)
    for (std::int64_t n : kSizes) {
      const std::string what = label(t) + " n=" + std::to_string(n);
      const std::vector<float> x = randn(n, 4), y = randn(n, 5);
      Buffer gx = upload(gpu(), x, {n}, t), gy = upload(gpu(), y, {n}, t), go(gpu(), {n}, t);
      Buffer cx = upload(cpu(), x, {n}, t), cy = upload(cpu(), y, {n}, t), co(cpu(), {n}, t);

      gpu().scale(gy, 0.37f);
      cpu().scale(cy, 0.37f);
      expect_close(download(gpu(), gy), download(cpu(), cy), ulp_tol(t), 1e-30, "scale " + what);

      gpu().axpy(gy, -1.3f, gx);
      cpu().axpy(cy, -1.3f, cx);
      expect_close(download(gpu(), gy), download(cpu(), cy), ulp_tol(t), 1e-6, "axpy " + what);

      gpu().add(go, gy, gx);
      cpu().add(co, cy, cx);
      expect_close(download(gpu(), go), download(cpu(), co), ulp_tol(t), 1e-6, "add " + what);

      gpu().add(gy, gy, gx);  // out aliases a
      cpu().add(cy, cy, cx);
      expect_close(download(gpu(), gy), download(cpu(), cy), ulp_tol(t), 1e-6, "add in place " + what);
    }
}

TEST_F(CudaVsCpu, AxpyAcrossDTypesMatchesCpu) {
  // The gradient-accumulation pattern: an f32 accumulator += a bf16/f16 gradient.
  const std::int64_t n = 4099;
  const std::vector<float> x = randn(n, 6), y = randn(n, 7);
  for (DType tx : {DType::bf16, DType::f16}) {
    Buffer gx = upload(gpu(), x, {n}, tx), gy = upload(gpu(), y, {n}, DType::f32);
    Buffer cx = upload(cpu(), x, {n}, tx), cy = upload(cpu(), y, {n}, DType::f32);
    gpu().axpy(gy, 0.5f, gx);
    cpu().axpy(cy, 0.5f, cx);
    expect_close(download(gpu(), gy), download(cpu(), cy), 1e-6, 1e-6, "axpy f32 += " + label(tx));
  }
}

// ---- reductions -------------------------------------------------------------------

TEST_F(CudaVsCpu, SumAndSumSquaresMatchCpu) {
  for (DType t : kDTypes)
    for (std::int64_t n : {std::int64_t(1), std::int64_t(3), std::int64_t(17), std::int64_t(65),
                           std::int64_t(768), std::int64_t(65537), std::int64_t((1 << 20) + 7)}) {
      const std::vector<float> v = randn(n, 8);
      Buffer g = upload(gpu(), v, {n}, t), c = upload(cpu(), v, {n}, t);
      const double got = gpu().sum_squares(g), want = cpu().sum_squares(c);
      EXPECT_NEAR(got, want, 1e-9 * want) << "sum_squares " << label(t) << " n=" << n;
      // both accumulate in double, in different orders: allow 1e-12 of sum |x|
      double abs_sum = 0;
      for (float x : v) abs_sum += std::fabs(x);
      EXPECT_NEAR(gpu().sum(g), cpu().sum(c), 1e-12 * abs_sum) << "sum " << label(t) << " n=" << n;
      EXPECT_EQ(gpu().sum(g), gpu().sum(g)) << "sum is deterministic, " << label(t) << " n=" << n;
    }
  Buffer empty(gpu(), {0}, DType::f32);
  EXPECT_EQ(gpu().sum_squares(empty), 0.0);
  EXPECT_EQ(gpu().sum(empty), 0.0);
}

TEST_F(CudaVsCpu, BiasBackwardMatchesCpu) {
  const std::pair<DType, DType> types[] = {{DType::f32, DType::f32},
                                           {DType::f32, DType::bf16},
                                           {DType::bf16, DType::bf16},
                                           {DType::f16, DType::f16}};
  for (auto [tdb, tdout] : types)
    for (std::int64_t rows : {std::int64_t(1), std::int64_t(3), std::int64_t(65), std::int64_t(4099)})
      for (std::int64_t cols : {std::int64_t(1), std::int64_t(17), std::int64_t(768)}) {
        const std::string what = "dbias " + label(tdb) + " dout " + label(tdout) + " (" +
                                 std::to_string(rows) + "," + std::to_string(cols) + ")";
        const std::vector<float> dout = randn(rows * cols, 9), dbias = randn(cols, 10);
        Buffer gd = upload(gpu(), dout, {rows, cols}, tdout), gb = upload(gpu(), dbias, {cols}, tdb);
        Buffer cd = upload(cpu(), dout, {rows, cols}, tdout), cb = upload(cpu(), dbias, {cols}, tdb);
        gpu().bias_backward(gb, gd);
        cpu().bias_backward(cb, cd);
        expect_close_scaled(download(gpu(), gb), download(cpu(), cb), tdb == DType::f32 ? 1e-5 : 1e-2, what);
      }
}

// ---- optimizer ----------------------------------------------------------------------

TEST_F(CudaVsCpu, AdamWMatchesCpu) {
  const std::int64_t n = 4099;
  const std::vector<float> p = randn(n, 11), m = randn(n, 12, 0.1f), v = randu(n, 13, 0.0f, 0.01f);
  Buffer gp = upload(gpu(), p, {n}, DType::f32), gm = upload(gpu(), m, {n}, DType::f32),
         gv = upload(gpu(), v, {n}, DType::f32), gg(gpu(), {n}, DType::f32);
  Buffer cp = upload(cpu(), p, {n}, DType::f32), cm = upload(cpu(), m, {n}, DType::f32),
         cv = upload(cpu(), v, {n}, DType::f32), cg(cpu(), {n}, DType::f32);
  for (std::int64_t step = 7; step <= 9; ++step) {
    const std::vector<float> g = randn(n, 100 + std::uint64_t(step));
    gpu().copy(gg, Tensor{const_cast<float*>(g.data()), {n}, DType::f32, Device::cpu});
    cpu().copy(cg, Tensor{const_cast<float*>(g.data()), {n}, DType::f32, Device::cpu});
    const AdamWArgs args{.lr = 1e-3f,
                         .beta1 = 0.9f,
                         .beta2 = 0.95f,
                         .eps = 1e-8f,
                         .weight_decay = 0.1f,
                         .step = step,
                         .grad_scale = 0.5f};
    gpu().adamw(gp, gg, gm, gv, args);
    cpu().adamw(cp, cg, cm, cv, args);
  }
  // abs: a few f32 ulps of the terms, for the rare element whose terms cancel
  // (the CPU build may contract a*b+c into an FMA; the CUDA kernel does not).
  expect_close(download(gpu(), gp), download(cpu(), cp), 1e-6, 1e-7, "adamw param");
  expect_close(download(gpu(), gm), download(cpu(), cm), 1e-6, 1e-7, "adamw m");
  expect_close(download(gpu(), gv), download(cpu(), cv), 1e-6, 1e-12, "adamw v");
}

// ---- matmul -----------------------------------------------------------------------

struct MatmulCase {
  DType in, out;
  double tol;  // relative to the output's largest magnitude
  bool big;    // also (768, 768, 768)
};

void check_matmul(Backend& gpu, Backend& cpu, const MatmulCase& mc) {
  struct Mnk {
    std::int64_t M, N, K;
  };
  std::vector<Mnk> shapes = {{1, 1, 1},    {3, 17, 65},  {17, 65, 3},    {65, 3, 17},
                             {1, 768, 65}, {768, 1, 17}, {65, 768, 768}, {17, 3, 768}};
  if (mc.big) shapes.push_back({768, 768, 768});
  std::uint64_t stream = 1000;
  for (const Mnk& s : shapes)
    for (Trans ta : {Trans::no, Trans::yes})
      for (Trans tb : {Trans::no, Trans::yes})
        for (bool with_bias : {false, true})
          for (Accumulate acc : {Accumulate::no, Accumulate::yes}) {
            const MatmulOpts opts{
                .trans_a = ta, .trans_b = tb, .accumulate = acc, .alpha = with_bias ? 0.5f : 1.0f};
            const std::string what = "matmul " + label(mc.in) + "->" + label(mc.out) +
                                     " M=" + std::to_string(s.M) + " N=" + std::to_string(s.N) +
                                     " K=" + std::to_string(s.K) + (ta == Trans::yes ? " a^T" : "") +
                                     (tb == Trans::yes ? " b^T" : "") + (with_bias ? " +bias" : "") +
                                     (acc == Accumulate::yes ? " +=" : "");
            const Shape sa = ta == Trans::no ? Shape{s.M, s.K} : Shape{s.K, s.M};
            const Shape sb = tb == Trans::no ? Shape{s.K, s.N} : Shape{s.N, s.K};
            const std::vector<float> a = randn(s.M * s.K, ++stream), b = randn(s.K * s.N, ++stream),
                                     bias = randn(s.N, ++stream), out0 = randn(s.M * s.N, ++stream);
            Buffer ga = upload(gpu, a, sa, mc.in), gb = upload(gpu, b, sb, mc.in),
                   gbias = upload(gpu, bias, {s.N}, mc.out), gout = upload(gpu, out0, {s.M, s.N}, mc.out);
            Buffer ca = upload(cpu, a, sa, mc.in), cb = upload(cpu, b, sb, mc.in),
                   cbias = upload(cpu, bias, {s.N}, mc.out), cout = upload(cpu, out0, {s.M, s.N}, mc.out);
            gpu.matmul(gout, ga, gb, with_bias ? gbias.tensor() : Tensor{}, opts);
            cpu.matmul(cout, ca, cb, with_bias ? cbias.tensor() : Tensor{}, opts);
            expect_close_scaled(download(gpu, gout), download(cpu, cout), mc.tol, what);
            if (::testing::Test::HasFailure()) return;  // one failing case says enough
          }
}

TEST_F(CudaVsCpu, MatmulF32MatchesCpu) { check_matmul(gpu(), cpu(), {DType::f32, DType::f32, 1e-4, true}); }
TEST_F(CudaVsCpu, MatmulBF16MatchesCpu) {
  check_matmul(gpu(), cpu(), {DType::bf16, DType::bf16, 1e-2, false});
}
TEST_F(CudaVsCpu, MatmulF16MatchesCpu) { check_matmul(gpu(), cpu(), {DType::f16, DType::f16, 3e-3, false}); }
TEST_F(CudaVsCpu, MatmulBF16InF32OutMatchesCpu) {
  check_matmul(gpu(), cpu(), {DType::bf16, DType::f32, 1e-4, false});
}

// The MLP's fused GELU (Backend::matmul_gelu / matmul_dgelu): cuBLASLt's GELU_AUX(_BIAS) and
// DGELU epilogues where N % 8 == 0 (N = 64, 768), the unfused ops otherwise (N = 65), against
// the CPU's matmul + gelu_forward / gelu_backward (loom's tanh GELU). This is the check that
// cuBLASLt's GELU is the tanh form: the erf form differs from it by up to 4.7e-4 (GELU) and
// 8.7e-4 (its derivative) absolute near x = -2.7 and -2.0; with h and dg W2 of standard
// deviation 1.5 and 1, the f32 tolerance (2e-5 of the largest magnitude, about 1e-4) is
// well below that.
TEST_F(CudaVsCpu, MatmulGeluMatchesCpu) {
  struct Mnk {
    std::int64_t M, N, K;
  };
  std::uint64_t stream = 1500;
  for (DType t : kDTypes)
    for (Mnk s : {Mnk{17, 64, 33}, Mnk{65, 768, 192}, Mnk{33, 65, 17}})
      for (bool with_bias : {false, true}) {
        const double tol = t == DType::f32 ? 2e-5 : (t == DType::bf16 ? 2e-2 : 4e-3);
        const float w_std = 1.5f / std::sqrt(float(s.K)), w2_std = 1.0f / std::sqrt(float(s.K));
        const std::string what = label(t) + " M=" + std::to_string(s.M) + " N=" + std::to_string(s.N) +
                                 " K=" + std::to_string(s.K) + (with_bias ? " +bias" : "");
        // Forward as the MLP's fc: h = x W^T + b, g = gelu(h); x (M,K), W (N,K).
        const std::vector<float> x = randn(s.M * s.K, ++stream), w = randn(s.N * s.K, ++stream, w_std),
                                 bias = randn(s.N, ++stream);
        Buffer gx = upload(gpu(), x, {s.M, s.K}, t), gw = upload(gpu(), w, {s.N, s.K}, t),
               gb = upload(gpu(), bias, {s.N}, t);
        Buffer cx = upload(cpu(), x, {s.M, s.K}, t), cw = upload(cpu(), w, {s.N, s.K}, t),
               cb = upload(cpu(), bias, {s.N}, t);
        Buffer gh = poisoned(gpu(), {s.M, s.N}, t), gg = poisoned(gpu(), {s.M, s.N}, t);
        Buffer ch(cpu(), {s.M, s.N}, t), cg(cpu(), {s.M, s.N}, t);
        const MatmulOpts fwd{.trans_b = Trans::yes};
        gpu().matmul_gelu(gh, gg, gx, gw, with_bias ? gb.tensor() : Tensor{}, fwd);
        cpu().matmul_gelu(ch, cg, cx, cw, with_bias ? cb.tensor() : Tensor{}, fwd);
        expect_close_scaled(download(gpu(), gh), download(cpu(), ch), tol, "matmul_gelu h " + what);
        expect_close_scaled(download(gpu(), gg), download(cpu(), cg), tol, "matmul_gelu g " + what);

        // Backward as the MLP's c_proj: dh = (dg W2) * gelu'(h), dg (M,C), W2 (C,N) with C = K.
        const std::vector<float> dg = randn(s.M * s.K, ++stream), w2 = randn(s.K * s.N, ++stream, w2_std);
        Buffer gdg = upload(gpu(), dg, {s.M, s.K}, t), gw2 = upload(gpu(), w2, {s.K, s.N}, t);
        Buffer cdg = upload(cpu(), dg, {s.M, s.K}, t), cw2 = upload(cpu(), w2, {s.K, s.N}, t);
        gpu().copy(gh, ch);  // the same pre-activation on both sides
        Buffer gdh = poisoned(gpu(), {s.M, s.N}, t), cdh(cpu(), {s.M, s.N}, t);
        gpu().matmul_dgelu(gdh, gdg, gw2, gh, {});
        cpu().matmul_dgelu(cdh, cdg, cw2, ch, {});
        expect_close_scaled(download(gpu(), gdh), download(cpu(), cdh), tol, "matmul_dgelu dh " + what);
        if (HasFailure()) return;
      }
}

TEST_F(CudaVsCpu, MatmulOnAnOffsetViewMatchesCpu) {
  // Row slices start at addresses that are not 256-byte aligned; cuBLASLt must be told.
  const std::int64_t M = 17, N = 65, K = 33;
  const std::vector<float> a = randn((M + 1) * K, 50), b = randn(K * N, 51);
  Buffer ga = upload(gpu(), a, {M + 1, K}, DType::f32), gb = upload(gpu(), b, {K, N}, DType::f32);
  Buffer ca = upload(cpu(), a, {M + 1, K}, DType::f32), cb = upload(cpu(), b, {K, N}, DType::f32);
  Buffer go(gpu(), {M, N}, DType::f32), co(cpu(), {M, N}, DType::f32);
  gpu().matmul(go, ga.tensor().slice_rows(1, M + 1), gb, {}, {});
  cpu().matmul(co, ca.tensor().slice_rows(1, M + 1), cb, {}, {});
  expect_close_scaled(download(gpu(), go), download(cpu(), co), 1e-4, "matmul on a view");
}

// ---- bad input ----------------------------------------------------------------------

TEST_F(CudaVsCpu, BadShapesAndHostTensorsThrow) {
  Buffer a(gpu(), {3, 4}, DType::f32), b(gpu(), {5, 6}, DType::f32), out(gpu(), {3, 6}, DType::f32);
  EXPECT_THROW(gpu().matmul(out, a, b, {}, {}), Error);  // K: 4 vs 5
  Buffer b2(gpu(), {4, 6}, DType::f32), out2(gpu(), {3, 7}, DType::f32);
  EXPECT_THROW(gpu().matmul(out2, a, b2, {}, {}), Error);  // out shape
  Buffer bias(gpu(), {5}, DType::f32);
  EXPECT_THROW(gpu().matmul(out, a, b2, bias, {}), Error);  // bias length
  std::vector<float> host(12);
  EXPECT_THROW(gpu().fill(host_tensor(host.data(), {12}), 1.0f), Error);  // host memory
  Buffer y(gpu(), {12}, DType::f32), x(gpu(), {13}, DType::f32);
  EXPECT_THROW(gpu().axpy(y, 1.0f, x), Error);
  Buffer h(gpu(), {12}, DType::bf16);
  EXPECT_THROW(gpu().adamw(h, y, y, y, {}), Error);  // adamw is f32 only
}

}  // namespace
}  // namespace loom
