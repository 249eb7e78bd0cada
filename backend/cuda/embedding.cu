// backend/cuda/embedding.cu — token + position embedding, forward and deterministic backward.
//
// tokens (B,T) int32 in device memory; wte (Vs,C) holds vocabulary rows
// [vocab_start, vocab_start + Vs); wpe (>= T, C) or null; out/dout (B,T,C).
// Forward writes every element of out (a token outside the shard adds zeros).
// Backward accumulates (+=) with the CPU's order and rounding, without atomics
// or sorting: dwpe has one thread per (t, c) adding b = 0, 1, ... in order; dwte
// has one block per vocabulary row that scans all B*T tokens in position order
// (warp ballots find the matches) and adds each matching position's dout row,
// every channel owned by one thread. Each add rounds to the gradient's dtype, as
// backend/cpu/embedding.cpp does.
#include "backend/cuda/device_dtype.cuh"
#include "backend/cuda/kernels.h"

namespace loom::cuda {

namespace {

template <class T>
__global__ void embedding_forward_kernel(T* out, const std::int32_t* tokens, const T* wte, const T* wpe,
                                         std::int64_t BT, std::int64_t T_, std::int64_t C, std::int64_t Vs,
                                         std::int64_t vocab_start) {
  LOOM_GRID_STRIDE(i, BT * C) {
    const std::int64_t bt = i / C, c = i % C;
    const std::int64_t row = std::int64_t(tokens[bt]) - vocab_start;
    float v = 0 <= row && row < Vs ? ld(wte, row * C + c) : 0.0f;
    if (wpe) v += ld(wpe, (bt % T_) * C + c);
    st(out, i, v);
  }
}

template <class G, class T>
__global__ void embedding_dwpe_kernel(G* dwpe, const T* dout, std::int64_t B, std::int64_t T_, std::int64_t C) {
  LOOM_GRID_STRIDE(i, T_ * C) {  // i = t * C + c
    float acc = ld(dwpe, i);
    for (std::int64_t b = 0; b < B; ++b) acc = rnd<G>(acc + ld(dout, b * T_ * C + i));
    st(dwpe, i, acc);
  }
}

constexpr int kScanThreads = 256;  // tokens looked at per step; 8 warps

template <class G, class T>
__global__ void embedding_dwte_kernel(G* dwte, const T* dout, const std::int32_t* tokens, std::int64_t BT,
                                      std::int64_t C, std::int64_t vocab_start) {
  __shared__ unsigned masks[kScanThreads / 32];
  const std::int64_t row = blockIdx.x;
  const std::int64_t id = row + vocab_start;
  G* e = dwte + row * C;
  for (std::int64_t base = 0; base < BT; base += kScanThreads) {
    const std::int64_t bt = base + threadIdx.x;
    const bool match = bt < BT && std::int64_t(tokens[bt]) == id;
    const unsigned ballot = __ballot_sync(0xffffffffu, match);
    if (threadIdx.x % 32 == 0) masks[threadIdx.x / 32] = ballot;
    __syncthreads();
    for (int w = 0; w < kScanThreads / 32; ++w)
      for (unsigned m = masks[w]; m != 0; m &= m - 1) {
        const std::int64_t pos = base + w * 32 + (__ffs(int(m)) - 1);
        for (std::int64_t c = threadIdx.x; c < C; c += kScanThreads)
          st(e, c, ld(e, c) + ld(dout, pos * C + c));
      }
    __syncthreads();  // masks are rewritten by the next step
  }
}

}  // namespace

cudaError_t launch_embedding_forward(void* out, const std::int32_t* tokens, const void* wte, const void* wpe,
                                     DType t, std::int64_t B, std::int64_t T, std::int64_t C, std::int64_t Vs,
                                     std::int64_t vocab_start, cudaStream_t stream) {
  visit_dtype(t, [&](auto tag) {
    using E = decltype(tag);
    embedding_forward_kernel<<<grid_for(B * T * C), kThreads, 0, stream>>>(
        static_cast<E*>(out), tokens, static_cast<const E*>(wte), static_cast<const E*>(wpe), B * T, T, C, Vs,
        vocab_start);
  });
  return cudaGetLastError();
}

cudaError_t launch_embedding_backward(void* dwte, void* dwpe, DType tg, const void* dout, DType t,
                                      const std::int32_t* tokens, std::int64_t B, std::int64_t T, std::int64_t C,
                                      std::int64_t Vs, std::int64_t vocab_start, cudaStream_t stream) {
  visit_dtype(tg, [&](auto tag_g) {
    visit_dtype(t, [&](auto tag) {
      using G = decltype(tag_g);
      using E = decltype(tag);
      if (dwpe)
        embedding_dwpe_kernel<<<grid_for(T * C), kThreads, 0, stream>>>(static_cast<G*>(dwpe),
                                                                       static_cast<const E*>(dout), B, T, C);
      if (dwte && Vs > 0)
        embedding_dwte_kernel<<<unsigned(Vs), kScanThreads, 0, stream>>>(
            static_cast<G*>(dwte), static_cast<const E*>(dout), tokens, B * T, C, vocab_start);
    });
  });
  return cudaGetLastError();
}

}  // namespace loom::cuda
