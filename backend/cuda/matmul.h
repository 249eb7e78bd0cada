// backend/cuda/matmul.h — row-major GEMM through cuBLASLt, for CudaBackend::matmul.
//
// out (M,N) = alpha * op(a) op(b) + beta * out with a, b, out contiguous and
// row-major (leading dims = last dims), f32 compute (CUBLAS_COMPUTE_32F: no
// TF32). cuBLASLt is column-major, so run() computes out^T = op(b)^T op(a)^T.
// The handle and the workspace are made once here; run() allocates no device
// memory. Shapes and dtypes are validated by the caller (cuda_backend.cpp). The
// algorithm the cuBLASLt heuristic picks is cached per problem (sizes, transposes,
// dtypes, pointer alignments, bias), so the heuristic runs once per distinct GEMM.
// A bias rides in cuBLASLt's epilogue (CUBLASLT_EPILOGUE_BIAS: D = alpha op(a) op(b) +
// beta out + bias, the bias broadcast over rows as loom's matmul defines it) when the
// heuristic has an algorithm for it; otherwise run() says so and the caller adds the bias
// with its own kernel first. So does the MLP's GELU (Backend::matmul_gelu / matmul_dgelu):
// GELU_AUX(_BIAS) writes D = gelu(acc + bias) and the pre-activation acc + bias to the aux
// matrix; DGELU reads the pre-activation from aux and writes D = acc * gelu'(aux). The aux
// matrix is laid out as D (row-major (M,N) = column-major N x M, ld N); cuBLASLt needs ld
// divisible by 8, so other N take the unfused ops.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <tuple>

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "backend/backend.h"

namespace loom::cuda {

// cuBLASLt's type for a loom DType.
cudaDataType_t cuda_data_type(DType t);

// What cuBLASLt's epilogue does after alpha op(a) op(b) + beta out (matmul.cpp).
struct Epilogue {
  enum class Kind : std::uint8_t { none, bias, gelu, dgelu };
  Kind kind = Kind::none;
  Tensor bias;  // bias (required), gelu (optional): (N)
  Tensor aux;   // gelu: written, the pre-activation (M,N); dgelu: read, the pre-activation
};

class LtMatmul {
 public:
  explicit LtMatmul(std::size_t workspace_bytes);
  ~LtMatmul();
  LtMatmul(const LtMatmul&) = delete;
  LtMatmul& operator=(const LtMatmul&) = delete;

  // M, N, K as the caller derived them from the shapes; M, N, K > 0. Returns false, having
  // run nothing, when an epilogue was asked for and no cuBLASLt algorithm takes it (its
  // dtypes, a bias or aux pointer not 16-byte aligned, an aux ld not divisible by 8); throws
  // when no algorithm exists without one.
  bool run(Tensor out, Tensor a, Tensor b, const Epilogue& ep, Trans ta, Trans tb, std::int64_t M,
           std::int64_t N, std::int64_t K, float alpha, float beta, cudaStream_t stream);

  std::size_t workspace_bytes() const { return workspace_bytes_; }

 private:
  // (M, N, K, trans_a, trans_b, dtype a, dtype b, dtype out, alignments of b, a, out,
  // epilogue kind, bias dtype or -1 for none, aux alignment or 0 for none)
  using Key = std::tuple<std::int64_t, std::int64_t, std::int64_t, bool, bool, int, int, int, std::uint32_t,
                         std::uint32_t, std::uint32_t, int, int, std::uint32_t>;
  std::map<Key, std::optional<cublasLtMatmulAlgo_t>> algos_;  // nullopt: no algorithm with the epilogue
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  std::size_t workspace_bytes_ = 0;
};

}  // namespace loom::cuda
