// tests/unit/test_subword_vs_bytes.cpp — why subword tokenizers: the check that a
// model trained on subword-tokenised text reaches a lower loss per byte than the same model
// trained on bytes with the same compute.
//
// The King James Bible (Debian's bible-kjv; launch/install-deps.sh installs it) is made
// into two datasets: bytes, and a 1024-piece SentencePiece BPE model trained on it by
// `loom-data train-tokenizer` (identity normalisation, whitespace kept, byte fallback: the
// tokenisation is lossless, so both datasets hold the same text). The same small model
// trains on each; the byte run gets as many more steps as make its training FLOPs equal
// the subword run's (its head is smaller). Loss per byte = val loss (nats per token) x
// tokens / bytes of the val split it was measured on; the val split's bytes are its decoded
// text. When written (commit after 0436d97), 100 subword steps gave 1.82 nats per
// byte and the compute-matched byte run (116 steps) 2.51.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "io/token_dataset.h"
#include "io/tokenizer.h"
#include "programs.h"
#include "temp_dir.h"

namespace loom {
namespace {

namespace fs = std::filesystem;
using test::run_program;

struct TrainResult {
  double val_loss = 0;         // nats per token, at the last step
  double flops_per_token = 0;  // training FLOPs, from the step log
};

// Trains the small model on `data` for `steps` steps and returns the last val loss.
TrainResult train(const test::TempDir& dir, const std::string& name, const std::string& data, int steps) {
  const std::string run = dir.file("run-" + name);
  const auto r = run_program(
      "loom-train", fmt::format("--data.train {} --model.layers 2 --model.channels 128 --model.heads 4 "
                                "--model.seq_len 128 --train.global_batch 8 --train.micro_batch 8 "
                                "--train.steps {} --train.eval_interval {} --train.eval_batches 16 "
                                "--train.log_interval 1000 --optim.lr 3e-3 --optim.warmup_steps 10 "
                                "--checkpoint.dir {}",
                                data, steps, steps, run));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  TrainResult out;
  std::ifstream metrics(run + "/metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) {
    const auto rec = nlohmann::json::parse(line);
    if (rec["step"].get<int>() == 0) out.flops_per_token = rec["tflops"].get<double>() * 1e12 / rec["tokens_per_s"].get<double>();
    if (rec.contains("val_loss")) out.val_loss = rec["val_loss"].get<double>();
  }
  return out;
}

// Tokens per byte of a dataset's val split: its token count over its decoded text's bytes
// (documents' eod tokens count as tokens and decode to nothing).
double tokens_per_byte(const std::string& path, const TokenizerInfo& tok) {
  const TokenDataset val = TokenDataset::open(path, "val");
  std::vector<std::int32_t> tokens(std::size_t(val.size()));
  val.read(0, val.size(), tokens.data());
  return double(tokens.size()) / double(decode_with(tok, tokens).size());
}

TEST(SubwordVsBytes, SubwordKjvReachesALowerLossPerByteThanBytesWithTheSameCompute) {
  ASSERT_EQ(std::system("command -v bible >/dev/null 2>&1"), 0) << "needs the `bible` program (Debian bible-kjv)";
  test::TempDir dir("subword");
  const std::string text = dir.file("kjv.txt");
  ASSERT_EQ(std::system(("bible Gen1:1-Rev22:21 > " + text).c_str()), 0);
  auto made = run_program("loom-data", "train-tokenizer --input " + text + " --output " + dir.file("bpe") +
                                           " --model-type bpe --vocab-size 1024 --normalization identity"
                                           " --keep-whitespace --byte-fallback");
  ASSERT_EQ(made.exit_code, 0) << made.output;
  const std::string bytes_h5 = dir.file("bytes.h5"), bpe_h5 = dir.file("bpe.h5");
  made = run_program("loom-data", "--quiet --input " + text + " --output " + bytes_h5);
  ASSERT_EQ(made.exit_code, 0) << made.output;
  made = run_program("loom-data", "--quiet --input " + text + " --tokenizer " + dir.file("bpe.model") + " --output " + bpe_h5);
  ASSERT_EQ(made.exit_code, 0) << made.output;

  // Same compute: the byte run's steps scale with the FLOPs per token ratio (same tokens per step).
  const int bpe_steps = 100;
  const TrainResult bpe = train(dir, "bpe", bpe_h5, bpe_steps);
  const double bytes_flops = 6.0 * (2 * (4 * 128.0 * 128 + 2 * 128.0 * 512) + 128.0 * 384) + 12.0 * 2 * 128 * 128;
  const int bytes_steps = int(std::lround(bpe_steps * bpe.flops_per_token / bytes_flops));
  const TrainResult bytes = train(dir, "bytes", bytes_h5, bytes_steps);
  ASSERT_NEAR(bytes.flops_per_token, bytes_flops, 1e-6 * bytes_flops);  // the formula is loom's (Gpt::flops_per_token)
  ASSERT_GT(bpe.val_loss, 0);
  ASSERT_GT(bytes.val_loss, 0);

  const double bpe_tpb = tokens_per_byte(bpe_h5, tokenizer_by_name(dir.file("bpe.model")));
  const double bytes_tpb = tokens_per_byte(bytes_h5, tokenizer_by_name("bytes"));
  EXPECT_NEAR(bytes_tpb, 1.0, 1e-3);
  EXPECT_LT(bpe_tpb, 0.5);  // BPE-1024 packs more than two bytes a token on this text
  const double bpe_per_byte = bpe.val_loss * bpe_tpb, bytes_per_byte = bytes.val_loss * bytes_tpb;
  std::printf("subword: %d steps, val %.4f nats/token x %.4f tokens/byte = %.4f nats/byte\n"
              "bytes:   %d steps, val %.4f nats/token x %.4f tokens/byte = %.4f nats/byte\n",
              bpe_steps, bpe.val_loss, bpe_tpb, bpe_per_byte, bytes_steps, bytes.val_loss, bytes_tpb, bytes_per_byte);
  EXPECT_LT(bpe_per_byte, bytes_per_byte);
}

}  // namespace
}  // namespace loom
