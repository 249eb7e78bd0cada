// tests/unit/test_cli_configs.cpp — the model configurations users start from
// (launch/configs/*.ini) as loom-train reads them, and the decoder's parts from the
// command line: a llama-style model (from llama-small.ini, shrunk on the command line so a
// test can afford it) trains and its loss falls, its weights carry the parts, loom-ckpt
// export --hf refuses it, and a bad part is rejected before any work.
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io/weights_file.h"
#include "programs.h"

namespace fs = std::filesystem;
using loom::test::run_program;
using testing::HasSubstr;

namespace {

class ConfigsCli : public testing::Test {
protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("loom_configs_" + std::to_string(::getpid()));
    const auto r = loom::test::make_small_dataset(dir_);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string data() { return (dir_ / "data.h5").string(); }
  static std::string config(const std::string& name) { return std::string(LOOM_SOURCE_DIR) + "/launch/configs/" + name; }
  static inline fs::path dir_;
};

std::vector<nlohmann::json> read_metrics(const fs::path& file) {
  std::ifstream in(file);
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

}  // namespace

TEST_F(ConfigsCli, LlamaSmallTrainsAndItsLossFalls) {
  const fs::path run = dir_ / "llama";
  // The file's parts (rmsnorm, swiglu, rope, kv_heads 2 of 8 heads), at a size a test affords.
  const auto r = run_program("loom-train", "--config " + config("llama-small.ini") + " --data.train " + data() +
                                               " --model.layers 2 --model.channels 64 --model.ffn 0 --model.seq_len 32"
                                               " --train.steps 40 --train.global_batch 8 --train.micro_batch 4"
                                               " --optim.lr 3e-3 --optim.warmup_steps 5 --train.eval_interval 0"
                                               " --train.eval_batches 1 --train.log_interval 100 --checkpoint.dir " +
                                               run.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("positions = rope"));
  EXPECT_THAT(r.output, HasSubstr("kv_heads = 2"));
  const auto rows = read_metrics(run / "metrics.jsonl");
  ASSERT_EQ(rows.size(), 40u);
  double first = 0, last = 0;
  for (int i = 0; i < 5; ++i) first += rows[std::size_t(i)]["loss"].get<double>() / 5;
  for (int i = 35; i < 40; ++i) last += rows[std::size_t(i)]["loss"].get<double>() / 5;
  EXPECT_LT(last, first - 1.0) << "first 5 steps " << first << ", last 5 " << last;

  const auto w = loom::WeightsReader::open((run / "weights.h5").string());
  const auto cfg = nlohmann::json::parse(w.config_json());
  EXPECT_EQ(cfg["norm"], "rmsnorm");
  EXPECT_EQ(cfg["mlp"], "swiglu");
  EXPECT_EQ(cfg["positions"], "rope");
  EXPECT_EQ(cfg["kv_heads"], 2);
  EXPECT_FALSE(w.has("wpe"));

  // Not a GPT-2: no Hugging Face GPT-2 export.
  const auto hf = run_program("loom-ckpt", "export " + (run / "weights.h5").string() + " --hf " + (dir_ / "hf").string());
  EXPECT_NE(hf.exit_code, 0);
  EXPECT_THAT(hf.output, HasSubstr("not a GPT-2 language model, so it has no Hugging Face GPT-2 export"));
  EXPECT_FALSE(fs::exists(dir_ / "hf" / "model.safetensors"));

  // Generation reads the parts back from the weights file.
  const auto gen = run_program("loom-generate", "--weights " + (run / "weights.h5").string() + " --prompt The --tokens 5");
  EXPECT_EQ(gen.exit_code, 0) << gen.output;
}

TEST_F(ConfigsCli, Gpt2SmallIsGpt2) {
  // One step at a tiny size: the file's parts are the defaults, GPT-2's.
  const fs::path run = dir_ / "gpt2";
  const auto r = run_program("loom-train", "--config " + config("gpt2-small.ini") + " --data.train " + data() +
                                               " --model.layers 1 --model.channels 16 --model.heads 2 --model.seq_len 16"
                                               " --train.steps 1 --train.global_batch 2 --train.micro_batch 2"
                                               " --train.eval_batches 1 --checkpoint.dir " + run.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto w = loom::WeightsReader::open((run / "weights.h5").string());
  EXPECT_TRUE(w.has("wpe"));
  EXPECT_TRUE(w.has("h.0.ln_1.bias"));
}

TEST_F(ConfigsCli, BertBaseIsABidirectionalPostLnEncoder) {
  // One step at a tiny size: the file's family and block (post-LN: the embedding norm, no ln_f).
  const fs::path run = dir_ / "bert";
  const auto r = run_program("loom-train", "--config " + config("bert-base.ini") + " --data.train " + data() +
                                               " --model.layers 1 --model.channels 16 --model.heads 2 --model.seq_len 16"
                                               " --train.steps 1 --train.global_batch 2 --train.micro_batch 2"
                                               " --optim.warmup_steps 0 --train.eval_batches 1 --checkpoint.dir " +
                                               run.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("family = bert"));
  EXPECT_THAT(r.output, HasSubstr("ln_placement = post"));
  const auto w = loom::WeightsReader::open((run / "weights.h5").string());
  const auto cfg = nlohmann::json::parse(w.config_json());
  EXPECT_EQ(cfg["family"], "bert");
  EXPECT_EQ(cfg["ln_placement"], "post");
  EXPECT_EQ(cfg["vocab"], 258) << "bytes: [MASK] appended after eod";
  EXPECT_TRUE(w.has("ln_emb.weight"));
  EXPECT_FALSE(w.has("ln_f.weight"));
  // An encoder does not continue a prompt.
  const auto gen = run_program("loom-generate", "--weights " + (run / "weights.h5").string() + " --prompt The --tokens 5");
  EXPECT_EQ(gen.exit_code, 2) << gen.output;
  EXPECT_THAT(gen.output, HasSubstr("does not predict the next token"));
}

TEST_F(ConfigsCli, T5SmallIsAnEncoderDecoder) {
  // One step at a tiny size: both stacks, the cross-attention, the byte tokenizer's sentinels.
  const fs::path run = dir_ / "t5";
  const auto r = run_program("loom-train", "--config " + config("t5-small.ini") + " --data.train " + data() +
                                               " --model.layers 1 --model.decoder_layers 2 --model.channels 16"
                                               " --model.heads 2 --model.ffn 32 --model.seq_len 16 --train.steps 1"
                                               " --train.global_batch 2 --train.micro_batch 2 --optim.warmup_steps 0"
                                               " --train.eval_batches 1 --checkpoint.dir " + run.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("family = t5"));
  EXPECT_THAT(r.output, HasSubstr("decoder_layers = 2"));
  const auto w = loom::WeightsReader::open((run / "weights.h5").string());
  EXPECT_EQ(w.architecture(), "t5");
  const auto cfg = nlohmann::json::parse(w.config_json());
  EXPECT_EQ(cfg["family"], "t5");
  EXPECT_EQ(cfg["decoder_layers"], 2);
  EXPECT_EQ(cfg["vocab"], 257 + 1) << "bytes: seq_len 16 has one noise span, its sentinel appended after eod";
  EXPECT_TRUE(w.has("enc.h.0.attn.c_attn.weight"));
  EXPECT_TRUE(w.has("dec.h.1.cross.c_kv.weight"));
  EXPECT_TRUE(w.has("enc.ln_f.weight"));
  EXPECT_FALSE(w.has("enc.ln_f.bias")) << "rmsnorm";
  EXPECT_TRUE(w.has("enc.rel_bias") && w.has("dec.rel_bias")) << "T5's relative positions, one table per stack";
  EXPECT_FALSE(w.has("enc.wpe") || w.has("dec.wpe")) << "no absolute positions";
  EXPECT_EQ(cfg["positions"], "t5_relative");
  EXPECT_EQ(cfg["rel_buckets"], 32);
  EXPECT_EQ(cfg["rel_max_distance"], 128);
  // loom-generate fills the spans: the encoder reads the prompt, the decoder writes greedily.
  const auto gen = run_program("loom-generate", "--weights " + (run / "weights.h5").string() +
                                                    " --prompt 'In the <extra_id_0> God' --tokens 4 --temperature 0");
  EXPECT_EQ(gen.exit_code, 0) << gen.output;
  EXPECT_THAT(gen.output, HasSubstr("In the <extra_id_0> God\n=> "));
}

TEST_F(ConfigsCli, BadPartsAreRejected) {
  const std::string base = "--data.train " + data() + " --model.layers 1 --model.channels 16 --model.heads 4 "
                           "--model.seq_len 16 --checkpoint.dir " + (dir_ / "bad").string();
  const std::pair<const char*, const char*> cases[] = {
      {"--model.norm batchnorm", "model.norm must be layernorm or rmsnorm"},
      {"--model.mlp geglu", "model.mlp must be gelu, relu or swiglu"},
      {"--model.positions xpos", "model.positions must be learned, sinusoidal, rope, alibi or t5_relative"},
      {"--model.positions t5_relative --train.attention dense", "t5_relative needs train.attention tiled"},
      {"--model.positions t5_relative --model.rel_max_distance 16", "model.rel_max_distance (16) above the exact"},
      {"--model.kv_heads 3", "model.kv_heads (3) must divide model.heads (4)"},
      {"--model.family encdec", "model.family must be gpt, bert or t5"},
      {"--model.decoder_layers 2", "model.decoder_layers = 2 is for the encoder-decoder"},
      {"--model.family t5 --model.ln_placement post", "model.family t5 needs model.ln_placement pre"},
      {"--model.family t5 --model.positions rope", "model.family t5 takes T5's relative buckets (t5_relative)"},
      {"--model.family t5 --train.recompute full", "model.family t5 has no sequence parallelism"},
      {"--model.family t5 --train.attention dense", "it needs the tiled kernel"},
      {"--model.family t5 --parallel.virtual_stages 2", "one chunk of layers per pipeline stage"},
      {"--model.family t5 --plan.cluster x.json", "does not know the encoder-decoder"},
      {"--model.ln_placement sandwich", "model.ln_placement must be pre or post"},
      {"--model.family bert --train.attention dense", "the dense attention kernel is causal"}};
  for (const auto& [args, message] : cases) {
    const auto r = run_program("loom-train", base + " " + args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
    EXPECT_THAT(r.output, HasSubstr(message)) << args;
    EXPECT_THAT(r.output, HasSubstr("HINT")) << args;
  }
}
