// tests/unit/test_backend_errors.cpp — bad shapes and dtypes are refused by the CPU backend.
//
// backend/backend.h: "bad shapes or dtypes throw loom::Error naming the op and the
// shapes". Each case makes one argument wrong and checks that a loom::Error (not
// another exception, not a crash) comes out and that what() names the op and the
// offending shapes (Shape::str(), e.g. "(3,4)"). Controls check the same calls with
// correct arguments do not throw, so a backend that throws on everything fails.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "backend/registry.h"
#include "tests/unit/reference.h"

namespace loom {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// what() of the loom::Error that f throws, or a description of what happened instead.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<not a loom::Error: ") + e.what() + ">";
  }
  return "<no exception>";
}

class Errors : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = make_backend(Device::cpu);
  Buffer buf(Shape s, DType dt = DType::f32) { return ref::filled(*be, s, dt, 0.5); }
  std::vector<std::int32_t> ids = std::vector<std::int32_t>(64, 1);
  TokenView tok(Shape s) { return ref::tokens(ids, s); }
};

TEST_F(Errors, ControlsWithGoodShapesDoNotThrow) {
  Buffer a = buf({3, 4}), b = buf({4, 6}), out = buf({3, 6}), bias = buf({6});
  EXPECT_NO_THROW(be->matmul(out, a, b, bias, {}));
  Buffer x = buf({2, 8}), w = buf({8}), y = buf({2, 8}), mean = buf({2}), rstd = buf({2});
  EXPECT_NO_THROW(be->layernorm_forward(y, mean, rstd, x, w, w, 1e-5f));
  Buffer qkv = buf({1, 4, 12}), att = buf({1, 4, 4}), probs = buf({1, 2, 4, 4});
  EXPECT_NO_THROW(be->attention_forward(att, probs, qkv, 2));
  Buffer logits = buf({2, 5}), max = buf({2}), stats = buf({2, 2}), lse = buf({2}), losses = buf({2});
  EXPECT_NO_THROW(be->cross_entropy_shard_max(max, logits, 0, 5));
  EXPECT_NO_THROW(be->cross_entropy_shard_sumexp(stats, logits, max, tok({2}), 0, 5));
  EXPECT_NO_THROW(be->cross_entropy_loss(lse, losses, max, stats, tok({2})));
  EXPECT_NO_THROW(be->cross_entropy_shard_backward(logits, logits, tok({2}), 0, 5, lse, 1.0f));
  EXPECT_NO_THROW(be->sum(logits));
  Buffer p = buf({4}), g = buf({4}), m = buf({4}), v = buf({4});
  EXPECT_NO_THROW(be->adamw(p, g, m, v, {.lr = 1e-3f}));
  Buffer e = buf({1, 2, 4}), wte = buf({3, 4}), wpe = buf({2, 4});
  EXPECT_NO_THROW(be->embedding_forward(e, tok({1, 2}), wte, wpe, 0));
}

// ---- matmul -------------------------------------------------------------------------------

TEST_F(Errors, MatmulInnerDimsMismatch) {
  Buffer a = buf({3, 4}), b = buf({5, 6}), out = buf({3, 6});
  EXPECT_THAT(error_of([&] { be->matmul(out, a, b, {}, {}); }),
              AllOf(HasSubstr("matmul"), HasSubstr("(3,4)"), HasSubstr("(5,6)")));
  Buffer at = buf({4, 3});  // a^T is (3,4): K = 4 against b's 5 rows
  EXPECT_THAT(error_of([&] { be->matmul(out, at, b, {}, {.trans_a = Trans::yes}); }),
              AllOf(HasSubstr("matmul"), HasSubstr("(4,3)"), HasSubstr("(5,6)")));
  Buffer bt = buf({6, 5});  // b^T is (5,6): K = 5 against a's 4 columns
  EXPECT_THAT(error_of([&] { be->matmul(out, a, bt, {}, {.trans_b = Trans::yes}); }),
              AllOf(HasSubstr("matmul"), HasSubstr("(3,4)"), HasSubstr("(6,5)")));
}

TEST_F(Errors, MatmulWrongOutputOrBias) {
  Buffer a = buf({3, 4}), b = buf({4, 6}), out = buf({3, 7}), good = buf({3, 6}), bias = buf({5});
  EXPECT_THAT(error_of([&] { be->matmul(out, a, b, {}, {}); }),
              AllOf(HasSubstr("matmul"), HasSubstr("(3,7)")));
  EXPECT_THAT(error_of([&] { be->matmul(good, a, b, bias, {}); }),
              AllOf(HasSubstr("matmul"), HasSubstr("(5)")));
}

TEST_F(Errors, BiasBackwardWidthMismatch) {
  Buffer dbias = buf({5}), dout = buf({3, 6});
  EXPECT_THAT(error_of([&] { be->bias_backward(dbias, dout); }),
              AllOf(HasSubstr("bias_backward"), HasSubstr("(5)"), HasSubstr("6")));
}

// ---- elementwise ------------------------------------------------------------------------------

TEST_F(Errors, ElementwiseShapeMismatch) {
  // Elementwise ops compare element counts (views of one buffer may differ in shape);
  // the message names the op, one tensor's shape and the count the other needs.
  Buffer a = buf({2, 3}), b = buf({3, 2}), c = buf({7}), out = buf({2, 3});
  EXPECT_THAT(error_of([&] { be->add(out, a, c); }),
              AllOf(HasSubstr("add"), HasSubstr("(7)"), HasSubstr("6")));
  EXPECT_THAT(error_of([&] { be->axpy(a, 2.0f, c); }),
              AllOf(HasSubstr("axpy"), HasSubstr("(2,3)"), HasSubstr("7")));
  Buffer h = buf({7}, DType::bf16);
  EXPECT_THAT(error_of([&] { be->cast(h, a); }), AllOf(HasSubstr("cast"), HasSubstr("(7)"), HasSubstr("6")));
  EXPECT_THAT(error_of([&] { be->gelu_forward(c, a); }), AllOf(HasSubstr("gelu"), HasSubstr("(7)")));
  EXPECT_THAT(error_of([&] { be->gelu_backward(a, c, a); }), AllOf(HasSubstr("gelu"), HasSubstr("(7)")));
  EXPECT_THAT(error_of([&] { be->softmax_forward(b, a); }), AllOf(HasSubstr("softmax"), HasSubstr("(3,2)")));
  EXPECT_THAT(error_of([&] { be->softmax_backward(a, a, c); }),
              AllOf(HasSubstr("softmax"), HasSubstr("(7)")));
}

TEST_F(Errors, FusedGeluMatmulWritesAndRefusesToAccumulate) {
  // matmul_gelu / matmul_dgelu write their outputs; asked to accumulate they say so.
  Buffer a = buf({2, 3}), w = buf({4, 3}), h = buf({2, 4}), g = buf({2, 4});
  EXPECT_THAT(error_of([&] { be->matmul_gelu(h, g, a, w, {}, {.trans_b = Trans::yes, .accumulate = Accumulate::yes}); }),
              AllOf(HasSubstr("matmul_gelu"), HasSubstr("accumulate")));
  Buffer dh = buf({2, 3}), pre = buf({2, 3});  // dh = (g w) * gelu'(pre)
  EXPECT_THAT(error_of([&] { be->matmul_dgelu(dh, g, w, pre, {.accumulate = Accumulate::yes}); }),
              AllOf(HasSubstr("matmul_dgelu"), HasSubstr("accumulate")));
  Buffer bad = buf({2, 5});  // g's shape is h's: the GELU's check names it
  EXPECT_THAT(error_of([&] { be->matmul_gelu(h, bad, a, w, {}, {.trans_b = Trans::yes}); }),
              AllOf(HasSubstr("gelu"), HasSubstr("(2,5)")));
}

// ---- layernorm -------------------------------------------------------------------------------

TEST_F(Errors, LayerNormWrongSizes) {
  Buffer x = buf({2, 8}), y = buf({2, 8}), w = buf({7}), good_w = buf({8}), mean = buf({2}), rstd = buf({2});
  EXPECT_THAT(error_of([&] { be->layernorm_forward(y, mean, rstd, x, w, good_w, 1e-5f); }),
              AllOf(HasSubstr("layernorm"), HasSubstr("(7)")));
  EXPECT_THAT(error_of([&] { be->layernorm_forward(y, mean, rstd, x, good_w, w, 1e-5f); }),
              AllOf(HasSubstr("layernorm"), HasSubstr("(7)")));
  Buffer mean3 = buf({3});
  EXPECT_THAT(error_of([&] { be->layernorm_forward(y, mean3, rstd, x, good_w, good_w, 1e-5f); }),
              AllOf(HasSubstr("layernorm"), HasSubstr("(3)")));
  Buffer dx = buf({2, 9}), dw = buf({8}), db = buf({8});
  EXPECT_THAT(error_of([&] { be->layernorm_backward(dx, dw, db, y, x, good_w, mean, rstd, Accumulate::no); }),
              AllOf(HasSubstr("layernorm"), HasSubstr("(2,9)")));
  EXPECT_THAT(error_of([&] { be->layernorm_backward(y, w, db, y, x, good_w, mean, rstd, Accumulate::no); }),
              AllOf(HasSubstr("layernorm"), HasSubstr("(7)")));
}

// ---- attention ---------------------------------------------------------------------------------

TEST_F(Errors, AttentionWrongShapes) {
  Buffer qkv = buf({1, 4, 9}), out = buf({1, 4, 3}), probs = buf({1, 2, 4, 4});
  // 9 is not 3 * heads * D for heads = 2
  EXPECT_THAT(error_of([&] { be->attention_forward(out, probs, qkv, 2); }),
              AllOf(HasSubstr("attention"), HasSubstr("(1,4,9)")));
  Buffer qkv12 = buf({1, 4, 12}), out5 = buf({1, 4, 5}), out4 = buf({1, 4, 4});
  EXPECT_THAT(error_of([&] { be->attention_forward(out5, probs, qkv12, 2); }),
              AllOf(HasSubstr("attention"), HasSubstr("(1,4,5)"), HasSubstr("(1,4,4)")));
  Buffer probs_bad = buf({1, 2, 4, 3});
  EXPECT_THAT(error_of([&] { be->attention_forward(out4, probs_bad, qkv12, 2); }),
              AllOf(HasSubstr("attention"), HasSubstr("(1,2,4,3)")));
  Buffer dqkv = buf({1, 4, 11}), scratch = buf({1, 2, 4, 4});
  EXPECT_THAT(error_of([&] { be->attention_backward(dqkv, scratch, out4, qkv12, probs, 2); }),
              AllOf(HasSubstr("attention"), HasSubstr("(1,4,11)")));
}

// ---- embedding ----------------------------------------------------------------------------------

TEST_F(Errors, EmbeddingWrongShapes) {
  Buffer out = buf({1, 2, 4}), wte = buf({3, 5}), good_wte = buf({3, 4}), wpe = buf({1, 4});
  EXPECT_THAT(error_of([&] {
                be->embedding_forward(out, tok({1, 2}), wte, {}, 0);
              }),
              AllOf(HasSubstr("embedding"), HasSubstr("(3,5)")));
  // two positions, one wpe row
  EXPECT_THAT(error_of([&] {
                be->embedding_forward(out, tok({1, 2}), good_wte, wpe, 0);
              }),
              AllOf(HasSubstr("embedding"), HasSubstr("(1,4)")));
  // tokens (1,3) for an output of (1,2,4)
  EXPECT_THAT(error_of([&] {
                be->embedding_forward(out, tok({1, 3}), good_wte, {}, 0);
              }),
              AllOf(HasSubstr("embedding"), HasSubstr("(1,3)")));
  EXPECT_THAT(error_of([&] {
                be->embedding_backward(wte, {}, out, tok({1, 2}), 0);
              }),
              AllOf(HasSubstr("embedding"), HasSubstr("(3,5)")));
}

// ---- cross-entropy ---------------------------------------------------------------------------------

// logits (3,5) f32 below: N = 3 rows, so the planar stats are (2,3) and a (3,2) is wrong.
TEST_F(Errors, CrossEntropyShardMaxWrongShapes) {
  Buffer logits = buf({3, 5}), max2 = buf({2}), max16 = buf({3}, DType::bf16), max = buf({3});
  EXPECT_THAT(error_of([&] { be->cross_entropy_shard_max(max2, logits, 0, 5); }),
              AllOf(HasSubstr("cross_entropy_shard_max"), HasSubstr("(2)"), HasSubstr("3")));
  EXPECT_THAT(error_of([&] { be->cross_entropy_shard_max(max16, logits, 0, 5); }),
              AllOf(HasSubstr("cross_entropy_shard_max"), HasSubstr("bf16")));
  EXPECT_THAT(error_of([&] { be->cross_entropy_shard_max(max, logits, -5, 5); }),
              AllOf(HasSubstr("cross_entropy_shard_max"), HasSubstr("-5"), HasSubstr("(3,5)")));
  EXPECT_THAT(error_of([&] { be->cross_entropy_shard_max(max, logits, 0, 0); }),
              AllOf(HasSubstr("cross_entropy_shard_max"), HasSubstr("vocab 0"), HasSubstr("(3,5)")));
}

TEST_F(Errors, CrossEntropyShardSumexpWrongShapes) {
  Buffer logits = buf({3, 5}), max = buf({3}), stats = buf({2, 3});
  Buffer stats_t = buf({3, 2}), stats16 = buf({2, 3}, DType::f16), max4 = buf({4});
  EXPECT_NO_THROW(be->cross_entropy_shard_sumexp(stats, logits, max, tok({3}), 0, 5));
  EXPECT_THAT(error_of([&] { be->cross_entropy_shard_sumexp(stats_t, logits, max, tok({3}), 0, 5); }),
              AllOf(HasSubstr("cross_entropy_shard_sumexp"), HasSubstr("(3,2)"), HasSubstr("(2,3)")));
  EXPECT_THAT(error_of([&] { be->cross_entropy_shard_sumexp(stats16, logits, max, tok({3}), 0, 5); }),
              AllOf(HasSubstr("cross_entropy_shard_sumexp"), HasSubstr("f16")));
  EXPECT_THAT(error_of([&] { be->cross_entropy_shard_sumexp(stats, logits, max4, tok({3}), 0, 5); }),
              AllOf(HasSubstr("cross_entropy_shard_sumexp"), HasSubstr("(4)"), HasSubstr("3")));
  EXPECT_THAT(error_of([&] { be->cross_entropy_shard_sumexp(stats, logits, max, tok({4}), 0, 5); }),
              AllOf(HasSubstr("cross_entropy_shard_sumexp"), HasSubstr("(4)"), HasSubstr("(3,5)")));
}

TEST_F(Errors, CrossEntropyLossWrongShapes) {
  Buffer max = buf({3}), stats = buf({2, 3}), lse = buf({3}), losses = buf({3});
  Buffer lse4 = buf({4}), losses16 = buf({3}, DType::bf16), stats_t = buf({3, 2});
  EXPECT_NO_THROW(be->cross_entropy_loss(lse, losses, max, stats, tok({3})));
  EXPECT_THAT(error_of([&] { be->cross_entropy_loss(lse4, losses, max, stats, tok({3})); }),
              AllOf(HasSubstr("cross_entropy_loss"), HasSubstr("(4)"), HasSubstr("3")));
  EXPECT_THAT(error_of([&] { be->cross_entropy_loss(lse, losses16, max, stats, tok({3})); }),
              AllOf(HasSubstr("cross_entropy_loss"), HasSubstr("bf16")));
  EXPECT_THAT(error_of([&] { be->cross_entropy_loss(lse, losses, max, stats_t, tok({3})); }),
              AllOf(HasSubstr("cross_entropy_loss"), HasSubstr("(3,2)"), HasSubstr("(2,3)")));
  EXPECT_THAT(error_of([&] { be->cross_entropy_loss(lse, losses, max, stats, tok({2})); }),
              AllOf(HasSubstr("cross_entropy_loss"), HasSubstr("(2)"), HasSubstr("(3)")));
}

TEST_F(Errors, CrossEntropyShardBackwardWrongShapes) {
  Buffer logits = buf({2, 5}), lse = buf({2}), dl = buf({2, 4}), dl16 = buf({2, 5}, DType::bf16),
         lse3 = buf({3});
  EXPECT_THAT(error_of([&] { be->cross_entropy_shard_backward(dl, logits, tok({2}), 0, 5, lse, 1.0f); }),
              AllOf(HasSubstr("cross_entropy_shard_backward"), HasSubstr("(2,4)"), HasSubstr("(2,5)")));
  EXPECT_THAT(error_of([&] { be->cross_entropy_shard_backward(dl16, logits, tok({2}), 0, 5, lse, 1.0f); }),
              AllOf(HasSubstr("cross_entropy_shard_backward"), HasSubstr("bf16"), HasSubstr("f32")));
  EXPECT_THAT(error_of([&] { be->cross_entropy_shard_backward(logits, logits, tok({2}), 0, 5, lse3, 1.0f); }),
              AllOf(HasSubstr("cross_entropy_shard_backward"), HasSubstr("(3)")));
  EXPECT_THAT(error_of([&] { be->cross_entropy_shard_backward(logits, logits, tok({3}), 0, 5, lse, 1.0f); }),
              AllOf(HasSubstr("cross_entropy_shard_backward"), HasSubstr("(3)"), HasSubstr("(2,5)")));
}

// Targets below 0 mean "not a target" and are accepted; targets >= vocab are refused.
TEST_F(Errors, CrossEntropyTargetsMustBeBelowTheVocabulary) {
  Buffer logits = buf({2, 5}), max = buf({2}), stats = buf({2, 2}), lse = buf({2});
  std::vector<std::int32_t> ignored{-1, -100};
  EXPECT_NO_THROW(be->cross_entropy_shard_sumexp(stats, logits, max, ref::tokens(ignored, {2}), 0, 5));
  EXPECT_NO_THROW(
      be->cross_entropy_shard_backward(logits, logits, ref::tokens(ignored, {2}), 0, 5, lse, 1.0f));
  std::vector<std::int32_t> bad{0, 7};  // 7 is not below vocab = 5 (though below 10 = 5 + Vs)
  EXPECT_THAT(
      error_of([&] { be->cross_entropy_shard_sumexp(stats, logits, max, ref::tokens(bad, {2}), 5, 5); }),
      AllOf(HasSubstr("cross_entropy_shard_sumexp"), HasSubstr("7"), HasSubstr("5")));
  EXPECT_THAT(error_of([&] {
                be->cross_entropy_shard_backward(logits, logits, ref::tokens(bad, {2}), 0, 5, lse, 1.0f);
              }),
              AllOf(HasSubstr("cross_entropy_shard_backward"), HasSubstr("7"), HasSubstr("5")));
}

// ---- statistics saved for backward are always f32 (backend.h) ------------------------------

TEST_F(Errors, SavedStatisticsMustBeF32) {
  Buffer x = buf({2, 8}), y = buf({2, 8}), w = buf({8}), mean = buf({2}), rstd = buf({2});
  Buffer mean16 = buf({2}, DType::bf16), rstd16 = buf({2}, DType::f16);
  EXPECT_THAT(error_of([&] { be->layernorm_forward(y, mean16, rstd, x, w, w, 1e-5f); }),
              AllOf(HasSubstr("layernorm"), HasSubstr("bf16")));
  EXPECT_THAT(error_of([&] { be->layernorm_backward(y, w, w, y, x, w, mean, rstd16, Accumulate::no); }),
              AllOf(HasSubstr("layernorm"), HasSubstr("f16")));
  Buffer qkv = buf({1, 4, 12}), out = buf({1, 4, 4}), probs16 = buf({1, 2, 4, 4}, DType::bf16);
  EXPECT_THAT(error_of([&] { be->attention_forward(out, probs16, qkv, 2); }),
              AllOf(HasSubstr("attention"), HasSubstr("bf16")));
  Buffer logits = buf({2, 5}), max16 = buf({2}, DType::bf16), lse16 = buf({2}, DType::f16);
  Buffer max = buf({2}), stats = buf({2, 2}), lse = buf({2});
  EXPECT_THAT(error_of([&] { be->cross_entropy_shard_max(max16, logits, 0, 5); }),
              AllOf(HasSubstr("cross_entropy_shard_max"), HasSubstr("bf16")));
  EXPECT_THAT(error_of([&] { be->cross_entropy_shard_sumexp(stats, logits, max16, tok({2}), 0, 5); }),
              AllOf(HasSubstr("cross_entropy_shard_sumexp"), HasSubstr("bf16")));
  EXPECT_THAT(error_of([&] { be->cross_entropy_loss(lse16, lse, max, stats, tok({2})); }),
              AllOf(HasSubstr("cross_entropy_loss"), HasSubstr("f16")));
  EXPECT_THAT(
      error_of([&] { be->cross_entropy_shard_backward(logits, logits, tok({2}), 0, 5, lse16, 1.0f); }),
      AllOf(HasSubstr("cross_entropy_shard_backward"), HasSubstr("f16")));
}

// ---- adamw ------------------------------------------------------------------------------------------

TEST_F(Errors, AdamWRequiresF32AndEqualShapes) {
  Buffer p16 = buf({4}, DType::bf16), p = buf({4}), g = buf({4}), m = buf({4}), v = buf({4});
  EXPECT_THAT(error_of([&] { be->adamw(p16, g, m, v, {.lr = 1e-3f}); }),
              AllOf(HasSubstr("adamw"), HasSubstr("bf16")));
  Buffer g16 = buf({4}, DType::f16);
  EXPECT_THAT(error_of([&] { be->adamw(p, g16, m, v, {.lr = 1e-3f}); }),
              AllOf(HasSubstr("adamw"), HasSubstr("f16")));
  Buffer g5 = buf({5});
  EXPECT_THAT(error_of([&] { be->adamw(p, g5, m, v, {.lr = 1e-3f}); }),
              AllOf(HasSubstr("adamw"), HasSubstr("(4)"), HasSubstr("(5)")));
  Buffer v3 = buf({3});
  EXPECT_THAT(error_of([&] { be->adamw(p, g, m, v3, {.lr = 1e-3f}); }),
              AllOf(HasSubstr("adamw"), HasSubstr("(3)")));
}

TEST_F(Errors, CopyWithDifferentByteSizes) {
  Buffer a = buf({4}), b = buf({5});
  EXPECT_THAT(error_of([&] { be->copy(a, b); }),
              AllOf(HasSubstr("copy"), HasSubstr("(4)"), HasSubstr("(5)")));
}

}  // namespace
}  // namespace loom
