// launch/library_memory.cpp — see library_memory.h.
#include "launch/library_memory.h"

#if defined(__GLIBC__)
#include <malloc.h>  // malloc_trim
#endif

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/param_blocks.h"
#include "io/checkpoint_files.h"
#include "io/h5.h"
#include "io/token_dataset.h"
#include "io/weights_file.h"
#include "launch/process_memory.h"

namespace loom {

namespace fs = std::filesystem;

double hdf5_first_use_bytes(const std::string& scratch_dir) {
  fs::create_directories(scratch_dir);
  const std::string shard = (fs::path(scratch_dir) / "rank_00000.h5").string();
  const std::string weights = (fs::path(scratch_dir) / "weights.h5").string();
  // Eight 64 x 64 tensors: a small file of loom's layout (the memory measured is HDF5's
  // code and state, not the data's: the buffers are allocated before the first reading).
  const std::int64_t rows = 64, cols = 64;
  std::vector<std::vector<float>> data(8, std::vector<float>(std::size_t(rows * cols), 0.5f));
  std::vector<float> back(std::size_t(rows * cols));
  // What earlier work left free is not HDF5's to count (it would come out negative); a plain
  // trim, since any HDF5 call (H5garbage_collect too) initialises the library, which counts.
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
  const double before = current_rss_bytes();
  {
    ShardWriter w(shard);
    for (const char* kind : {"params", "exp_avg", "exp_avg_sq"})
      for (std::size_t t = 0; t < data.size(); ++t)
        w.add(kind, "t" + std::to_string(t), {rows, cols},
              GlobalBlock{.row = 0, .col = 0, .rows = rows, .cols = cols, .local = 0, .local_stride = cols},
              data[t].data());
    w.close();
  }
  std::vector<NamedArray> arrays;
  for (std::size_t t = 0; t < data.size(); ++t)
    arrays.push_back({"t" + std::to_string(t), {rows, cols}, data[t].data()});
  write_weights(weights, arrays, "{}");
  {
    const WeightsReader r = WeightsReader::open(weights);
    for (const std::string& name : r.names()) r.read(name, back.data(), std::int64_t(back.size()));
  }
  // A token dataset read as loom-train opens its data (chunked, shuffle + deflate): the
  // filter pipeline and chunk cache. Writing it first touches the compressor too, which
  // loom-train does not: a small overcount.
  const std::string tokens_path = (fs::path(scratch_dir) / "tokens.h5").string();
  std::vector<std::int32_t> tokens(std::size_t(1) << 17);
  for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = std::int32_t(i % 251);
  const std::vector<std::uint64_t> docs = {0};
  write_token_dataset(tokens_path, std::span(tokens).first(tokens.size() - 4096), docs,
                      std::span(tokens).last(4096), docs, DatasetMeta{});
  { const TokenDataset d = TokenDataset::open(tokens_path, "train"); }
  h5::release_free_memory();
  const double after = current_rss_bytes();
  std::error_code ec;
  fs::remove_all(scratch_dir, ec);
  return std::max(0.0, after - before);
}

namespace {

// VmHWM from /proc/self/status, bytes; -1 when absent.
double peak_since_reset() {
  std::ifstream in("/proc/self/status");
  std::string key;
  double kb = -1;
  while (in >> key) {
    if (key == "VmHWM:") {
      in >> kb;
      return kb * 1024;
    }
    in.ignore(1 << 12, '\n');
  }
  return -1;
}

bool reset_peak() {  // Linux >= 4.0: writing 5 resets VmHWM to the current RSS
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return out.good();
}

}  // namespace

double iallreduce_temp_per_byte(MPI_Comm comm) {
  constexpr int kBuckets = 4;
  constexpr std::size_t kFloats = std::size_t(1) << 20;                                  // 4 MiB
  std::vector<std::vector<float>> buckets(kBuckets, std::vector<float>(kFloats, 1.0f));  // resident before
#if defined(__GLIBC__)
  malloc_trim(0);  // free pages kept resident would hide the temporaries
#endif
  MPI_Barrier(comm);
  const bool reset = reset_peak();
  const double before = current_rss_bytes();
  std::vector<MPI_Request> req(kBuckets);
  for (int b = 0; b < kBuckets; ++b)
    MPI_Iallreduce(MPI_IN_PLACE, buckets[std::size_t(b)].data(), int(kFloats), MPI_FLOAT, MPI_SUM, comm,
                   &req[std::size_t(b)]);
  MPI_Waitall(kBuckets, req.data(), MPI_STATUSES_IGNORE);
  const double peak = peak_since_reset();
  double ratio =
      reset && peak > 0 ? std::max(0.0, peak - before) / double(kBuckets * kFloats * sizeof(float)) : -1;
  MPI_Bcast(&ratio, 1, MPI_DOUBLE, 0, comm);
  return ratio;
}

}  // namespace loom
