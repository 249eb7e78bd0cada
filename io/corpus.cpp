// io/corpus.cpp — input enumeration, decompression, documents and parallel tokenising
// (see corpus.h).
#include "io/corpus.h"

#include <glob.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string_view>
#include <thread>

#include <fmt/format.h>

#include "core/error.h"
#include "io/files.h"

namespace loom {
namespace fs = std::filesystem;

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool has_glob_chars(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

void add_file(const fs::path& p, std::vector<CorpusFile>& out) {
  out.push_back(classify_corpus_file(p.string()));
}

void add_directory(const std::string& dir, std::vector<CorpusFile>& out) {
  std::vector<fs::path> found;  // symlinked files count; symlinked directories are not entered (no cycles)
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) found.push_back(it->path());
  }
  LOOM_CHECK(!ec, "check its permissions", "cannot list input directory '{}': {}", dir, ec.message());
  std::sort(found.begin(), found.end());
  LOOM_CHECK(!found.empty(), "give a directory holding input files", "input directory '{}' holds no files", dir);
  for (const fs::path& p : found) add_file(p, out);
}

}  // namespace

CorpusFile classify_corpus_file(const std::string& path) {
  CorpusFile f;
  f.path = path;
  std::string_view name = path;
  if (ends_with(name, ".gz")) {
    f.compression = Compression::gzip;
    name.remove_suffix(3);
  } else if (ends_with(name, ".zst")) {
    f.compression = Compression::zstd;
    name.remove_suffix(4);
  }
  if (ends_with(name, ".jsonl") || ends_with(name, ".json")) f.format = CorpusFormat::jsonl;
  std::error_code ec;
  f.bytes = fs::file_size(path, ec);
  LOOM_CHECK(!ec, "check the --input paths", "cannot read the size of input '{}': {}", path, ec.message());
  return f;
}

std::vector<CorpusFile> enumerate_corpus(const std::vector<std::string>& inputs) {
  std::vector<CorpusFile> out;
  for (const std::string& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      add_directory(in, out);
    } else if (fs::is_regular_file(in, ec)) {
      add_file(in, out);
    } else if (has_glob_chars(in) && !fs::exists(in, ec)) {
      glob_t g{};
      const int rc = glob(in.c_str(), GLOB_ERR, nullptr, &g);
      std::vector<std::string> matches;
      if (rc == 0)
        for (std::size_t i = 0; i < g.gl_pathc; ++i) matches.emplace_back(g.gl_pathv[i]);
      globfree(&g);
      LOOM_CHECK(rc == 0 || rc == GLOB_NOMATCH, "check the pattern and the permissions",
                 "cannot expand input pattern '{}'", in);
      LOOM_CHECK(!matches.empty(), "check the --input pattern (quote it so the shell does not expand it)",
                 "input pattern '{}' matches no file", in);
      std::sort(matches.begin(), matches.end());
      for (const std::string& m : matches) {
        if (fs::is_directory(m, ec)) add_directory(m, out);
        else if (fs::is_regular_file(m, ec)) add_file(m, out);
      }
    } else {
      throw Error(fmt::format("input '{}' {}", in, fs::exists(in, ec) ? "is not a regular file or directory"
                                                                        : "does not exist"),
                  "check the --input paths");
    }
  }
  return out;
}

// ---- CorpusStream: raw file blocks, CRC-32 of them, decompressed by zlib or zstd ----

struct CorpusStream::Impl {
  std::string path;
  Compression compression;
  std::FILE* file = nullptr;
  std::uint64_t raw_bytes = 0;
  std::uint32_t crc = 0;
  std::vector<char> in;
  std::size_t in_pos = 0, in_len = 0;
  bool raw_eof = false, done = false;
  z_stream z{};
  bool z_init = false, z_end = false;  // z_end: the last member ended exactly at in_pos
  ZSTD_DStream* zs = nullptr;
  std::size_t zs_last = 0;  // last ZSTD_decompressStream result: 0 at a frame end

  bool refill() {
    if (raw_eof) return false;
    in_len = std::fread(in.data(), 1, in.size(), file);
    in_pos = 0;
    LOOM_CHECK(!std::ferror(file), "", "error while reading input '{}'", path);
    if (in_len == 0) {
      raw_eof = true;
      return false;
    }
    crc = crc32_update(crc, in.data(), in_len);
    raw_bytes += in_len;
    return true;
  }

  std::size_t read_plain(char* out, std::size_t cap) {
    if (in_pos == in_len && !refill()) return 0;
    const std::size_t n = std::min(cap, in_len - in_pos);
    std::copy_n(in.data() + in_pos, n, out);
    in_pos += n;
    return n;
  }

  std::size_t read_gzip(char* out, std::size_t cap) {
    while (true) {
      if (in_pos == in_len && !refill()) {
        LOOM_CHECK(z_end, "the file is truncated: recreate or re-download it",
                   "gzip input '{}' is truncated (unexpected end of the compressed stream)", path);
        return 0;
      }
      if (z_end) {  // another gzip member follows (concatenated .gz files are valid gzip)
        LOOM_CHECK(inflateReset(&z) == Z_OK, "", "inflateReset failed on '{}'", path);
        z_end = false;
      }
      z.next_in = reinterpret_cast<Bytef*>(in.data() + in_pos);
      z.avail_in = static_cast<uInt>(in_len - in_pos);
      z.next_out = reinterpret_cast<Bytef*>(out);
      z.avail_out = static_cast<uInt>(cap);
      const int rc = inflate(&z, Z_NO_FLUSH);
      in_pos = in_len - z.avail_in;
      LOOM_CHECK(rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR, "the file is corrupt: recreate it",
                 "gzip input '{}' is corrupt ({})", path, z.msg ? z.msg : fmt::format("zlib error {}", rc));
      if (rc == Z_STREAM_END) z_end = true;
      const std::size_t n = cap - z.avail_out;
      if (n > 0) return n;
    }
  }

  std::size_t read_zstd(char* out, std::size_t cap) {
    while (true) {
      if (in_pos == in_len && !refill()) {
        LOOM_CHECK(zs_last == 0, "the file is truncated: recreate or re-download it",
                   "zstd input '{}' is truncated (unexpected end of the compressed stream)", path);
        return 0;
      }
      ZSTD_inBuffer ib{in.data(), in_len, in_pos};
      ZSTD_outBuffer ob{out, cap, 0};
      const std::size_t rc = ZSTD_decompressStream(zs, &ob, &ib);
      in_pos = ib.pos;
      LOOM_CHECK(!ZSTD_isError(rc), "the file is corrupt: recreate it", "zstd input '{}' is corrupt ({})", path,
                 ZSTD_getErrorName(rc));
      zs_last = rc;
      if (ob.pos > 0) return ob.pos;
    }
  }
};

CorpusStream::CorpusStream(const CorpusFile& f) : impl_(new Impl) {
  std::unique_ptr<Impl> guard(impl_);
  Impl& d = *impl_;
  d.path = f.path;
  d.compression = f.compression;
  d.in.resize(std::size_t(1) << 20);
  d.file = std::fopen(f.path.c_str(), "rb");
  LOOM_CHECK(d.file != nullptr, "check that it exists and its permissions", "cannot open input '{}'", f.path);
  if (f.compression == Compression::gzip) {
    LOOM_CHECK(inflateInit2(&d.z, 15 + 16) == Z_OK, "", "inflateInit2 failed for '{}'", f.path);
    d.z_init = true;
  } else if (f.compression == Compression::zstd) {
    d.zs = ZSTD_createDStream();
    LOOM_CHECK(d.zs != nullptr, "", "ZSTD_createDStream failed for '{}'", f.path);
  }
  guard.release();
}

CorpusStream::~CorpusStream() {
  if (impl_->z_init) inflateEnd(&impl_->z);
  if (impl_->zs) ZSTD_freeDStream(impl_->zs);
  if (impl_->file) std::fclose(impl_->file);
  delete impl_;
}

std::size_t CorpusStream::read(char* out, std::size_t cap) {
  if (cap == 0) return 0;
  switch (impl_->compression) {
    case Compression::gzip: return impl_->read_gzip(out, cap);
    case Compression::zstd: return impl_->read_zstd(out, cap);
    default: return impl_->read_plain(out, cap);
  }
}
std::uint64_t CorpusStream::raw_bytes() const { return impl_->raw_bytes; }
std::uint32_t CorpusStream::raw_crc32() const { return impl_->crc; }

// ---- encode_corpus: batches of pieces, workers, in-order appends ----

namespace {

// A piece of text: a JSONL line (one whole record), or a block of a text document.
struct Piece {
  std::size_t offset = 0, length = 0;
  std::uint32_t file = 0;
  std::uint64_t line = 0;  // JSONL: 1-based line number
  bool json = false, begins_doc = false, ends_doc = false;
};

struct Batch {
  std::string data;
  std::vector<Piece> pieces;
  std::uint64_t raw_bytes_after = 0;  // disk bytes read when the batch was cut (progress)
  // results
  std::vector<std::int32_t> tokens;
  std::vector<std::uint64_t> doc_starts;  // relative to this batch's tokens
  std::uint64_t skipped_empty = 0;
  std::exception_ptr error;
  bool done = false;
};

void tokenise(Batch& b, const std::vector<CorpusFile>& files, const TokenizerInfo& tok, const std::string& field) {
  for (const Piece& p : b.pieces) {
    const std::string_view text(b.data.data() + p.offset, p.length);
    if (p.json) {
      const std::string& file = files[p.file].path;
      nlohmann::json rec;
      try {
        rec = nlohmann::json::parse(text);
      } catch (const nlohmann::json::exception& e) {
        throw Error(fmt::format("{}:{}: invalid JSON line ({})", file, p.line, e.what()),
                    "every line of a JSON Lines file must be one JSON object (UTF-8)");
      }
      LOOM_CHECK(rec.is_object(), "every line of a JSON Lines file must be one JSON object", "{}:{}: not a JSON object",
                 file, p.line);
      const auto it = rec.find(field);
      LOOM_CHECK(it != rec.end(), "choose the text field with --jsonl-field", "{}:{}: no field '{}'", file, p.line,
                 field);
      LOOM_CHECK(it->is_string(), "choose the text field with --jsonl-field", "{}:{}: field '{}' is not a string",
                 file, p.line, field);
      const std::string& s = it->get_ref<const std::string&>();
      if (s.empty()) {
        ++b.skipped_empty;
        continue;
      }
      b.doc_starts.push_back(b.tokens.size());
      encode_append(tok, s, b.tokens);
      b.tokens.push_back(tok.eod);
    } else {
      if (p.begins_doc) b.doc_starts.push_back(b.tokens.size());
      encode_append(tok, text, b.tokens);
      if (p.ends_doc) b.tokens.push_back(tok.eod);
    }
  }
}

class Workers {
public:
  Workers(int n, const std::vector<CorpusFile>& files, const TokenizerInfo& tok, const std::string& field) {
    for (int i = 0; i < n; ++i)
      threads_.emplace_back([this, &files, &tok, &field, i] {
        // A tokenizer.json's word cache is shared state behind a mutex: every worker
        // but the first loads its own instance (same file, same ids: the cache only
        // memoises), falling back to the shared one if that load fails.
        TokenizerInfo own;
        if (tok.hf && i > 0 && tok.name.starts_with("hf:")) {
          try {
            own = tokenizer_by_name(tok.name.substr(3));
            if (own.vocab_size != tok.vocab_size || own.eod != tok.eod) own = TokenizerInfo{};
          } catch (...) {
            own = TokenizerInfo{};
          }
        }
        const TokenizerInfo& mine = own.hf ? own : tok;
        while (true) {
          Batch* b = nullptr;
          {
            std::unique_lock<std::mutex> lock(mu_);
            cv_work_.wait(lock, [this] { return stop_ || !queue_.empty(); });
            if (stop_) return;
            b = queue_.front();
            queue_.pop_front();
          }
          try {
            tokenise(*b, files, mine, field);
          } catch (...) {
            b->error = std::current_exception();
          }
          {
            std::lock_guard<std::mutex> lock(mu_);
            b->done = true;
          }
          cv_done_.notify_all();
        }
      });
  }
  ~Workers() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_work_.notify_all();
    for (std::thread& t : threads_) t.join();
  }
  void submit(Batch* b) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(b);
    }
    cv_work_.notify_one();
  }
  void wait(Batch* b) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_done_.wait(lock, [b] { return b->done; });
  }

private:
  std::mutex mu_;
  std::condition_variable cv_work_, cv_done_;
  std::deque<Batch*> queue_;
  std::vector<std::thread> threads_;
  bool stop_ = false;
};

}  // namespace

CorpusSummary encode_corpus(const std::vector<CorpusFile>& files, const TokenizerInfo& tok,
                            const CorpusOptions& o, const TokenSink& sink,
                            const std::function<void(const CorpusProgress&)>& progress) {
  LOOM_CHECK(o.threads >= 1, "", "threads must be at least 1 (got {})", o.threads);
  CorpusSummary out;
  CorpusProgress prog;
  for (const CorpusFile& f : files) prog.total_raw_bytes += f.bytes;
  std::uint64_t raw_done = 0;  // disk bytes of the files already finished

  const std::size_t max_in_flight = 2 * std::size_t(o.threads);
  std::deque<std::unique_ptr<Batch>> in_flight;  // in stream order
  Workers workers(o.threads, files, tok, o.jsonl_field);

  auto consume_front = [&] {
    Batch& b = *in_flight.front();
    workers.wait(&b);
    if (b.error) std::rethrow_exception(b.error);
    for (std::uint64_t& s : b.doc_starts) s += out.tokens;  // batch-relative -> stream positions
    sink(b.tokens, b.doc_starts);
    out.tokens += b.tokens.size();
    out.documents += b.doc_starts.size();
    out.skipped_empty += b.skipped_empty;
    prog.raw_bytes = b.raw_bytes_after;
    prog.documents = out.documents;
    prog.tokens = out.tokens;
    in_flight.pop_front();
    if (progress) progress(prog);
  };

  auto batch = std::make_unique<Batch>();
  auto cut = [&](std::uint64_t raw_now) {
    if (batch->pieces.empty()) return;
    batch->raw_bytes_after = raw_now;
    while (in_flight.size() >= max_in_flight) consume_front();
    in_flight.push_back(std::move(batch));
    workers.submit(in_flight.back().get());
    batch = std::make_unique<Batch>();
  };
  auto add_piece = [&](std::string_view text, Piece p, std::uint64_t raw_now) {
    p.offset = batch->data.size();
    p.length = text.size();
    batch->data.append(text);
    batch->pieces.push_back(p);
    if (batch->data.size() >= o.batch_bytes) cut(raw_now);
  };

  std::vector<char> block(std::size_t(1) << 20);
  // A read error (a truncated archive, say) comes after every piece already read: the
  // batches before it are tokenised and their errors win, so the first error in stream
  // order is the one reported, whatever the thread count.
  try {
    for (std::size_t fi = 0; fi < files.size(); ++fi) {
      const CorpusFile& f = files[fi];
      CorpusStream stream(f);
      const auto file_index = static_cast<std::uint32_t>(fi);
      if (f.format == CorpusFormat::jsonl) {
        std::string carry;  // a line cut by a block boundary
        std::uint64_t line = 0;
        auto emit = [&](std::string_view l) {
          ++line;
          if (l.find_first_not_of(" \t\r") == std::string_view::npos) return;  // blank line
          Piece p;
          p.file = file_index;
          p.line = line;
          p.json = true;
          add_piece(l, p, raw_done + stream.raw_bytes());
        };
        while (const std::size_t n = stream.read(block.data(), block.size())) {
          std::string_view rest(block.data(), n);
          for (std::size_t nl; (nl = rest.find('\n')) != std::string_view::npos; rest.remove_prefix(nl + 1)) {
            if (carry.empty()) {
              emit(rest.substr(0, nl));
            } else {
              carry.append(rest.substr(0, nl));
              emit(carry);
              carry.clear();
            }
          }
          carry.append(rest);
        }
        if (!carry.empty()) emit(carry);
      } else if (tok.hf || tok.spm) {  // a subword tokenizer needs the whole document (a block boundary would cut a word)
        std::string doc;
        while (const std::size_t n = stream.read(block.data(), block.size())) doc.append(block.data(), n);
        Piece p;
        p.file = file_index;
        p.begins_doc = p.ends_doc = true;
        add_piece(doc, p, raw_done + stream.raw_bytes());
      } else {  // bytes: blocks of the document tokenise independently
        bool first = true;
        while (const std::size_t n = stream.read(block.data(), block.size())) {
          Piece p;
          p.file = file_index;
          p.begins_doc = first;
          first = false;
          add_piece(std::string_view(block.data(), n), p, raw_done + stream.raw_bytes());
        }
        Piece end;
        end.file = file_index;
        end.begins_doc = first;
        end.ends_doc = true;
        add_piece({}, end, raw_done + stream.raw_bytes());
      }
      out.sources.push_back({f.path, stream.raw_bytes(), stream.raw_crc32()});
      raw_done += stream.raw_bytes();
    }
  } catch (...) {
    const std::exception_ptr read_error = std::current_exception();
    cut(raw_done);
    while (!in_flight.empty()) consume_front();
    std::rethrow_exception(read_error);
  }
  cut(raw_done);
  while (!in_flight.empty()) consume_front();
  return out;
}

EncodedCorpus encode_corpus(const std::vector<CorpusFile>& files, const TokenizerInfo& tok, const CorpusOptions& o,
                            const std::function<void(const CorpusProgress&)>& progress) {
  EncodedCorpus out;
  auto collect = [&](std::span<const std::int32_t> tokens, std::span<const std::uint64_t> doc_starts) {
    out.tokens.insert(out.tokens.end(), tokens.begin(), tokens.end());
    out.doc_starts.insert(out.doc_starts.end(), doc_starts.begin(), doc_starts.end());
  };
  CorpusSummary summary = encode_corpus(files, tok, o, collect, progress);
  out.sources = std::move(summary.sources);
  out.skipped_empty = summary.skipped_empty;
  return out;
}

}  // namespace loom
