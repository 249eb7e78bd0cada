// docs/measurements/gemm_libs.cpp — a measurement, not part of the build: Debian's OpenBLAS
// sgemm against oneDNN's matmul in f32 and bf16 (bf16 x bf16 -> f32, f32 accumulation) at
// the GPT-2-small GEMM shapes, the three alternated in one process, median of 7 after a
// warm-up. Row-major C(M,N) = A(M,K) * B(K,N). For the library choice of the mixed-precision
// issue (docs/performance.md, "GEMM libraries on this machine"). Build and run:
//   apt-get install libdnnl-dev
//   g++ -O2 -std=c++17 docs/measurements/gemm_libs.cpp -o /tmp/gemm_libs \
//       -I/usr/include/x86_64-linux-gnu/openblas-openmp -L/usr/lib/x86_64-linux-gnu/openblas-openmp \
//       -Wl,-rpath,/usr/lib/x86_64-linux-gnu/openblas-openmp -lopenblas -ldnnl -fopenmp
//   OMP_NUM_THREADS=2 /tmp/gemm_libs    # and with OPENBLAS_CORETYPE=Cooperlake
#include <cblas.h>
#include <oneapi/dnnl/dnnl.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>
using namespace dnnl;
using clk = std::chrono::steady_clock;
static double secs(clk::time_point a) { return std::chrono::duration<double>(clk::now() - a).count(); }
int main() {
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  struct Shape { const char* name; long M, K, N; };
  const Shape shapes[] = {{"qkv", 1024, 768, 2304}, {"attn_proj", 1024, 768, 768}, {"fc", 1024, 768, 3072},
                          {"fc_proj", 1024, 3072, 768}, {"lm_head", 1024, 768, 50304}};
  const int R = 7;
  std::printf("%-10s %22s %10s %10s %10s %14s\n", "op", "M x K -> N", "sgemm", "dnnl f32", "dnnl bf16", "bf16 / sgemm");
  for (const Shape& sh : shapes) {
    const long M = sh.M, K = sh.K, N = sh.N;
    std::vector<float> A(M * K), B(K * N), C(M * N);
    for (long i = 0; i < M * K; ++i) A[i] = float((i * 7) % 13) / 13.0f - 0.5f;
    for (long i = 0; i < K * N; ++i) B[i] = float((i * 5) % 11) / 11.0f - 0.5f;
    auto make = [&](memory::data_type dt) {
      memory::desc a({M, K}, dt, memory::format_tag::ab), b({K, N}, dt, memory::format_tag::ab),
          c({M, N}, memory::data_type::f32, memory::format_tag::ab);
      matmul::primitive_desc pd(matmul::desc(a, b, c), eng);
      return std::make_pair(matmul(pd), pd);
    };
    auto [mm32, pd32] = make(memory::data_type::f32);
    auto [mm16, pd16] = make(memory::data_type::bf16);
    memory a32(pd32.src_desc(), eng, A.data()), b32(pd32.weights_desc(), eng, B.data()), c32(pd32.dst_desc(), eng, C.data());
    memory a16(pd16.src_desc(), eng), b16(pd16.weights_desc(), eng), c16(pd16.dst_desc(), eng, C.data());
    reorder(a32, a16).execute(s, a32, a16);
    reorder(b32, b16).execute(s, b32, b16);
    s.wait();
    std::vector<double> t0, t1, t2;
    for (int r = 0; r < R + 1; ++r) {
      auto t = clk::now();
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, C.data(), N);
      const double a = secs(t);
      t = clk::now();
      mm32.execute(s, {{DNNL_ARG_SRC, a32}, {DNNL_ARG_WEIGHTS, b32}, {DNNL_ARG_DST, c32}});
      s.wait();
      const double b = secs(t);
      t = clk::now();
      mm16.execute(s, {{DNNL_ARG_SRC, a16}, {DNNL_ARG_WEIGHTS, b16}, {DNNL_ARG_DST, c16}});
      s.wait();
      const double c = secs(t);
      if (r == 0) continue;  // warm-up
      t0.push_back(a), t1.push_back(b), t2.push_back(c);
    }
    auto med = [](std::vector<double> v) { std::sort(v.begin(), v.end()); return v[v.size() / 2]; };
    const double fl = 2.0 * M * K * N;
    std::printf("%-10s %8ldx%-5ld->%6ld %8.1f %10.1f %10.1f %14.2f   (GFLOP/s, medians of %d; ratio of medians)\n", sh.name,
                M, K, N, fl / med(t0) / 1e9, fl / med(t1) / 1e9, fl / med(t2) / 1e9, med(t0) / med(t2), R);
  }
  std::printf("dnnl runtime: %s\n", dnnl_version()->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other");
  std::printf("OpenBLAS kernels: %s\n", openblas_get_corename());
}
