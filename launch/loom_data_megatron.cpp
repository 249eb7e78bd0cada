// launch/loom_data_megatron.cpp — loom-data from-megatron / to-megatron (see
// loom_data_megatron.h). The conversions themselves are in io/megatron_dataset.h.
#include "launch/loom_data_megatron.h"

#include <boost/program_options.hpp>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/files.h"
#include "io/megatron_dataset.h"
#include "io/megatron_source.h"

namespace po = boost::program_options;

namespace loom_data {

bool is_megatron_subcommand(int argc, char** argv) {
  return argc > 1 && (std::strcmp(argv[1], "from-megatron") == 0 || std::strcmp(argv[1], "to-megatron") == 0);
}

namespace {

// Parses argv[2..]; false after printing usage for --help.
bool parse(int argc, char** argv, po::options_description& opts, po::variables_map& vm) {
  opts.add_options()("help,h", "show this help");
  try {
    po::store(po::parse_command_line(argc - 1, argv + 1, opts), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw loom::Error(e.what(), std::string("run 'loom-data ") + argv[1] + " --help' for the options");
  }
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return false;
  }
  return true;
}

int from_megatron(int argc, char** argv) {
  std::string input, output;
  loom::FromMegatronOptions o;
  int deflate = 1;
  bool force = false, quiet = false;
  po::options_description opts(
      "usage: loom-data from-megatron --input PREFIX --output PATH.h5 (--vocab-size N --eod-id K | --tokenizer PATH) [options]\n"
      "Converts a Megatron-LM indexed dataset (PREFIX.idx + PREFIX.bin) into a loom HDF5 token dataset.\n"
      "Each Megatron document becomes a loom document followed by eod (not added twice when it already ends\n"
      "with eod); the end of the stream becomes the val split.\noptions");
  opts.add_options()("input", po::value(&input), "the Megatron pair: PREFIX, PREFIX.idx or PREFIX.bin")
      ("output", po::value(&output), "output HDF5 token dataset (PATH.h5)")
      ("vocab-size", po::value(&o.vocab_size), "vocabulary size of the tokenizer that wrote the pair (required)")
      ("eod-id", po::value(&o.eod_id), "end-of-document token id (required)")
      ("val-fraction", po::value(&o.val_fraction)->default_value(o.val_fraction, "0.05"),
       "fraction of the token stream (its end) that becomes the val split, in (0, 1)")
      ("tokenizer", po::value(&o.tokenizer)->default_value(o.tokenizer),
       "the tokenizer that made the pair: bytes, PATH.json or PATH.model is embedded in the dataset (and gives "
       "--vocab-size and --eod-id); any other name is only stored")
      ("deflate-level", po::value(&deflate)->default_value(deflate), "HDF5 deflate level, 0 (none) to 9")
      ("force", po::bool_switch(&force), "overwrite the output when it exists")
      ("quiet", po::bool_switch(&quiet), "no summary");
  po::variables_map vm;
  if (!parse(argc, argv, opts, vm)) return 0;
  LOOM_CHECK(!input.empty(), "name the pair: --input PREFIX", "no --input given");
  LOOM_CHECK(!output.empty(), "name the dataset to write: --output PATH.h5", "no --output given");
  // A tokenizer file: the pair's tokenizer travels with the dataset (and the model trained on it).
  const bool embed = o.tokenizer == "bytes" || o.tokenizer.ends_with(".json") || o.tokenizer.ends_with(".model");
  if (embed) {
    const loom::DeclaredTokenizer d = loom::declare_tokenizer(
        o.tokenizer, vm.count("vocab-size") ? o.vocab_size : 0, vm.count("eod-id") ? o.eod_id : -1, "--vocab-size",
        "--eod-id");
    o.embedded = d.tokenizer;
    o.vocab_size = d.vocab_size;
    o.eod_id = d.eod_id;
  }
  LOOM_CHECK(embed || vm.count("vocab-size"),
             "a Megatron pair does not record its vocabulary: give --vocab-size N, or --tokenizer PATH",
             "no --vocab-size given");
  LOOM_CHECK(embed || vm.count("eod-id"), "give the tokenizer's end-of-document id: --eod-id K, or --tokenizer PATH",
             "no --eod-id given");
  LOOM_CHECK(o.val_fraction > 0.0 && o.val_fraction < 1.0, "e.g. --val-fraction 0.05",
             "--val-fraction {} is outside (0, 1)", o.val_fraction);
  LOOM_CHECK(deflate >= 0 && deflate <= 9, "", "--deflate-level {} is outside [0, 9]", deflate);
  o.write.deflate_level = deflate;
  o.write.overwrite = force ? loom::Overwrite::yes : loom::Overwrite::no;
  const std::string in_prefix = loom::megatron_prefix(input);
  loom::check_output_is_not_an_input(output, std::vector<std::string>{in_prefix + ".idx", in_prefix + ".bin"});
  const loom::ConversionSummary s = loom::megatron_to_loom(input, output, o);
  if (!quiet) {
    std::printf(
        "loom-data: wrote %s\n  documents     %lld (eod appended to %lld)\n  train tokens  %lld\n"
        "  val tokens    %lld\n  vocabulary    %lld (eod %d)\n",
        output.c_str(), (long long)s.documents, (long long)s.eod_added, (long long)s.train_tokens,
        (long long)s.val_tokens, (long long)o.vocab_size, o.eod_id);
  }
  return 0;
}

int to_megatron(int argc, char** argv) {
  std::string input, output;
  loom::ToMegatronOptions o;
  bool force = false, quiet = false;
  po::options_description opts(
      "usage: loom-data to-megatron --input PATH.h5 --output PREFIX [options]\n"
      "Converts a loom HDF5 token dataset into a Megatron-LM indexed dataset (PREFIX.idx + PREFIX.bin):\n"
      "one sequence per loom document, its eod included (as Megatron's preprocess_data.py --append-eod);\n"
      "uint16 tokens when the vocabulary has at most 65536 ids, else int32.\noptions");
  opts.add_options()("input", po::value(&input), "loom HDF5 token dataset")
      ("output", po::value(&output), "output prefix: writes PREFIX.idx and PREFIX.bin")
      ("split", po::value(&o.split)->default_value(o.split),
       "all (train then val, the document cut by the split joined), train or val")
      ("force", po::bool_switch(&force), "overwrite the outputs when they exist")
      ("quiet", po::bool_switch(&quiet), "no summary");
  po::variables_map vm;
  if (!parse(argc, argv, opts, vm)) return 0;
  LOOM_CHECK(!input.empty(), "name the dataset: --input PATH.h5", "no --input given");
  LOOM_CHECK(!output.empty(), "name the pair to write: --output PREFIX", "no --output given");
  o.overwrite = force ? loom::Overwrite::yes : loom::Overwrite::no;
  const std::string out_prefix = loom::megatron_prefix(output);
  for (const char* ext : {".idx", ".bin"})
    loom::check_output_is_not_an_input(out_prefix + ext, std::vector<std::string>{input});
  const loom::ConversionSummary s = loom::loom_to_megatron(input, output, o);
  if (!quiet) {
    const std::string prefix = loom::megatron_prefix(output);
    std::printf("loom-data: wrote %s.idx and %s.bin\n  documents     %lld\n  tokens        %lld\n", prefix.c_str(),
                prefix.c_str(), (long long)s.documents, (long long)s.tokens);
  }
  return 0;
}

}  // namespace

int megatron_main(int argc, char** argv) {
  return std::strcmp(argv[1], "from-megatron") == 0 ? from_megatron(argc, argv) : to_megatron(argc, argv);
}

}  // namespace loom_data
