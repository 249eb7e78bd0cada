// launch/bench_checkpoint.cpp — `loom-bench checkpoint`: the cost of saving and loading a
// checkpoint (launch/checkpoint.h) on any dp x tp x pp layout under mpirun, next to the
// raw sequential bandwidth of the same disk and directory, measured in the same run.
//
// It builds this rank's GPT stage (GPT-2 small by default) and its optimizer as loom-train
// does (AdamW, or ZeRO-1's sharded AdamW), with random weights and moments — no training
// step: a checkpoint depends on the parameters only. Each repetition then runs, in order,
//   A  a checkpoint save: Checkpointer::save (the time the step loop is blocked), the
//      background shard write, then commit() (index + rename, on the main thread);
//   B  a raw write: each rank writes a file of its shard's size with large write() calls
//      and fsync, as the shard writer fsyncs;
//   A  verify (every shard's CRC-32) from a cold page cache and load right after it, as
//      loom-train resumes; then load again from a cold page cache;
//   B  a raw read of the raw file, from a cold page cache;
// so load drift hits both alike. Cold means: after fsync, the files' pages are dropped
// (posix_fadvise DONTNEED per file, or /proc/sys/vm/drop_caches with --cache drop), and
// the table says which fraction of the bytes was still resident (mincore) before reading.
// Times are wall times of the slowest rank; MB/s are 1e6 bytes per second. Best and median
// over --repeat repetitions after --warmup untimed ones; ratios are checkpoint MB/s over raw MB/s of the same
// run.
#include <fcntl.h>
#include <mpi.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include <fmt/format.h>
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "backend/registry.h"
#include "core/rng.h"
#include "io/checkpoint_files.h"
#include "launch/checkpoint.h"
#include "launch/run_dir.h"
#include "launch/trainer.h"
#include "layers/gpt.h"
#include "optimizer/adamw.h"
#include "optimizer/zero_adamw.h"
#include "parallel/parallel_context.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace loom::bench {

namespace {

using clock_type = std::chrono::steady_clock;

double since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

constexpr std::size_t kIoBlock = std::size_t(8) << 20;  // raw I/O: 8 MiB write() / read() calls

// Writes `bytes` to `path` (truncating) in kIoBlock write() calls, then fsync: seconds.
double raw_write(const std::string& path, std::int64_t bytes, const std::vector<char>& buf) {
  const auto t0 = clock_type::now();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  LOOM_CHECK(fd >= 0, "check --checkpoint.dir", "cannot create '{}'", path);
  std::int64_t left = bytes;
  while (left > 0) {
    const ssize_t n =
        ::write(fd, buf.data(), std::size_t(std::min<std::int64_t>(left, std::int64_t(buf.size()))));
    LOOM_CHECK(n > 0, "check the free disk space", "cannot write '{}'", path);
    left -= n;
  }
  ::fsync(fd);
  ::close(fd);
  return since(t0);
}

// Reads `path` to its end in kIoBlock read() calls: seconds.
double raw_read(const std::string& path, std::vector<char>& buf) {
  const auto t0 = clock_type::now();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  LOOM_CHECK(fd >= 0, "", "cannot read '{}'", path);
  std::uint64_t sink = 0;
  for (ssize_t n; (n = ::read(fd, buf.data(), buf.size())) > 0;)
    sink += std::uint8_t(buf[std::size_t(n) - 1]);
  ::close(fd);
  volatile std::uint64_t keep = sink;
  (void)keep;
  return since(t0);
}

// Drops the file's (clean) pages from the page cache.
void drop_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

// Bytes of the file resident in the page cache (mincore), and its size.
std::pair<std::int64_t, std::int64_t> resident(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {0, 0};
  struct stat st {};
  ::fstat(fd, &st);
  std::int64_t in = 0;
  if (st.st_size > 0) {
    void* p = ::mmap(nullptr, std::size_t(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
    if (p != MAP_FAILED) {
      const long page = ::sysconf(_SC_PAGESIZE);
      std::vector<unsigned char> v(std::size_t((st.st_size + page - 1) / page));
      if (::mincore(p, std::size_t(st.st_size), v.data()) == 0)
        for (unsigned char c : v) in += (c & 1) ? page : 0;
      ::munmap(p, std::size_t(st.st_size));
    }
  }
  ::close(fd);
  return {std::min<std::int64_t>(in, st.st_size), st.st_size};
}

std::vector<std::string> files_under(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec))
    if (e.is_regular_file()) out.push_back(e.path().string());
  return out;
}

// Every rank's value, on rank 0 (others get an empty vector).
std::vector<double> gather(double v) {
  int size = 1, rank = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  std::vector<double> all(rank == 0 ? std::size_t(size) : 0);
  MPI_Gather(&v, 1, MPI_DOUBLE, all.data(), 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  return all;
}

double vmax(const std::vector<double>& v) { return v.empty() ? 0 : *std::max_element(v.begin(), v.end()); }
double vsum(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s;
}
// Mean over ranks that moved bytes of bytes / seconds (MB/s).
double per_rank_mbs(const std::vector<double>& bytes, const std::vector<double>& secs) {
  double s = 0;
  int n = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i)
    if (bytes[i] > 0 && secs[i] > 0) s += bytes[i] / secs[i] / 1e6, ++n;
  return n ? s / n : 0;
}

struct Series {  // one figure over the repetitions
  std::vector<double> v;
  double best(bool lower_is_better) const {
    return lower_is_better ? *std::min_element(v.begin(), v.end()) : *std::max_element(v.begin(), v.end());
  }
  double median() const {
    std::vector<double> s = v;
    std::sort(s.begin(), s.end());
    return s.size() % 2 ? s[s.size() / 2] : 0.5 * (s[s.size() / 2 - 1] + s[s.size() / 2]);
  }
};

}  // namespace

int run_checkpoint(int argc, char** argv) {
  MpiSession mpi(argc, argv);
  return run_guarded(mpi.world(), [&]() -> int {
    int world = 1, rank = 0;
    MPI_Comm_size(mpi.world(), &world);
    MPI_Comm_rank(mpi.world(), &rank);
    const bool lead = rank == 0;
    RunConfig cfg;
    ModelConfig& m = cfg.model;
    m.layers = 12, m.channels = 768, m.heads = 12, m.vocab = 50257, m.seq_len = 1024;
    std::int64_t T = 64;
    int repeat = 3, warmup = 1;
    std::string cache = "fadvise", json_path;
    cfg.checkpoint.dir = "bench-checkpoint";
    po::options_description opts(
        "loom-bench checkpoint options (run under mpirun; every rank takes the same)");
    opts.add_options()("help", "show this help")("parallel.dp", po::value(&cfg.parallel.dp)->default_value(0),
                                                 "data-parallel ranks (0: world / (tp x pp))")(
        "parallel.tp", po::value(&cfg.parallel.tp)->default_value(1), "tensor-parallel ranks")(
        "parallel.pp", po::value(&cfg.parallel.pp)->default_value(1), "pipeline stages")(
        "optim.zero", po::value(&cfg.optim.zero)->default_value(0),
        "1: ZeRO-1, each dp rank writes its optimizer shard")(
        "model.layers", po::value(&m.layers)->default_value(m.layers), "transformer blocks")(
        "model.channels", po::value(&m.channels)->default_value(m.channels), "width C")(
        "model.heads", po::value(&m.heads)->default_value(m.heads), "attention heads")(
        "model.vocab", po::value(&m.vocab)->default_value(m.vocab), "vocabulary")(
        "model.seq_len", po::value(&m.seq_len)->default_value(m.seq_len), "context (wpe rows)")(
        "seq", po::value(&T)->default_value(T),
        "activation buffers' sequence length (memory only: the checkpoint holds parameters)")(
        "checkpoint.dir", po::value(&cfg.checkpoint.dir)->default_value(cfg.checkpoint.dir),
        "where to write (checkpoints and raw files; emptied of them at the end)")(
        "repeat", po::value(&repeat)->default_value(repeat), "repetitions (best and median reported)")(
        "warmup", po::value(&warmup)->default_value(warmup),
        "untimed repetitions first (the first touches the snapshot and allocates fresh disk blocks)")(
        "cache", po::value(&cache)->default_value(cache),
        "before each read: fadvise (drop the files' pages, posix_fadvise), drop (echo 3 > "
        "/proc/sys/vm/drop_caches, else fadvise) or warm (read what the page cache holds)")(
        "json", po::value(&json_path), "also write the figures as JSON to this file (rank 0)");
    po::variables_map vm;
    try {
      po::store(po::parse_command_line(argc, argv, opts), vm);
      po::notify(vm);
    } catch (const po::error& e) {
      throw Error(fmt::format("loom-bench checkpoint: {}", e.what()), "run 'loom-bench checkpoint --help'");
    }
    if (vm.count("help")) {
      if (lead) std::cout << opts << "\n";
      return 0;
    }
    LOOM_CHECK(repeat > 0 && warmup >= 0 && T > 0 && T <= m.seq_len, "",
               "loom-bench checkpoint: --repeat > 0, 0 < --seq <= model.seq_len");
    LOOM_CHECK(cache == "fadvise" || cache == "drop" || cache == "warm", "",
               "--cache: fadvise, drop or warm");
    cfg.train.micro_batch = 1;
    cfg.train.global_batch = 0;  // set by validate_layout's dp below
    validate(m);
    if (cfg.parallel.dp == 0) cfg.parallel.dp = world / std::max(1, cfg.parallel.tp * cfg.parallel.pp);
    cfg.train.global_batch = cfg.parallel.dp;
    LOOM_CHECK(cfg.parallel.dp * cfg.parallel.tp * cfg.parallel.pp == world, "",
               "dp x tp x pp = {} x {} x {} is not the {} ranks", cfg.parallel.dp, cfg.parallel.tp,
               cfg.parallel.pp, world);
    ParallelContext ctx = make_mpi_context(mpi.world(), {cfg.parallel.dp, cfg.parallel.tp, cfg.parallel.pp});
    Gpt::check_tp(m, ctx.shape.tp);

    auto be = make_backend(Device::cpu);
    const GptStage stage = make_gpt_stage(m, ctx.shape.pp, ctx.coord.pp, 1, "");
    Gpt model(*be, m, 1, T, *ctx.tp, stage, {1}, {});
    model.params().init(1);
    ParamStore& ps = model.params();
    const auto first_holder = [&](const std::string& g) {
      return model.tied_stages(g).front() == ctx.coord.pp;
    };
    const std::vector<float> weights = norm_weights(ps.specs(), ctx.shape.tp, first_holder);
    std::unique_ptr<AdamW> opt;
    std::unique_ptr<ZeroAdamW> zero;
    if (cfg.optim.zero == 1)
      zero = std::make_unique<ZeroAdamW>(*be, ps.specs(), ps.flat_params(), ps.flat_grads(),
                                         model.grad_buckets(), cfg.optim, *ctx.dp,
                                         std::vector<Communicator*>{ctx.tp.get(), ctx.pp.get()}, weights);
    else
      opt = std::make_unique<AdamW>(*be, ps.specs(), ps.flat_params(), ps.flat_grads(), cfg.optim,
                                    std::vector<Communicator*>{ctx.tp.get(), ctx.pp.get()}, weights);
    std::vector<StateSlice> state = zero ? zero->state() : opt->state();
    std::int64_t state_elems = 0;
    for (const StateSlice& s : state) {  // non-zero moments, as after training
      std::vector<float> h(std::size_t(s.elems.size()));
      fill_normal(h.data(), s.elems.size(), 7, s.param, 0, 0.0f, 1e-3f);
      be->copy(s.m, host_tensor(h.data(), Shape{s.elems.size()}));
      for (float& x : h) x *= x;
      be->copy(s.v, host_tensor(h.data(), Shape{s.elems.size()}));
      state_elems += s.elems.size();
    }
    be->synchronize();
    // What load() reads on this rank: master weights, m and v of the runs whose state it keeps
    // (the working weights are made from the master weights: under ZeRO-1 an all-gather).
    const double load_bytes = 4.0 * 3.0 * double(state_elems);

    std::string cache_note;
    if (lead) {
      std::error_code ec;
      fs::create_directories(cfg.checkpoint.dir, ec);
      LOOM_CHECK(!ec, "choose a --checkpoint.dir you can write to", "cannot create '{}': {}",
                 cfg.checkpoint.dir, ec.message());
    }
    ctx.world->barrier();
    bool drop_ok = false;
    if (cache == "drop" && lead) {
      ::sync();
      std::ofstream f("/proc/sys/vm/drop_caches");
      f << "3\n";
      f.flush();
      drop_ok = f.good();
    }
    MPI_Bcast(&drop_ok, 1, MPI_CXX_BOOL, 0, mpi.world());
    if (cache == "drop" && !drop_ok) {
      cache = "fadvise";
      cache_note =
          "echo 3 > /proc/sys/vm/drop_caches is not permitted here: fell back to posix_fadvise DONTNEED; ";
    }
    // Drops the page cache before a read (rank 0 for `shared` files, each rank its own).
    auto make_cold = [&](const std::vector<std::string>& files) {
      ctx.world->barrier();
      if (cache == "drop") {
        if (lead) {
          ::sync();
          std::ofstream("/proc/sys/vm/drop_caches") << "3\n";
        }
      } else if (cache == "fadvise") {
        for (const std::string& f : files) drop_file(f);
      }
      ctx.world->barrier();
    };
    auto resident_bytes = [](const std::vector<std::string>& files) {
      std::int64_t in = 0;
      for (const std::string& f : files) in += resident(f).first;
      return double(in);
    };

    Checkpointer ckpt(
        cfg, ctx, *be, model, state, [&] { zero ? zero->params_from_master() : opt->params_from_master(); },
        {{"bench", "loom-bench checkpoint"}});
    const double unique_params =
        vsum(gather(double(ckpt.memory_plan().total()) / 12.0));  // each written once
    const std::string raw_path =
        (fs::path(cfg.checkpoint.dir) / fmt::format("raw_{:05d}.bin", rank)).string();
    std::vector<char> buf(kIoBlock);
    fill_uniform(reinterpret_cast<float*>(buf.data()), std::int64_t(buf.size() / 4), 9, std::uint64_t(rank),
                 0, -1, 1);

    // Per repetition, the figures (slowest rank's times, total bytes, mean per-rank MB/s).
    Series blocked, bg_write, commit_s, save_total, save_agg, save_rank, raw_w, raw_w_agg, raw_w_rank,
        verify_s, verify_agg, load_s, load_agg, load_rank, raw_r, raw_r_agg, raw_r_rank, res_ckpt, res_raw,
        crc_s, warm_s, resume_s, resume_agg;
    double ckpt_bytes = 0, shard_max = 0, load_total = 0;
    int shards = 0;
    for (int rep = 0; rep < warmup + repeat; ++rep) {
      TrainProgress p;
      p.step = rep + 1;
      // A: checkpoint save.
      ctx.world->barrier();
      const auto t0 = clock_type::now();
      ckpt.save(p);
      const double t_blocked = since(t0);
      while (ckpt.writing()) std::this_thread::sleep_for(std::chrono::microseconds(200));
      ctx.world->barrier();  // loom-train commits once every rank's shard is written
      const auto tc = clock_type::now();
      ckpt.commit();
      const double t_commit = since(tc), t_total = since(t0);
      const std::string dir = (fs::path(cfg.checkpoint.dir) / step_dir_name(p.step)).string();
      const std::string shard = (fs::path(dir) / fmt::format("rank_{:05d}.h5", rank)).string();
      std::error_code ec;
      const double my_bytes = fs::exists(shard, ec) ? double(fs::file_size(shard, ec)) : 0.0;
      // A whole shard's CRC-32 read back from the page cache (what verify does per shard).
      double t_crc = 0;
      if (my_bytes > 0) {
        const auto tq = clock_type::now();
        (void)file_checksum(shard);
        t_crc = since(tq);
      }
      const auto g_blocked = gather(t_blocked), g_write = gather(ckpt.write_seconds()),
                 g_commit = gather(t_commit), g_total = gather(t_total), g_bytes = gather(my_bytes),
                 g_crc = gather(t_crc);

      // B: raw write of the same size.
      ctx.world->barrier();
      const double t_raw_w = my_bytes > 0 ? raw_write(raw_path, std::int64_t(my_bytes), buf) : 0.0;
      const auto g_raw_w = gather(t_raw_w);

      // A: verify and load, each cold.
      std::vector<std::string> ckpt_files = lead ? files_under(dir) : std::vector<std::string>{};
      make_cold(ckpt_files);
      const double res_c = lead ? resident_bytes(ckpt_files) : 0.0;
      ctx.world->barrier();
      const auto tv = clock_type::now();
      const std::string problem = ckpt.verify(dir);
      const double t_verify = since(tv);
      LOOM_CHECK(problem.empty(), "", "the checkpoint just written does not verify: {}", problem);
      ctx.world->barrier();
      const auto tw = clock_type::now();  // as loom-train resumes: load right after verify
      (void)ckpt.load(dir);
      const double t_warm = since(tw);
      make_cold(ckpt_files);
      const auto tl = clock_type::now();
      const TrainProgress back = ckpt.load(dir);
      const double t_load = since(tl);
      LOOM_CHECK(back.step == p.step, "", "loaded step {}, saved {}", back.step, p.step);
      const auto g_verify = gather(t_verify), g_load = gather(t_load), g_load_bytes = gather(load_bytes),
                 g_warm = gather(t_warm), g_resume = gather(t_verify + t_warm);

      // B: raw read, cold.
      make_cold(my_bytes > 0 ? std::vector<std::string>{raw_path} : std::vector<std::string>{});
      const double res_r = my_bytes > 0 ? double(resident(raw_path).first) : 0.0;
      ctx.world->barrier();
      const double t_raw_r = my_bytes > 0 ? raw_read(raw_path, buf) : 0.0;
      const auto g_raw_r = gather(t_raw_r), g_res_r = gather(res_r);
      ctx.world->barrier();
      if (lead) fs::remove_all(dir, ec);
      ctx.world->barrier();

      if (lead && rep < warmup) {
        fmt::print("warm-up {}: save {:.2f} s, raw write {:.2f} s (not counted)\n", rep + 1, vmax(g_total),
                   vmax(g_raw_w));
        std::fflush(stdout);
      }
      if (lead && rep >= warmup) {
        ckpt_bytes = vsum(g_bytes), shard_max = vmax(g_bytes), load_total = vsum(g_load_bytes);
        shards = int(std::count_if(g_bytes.begin(), g_bytes.end(), [](double b) { return b > 0; }));
        blocked.v.push_back(vmax(g_blocked));
        bg_write.v.push_back(vmax(g_write));
        commit_s.v.push_back(vmax(g_commit));
        save_total.v.push_back(vmax(g_total));
        save_agg.v.push_back(ckpt_bytes / vmax(g_total) / 1e6);
        save_rank.v.push_back(per_rank_mbs(g_bytes, g_write));
        crc_s.v.push_back(vmax(g_crc));
        raw_w.v.push_back(vmax(g_raw_w));
        raw_w_agg.v.push_back(ckpt_bytes / vmax(g_raw_w) / 1e6);
        raw_w_rank.v.push_back(per_rank_mbs(g_bytes, g_raw_w));
        verify_s.v.push_back(vmax(g_verify));
        verify_agg.v.push_back(ckpt_bytes / vmax(g_verify) / 1e6);
        warm_s.v.push_back(vmax(g_warm));
        resume_s.v.push_back(vmax(g_resume));
        resume_agg.v.push_back(ckpt_bytes / vmax(g_resume) / 1e6);
        load_s.v.push_back(vmax(g_load));
        load_agg.v.push_back(ckpt_bytes / vmax(g_load) / 1e6);
        load_rank.v.push_back(per_rank_mbs(g_load_bytes, g_load));
        raw_r.v.push_back(vmax(g_raw_r));
        raw_r_agg.v.push_back(ckpt_bytes / vmax(g_raw_r) / 1e6);
        raw_r_rank.v.push_back(per_rank_mbs(g_bytes, g_raw_r));
        res_ckpt.v.push_back(100.0 * res_c / ckpt_bytes);
        res_raw.v.push_back(100.0 * vsum(g_res_r) / ckpt_bytes);
        fmt::print(
            "repetition {}: save {:.2f} s (blocked {:.3f}, write {:.2f}, commit {:.3f}), raw write {:.2f} s; "
            "verify {:.2f} s + load {:.2f} s, cold load {:.2f} s, raw read {:.2f} s\n",
            rep + 1, save_total.v.back(), blocked.v.back(), bg_write.v.back(), commit_s.v.back(),
            raw_w.v.back(), verify_s.v.back(), warm_s.v.back(), load_s.v.back(), raw_r.v.back());
        std::fflush(stdout);
      }
    }
    std::error_code ec;
    fs::remove(raw_path, ec);
    ctx.world->barrier();
    if (lead) {
      fs::remove(fs::path(cfg.checkpoint.dir) / "latest", ec);
      if (cache_note.empty())
        cache_note = cache == "warm" ? "warm: reads may come from the page cache; "
                     : cache == "drop"
                         ? "cold: echo 3 > /proc/sys/vm/drop_caches before each read; "
                         : "cold: each file's pages dropped (posix_fadvise DONTNEED) before each read; ";
      cache_note += fmt::format("resident before reading: checkpoint {:.0f}%, raw {:.0f}% (median)",
                                res_ckpt.median(), res_raw.median());
      fmt::print(
          "\nloom-bench checkpoint: GPT L={} C={} H={} V={} seq_len={}: {:.2f} M parameters; {} ranks = dp "
          "{} x "
          "tp {} x pp {}{}; {} repetitions after {} warm-up in {}\n",
          m.layers, m.channels, m.heads, m.vocab, m.seq_len, unique_params / 1e6, world, ctx.shape.dp,
          ctx.shape.tp, ctx.shape.pp, cfg.optim.zero ? ", ZeRO-1" : "", repeat, warmup, cfg.checkpoint.dir);
      fmt::print(
          "checkpoint {:.1f} MB in {} shard(s), largest {:.1f} MB; load reads {:.1f} MB over all ranks\n",
          ckpt_bytes / 1e6, shards, shard_max / 1e6, load_total / 1e6);
      fmt::print("page cache: {}\n\n", cache_note);
      fmt::print("| figure | best | median |\n|---|---:|---:|\n");
      auto row_s = [](const char* name, const Series& s) {
        fmt::print("| {} | {:.3f} s | {:.3f} s |\n", name, s.best(true), s.median());
      };
      auto row_mbs = [](const char* name, const Series& s) {
        fmt::print("| {} | {:.0f} MB/s | {:.0f} MB/s |\n", name, s.best(false), s.median());
      };
      auto row_pct = [](const char* name, const Series& a, const Series& b) {
        fmt::print("| {} | {:.0f} % | {:.0f} % |\n", name, 100.0 * a.best(false) / b.best(false),
                   100.0 * a.median() / b.median());
      };
      row_s("save: step loop blocked (save())", blocked);
      row_s("save: background shard write", bg_write);
      row_s("(CRC-32 of a whole shard read back, warm)", crc_s);
      row_s("save: commit() (main thread)", commit_s);
      row_s("save: total, save() to committed", save_total);
      row_mbs("save: aggregate (checkpoint bytes / total)", save_agg);
      row_mbs("save: per rank (shard / background write)", save_rank);
      row_s("raw write + fsync", raw_w);
      row_mbs("raw write: aggregate", raw_w_agg);
      row_mbs("raw write: per rank", raw_w_rank);
      row_pct("save / raw write, aggregate", save_agg, raw_w_agg);
      row_pct("save / raw write, per rank", save_rank, raw_w_rank);
      row_s("verify (CRC-32 of every shard), cold", verify_s);
      row_mbs("verify: aggregate", verify_agg);
      row_s("load right after verify (as loom-train resumes)", warm_s);
      row_s("resume: verify + load", resume_s);
      row_mbs("resume: aggregate (checkpoint bytes / resume)", resume_agg);
      row_s("load alone, cold", load_s);
      row_mbs("load cold: aggregate (checkpoint bytes / load)", load_agg);
      row_mbs("load cold: per rank (bytes it reads / load)", load_rank);
      row_s("raw read", raw_r);
      row_mbs("raw read: aggregate", raw_r_agg);
      row_mbs("raw read: per rank", raw_r_rank);
      row_pct("resume (verify + load) / raw read, aggregate", resume_agg, raw_r_agg);
      row_pct("load cold / raw read, aggregate", load_agg, raw_r_agg);
      row_pct("verify / raw read, aggregate", verify_agg, raw_r_agg);
      if (!json_path.empty()) {
        nlohmann::json j;
        auto put = [&](const char* k, const Series& s) { j[k] = {{"values", s.v}, {"median", s.median()}}; };
        j["layout"] = {{"world", world},
                       {"dp", ctx.shape.dp},
                       {"tp", ctx.shape.tp},
                       {"pp", ctx.shape.pp},
                       {"zero", cfg.optim.zero}};
        j["model"] = {{"layers", m.layers},
                      {"channels", m.channels},
                      {"heads", m.heads},
                      {"vocab", m.vocab},
                      {"seq_len", m.seq_len}};
        j["checkpoint_bytes"] = ckpt_bytes, j["shards"] = shards, j["page_cache"] = cache_note;
        put("save_blocked_s", blocked), put("save_write_s", bg_write), put("save_crc_reread_s", crc_s),
            put("save_commit_s", commit_s), put("save_total_s", save_total), put("save_mb_s", save_agg),
            put("save_rank_mb_s", save_rank), put("raw_write_s", raw_w), put("raw_write_mb_s", raw_w_agg),
            put("raw_write_rank_mb_s", raw_w_rank), put("verify_s", verify_s),
            put("load_after_verify_s", warm_s), put("resume_s", resume_s), put("resume_mb_s", resume_agg),
            put("load_cold_s", load_s), put("load_mb_s", load_agg), put("load_rank_mb_s", load_rank),
            put("raw_read_s", raw_r), put("raw_read_mb_s", raw_r_agg), put("raw_read_rank_mb_s", raw_r_rank);
        std::ofstream(json_path) << j.dump(2) << "\n";
      }
    }
    return 0;
  });
}

}  // namespace loom::bench
