// io/corpus.h — corpora at scale for loom-data: which files an --input names, reading
// them (plain, gzip or zstd) as a stream of documents, and tokenising that stream with
// several threads into one token stream that does not depend on the thread count.
//
// Inputs: a file; a directory (every regular file under it, recursively, in sorted
// path order); a glob pattern (glob(3), sorted). Kinds, by name: *.jsonl / *.json
// (optionally .gz / .zst) are JSON Lines, one document per line, its text the string
// field `jsonl_field`; anything else is text, one document per file (*.gz / *.zst
// decompressed first). Blank JSONL lines are skipped, and so are records whose text is
// "" (counted in skipped_empty); an empty text file is still a document (just eod).
// JSON must be UTF-8: an invalid line is an error. Text files are raw bytes.
//
// Errors are loom::Error naming the file (and the 1-based line for JSONL): a corrupt
// JSON line, a record that is not an object, a missing or non-string field, a corrupt
// or truncated gzip/zstd stream.
//
// Threads: the reading thread cuts the stream into batches (about batch_bytes of
// text each, in input order); `threads` workers tokenise batches; results are
// handed to a TokenSink strictly in batch order, with at most 2 x threads batches in
// flight, so memory stays bounded (about 2 x threads x batch_bytes of text and its tokens)
// and the output is identical for any thread count. loom-data's sink streams the tokens
// to disk (io/token_stream_writer.h); the overload that returns EncodedCorpus collects
// them in memory, for small corpora and tests. A text file is one document and, with a
// subword tokenizer, is held whole while it is encoded (a block boundary could cut a
// word); JSON Lines records and byte-tokenised text are never held whole. The byte
// tokenizer shares nothing; with a tokenizer.json each worker after the first loads
// its own HfTokenizer (its word cache is behind a mutex), so workers never contend.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "io/tokenizer.h"

namespace loom {

enum class CorpusFormat : std::uint8_t { text, jsonl };
enum class Compression : std::uint8_t { none, gzip, zstd };

struct CorpusFile {
  std::string path;
  CorpusFormat format = CorpusFormat::text;
  Compression compression = Compression::none;
  std::uint64_t bytes = 0;  // size on disk (compressed)
};

// The kind of a file, by its name.
CorpusFile classify_corpus_file(const std::string& path);

// Expands --input arguments (files, directories, globs) into files, in argument order,
// each directory and glob sorted. loom::Error when an argument names nothing.
std::vector<CorpusFile> enumerate_corpus(const std::vector<std::string>& inputs);

// Decompressed bytes of one file, read in blocks. read() returns 0 at the end;
// loom::Error on corrupt or truncated data.
class CorpusStream {
public:
  explicit CorpusStream(const CorpusFile& file);
  ~CorpusStream();
  CorpusStream(const CorpusStream&) = delete;
  CorpusStream& operator=(const CorpusStream&) = delete;
  std::size_t read(char* out, std::size_t capacity);
  std::uint64_t raw_bytes() const;  // bytes read from disk so far
  std::uint32_t raw_crc32() const;  // CRC-32 of those bytes

private:
  struct Impl;
  Impl* impl_;
};

struct CorpusOptions {
  std::string jsonl_field = "text";
  int threads = 1;
  std::size_t batch_bytes = std::size_t(1) << 20;  // text per batch (a longer line is one batch)
};

struct CorpusProgress {
  std::uint64_t raw_bytes = 0, total_raw_bytes = 0;  // on disk
  std::uint64_t documents = 0, tokens = 0;
};

struct CorpusSourceFile {
  std::string path;
  std::uint64_t bytes = 0;  // on disk
  std::uint32_t crc32 = 0;  // of the bytes on disk
};

// Receives the token stream in order, a piece at a time: `tokens` (every document's
// tokens, each followed by eod) and the stream positions of the documents that start
// in this piece. Called on the reading thread; the spans are valid during the call only.
using TokenSink = std::function<void(std::span<const std::int32_t> tokens, std::span<const std::uint64_t> doc_starts)>;

struct CorpusSummary {
  std::vector<CorpusSourceFile> sources;  // one per file, in order
  std::uint64_t skipped_empty = 0;        // JSONL records with text ""
  std::uint64_t documents = 0, tokens = 0;
};

// Streams the corpus into `sink`; memory does not grow with the corpus.
CorpusSummary encode_corpus(const std::vector<CorpusFile>& files, const TokenizerInfo& tokenizer,
                            const CorpusOptions& options, const TokenSink& sink,
                            const std::function<void(const CorpusProgress&)>& progress = {});

// The whole corpus in memory (4 bytes a token): for small corpora and tests.
struct EncodedCorpus {
  std::vector<std::int32_t> tokens;       // every document's tokens, each followed by eod
  std::vector<std::uint64_t> doc_starts;  // first token of every document
  std::vector<CorpusSourceFile> sources;  // one per file, in order
  std::uint64_t skipped_empty = 0;        // JSONL records with text ""
};
EncodedCorpus encode_corpus(const std::vector<CorpusFile>& files, const TokenizerInfo& tokenizer,
                            const CorpusOptions& options,
                            const std::function<void(const CorpusProgress&)>& progress = {});

}  // namespace loom
