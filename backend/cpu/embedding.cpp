// backend/cpu/embedding.cpp — token + position embedding, forward and backward.
//
// tokens (B,T) int32; wte (Vs,C) holds vocabulary rows [vocab_start, vocab_start+Vs)
// (all of them when not vocab-parallel); wpe (Tmax,C) or empty; out (B,T,C).
// Backward accumulates into dwte/dwpe. To stay race-free without atomics, each
// thread owns a contiguous block of channels and walks all positions: repeated
// tokens then add up in position order, the same on every run.
#include <algorithm>

#include "backend/checks.h"
#include "backend/cpu/kernels.h"

namespace loom::cpu {

namespace {
void check_tokens(const char* op, TokenView tokens, Tensor out) {
  LOOM_CHECK(tokens.device == Device::cpu, "", "{}: tokens live on {}", op, device_name(tokens.device));
  LOOM_CHECK(out.shape.rank() == 3 && out.shape[0] == tokens.shape[0] && out.shape[1] == tokens.shape[1] &&
                 tokens.shape.rank() == 2,
             "", "{}: tokens are {} and out/dout is {}; expected tokens (B,T) and (B,T,C)", op,
             tokens.shape.str(), out.str());
}
}  // namespace

void embedding_forward(Tensor out, TokenView tokens, Tensor wte, Tensor wpe, std::int64_t vocab_start) {
  const char* op = "embedding_forward";
  check_tokens(op, tokens, out);
  const std::int64_t B = out.shape[0], T = out.shape[1], C = out.shape[2], Vs = wte.shape.rows();
  LOOM_CHECK(wte.shape.last() == C, "", "{}: wte is {} but out is {}; channels differ", op, wte.str(),
             out.str());
  LOOM_CHECK(wpe.empty() || (wpe.shape.last() == C && wpe.shape.rows() >= T), "",
             "{}: wpe is {} but must be (>= {}, {})", op, wpe.str(), T, C);
  visit_dtype(out.dtype, [&](auto t) {
    using T_ = decltype(t);
    T_* o = static_cast<T_*>(out.ptr);
    const T_* e = wte.data<T_>();
    const T_* p = wpe.empty() ? nullptr : wpe.data<T_>();
#pragma omp parallel for schedule(static)
    for (std::int64_t bt = 0; bt < B * T; ++bt) {
      const std::int64_t row = std::int64_t(tokens.ptr[bt]) - vocab_start;
      const bool mine = 0 <= row && row < Vs;
      const std::int64_t pos = bt % T;
      for (std::int64_t c = 0; c < C; ++c) {
        float v = mine ? ld(e, row * C + c) : 0.0f;
        if (p) v += ld(p, pos * C + c);
        st(o, bt * C + c, v);
      }
    }
  });
}

void embedding_backward(Tensor dwte, Tensor dwpe, Tensor dout, TokenView tokens, std::int64_t vocab_start) {
  const char* op = "embedding_backward";
  check_tokens(op, tokens, dout);
  const std::int64_t B = dout.shape[0], T = dout.shape[1], C = dout.shape[2];
  const std::int64_t Vs = dwte.empty() ? 0 : dwte.shape.rows();
  LOOM_CHECK(dwte.empty() || dwte.shape.last() == C, "", "{}: dwte is {} but dout is {}", op, dwte.str(),
             dout.str());
  LOOM_CHECK(dwpe.empty() || (dwpe.shape.last() == C && dwpe.shape.rows() >= T), "",
             "{}: dwpe is {} but must be (>= {}, {})", op, dwpe.str(), T, C);
  LOOM_CHECK(dwte.empty() || dwpe.empty() || dwte.dtype == dwpe.dtype, "", "{}: dwte is {} but dwpe is {}",
             op, dwte.str(), dwpe.str());
  // The gradients may be f32 while dout is 16-bit (mixed precision's main_grad).
  const DType gdt = dwte.empty() ? dwpe.dtype : dwte.dtype;
  visit_dtype(dout.dtype, [&](auto t) {
    visit_dtype(gdt, [&](auto tg) {
      using T_ = decltype(t);
      using G = decltype(tg);
      const T_* d = static_cast<const T_*>(dout.ptr);
      G* e = dwte.empty() ? nullptr : dwte.data<G>();
      G* p = dwpe.empty() ? nullptr : dwpe.data<G>();
      constexpr std::int64_t kCols = 16;
#pragma omp parallel for schedule(static)
      for (std::int64_t c0 = 0; c0 < C; c0 += kCols) {
        const std::int64_t nc = std::min(kCols, C - c0);
        for (std::int64_t bt = 0; bt < B * T; ++bt) {
          const std::int64_t row = std::int64_t(tokens.ptr[bt]) - vocab_start;
          const std::int64_t pos = bt % T;
          for (std::int64_t c = c0; c < c0 + nc; ++c) {
            const float g = ld(d, bt * C + c);
            if (e && 0 <= row && row < Vs) st(e, row * C + c, ld(e, row * C + c) + g);
            if (p) st(p, pos * C + c, ld(p, pos * C + c) + g);
          }
        }
      }
    });
  });
}

}  // namespace loom::cpu
