// launch/plan_calibrate.cpp — see plan_calibrate.h. Every rank times the same GEMMs, copy
// and attention at once (a barrier before each) and rank 0's figures are kept: in training
// every rank of the node computes at the same time, sharing the memory bus, the caches and the
// clock, so this is the condition to measure in. Each figure is a median over repetitions
// (median_time). Then ranks 0 and 1 time messages.
#include "launch/plan_calibrate.h"

#include <mpi.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#if defined(__GLIBC__)
#include <malloc.h>  // malloc_trim
#endif
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "backend/registry.h"
#include "core/buffer.h"
#include "core/dtype.h"
#include "launch/gemm_peak.h"
#include "launch/library_memory.h"
#include "launch/process_memory.h"
#include "plan/predictor.h"

namespace loom {

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// The median time of `run` over repetitions filling about `budget` seconds (at least 3),
// after one untimed run. The median, not the best: the model predicts the median step
// (loom-train and scaling.py report it), and on a shared host the best of many short runs
// catches bursts no whole step sees (the best ran 10-20 % above the median here).
double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(v.size() / 2), v.end());
  return v[v.size() / 2];
}

template <class F>
double median_time(F&& run, double budget = 0.15) {
  run();
  std::vector<double> times;
  double spent = 0;
  for (int i = 0; i < 3 || (spent < budget && i < 50); ++i) {
    const auto t0 = clock_type::now();
    run();
    times.push_back(seconds_since(t0)), spent += times.back();
  }
  return median(std::move(times));
}

void polled_barrier(int ranks) {
  if (ranks <= 1) return;
  MPI_Request r;
  MPI_Ibarrier(MPI_COMM_WORLD, &r);
  for (int done = 0; !done;) {
    MPI_Test(&r, &done, MPI_STATUS_IGNORE);
    if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void trim_malloc() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

constexpr double kColdBytes = 32.0 * (1 << 20);  // 8x this machine's L2s (2 x 2 MiB)

// One weight GEMM of a pass in the layout and with the dtypes loom-train runs it
// (layers/linear.h): forward y (M, N) = x (M, K) W (N, K)^T + b; data gradient dX (M, N) =
// dY (M, K) W (K, N); weight gradient dW (M, N) += dY (K, M)^T X (K, N), f32 under mixed
// precision (the gradients' dtype).
double gemm_rate(Backend& be, DType dt, std::int64_t M, std::int64_t N, std::int64_t K, plan::GemmPass pass) {
  using plan::GemmPass;
  const bool dw = pass == GemmPass::weight_grad;
  const DType ct = dw ? DType::f32 : dt;
  // Operands cold, as in a training step: between two uses of a tensor the step passes far
  // more data through the caches than the L2s hold. Repetitions take turns over copies
  // totalling >= kColdBytes, so no repetition finds its operands in L2.
  const double set_bytes =
      double((M * K + K * N) * std::int64_t(dtype_size(dt)) + M * N * std::int64_t(dtype_size(ct)));
  const int sets = int(std::clamp(std::ceil(kColdBytes / set_bytes), 1.0, 64.0));
  std::vector<Buffer> a, b, c;
  for (int i = 0; i < sets; ++i) {
    a.emplace_back(be, dw ? Shape{K, M} : Shape{M, K}, dt), be.fill(a.back(), 0.5f);
    b.emplace_back(be, pass == GemmPass::forward ? Shape{N, K} : Shape{K, N}, dt), be.fill(b.back(), 0.25f);
    c.emplace_back(be, Shape{M, N}, ct), be.fill(c.back(), 0.0f);
  }
  Buffer bias(be, Shape{N}, dt);
  be.fill(bias, 0.125f);
  int i = 0;
  const double t = median_time([&] {
    const int j = i++ % sets;
    if (pass == GemmPass::forward)
      be.matmul(c[j], a[j], b[j], bias, {.trans_b = Trans::yes});
    else if (dw)
      be.matmul(c[j], a[j], b[j], {}, {.trans_a = Trans::yes, .accumulate = Accumulate::yes});
    else
      be.matmul(c[j], a[j], b[j], {}, {});
    be.synchronize();
  });
  return 2.0 * double(M) * double(N) * double(K) / t;
}

// The backend's tiled attention (flash_attention_forward / _backward, the CPU default) on
// enough heads to share out over the threads, as a rate over the FLOPs the model counts:
// forward 4 s k d, backward 8 s k d per (sequence, head) (plan/cluster.h AttentionRate).
plan::AttentionRate attention_rate(Backend& be, DType dt, std::int64_t s, std::int64_t d, bool causal) {
  const std::int64_t H = 4 * std::max(1, omp_get_max_threads()), C = H * d;
  Buffer qkv(be, Shape{1, s, 3 * C}, dt), dqkv(be, Shape{1, s, 3 * C}, dt), out(be, Shape{1, s, C}, dt),
      dout(be, Shape{1, s, C}, dt), lse(be, Shape{1, H, s}, DType::f32);
  be.fill(qkv, 0.01f), be.fill(dout, 0.01f);
  auto part = [&](Tensor x, std::int64_t i) { return HeadsView::in(x, i * C, H, d); };
  const AttentionSpec spec{.causal = causal};
  const double t_fwd = median_time([&] {
    be.flash_attention_forward(out, lse, part(qkv, 0), part(qkv, 1), part(qkv, 2), spec);
    be.synchronize();
  });
  const double t_bwd = median_time([&] {
    be.flash_attention_backward(part(dqkv, 0), part(dqkv, 1), part(dqkv, 2), dout, part(qkv, 0), part(qkv, 1),
                                part(qkv, 2), out, lse, spec);
    be.synchronize();
  });
  RunConfig shape;  // attention_keys reads the mask and the kernel from a config
  shape.model.family = causal ? "gpt" : "bert";
  shape.train.attention = "tiled";
  const double flops = 4.0 * double(H) * double(s) * plan::attention_keys(shape, double(s)) * double(d);
  return {.s = double(s), .d = double(d), .causal = causal, .forward = flops / t_fwd, .backward = 2 * flops / t_bwd};
}

// The GEMMs of one model's layers and head on one tp rank, each weight's three passes:
// forward (M, N, K), dX (M, K, N) and dW (N, K, M), M = micro-batch x sequence, at tp 1, 2, 4.
std::vector<plan::GemmRate> model_gemm_shapes(const RunConfig& c) {
  using plan::GemmPass;
  const ModelConfig& m = c.model;
  const double M = double(c.train.micro_batch * c.train.sequence(m)), h = double(m.channels);
  const double up = double(m.mlp == "swiglu" ? 2 * m.ffn_size() : m.ffn_size());
  std::vector<plan::GemmRate> out;
  auto add = [&](double a, double b, double k, GemmPass pass) {
    for (const plan::GemmRate& r : out)
      if (r.m == a && r.n == b && r.k == k && r.pass == pass) return;
    out.push_back({.m = a, .n = b, .k = k, .pass = pass});
  };
  for (std::int64_t t : {1, 2, 4}) {
    if (m.heads % t != 0 || m.kv_heads % t != 0 || m.ffn_size() % t != 0) continue;
    const double T = double(t);
    for (auto [n, k] : {std::pair{double(m.qkv_size()) / T, h},
                        {h, h / T},
                        {up / T, h},
                        {h, double(m.ffn_size()) / T},
                        {double(m.padded_vocab()) / T, h}})
      add(M, n, k, GemmPass::forward), add(M, k, n, GemmPass::data_grad), add(n, k, M, GemmPass::weight_grad);
  }
  return out;
}

double memory_bandwidth() {
  const std::size_t n = std::size_t(256) << 20;
  std::vector<char> src(n, 1), dst(n, 0);
  // Every thread copies its share, as the elementwise kernels do.
  const double t = median_time([&] {
    const int parts = omp_get_max_threads();
#pragma omp parallel for
    for (int i = 0; i < parts; ++i) {
      const std::size_t b = n * std::size_t(i) / std::size_t(parts),
                        e = n * std::size_t(i + 1) / std::size_t(parts);
      std::memcpy(dst.data() + b, src.data() + b, e - b);
    }
  });
  return 2.0 * double(n) / t;  // read + write
}

// The backend's own elementwise kernels (GELU and layernorm forward and backward, a residual
// add) as a fraction of the copy's bandwidth: the rate the model's memory-bound terms run at
// (bytes read + written / (memory_bandwidth x memory_efficiency), plan/predictor.cpp). On a
// CPU they compute as well as stream (the GELU's tanh), so a copy alone overstates them.
// Nominal bytes, each tensor read or written once: GELU 2n forward, 3n backward (dout, x ->
// dx); layernorm 2n forward, 3n backward (dout, x -> dx; the row statistics are small); add 3n.
double elementwise_efficiency(Backend& be, DType dt, double copy_bandwidth) {
  const std::int64_t R = 2048, C = 1024, n = R * C;  // 8 MiB a tensor in f32: beyond the L2s
  Buffer x(be, Shape{R, C}, dt), y(be, Shape{R, C}, dt), d(be, Shape{R, C}, dt), w(be, Shape{C}, dt),
      b(be, Shape{C}, dt), dw(be, Shape{C}, dt), db(be, Shape{C}, dt), mean(be, Shape{R}, DType::f32),
      rstd(be, Shape{R}, DType::f32);
  be.fill(x, 0.5f), be.fill(d, 0.25f), be.fill(w, 1.0f), be.fill(b, 0.0f), be.fill(dw, 0.0f), be.fill(db, 0.0f);
  const double t = median_time([&] {
    be.gelu_forward(y, x);
    be.gelu_backward(y, d, x);
    be.layernorm_forward(y, mean, rstd, x, w, b, 1e-5f);
    be.layernorm_backward(y, dw, db, d, x, w, mean, rstd, Accumulate::no);
    be.add(y, x, d);
    be.synchronize();
  });
  const double bytes = 13.0 * double(n) * double(dtype_size(dt));
  return std::min(1.0, bytes / t / copy_bandwidth);
}

double host_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  double kb = 0;
  while (in >> key >> kb)
    if (key == "MemTotal:") return kb * 1024;
  return 8.0 * (1 << 30);
}

// Half the round trip of a message of `bytes` between ranks 0 and 1.
double one_way(int rank, std::size_t bytes, int reps) {
  std::vector<char> buf(std::max<std::size_t>(bytes, 1));
  MPI_Barrier(MPI_COMM_WORLD);
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = clock_type::now();
    if (rank == 0) {
      MPI_Send(buf.data(), int(bytes), MPI_BYTE, 1, 0, MPI_COMM_WORLD);
      MPI_Recv(buf.data(), int(bytes), MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    } else if (rank == 1) {
      MPI_Recv(buf.data(), int(bytes), MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      MPI_Send(buf.data(), int(bytes), MPI_BYTE, 0, 0, MPI_COMM_WORLD);
    }
    best = std::min(best, seconds_since(t0) / 2);
  }
  MPI_Bcast(&best, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  return best;
}

// The median time of an MPI_Allreduce (a float sum, as loom's tp and dp reductions) of
// `bytes` over every rank; each repetition starts together.
double all_reduce_seconds(std::size_t bytes, int reps) {
  std::vector<float> in(std::max<std::size_t>(bytes / sizeof(float), 1), 1.0f), out(in.size());
  std::vector<double> times;
  for (int i = 0; i < reps + 1; ++i) {
    MPI_Barrier(MPI_COMM_WORLD);
    const auto t0 = clock_type::now();
    MPI_Allreduce(in.data(), out.data(), int(in.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    if (i > 0) times.push_back(seconds_since(t0));  // the first one sets up
  }
  double t = median(std::move(times));
  MPI_Bcast(&t, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  return t;
}

}  // namespace

plan::Cluster calibrate_this_machine(const CalibrateOptions& o) {
  plan::Cluster c;
  const DType dt = parse_dtype(o.precision);
  char host[256] = "this machine";
  gethostname(host, sizeof host);
  c.name = std::string(host) + " (calibrated, " + o.precision + ")";
  c.devices_per_node = o.ranks;
  c.device_memory = host_memory_bytes() / o.ranks;
  c.gemm_rates_dtype = o.precision;
  c.gemm_efficiency = 1;  // the measured rates are what GEMMs achieve
  c.kernel_overhead = 0;
  double peaks[2] = {0, 0};  // f32, 16-bit
  double resident = 0;
  {  // every rank (see the top); rank 0 prints
    auto be = make_backend(Device::cpu);
    double& peak = peaks[dt == DType::f32 ? 0 : 1];
    peak = measure_gemm_peak_flops(*be, dt);
    // What a loom-train rank holds before it allocates its plan: measured at the same point
    // (after the backend and its gemm peak; launch/train_main.cpp), before the bigger tests here.
    resident = current_rss_bytes();
    // Given the model: what the backend's tiled attention keeps resident after its first use
    // at the model's shape (the tile GEMMs' library kernels and per-thread buffers), measured
    // first, as step 1 meets it; malloc's free pages trimmed on both sides (not the kernel's).
    double attention_kept = 0;
    if (o.model) {
      const RunConfig& m = *o.model;
      trim_malloc();
      const double before = current_rss_bytes();
      (void)attention_rate(*be, dt, m.train.sequence(m.model), m.model.channels / m.model.heads,
                           !m.model.bert());
      trim_malloc();
      attention_kept = std::max(0.0, current_rss_bytes() - before);
    }
    c.attention_resident = attention_kept;
    peaks[dt == DType::f32 ? 1 : 0] = measure_gemm_peak_flops(*be, dt == DType::f32 ? DType::bf16 : DType::f32);
    // Shapes around GPT-2 small's (tokens x 768/2304/3072, the attention core's s x s x d),
    // forward only (other passes take these where a model's own were not measured). Every
    // rank starts each measurement together, as their GEMMs run together in training.
    std::vector<plan::GemmRate> gemms;
    for (auto [m, n, k] : {std::array<double, 3>{512, 768, 768},
                           {512, 2304, 768},
                           {512, 3072, 768},
                           {512, 768, 3072},
                           {2048, 768, 768},
                           {2048, 3072, 768},
                           {2048, 768, 3072},
                           {256, 256, 64},
                           {256, 64, 256},
                           {1024, 1024, 64},
                           {128, 128, 128},
                           {64, 64, 64}})
      gemms.push_back({.m = m, .n = n, .k = k});
    const std::size_t grid = gemms.size();
    if (o.model)
      for (const plan::GemmRate& g : model_gemm_shapes(*o.model)) gemms.push_back(g);
    for (std::size_t i = 0; i < gemms.size(); ++i) {
      plan::GemmRate& g = gemms[i];
      polled_barrier(o.ranks);
      g.flops = gemm_rate(*be, dt, std::int64_t(g.m), std::int64_t(g.n), std::int64_t(g.k), g.pass);
      c.gemm_rates.push_back(g);
      peak = std::max(peak, g.flops);
      if (o.print)
        std::printf("  gemm %5.0f x %5.0f x %5.0f %-7s %8.1f GFLOP/s%s\n", g.m, g.n, g.k,
                    plan::to_string(g.pass), g.flops / 1e9, i >= grid ? " (the model's)" : "");
    }
    // The tiled attention kernel: a grid of (s, d), plus the model's own shape.
    std::vector<std::tuple<std::int64_t, std::int64_t, bool>> att;
    for (bool causal : {true, false})
      for (std::int64_t s : {128, 512, 1024})
        for (std::int64_t d : {32, 64, 128}) att.emplace_back(s, d, causal);
    if (o.model)
      att.emplace_back(o.model->train.sequence(o.model->model), o.model->model.channels / o.model->model.heads,
                       !o.model->model.bert());
    for (auto [s, d, causal] : att) {
      polled_barrier(o.ranks);
      const plan::AttentionRate r = attention_rate(*be, dt, s, d, causal);
      c.attention_rates.push_back(r);
      if (o.print)
        std::printf("  attention s %5lld d %4lld %-6s  forward %6.1f, backward %6.1f GFLOP/s\n", (long long)s,
                    (long long)d, causal ? "causal" : "full", r.forward / 1e9, r.backward / 1e9);
    }
    polled_barrier(o.ranks);
    c.memory_bandwidth = memory_bandwidth();
    polled_barrier(o.ranks);
    c.memory_efficiency = elementwise_efficiency(*be, dt, c.memory_bandwidth);
    if (o.print)
      std::printf("  peak (launch/gemm_peak.h) fp32 %.1f GFLOP/s, bf16 %.1f GFLOP/s\n", peaks[0] / 1e9,
                  peaks[1] / 1e9);
    if (o.print)
      std::printf(
          "  memory bandwidth %.1f GB/s (memcpy, read + write), elementwise kernels at %.0f %% of it; %d OpenMP "
          "threads; OpenBLAS %s\n",
          c.memory_bandwidth / 1e9, 100 * c.memory_efficiency, omp_get_max_threads(), blas_core_name().c_str());
  }
  polled_barrier(o.ranks);
  if (o.ranks > 1) {
    MPI_Bcast(peaks, 2, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    MPI_Bcast(&c.memory_bandwidth, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    MPI_Bcast(&c.memory_efficiency, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  }
  c.peak_fp32 = peaks[0], c.peak_16bit = peaks[1];
  // Links. The model prices tp and dp traffic as ring collectives over a Link
  // (plan/collectives.h: an all-reduce of n bytes over p ranks takes 2 (p-1) alpha +
  // 2 (p-1)/p n / (bandwidth x efficiency)), so the link is fitted to a measured all-reduce
  // over every rank: alpha from 8 bytes, the effective bandwidth from 16 MiB. The raw
  // bandwidth is ranks 0 and 1's ping-pong; efficiency is the all-reduce's share of it (its
  // reduction arithmetic and synchronisation; above 1 where both directions overlap).
  c.intra_node = {.bandwidth = 10e9, .latency = 5e-6, .efficiency = 1};
  if (o.ranks > 1) {
    const std::size_t big = std::size_t(16) << 20;
    const double p2p_alpha = one_way(o.rank, 8, 200), p2p_big = one_way(o.rank, big, 10);
    const double p2p_bandwidth = double(big) / std::max(p2p_big - p2p_alpha, 1e-9);
    const double p = o.ranks, ar_small = all_reduce_seconds(8, 200), ar_big = all_reduce_seconds(big, 10);
    const double alpha = ar_small / (2 * (p - 1));
    const double effective = 2 * (p - 1) / p * double(big) / std::max(ar_big - ar_small, 1e-9);
    c.intra_node = {.bandwidth = p2p_bandwidth, .latency = alpha, .efficiency = effective / p2p_bandwidth};
    if (o.print && o.rank == 0)
      std::printf(
          "  all-reduce over %d ranks: 8 B %.2f us, 16 MiB %.2f ms -> ring alpha %.2f us, %.2f GB/s; "
          "ping-pong "
          "(ranks 0, 1): alpha %.2f us, %.2f GB/s -> link efficiency %.2f\n",
          o.ranks, ar_small * 1e6, ar_big * 1e3, alpha * 1e6, effective / 1e9, p2p_alpha * 1e6,
          p2p_bandwidth / 1e9, c.intra_node.efficiency);
  }
  c.inter_node = c.intra_node;
  // Each rank's memory is the host's: what a loom rank holds before it allocates (libraries,
  // OpenBLAS's buffers, MPI; measured on rank 0 above) counts in every prediction.
  c.host_is_device = true;
  if (o.ranks > 1) MPI_Bcast(&resident, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  c.process_resident = resident;
  // What HDF5 and MPI add on first use, measured as loom-train incurs them (rank 0's).
  double hdf5 = 0;
  if (o.rank == 0)
    hdf5 = hdf5_first_use_bytes(
        (std::filesystem::temp_directory_path() / ("loom-calibrate-" + std::to_string(getpid()))).string());
  if (o.ranks > 1) MPI_Bcast(&hdf5, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  c.hdf5_resident = hdf5;
  if (o.ranks > 1) MPI_Bcast(&c.attention_resident, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  if (o.ranks > 1) c.iallreduce_temp_per_byte = std::max(0.0, iallreduce_temp_per_byte(MPI_COMM_WORLD));
  if (o.print && o.rank == 0)
    std::printf(
        "  resident before allocating %.1f MiB; HDF5 adds %.2f MiB on first use, the attention kernel %s; "
        "MPI_Iallreduce holds %s\n",
        resident / (1 << 20), hdf5 / (1 << 20),
        o.model ? (std::to_string(c.attention_resident / (1 << 20)) + " MiB at the model's shape").c_str()
                : "(not measured: give the model's options)",
        o.ranks > 1 ? (std::to_string(c.iallreduce_temp_per_byte) + " bytes per byte in flight").c_str()
                    : "(not measured: run under mpirun -np 2)");
  c.sources =
      o.ranks > 1
          ? "measured by loom-plan calibrate (GEMMs and copy on rank 0; links: alpha and effective bandwidth "
            "from MPI_Allreduce over every rank, raw bandwidth from ranks 0 and 1's ping-pong; one node, so "
            "inter_node = intra_node; resident memory: before allocating, HDF5's after a "
            "shard, a weights file and a token dataset written and read, the attention kernel's after its "
            "first use "
            "at the model's shape when given the model, MPI_Iallreduce's peak over 4 x 4 MiB in flight)"
          : "measured by loom-plan calibrate without mpirun: GEMMs, copy and resident memory (before "
            "allocating, HDF5's first use, the attention kernel's given the model) measured; links and "
            "MPI_Iallreduce's temporaries are "
            "placeholders (run under mpirun -np 2 to measure them)";
  return c;
}

}  // namespace loom
