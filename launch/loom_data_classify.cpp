// launch/loom_data_classify.cpp — loom-data classify (see loom_data_classify.h).
#include "launch/loom_data_classify.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include <fmt/format.h>
#include <boost/program_options.hpp>

#include "core/error.h"
#include "io/labelled_dataset.h"

namespace po = boost::program_options;

namespace loom_data {

bool is_classify_subcommand(int argc, char** argv) {
  return argc > 1 && std::strcmp(argv[1], "classify") == 0;
}

int classify_main(int argc, char** argv) {
  std::string input, output, tokenizer = "bytes";
  loom::ClassifyBuildOptions o;
  bool force = false, quiet = false;
  po::options_description opts("loom-data classify: text<TAB>label lines -> an HDF5 labelled dataset");
  opts.add_options()("help,h", "show this help and exit")(
      "input", po::value(&input), "TSV file: one example per line, text<TAB>label (labels are strings)")(
      "output", po::value(&output), "output HDF5 labelled dataset (PATH.h5)")(
      "seq-len", po::value(&o.seq_len)->default_value(o.seq_len),
      "tokens per sequence: longer texts are truncated, shorter ones padded with the tokenizer's eod")(
      "val-fraction", po::value(&o.val_fraction)->default_value(o.val_fraction, "0.1"),
      "share of the examples held out as the val split (a seeded shuffle picks them)")(
      "seed", po::value(&o.seed)->default_value(o.seed), "seed of the train/val split")(
      "tokenizer", po::value(&tokenizer)->default_value(tokenizer),
      "bytes, a Hugging Face tokenizer.json or a SentencePiece .model (embedded in the output)")(
      "force", po::bool_switch(&force), "overwrite the output when it exists")(
      "quiet", po::bool_switch(&quiet), "no summary");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc - 1, argv + 1, opts), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw loom::Error(e.what(), "run 'loom-data classify --help' for the options");
  }
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return 0;
  }
  LOOM_CHECK(!input.empty() && !output.empty(),
             "e.g. loom-data classify --input labelled.tsv --output cls.h5",
             "loom-data classify needs --input and --output");
  std::ifstream in(input);
  LOOM_CHECK(in.good(), "check the --input path", "cannot open --input '{}'", input);
  loom::check_output_is_not_an_input(output, std::vector<std::string>{input});
  o.source = input;
  loom::LabelledDataset d = loom::build_labelled_dataset(in, loom::tokenizer_by_name(tokenizer), o);
  d.embedded = loom::embed_tokenizer(tokenizer);  // the tokenizer travels with the data
  loom::write_labelled_dataset(output, d, force ? loom::Overwrite::yes : loom::Overwrite::no);
  if (!quiet) {
    fmt::print("wrote {}: {} train + {} val examples of {} tokens, {} classes (tokenizer {})\n", output,
               d.train.size(), d.val.size(), d.seq_len, d.classes(), d.tokenizer);
    for (std::int64_t c = 0; c < d.classes(); ++c)
      fmt::print("  label {} = {}\n", c, d.label_names[std::size_t(c)]);
    fmt::print("  val majority-class share {:.3f}\n", d.val.majority_share(d.classes()));
  }
  return 0;
}

}  // namespace loom_data
