// launch/loom_data.cpp — loom-data: text files -> an HDF5 token dataset (docs/data-format.md).
//
//   loom-data --input FILE|DIR|GLOB... --output PATH.h5 [--val-fraction 0.05]
//             [--tokenizer bytes|PATH.json|PATH.model] [--jsonl-field text] [--threads N]
//             [--deflate-level 1] [--force] [--quiet]
//
// Inputs are expanded and read by io/corpus (text files: one document each; JSON Lines:
// one document per line; .gz / .zst decompressed), tokenised by --threads workers into a
// stream that does not depend on the thread count; each document's tokens are followed
// by the eod token. The last val_fraction of the whole token stream (cut at a token, at least
// one token each side) is the val split, the rest train. Progress goes to stderr,
// the summary to stdout; --quiet silences both. Bad input: message, exit code 2.
#include <unistd.h>

#include <algorithm>
#include <thread>
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "io/corpus.h"
#include "io/files.h"
#include "io/token_dataset.h"
#include "io/embedded_tokenizer.h"
#include "io/tokenizer.h"
#include "launch/loom_data_megatron.h"  // Megatron-LM conversion subcommands
#include "launch/loom_data_classify.h"   // classify (labelled datasets)
#include "launch/loom_data_tokenizer.h"  // train-tokenizer (SentencePiece)

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace {

struct Options {
  std::vector<std::string> inputs;
  std::string output, tokenizer = "bytes", jsonl_field = "text";
  int threads = 0;  // 0: the cores available
  double val_fraction = 0.05;
  int deflate_level = 1;
  bool force = false, quiet = false;
};

// "512 B", "3.4 KiB", "17.0 MiB", "2.1 GiB".
std::string human(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 4) {
    bytes /= 1024.0;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.1f} {}", bytes, units[u]);
}

// Progress on stderr: rewritten in place on a terminal, a line per 10% otherwise.
class Progress {
public:
  Progress(bool quiet) : quiet_(quiet), tty_(isatty(STDERR_FILENO) == 1), t0_(std::chrono::steady_clock::now()) {}
  void update(const loom::CorpusProgress& p) {
    if (quiet_ || p.total_raw_bytes == 0) return;
    const auto now = std::chrono::steady_clock::now();
    const int pct = static_cast<int>(100.0 * double(p.raw_bytes) / double(p.total_raw_bytes));
    const bool end = p.raw_bytes >= p.total_raw_bytes;
    const bool due = tty_ ? now - last_ >= std::chrono::milliseconds(200) || end : pct / 10 > last_decile_;
    if (!due) return;
    last_ = now;
    last_decile_ = pct / 10;
    const double secs = std::max(1e-6, std::chrono::duration<double>(now - t0_).count());
    const double eta = p.raw_bytes > 0 ? secs * double(p.total_raw_bytes - p.raw_bytes) / double(p.raw_bytes) : 0.0;
    std::fprintf(stderr, "%sloom-data: read %s of %s (%d%%), %llu documents, %llu tokens, %.0f tokens/s, ETA %.0f s%s",
                 tty_ ? "\r" : "", human(double(p.raw_bytes)).c_str(), human(double(p.total_raw_bytes)).c_str(), pct,
                 static_cast<unsigned long long>(p.documents), static_cast<unsigned long long>(p.tokens),
                 double(p.tokens) / secs, eta, tty_ ? "\033[K" : "\n");
  }
  ~Progress() { finish(); }  // an error message starts on a line of its own
  void finish() {
    if (!quiet_ && tty_ && last_decile_ >= 0 && !finished_) std::fputc('\n', stderr);
    finished_ = true;
  }

private:
  bool quiet_, tty_, finished_ = false;
  std::chrono::steady_clock::time_point t0_, last_{};
  int last_decile_ = -1;
};

// Returns false (after printing usage) for --help.
bool parse(int argc, char** argv, Options& o) {
  po::options_description opts(
      "usage: loom-data --input FILE|DIR|GLOB... --output PATH.h5 [options]\n"
      "Tokenises text files (one document each) and JSON Lines files (one document per line), plain, .gz or\n"
      ".zst, into an HDF5 token dataset with train and val splits.\n"
      "options");
  opts.add_options()("help,h", "show this help")
      ("input", po::value(&o.inputs)->multitoken(),
       "inputs: files, directories (recursive, sorted) or quoted glob patterns (sorted); *.jsonl/*.json are JSON "
       "Lines, other files text (one document each); .gz/.zst are decompressed (repeatable)")
      ("jsonl-field", po::value(&o.jsonl_field)->default_value(o.jsonl_field), "the string field of a JSON Lines record that holds its text")
      ("threads", po::value(&o.threads)->default_value(0, "cores available"), "tokenising threads (the output does not depend on it)")
      ("output", po::value(&o.output), "output HDF5 token dataset (PATH.h5)")
      ("val-fraction", po::value(&o.val_fraction)->default_value(o.val_fraction, "0.05"),
       "fraction of the token stream (its end) that becomes the val split, in (0, 1)")
      ("tokenizer", po::value(&o.tokenizer)->default_value(o.tokenizer), "tokenizer: bytes (vocab 257, eod 256), the path of a Hugging Face byte-level BPE tokenizer.json, or of a SentencePiece .model")
      ("deflate-level", po::value(&o.deflate_level)->default_value(o.deflate_level),
       "HDF5 deflate level of the tokens, 0 (none) to 9")
      ("force", po::bool_switch(&o.force), "overwrite the output when it exists")
      ("quiet", po::bool_switch(&o.quiet), "no progress and no summary (errors are still printed)");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw loom::Error(e.what(), "run 'loom-data --help' for the options");
  }
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return false;
  }
  LOOM_CHECK(!o.inputs.empty(), "give one or more inputs: --input FILE|DIR|GLOB...", "no --input files given");
  LOOM_CHECK(o.threads >= 0, "e.g. --threads 4", "--threads {} is negative", o.threads);
  LOOM_CHECK(!o.jsonl_field.empty(), "e.g. --jsonl-field text", "--jsonl-field is empty");
  LOOM_CHECK(!o.output.empty(), "name the dataset to write: --output PATH.h5", "no --output given");
  LOOM_CHECK(o.val_fraction > 0.0 && o.val_fraction < 1.0, "e.g. --val-fraction 0.05",
             "--val-fraction {} is outside (0, 1)", o.val_fraction);
  LOOM_CHECK(o.deflate_level >= 0 && o.deflate_level <= 9, "", "--deflate-level {} is outside [0, 9]",
             o.deflate_level);
  return true;
}

int run(const Options& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const loom::TokenizerInfo tok = loom::tokenizer_by_name(o.tokenizer);
  std::error_code ec;
  LOOM_CHECK(o.force || !fs::exists(o.output, ec), "pass --force to overwrite it, or choose another --output",
             "output '{}' already exists", o.output);
  const std::vector<loom::CorpusFile> files = loom::enumerate_corpus(o.inputs);
  std::vector<std::string> input_paths;
  for (const loom::CorpusFile& f : files) input_paths.push_back(f.path);
  loom::check_output_is_not_an_input(o.output, input_paths);
  std::uint64_t total_bytes = 0;
  for (const loom::CorpusFile& f : files) total_bytes += f.bytes;
  LOOM_CHECK(total_bytes > 0, "give at least one non-empty --input file", "the input is empty ({} file(s), 0 bytes)",
             files.size());

  loom::CorpusOptions copt;
  copt.jsonl_field = o.jsonl_field;
  copt.threads = o.threads > 0 ? o.threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  loom::DatasetMeta meta;
  meta.tokenizer = tok.name;
  meta.embedded = loom::embed_tokenizer(o.tokenizer);  // the tokenizer travels with the data
  meta.vocab_size = tok.vocab_size;
  meta.eod_token = tok.eod;
  meta.created_by = "loom-data";
  loom::TokenWriteOptions wopt;
  wopt.overwrite = o.force ? loom::Overwrite::yes : loom::Overwrite::no;
  wopt.deflate_level = o.deflate_level;
  // The tokens stream to disk as they are made (TokenStreamWriter, io/token_writer.cpp): memory stays
  // bounded whatever the corpus size. The source list is known only at the end.
  loom::TokenStreamWriter writer(o.output, meta, wopt);
  Progress progress(o.quiet);
  const loom::CorpusSummary corpus = loom::encode_corpus(
      files, tok, copt,
      [&](std::span<const std::int32_t> tokens, std::span<const std::uint64_t> doc_starts) {
        writer.append(tokens, doc_starts);
      },
      [&](const loom::CorpusProgress& p) { progress.update(p); });
  progress.finish();
  const double encode_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json sources = nlohmann::json::array();
  for (const loom::CorpusSourceFile& s : corpus.sources) {
    if (s.bytes == 0 && !o.quiet) std::fprintf(stderr, "loom-data: warning: input '%s' is empty\n", s.path.c_str());
    sources.push_back({{"path", s.path}, {"bytes", s.bytes}, {"crc32", s.crc32}});
  }
  if (corpus.skipped_empty > 0 && !o.quiet)
    std::fprintf(stderr, "loom-data: skipped %llu JSON Lines record(s) with empty text\n",
                 static_cast<unsigned long long>(corpus.skipped_empty));
  LOOM_CHECK(corpus.tokens >= 2, "give inputs with some text", "the input holds {} token(s): too few for a train and a val split",
             corpus.tokens);

  // Split: the last val_fraction of the stream, at least one token on each side.
  const auto total = static_cast<std::int64_t>(corpus.tokens);
  if (!o.quiet) std::fprintf(stderr, "loom-data: writing %s\n", o.output.c_str());
  writer.set_source_files(sources.dump());
  const loom::TrainValSplit split = writer.finish(o.val_fraction);

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!o.quiet) {
    std::printf(
        "loom-data: wrote %s\n"
        "  documents     %zu (%s of input)\n"
        "  train tokens  %lld in %zu document(s)\n"
        "  val tokens    %lld in %zu document(s), %.2f%% of the stream (a document cut by the split counts in both)\n"
        "  vocabulary    %lld (tokenizer %s, eod %d)\n"
        "  file size     %s, %.2f s (read and tokenised in %.2f s: %.1f MB/s with %d thread(s))\n",
        o.output.c_str(), static_cast<std::size_t>(corpus.documents), human(double(total_bytes)).c_str(), static_cast<long long>(split.train_tokens),
        split.train_doc_offsets.size(), static_cast<long long>(split.val_tokens), split.val_doc_offsets.size(),
        100.0 * double(split.val_tokens) / double(total),
        static_cast<long long>(tok.vocab_size), tok.name.c_str(), tok.eod, human(double(fs::file_size(o.output))).c_str(),
        seconds, encode_seconds, double(total_bytes) / 1e6 / std::max(encode_seconds, 1e-9), copt.threads);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    // --- Megatron-LM conversion: loom-data from-megatron / to-megatron (launch/loom_data_megatron.cpp) ---
    if (loom_data::is_megatron_subcommand(argc, argv)) return loom_data::megatron_main(argc, argv);
    // --- end Megatron-LM conversion ---
    // --- loom-data train-tokenizer (launch/loom_data_tokenizer.cpp) ---
    if (loom_data::is_tokenizer_subcommand(argc, argv)) return loom_data::tokenizer_main(argc, argv);
    // --- loom-data classify: text<TAB>label lines -> a labelled dataset (launch/loom_data_classify.cpp) ---
    if (loom_data::is_classify_subcommand(argc, argv)) return loom_data::classify_main(argc, argv);
    Options o;
    if (!parse(argc, argv, o)) return 0;
    return run(o);
  } catch (const loom::Error& e) {
    std::fprintf(stderr, "loom-data: error: %s\n", e.full_message().c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "loom-data: error: %s\n", e.what());
    return 1;
  }
}
