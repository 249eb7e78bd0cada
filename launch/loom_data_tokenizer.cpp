// launch/loom_data_tokenizer.cpp — loom-data train-tokenizer (see loom_data_tokenizer.h).
//
// The trainer is SentencePiece's C++ SentencePieceTrainer, given its options as a
// key/value map (no command line is built, so file names need no quoting) and the
// corpus through a SentenceIterator (each line of each --input file is a sentence).
// The model comes back serialized; loom writes PREFIX.vocab and PREFIX.model through
// temporary files renamed into place, so a failed run leaves neither.
//
// Ids: 0 <unk>, 1 <s>, 2 </s>, 3 <pad> (control symbols), 4 <|endoftext|> (eod, the
// first user-defined symbol), then the other --special-tokens in the order given,
// then <extra_id_0> .. <extra_id_{K-1}> (--sentinels K), then (with --byte-fallback)
// <0x00> .. <0xFF>, then the learned pieces.
#include "launch/loom_data_tokenizer.h"

#include <sentencepiece_trainer.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "io/spm_tokenizer.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace loom_data {

bool is_tokenizer_subcommand(int argc, char** argv) {
  return argc > 1 && std::strcmp(argv[1], "train-tokenizer") == 0;
}

namespace {

constexpr const char* kEod = "<|endoftext|>";
constexpr int kEodId = 4;

// Every line of every input file, in order (without its '\n').
class LinesIterator : public sentencepiece::SentenceIterator {
public:
  explicit LinesIterator(const std::vector<std::string>& files) : files_(files) { Next(); }
  bool done() const override { return done_; }
  void Next() override {
    while (true) {
      if (file_.is_open() && std::getline(file_, line_)) return;
      if (file_.is_open()) {
        if (file_.bad()) {
          status_ = sentencepiece::util::Status(sentencepiece::util::StatusCode::kInternal,
                                                "error while reading " + files_[next_ - 1]);
          done_ = true;
          return;
        }
        file_.close();
      }
      if (next_ == files_.size()) {
        done_ = true;
        return;
      }
      file_.open(files_[next_++], std::ios::binary);
      if (!file_.good()) {
        status_ = sentencepiece::util::Status(sentencepiece::util::StatusCode::kNotFound,
                                              "cannot open " + files_[next_ - 1]);
        done_ = true;
        return;
      }
    }
  }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override { return status_; }

private:
  const std::vector<std::string>& files_;
  std::size_t next_ = 0;
  std::ifstream file_;
  std::string line_;
  bool done_ = false;
  sentencepiece::util::Status status_;
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const std::size_t comma = s.find(',', start);
    const std::string item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!item.empty()) out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

void remove_quietly(const std::string& path) {
  std::error_code ec;
  fs::remove(path, ec);
}

}  // namespace

int tokenizer_main(int argc, char** argv) {
  std::vector<std::string> inputs;
  std::string output, model_type, special = kEod, normalization = "nmt_nfkc";
  long long vocab_size = 0, input_sentence_size = 0;
  double coverage = 0.9995;
  int sentinels = 0, max_sentence_length = 4192, threads = 2;
  bool byte_fallback = false, keep_whitespace = false, force = false, quiet = false;
  po::options_description opts(
      "usage: loom-data train-tokenizer --input FILE... --output PREFIX --model-type bpe|unigram --vocab-size N "
      "[options]\n"
      "Trains a SentencePiece model on the lines of the input files; writes PREFIX.model and PREFIX.vocab.\n"
      "Ids: 0 <unk>, 1 <s>, 2 </s>, 3 <pad>, 4 <|endoftext|> (eod), then the other special tokens in order,\n"
      "then the sentinels, then (with --byte-fallback) the 256 byte pieces, then the learned pieces.\noptions");
  opts.add_options()("help,h", "show this help")
      ("input", po::value(&inputs)->multitoken(), "text files (each line is a training sentence)")
      ("output", po::value(&output), "output prefix: writes PREFIX.model and PREFIX.vocab")
      ("model-type", po::value(&model_type), "bpe or unigram (required)")
      ("vocab-size", po::value(&vocab_size), "number of pieces, special and byte pieces included (required)")
      ("character-coverage", po::value(&coverage)->default_value(coverage, "0.9995"),
       "fraction of the corpus characters the alphabet covers, in (0, 1] (rarer ones: byte pieces or <unk>)")
      ("byte-fallback", po::bool_switch(&byte_fallback), "add the 256 byte pieces: no <unk>, any text round-trips")
      ("special-tokens", po::value(&special)->default_value(special),
       "comma-separated special tokens, user-defined symbols in this order after <|endoftext|> (always id 4); "
       "<pad> is the pad id 3, <unk> <s> </s> are ids 0-2; e.g. \"<|endoftext|>,<pad>,<mask>,<cls>,<sep>\"")
      ("sentinels", po::value(&sentinels)->default_value(0), "add <extra_id_0> .. <extra_id_{K-1}> (T5 span corruption)")
      ("normalization", po::value(&normalization)->default_value(normalization),
       "SentencePiece normalization rule: nmt_nfkc, nfkc, nmt_nfkc_cf, nfkc_cf or identity (lossless)")
      ("keep-whitespace", po::bool_switch(&keep_whitespace),
       "keep whitespace runs and leading/trailing whitespace (SentencePiece's remove_extra_whitespaces=false)")
      ("max-sentence-length", po::value(&max_sentence_length)->default_value(max_sentence_length),
       "longer lines (bytes) are skipped in training")
      ("input-sentence-size", po::value(&input_sentence_size)->default_value(0),
       "train on a random sample of this many lines; 0: all")
      ("threads", po::value(&threads)->default_value(threads), "trainer threads")
      ("force", po::bool_switch(&force), "overwrite PREFIX.model / PREFIX.vocab when they exist")
      ("quiet", po::bool_switch(&quiet), "no SentencePiece log and no summary");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc - 1, argv + 1, opts), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw loom::Error(e.what(), "run 'loom-data train-tokenizer --help' for the options");
  }
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return 0;
  }
  LOOM_CHECK(!inputs.empty(), "give one or more text files: --input FILE...", "no --input files given");
  LOOM_CHECK(!output.empty(), "name the model to write: --output PREFIX (writes PREFIX.model, PREFIX.vocab)",
             "no --output given");
  LOOM_CHECK(model_type == "bpe" || model_type == "unigram", "--model-type bpe or --model-type unigram",
             "unknown --model-type '{}'", model_type);
  LOOM_CHECK(vm.count("vocab-size"), "e.g. --vocab-size 32000", "no --vocab-size given");
  LOOM_CHECK(coverage > 0.0 && coverage <= 1.0, "e.g. 0.9995 for Latin scripts, 0.9995-1.0 for CJK",
             "--character-coverage {} is outside (0, 1]", coverage);
  LOOM_CHECK(sentinels >= 0 && sentinels <= 10000, "T5 uses 100", "--sentinels {} is outside [0, 10000]", sentinels);
  LOOM_CHECK(max_sentence_length > 0, "", "--max-sentence-length must be positive");
  LOOM_CHECK(input_sentence_size >= 0, "", "--input-sentence-size must be >= 0");
  LOOM_CHECK(threads > 0, "", "--threads must be positive");
  std::error_code ec;
  for (const std::string& in : inputs)
    LOOM_CHECK(fs::is_regular_file(in, ec), "check the --input paths", "input '{}' {}", in,
               fs::exists(in, ec) ? "is not a regular file" : "does not exist");

  // Special tokens: eod first (id 4), then the rest in order; <pad> and the control symbols are fixed ids.
  std::vector<std::string> user{kEod};
  std::set<std::string> seen{kEod};
  for (const std::string& t : split_list(special)) {
    if (t == kEod || t == "<pad>" || t == "<unk>" || t == "<s>" || t == "</s>") continue;  // fixed ids 0-4
    LOOM_CHECK(seen.insert(t).second, "list each special token once", "special token '{}' is repeated", t);
    LOOM_CHECK(t.find_first_of(" \t\n\r") == std::string::npos, "", "special token '{}' contains whitespace", t);
    user.push_back(t);
  }
  for (int i = 0; i < sentinels; ++i) {
    const std::string t = fmt::format("<extra_id_{}>", i);
    LOOM_CHECK(seen.insert(t).second, "drop it from --special-tokens or the sentinels", "special token '{}' is repeated", t);
    user.push_back(t);
  }
  const long long fixed = 4 + static_cast<long long>(user.size()) + (byte_fallback ? 256 : 0);
  LOOM_CHECK(vocab_size > fixed, "raise --vocab-size (it counts <unk> <s> </s> <pad>, the special tokens, the sentinels "
             "and, with --byte-fallback, 256 byte pieces)",
             "--vocab-size {} leaves no room for learned pieces: {} ids are fixed", vocab_size, fixed);

  const std::string model = output + ".model", vocab = output + ".vocab";
  for (const std::string& f : {model, vocab})
    LOOM_CHECK(force || !fs::exists(f, ec), "pass --force to overwrite it, or choose another --output",
               "output '{}' already exists", f);
  const fs::path dir = fs::path(model).parent_path();
  LOOM_CHECK(dir.empty() || fs::is_directory(dir, ec), "create the folder first", "output folder '{}' does not exist",
             dir.string());

  std::string user_symbols;
  for (const std::string& t : user) user_symbols += (user_symbols.empty() ? "" : ",") + t;
  const std::string tmp = fmt::format("{}.tmp-{}", output, getpid());
  const std::unordered_map<std::string, std::string> kwargs{
      // no model_prefix: the model comes back serialized (SentencePiece requires one or the other)
      {"model_type", model_type},
      {"vocab_size", std::to_string(vocab_size)},
      {"character_coverage", fmt::format("{}", coverage)},
      {"byte_fallback", byte_fallback ? "true" : "false"},
      {"unk_id", "0"}, {"bos_id", "1"}, {"eos_id", "2"}, {"pad_id", "3"},
      {"unk_piece", "<unk>"}, {"bos_piece", "<s>"}, {"eos_piece", "</s>"}, {"pad_piece", "<pad>"},
      {"user_defined_symbols", user_symbols},
      {"normalization_rule_name", normalization},
      {"remove_extra_whitespaces", keep_whitespace ? "false" : "true"},
      {"max_sentence_length", std::to_string(max_sentence_length)},
      {"input_sentence_size", std::to_string(input_sentence_size)},
      {"num_threads", std::to_string(threads)},
      {"minloglevel", quiet ? "2" : "0"},
  };
  LinesIterator lines(inputs);
  std::string proto;
  const auto st = sentencepiece::SentencePieceTrainer::Train(kwargs, &lines, &proto);
  LOOM_CHECK(st.ok(), "check the options (loom-data train-tokenizer --help); a small corpus needs a small --vocab-size",
             "SentencePiece training failed: {}", st.ToString());
  const loom::SpmTokenizer trained = loom::SpmTokenizer::from_serialized(proto, "the trained model");
  LOOM_CHECK(trained.piece_to_id(kEod) == kEodId, "", "internal: {} has id {} instead of {}", kEod,
             trained.piece_to_id(kEod).value_or(-1), kEodId);

  // PREFIX.vocab as SentencePiece writes it (piece TAB score), then PREFIX.model; both via temp files.
  const std::string tmp_model = tmp + ".model", tmp_vocab = tmp + ".vocab";
  try {
    {
      std::ofstream v(tmp_vocab, std::ios::binary | std::ios::trunc);
      for (std::int32_t id = 0; id < trained.vocab_size(); ++id) v << trained.id_to_piece(id) << "\t" << trained.score(id) << "\n";
      v.close();
      LOOM_CHECK(v.good(), "check the disk space and permissions", "cannot write '{}'", tmp_vocab);
      std::ofstream m(tmp_model, std::ios::binary | std::ios::trunc);
      m.write(proto.data(), std::streamsize(proto.size()));
      m.close();
      LOOM_CHECK(m.good(), "check the disk space and permissions", "cannot write '{}'", tmp_model);
    }
    fs::rename(tmp_vocab, vocab);
    fs::rename(tmp_model, model);
  } catch (...) {
    remove_quietly(tmp_vocab);
    remove_quietly(tmp_model);
    throw;
  }
  if (!quiet) {
    std::printf("loom-data: wrote %s and %s\n  model         %s, %lld pieces%s\n  ids           0 <unk>, 1 <s>, "
                "2 </s>, 3 <pad>, 4 %s (eod)",
                model.c_str(), vocab.c_str(), model_type.c_str(), static_cast<long long>(trained.vocab_size()),
                byte_fallback ? " (byte fallback)" : "", kEod);
    for (std::size_t i = 1; i < user.size(); ++i) std::printf(", %zu %s", 4 + i, user[i].c_str());
    std::printf("\n");
  }
  return 0;
}

}  // namespace loom_data
