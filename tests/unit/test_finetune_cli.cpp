// tests/unit/test_finetune_cli.cpp — fine-tuning through the programs (docs/finetuning.md):
// loom-train --model.head classify refuses the wrong kind of data with a hint; a
// fine-tuning run started from a pretrained model (finetune.from: backbone loaded, head
// from the seed) and stopped after some steps resumes bit-identically to the run that was
// not stopped; and the classification log carries accuracy and the majority baseline.
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "programs.h"
#include "temp_dir.h"

namespace loom {
namespace {

using test::run_program;

std::vector<nlohmann::json> metrics(const std::string& run) {
  std::vector<nlohmann::json> out;
  std::ifstream in(run + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

const char* kModel = "--model.layers 2 --model.channels 32 --model.heads 4 --model.seq_len 16";

// A token dataset, a model pretrained on it for a few steps, and a labelled dataset.
struct Fixture {
  test::TempDir dir{"finetune"};
  Fixture() {
    EXPECT_EQ(test::make_small_dataset(dir.path).exit_code, 0);
    std::ofstream tsv(dir.file("in.tsv"));
    const char* words[] = {"lamb", "king", "sea"};
    for (int i = 0; i < 60; ++i)
      tsv << "the " << words[i % 3] << " of verse " << i << "\tclass" << i % 3 << "\n";
    tsv.close();
    auto r = run_program("loom-data", fmt::format("classify --quiet --input {} --output {} --seq-len 16",
                                                  dir.file("in.tsv"), dir.file("cls.h5")));
    EXPECT_EQ(r.exit_code, 0) << r.output;
    r = run_program("loom-train", fmt::format("--data.train {} {} --train.steps 3 --train.global_batch 4 "
                                              "--train.micro_batch 4 --checkpoint.dir {}",
                                              dir.file("data.h5"), kModel, dir.file("pre")));
    EXPECT_EQ(r.exit_code, 0) << r.output;
  }
  std::string finetune(const std::string& run, const std::string& more) const {
    return fmt::format(
        "--data.train {} --model.head classify --finetune.from {} --train.steps 6 "
        "--train.global_batch 4 --train.micro_batch 2 --train.eval_interval 2 --checkpoint.dir {} {}",
        dir.file("cls.h5"), dir.file("pre"), dir.file(run), more);
  }
};

// One fixture for both tests (each loom-train start measures the GEMM peak: seconds).
const Fixture& fixture() {
  static const Fixture f;
  return f;
}

TEST(FinetuneCli, WrongDataIsRefusedWithAHint) {
  const Fixture& f = fixture();
  auto r =
      run_program("loom-train", fmt::format("--data.train {} --model.head classify {} --checkpoint.dir {}",
                                            f.dir.file("data.h5"), kModel, f.dir.file("a")));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("model.head classify needs a labelled dataset"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("loom-data classify"), std::string::npos) << r.output;
  r = run_program("loom-train", fmt::format("--data.train {} {} --checkpoint.dir {}", f.dir.file("cls.h5"),
                                            kModel, f.dir.file("b")));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("is a labelled dataset"), std::string::npos) << r.output;
  r = run_program("loom-train", f.finetune("c", "--model.classes 5"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("model.classes = 5 but the labelled dataset"), std::string::npos) << r.output;
  r = run_program("loom-train",
                  fmt::format("--data.train {} {} --finetune.freeze_backbone --checkpoint.dir {}",
                              f.dir.file("data.h5"), kModel, f.dir.file("d")));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("finetune.freeze_backbone trains only the classification head"), std::string::npos)
      << r.output;
}

TEST(FinetuneCli, AStoppedFineTuningRunResumesBitIdentically) {
  const Fixture& f = fixture();
  auto r = run_program("loom-train", f.finetune("whole", ""));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("initialised from"), std::string::npos);
  EXPECT_NE(r.output.find("acc "), std::string::npos) << r.output;
  r = run_program("loom-train", f.finetune("parts", "--train.exit_after_steps 3"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_program("loom-train", f.finetune("parts", "--checkpoint.resume auto"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from"), std::string::npos) << r.output;
  const auto whole = metrics(f.dir.file("whole")), parts = metrics(f.dir.file("parts"));
  ASSERT_EQ(whole.size(), 6u);
  ASSERT_EQ(parts.size(), 6u);
  for (std::size_t i = 0; i < whole.size(); ++i) {
    EXPECT_EQ(whole[i]["loss"], parts[i]["loss"]) << "step " << i;
    EXPECT_EQ(whole[i].value("val_accuracy", -1.0), parts[i].value("val_accuracy", -1.0)) << "step " << i;
  }
  // Accuracy and the majority baseline (three balanced labels) are logged with the val loss.
  ASSERT_TRUE(whole.back().contains("val_accuracy"));
  EXPECT_GE(whole.back()["val_accuracy"].get<double>(), 0.0);
  EXPECT_LE(whole.back()["val_accuracy"].get<double>(), 1.0);
  EXPECT_GT(whole.back()["val_majority"].get<double>(), 0.3);
}

}  // namespace
}  // namespace loom
