// docs/measurements/tile_gemm_libs.cpp — a measurement, not part of the build: the CPU
// attention kernels' per-tile f32 GEMMs, each thread of an OpenMP parallel region calling
// one library on its own tiles (as backend/cpu/flash_attention.cpp does), for the choice in
// backend/cpu/sgemm.h: OpenBLAS cblas_sgemm, oneDNN dnnl_sgemm, and a oneDNN matmul
// primitive built once per shape and executed with dnnl::memory objects made per call.
// Shapes: the flash kernel's tiles (64 query rows, 128 keys, head size D) and the dense
// kernel's per-head products at T = 128. Best of 3 rounds of 4000 calls per thread.
// Build and run:
//   g++ -O2 -std=c++17 -fopenmp docs/measurements/tile_gemm_libs.cpp -o /tmp/tile_gemm_libs \
//       -I/usr/include/x86_64-linux-gnu/openblas-openmp -L/usr/lib/x86_64-linux-gnu/openblas-openmp \
//       -Wl,-rpath,/usr/lib/x86_64-linux-gnu/openblas-openmp -lopenblas -ldnnl
//   OMP_NUM_THREADS=1 /tmp/tile_gemm_libs 32     # D = 32; also OMP_NUM_THREADS=2, D = 64
#include <cblas.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <oneapi/dnnl/dnnl.hpp>
#include <vector>

struct Shape {
  char ta, tb;
  int M, N, K;
  float beta;
};

int main(int argc, char** argv) {
  const int D = argc > 1 ? std::atoi(argv[1]) : 32, T = 128;
  const std::vector<Shape> shapes = {
      {'N', 'T', 64, 128, D, 0.f},  // flash forward / backward: S = Q K^T
      {'N', 'N', 64, D, 128, 1.f},  // flash: O += P V, dQ += dS K
      {'T', 'N', 128, D, 64, 1.f},  // flash backward: dV += P^T dO, dK += dS^T Q
      {'N', 'T', T, T, D, 0.f},     // dense: S = Q K^T
      {'N', 'N', T, D, T, 0.f},     // dense: O = P V
      {'T', 'N', T, D, T, 0.f}};    // dense backward: dV = P^T dO
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  const int threads = omp_get_max_threads();
  std::printf("OpenBLAS kernels %s, %d threads, D = %d\n", openblas_get_corename(), threads, D);
  std::printf("| shape (M x N x K) | layout | OpenBLAS | dnnl_sgemm | matmul primitive |  (us per call, GFLOP/s all threads)\n");
  for (const Shape& s : shapes) {
    const int M = s.M, N = s.N, K = s.K;
    const int lda = s.ta == 'N' ? K : M, ldb = s.tb == 'N' ? N : K, ldc = N;
    using dims = dnnl::memory::dims;
    using dt = dnnl::memory::data_type;
    const dnnl::memory::desc a_md({M, K}, dt::f32, s.ta == 'T' ? dims{1, lda} : dims{lda, 1});
    const dnnl::memory::desc b_md({K, N}, dt::f32, s.tb == 'T' ? dims{1, ldb} : dims{ldb, 1});
    const dnnl::memory::desc c_md({M, N}, dt::f32, dims{ldc, 1});
    dnnl::primitive_attr attr;
    if (s.beta != 0) {
      dnnl::post_ops po;
      po.append_sum(s.beta);
      attr.set_post_ops(po);
    }
    const dnnl::matmul prim(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md, b_md, c_md), attr, eng));
    std::printf("| %d x %d x %d | %c%c beta %g |", M, N, K, s.ta, s.tb, s.beta);
    for (int method = 0; method < 3; ++method) {
      const int reps = 4000;
      double best = 1e9;
      for (int round = 0; round < 3; ++round) {
        const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel
        {
          std::vector<float> A(std::size_t(M) * K, 0.5f), B(std::size_t(K) * N, 0.25f), C(std::size_t(M) * N, 0.f);
          dnnl::stream stream(eng);
          for (int r = 0; r < reps; ++r) {
            if (method == 0) {
              cblas_sgemm(CblasRowMajor, s.ta == 'T' ? CblasTrans : CblasNoTrans,
                          s.tb == 'T' ? CblasTrans : CblasNoTrans, M, N, K, 1.f, A.data(), lda, B.data(), ldb, s.beta,
                          C.data(), ldc);
            } else if (method == 1) {
              dnnl_sgemm(s.ta, s.tb, M, N, K, 1.f, A.data(), lda, B.data(), ldb, s.beta, C.data(), ldc);
            } else {
              dnnl::memory am(a_md, eng, A.data()), bm(b_md, eng, B.data()), cm(c_md, eng, C.data());
              prim.execute(stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
            }
          }
        }
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      std::printf(" %.2f us, %.0f |", best / reps * 1e6, 2.0 * M * N * K * reps * threads / best / 1e9);
    }
    std::printf("\n");
  }
}
