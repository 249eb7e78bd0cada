// backend/cpu/rope.cpp — rotary position embedding (RoPE, Su et al. 2021), in place on the
// q and k heads of a fused qkv; the backward is the inverse rotation.
//
// qkv (B,T,(H + 2 Hkv) D) = [q heads | k heads | v heads]. At position t (the row's index
// within its sequence), channels (i, i + D/2) of each q and k head are rotated by
// a = t * base^(-2i/D), i < D/2 ("rotate half", GPT-NeoX / Hugging Face Llama):
//   x_i' = x_i cos a - x_{i+D/2} sin a,   x_{i+D/2}' = x_{i+D/2} cos a + x_i sin a.
// A rotation's inverse is its transpose, so backward applies angle -a to dq and dk: that is
// the gradient of the forward map. v is never rotated. The angle is formed in double (t up to
// the sequence length times a frequency near 1 loses f32 bits otherwise), then its cos and sin
// rounded to f32 and applied to every head of the row.
#include <cmath>
#include <vector>

#include "backend/checks.h"
#include "backend/cpu/kernels.h"

namespace loom::cpu {

void rope(Tensor qkv, int heads, int kv_heads, float base, bool inverse) {
  const char* op = inverse ? "rope_backward" : "rope_forward";
  LOOM_CHECK(qkv.shape.rank() == 3 && heads > 0 && kv_heads > 0 && heads % kv_heads == 0 &&
                 qkv.shape[2] % (heads + 2 * kv_heads) == 0 && (qkv.shape[2] / (heads + 2 * kv_heads)) % 2 == 0,
             "", "{}: qkv is {}; expected (B,T,(H + 2 Hkv) D) with H = {}, Hkv = {} dividing it and D even", op,
             qkv.str(), heads, kv_heads);
  LOOM_CHECK(base > 1.0f, "", "{}: base must be > 1, got {}", op, base);
  const std::int64_t B = qkv.shape[0], T = qkv.shape[1], W = qkv.shape[2];
  const std::int64_t D = W / (heads + 2 * kv_heads), half = D / 2, rotated = heads + kv_heads;  // q and k heads
  std::vector<double> inv_freq(static_cast<std::size_t>(half));
  for (std::int64_t i = 0; i < half; ++i) inv_freq[std::size_t(i)] = std::pow(double(base), -2.0 * double(i) / double(D));
  const float sign = inverse ? -1.0f : 1.0f;
  visit_dtype(qkv.dtype, [&](auto z) {
    using T_ = decltype(z);
    T_* p = qkv.data<T_>();
#pragma omp parallel for schedule(static)
    for (std::int64_t row = 0; row < B * T; ++row) {
      const double t = double(row % T);
      T_* r = p + row * W;
      for (std::int64_t i = 0; i < half; ++i) {
        const double a = t * inv_freq[std::size_t(i)];
        const float c = float(std::cos(a)), s = sign * float(std::sin(a));
        for (std::int64_t h = 0; h < rotated; ++h) {
          T_* x = r + h * D;
          const float x1 = ld(x, i), x2 = ld(x, i + half);
          st(x, i, x1 * c - x2 * s);
          st(x, i + half, x2 * c + x1 * s);
        }
      }
    }
  });
}

}  // namespace loom::cpu
