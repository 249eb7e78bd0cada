// backend/cuda/matmul.cpp — LtMatmul: the row-major -> column-major mapping onto cuBLASLt.
//
// A row-major (r, c) matrix with leading dim c is the column-major (c, r)
// matrix with the same leading dim, i.e. its transpose. So out (M,N) row-major
// is out^T (N,M) column-major, and out^T = op(b)^T op(a)^T is one cuBLASLt call
// with A := b (op = trans_b), B := a (op = trans_a), m = N, n = M, k = K.
// Descriptors live for one call (host-side only); the algorithm comes from the
// cuBLASLt heuristic, told the real pointer alignments (views may be offset), and
// is cached per problem (matmul.h): the descriptors it was chosen for are rebuilt
// identically from the same key on every call.
#include "backend/cuda/matmul.h"

#include <memory>
#include <type_traits>

#include "backend/cuda/cuda_check.h"

namespace loom::cuda {

namespace {

template <class Handle, auto Destroy>
struct LtDeleter {
  void operator()(Handle h) const { Destroy(h); }
};
using OpDesc = std::unique_ptr<std::remove_pointer_t<cublasLtMatmulDesc_t>,
                               LtDeleter<cublasLtMatmulDesc_t, &cublasLtMatmulDescDestroy>>;
using Layout = std::unique_ptr<std::remove_pointer_t<cublasLtMatrixLayout_t>,
                               LtDeleter<cublasLtMatrixLayout_t, &cublasLtMatrixLayoutDestroy>>;
using Preference = std::unique_ptr<std::remove_pointer_t<cublasLtMatmulPreference_t>,
                                   LtDeleter<cublasLtMatmulPreference_t, &cublasLtMatmulPreferenceDestroy>>;

// Column-major layout of `rows` x `cols` with leading dimension ld.
Layout make_layout(DType t, std::int64_t rows, std::int64_t cols, std::int64_t ld) {
  cublasLtMatrixLayout_t raw = nullptr;
  LOOM_CUBLAS_CHECK(
      cublasLtMatrixLayoutCreate(&raw, cuda_data_type(t), std::uint64_t(rows), std::uint64_t(cols), ld));
  return Layout(raw);
}

// Largest power of two (<= 256) dividing the address: what cuBLASLt may assume.
std::uint32_t alignment_of(const void* p) {
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  std::uint32_t a = 256;
  while (a > 1 && addr % a != 0) a /= 2;
  return a;
}

cublasOperation_t op_of(Trans t) { return t == Trans::yes ? CUBLAS_OP_T : CUBLAS_OP_N; }

}  // namespace

cudaDataType_t cuda_data_type(DType t) {
  switch (t) {
    case DType::f32:
      return CUDA_R_32F;
    case DType::bf16:
      return CUDA_R_16BF;
    case DType::f16:
      return CUDA_R_16F;
  }
  throw Error("cuda_data_type: invalid dtype value");
}

LtMatmul::LtMatmul(std::size_t workspace_bytes) : workspace_bytes_(workspace_bytes) {
  LOOM_CUBLAS_CHECK(cublasLtCreate(&handle_));
  const cudaError_t err = cudaMalloc(&workspace_, workspace_bytes_);
  if (err != cudaSuccess) {
    cublasLtDestroy(handle_);
    check_cuda(err, "cudaMalloc (cuBLASLt workspace)");
  }
}

LtMatmul::~LtMatmul() {
  cudaFree(workspace_);  // errors ignored: destructors must not throw
  cublasLtDestroy(handle_);
}

namespace {

// The cuBLASLt epilogue for `ep`, CUBLASLT_EPILOGUE_DEFAULT for none.
cublasLtEpilogue_t epilogue_of(const Epilogue& ep) {
  const bool bias = !ep.bias.empty();
  switch (ep.kind) {
    case Epilogue::Kind::none: return CUBLASLT_EPILOGUE_DEFAULT;
    case Epilogue::Kind::bias: return CUBLASLT_EPILOGUE_BIAS;
    case Epilogue::Kind::gelu: return bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
    case Epilogue::Kind::dgelu: return CUBLASLT_EPILOGUE_DGELU;
  }
  throw Error("epilogue_of: invalid kind");
}

// Sets the epilogue's attributes on `op` (column-major D is N x M: a bias of N rows,
// broadcast over the M columns; the aux matrix shaped and strided as D).
void set_epilogue(cublasLtMatmulDesc_t op, const Epilogue& ep, std::int64_t N) {
  const cublasLtEpilogue_t epilogue = epilogue_of(ep);
  LOOM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
  if (!ep.bias.empty()) {
    const void* bias_ptr = ep.bias.ptr;
    const cudaDataType_t bias_type = cuda_data_type(ep.bias.dtype);
    LOOM_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias_ptr, sizeof(bias_ptr)));
    LOOM_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)));
  }
  if (!ep.aux.empty()) {
    const void* aux_ptr = ep.aux.ptr;
    const std::int64_t aux_ld = N;
    const cudaDataType_t aux_type = cuda_data_type(ep.aux.dtype);
    LOOM_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux_ptr, sizeof(aux_ptr)));
    LOOM_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof(aux_ld)));
    LOOM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, &aux_type,
                                                     sizeof(aux_type)));
  }
}

}  // namespace

bool LtMatmul::run(Tensor out, Tensor a, Tensor b, const Epilogue& ep, Trans ta, Trans tb, std::int64_t M,
                   std::int64_t N, std::int64_t K, float alpha, float beta, cudaStream_t stream) {
  const bool with_epilogue = ep.kind != Epilogue::Kind::none;
  // The epilogue reads the bias and the aux matrix in 16-byte loads; the aux ld must divide by 8.
  if (!ep.bias.empty() && alignment_of(ep.bias.ptr) < 16) return false;
  if (!ep.aux.empty() && (alignment_of(ep.aux.ptr) < 16 || N % 8 != 0)) return false;
  cublasLtMatmulDesc_t raw_op = nullptr;
  LOOM_CUBLAS_CHECK(cublasLtMatmulDescCreate(&raw_op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  OpDesc op(raw_op);
  const cublasOperation_t op_a = op_of(tb), op_b = op_of(ta);  // cuBLASLt's A is our b
  LOOM_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(op.get(), CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)));
  LOOM_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(op.get(), CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)));
  if (with_epilogue) set_epilogue(op.get(), ep, N);

  // Stored (column-major) extents: b is N x K (or K x N when transposed), a is K x M (or M x K).
  const Layout la = tb == Trans::no ? make_layout(b.dtype, N, K, b.shape.last())
                                    : make_layout(b.dtype, K, N, b.shape.last());
  const Layout lb = ta == Trans::no ? make_layout(a.dtype, K, M, a.shape.last())
                                    : make_layout(a.dtype, M, K, a.shape.last());
  const Layout lc = make_layout(out.dtype, N, M, N);

  const std::uint32_t align_a = alignment_of(b.ptr), align_b = alignment_of(a.ptr),
                      align_c = alignment_of(out.ptr);
  const Key key{M, N, K, ta == Trans::yes, tb == Trans::yes, int(a.dtype), int(b.dtype), int(out.dtype),
                align_a, align_b, align_c, int(ep.kind), ep.bias.empty() ? -1 : int(ep.bias.dtype),
                ep.aux.empty() ? 0u : alignment_of(ep.aux.ptr)};
  auto cached = algos_.find(key);
  if (cached == algos_.end()) {
    cublasLtMatmulPreference_t raw_pref = nullptr;
    LOOM_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&raw_pref));
    Preference pref(raw_pref);
    const std::uint64_t ws = workspace_bytes_;
    LOOM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.get(), CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                           &ws, sizeof(ws)));
    LOOM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof(align_a)));
    LOOM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof(align_b)));
    LOOM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c, sizeof(align_c)));
    LOOM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c, sizeof(align_c)));

    cublasLtMatmulHeuristicResult_t heuristic{};
    int found = 0;
    const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(handle_, op.get(), la.get(), lb.get(), lc.get(),
                                                                 lc.get(), pref.get(), 1, &heuristic, &found);
    // With an epilogue, "not supported" (a status or no algorithm) means: no algorithm for it.
    if (!with_epilogue) check_cublas(status, "cublasLtMatmulAlgoGetHeuristic");
    if ((status != CUBLAS_STATUS_SUCCESS || found == 0) && with_epilogue) {  // remembered: the caller runs unfused
      algos_.emplace(key, std::nullopt);
      return false;
    }
    LOOM_CHECK(found > 0, "this dtype combination or alignment may be unsupported by cuBLASLt; try f32",
               "matmul: cuBLASLt found no algorithm for out {} = op(a {}) op(b {}) (M={}, N={}, K={}, "
               "trans_a={}, trans_b={})",
               out.str(), a.str(), b.str(), M, N, K, ta == Trans::yes, tb == Trans::yes);
    cached = algos_.emplace(key, heuristic.algo).first;
  }

  if (!cached->second) return false;
  LOOM_CUBLAS_CHECK(cublasLtMatmul(handle_, op.get(), &alpha, b.ptr, la.get(), a.ptr, lb.get(), &beta,
                                   out.ptr, lc.get(), out.ptr, lc.get(), &*cached->second, workspace_,
                                   workspace_bytes_, stream));
  return true;
}

}  // namespace loom::cuda
