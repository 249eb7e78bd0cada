// launch/bench_ops.cpp — `loom-bench ops`: the time of every backend op at GPT-2-small
// shapes (B=4, T=256, C=768, H=12, V=50304 by default), and our matmul path
// next to a direct cblas_sgemm of the same size in the same run. Prints a
// markdown table (paste into docs/performance.md) and the goal ratios.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <tuple>
#include <vector>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "backend/registry.h"
#include "core/rng.h"
#include "launch/bench_util.h"

namespace po = boost::program_options;

namespace loom::bench {

namespace {

struct Row {
  std::string op, shape;
  double seconds, flops;
};

}  // namespace

int run_ops(int argc, char** argv) {
  std::int64_t B = 4, T = 256, C = 768, H = 12, V = 50304;
  int repeat = 10, warmup = 2;
  std::string device = "cpu", dtype_name_ = "f32", attn_seqs;
  std::int64_t attn_batch = 1;
  int attn_repeat = 5;
  double attn_limit_gib = 4.0;
  bool attn_only = false;
  std::string attn_kernel = "both";
  po::options_description opts("loom-bench ops options");
  opts.add_options()("help", "show this help")
      ("device", po::value(&device)->default_value(device), "cpu or cuda")
      ("dtype", po::value(&dtype_name_)->default_value(dtype_name_),
       "activations and weights: f32, bf16 or f16 (weight gradients dW stay f32, as in mixed precision)")
      ("batch", po::value(&B)->default_value(B), "B: sequences")
      ("seq", po::value(&T)->default_value(T), "T: sequence length")
      ("channels", po::value(&C)->default_value(C), "C: model width")
      ("heads", po::value(&H)->default_value(H), "H: attention heads")
      ("vocab", po::value(&V)->default_value(V), "V: (padded) vocabulary")
      ("repeat", po::value(&repeat)->default_value(repeat), "timed repetitions (median is reported)")
      ("warmup", po::value(&warmup)->default_value(warmup), "untimed repetitions first")
      ("attention-seqs", po::value(&attn_seqs)->default_value(attn_seqs),
       "dense vs tiled attention over these sequence lengths (comma-separated, e.g. 256,1024,4096,8192; "
       "empty: skip), at --attention-batch sequences and the --channels/--heads head shape")
      ("attention-batch", po::value(&attn_batch)->default_value(attn_batch), "B for --attention-seqs")
      ("attention-repeat", po::value(&attn_repeat)->default_value(attn_repeat),
       "timed repetitions per length for --attention-seqs (dense and tiled alternate; medians)")
      ("attention-dense-limit-gib", po::value(&attn_limit_gib)->default_value(attn_limit_gib),
       "skip the dense kernel where its (B,H,T,T) probs + backward scratch exceed this")
      ("attention-only", po::bool_switch(&attn_only), "only the --attention-seqs table, not every op")
      ("attention-kernel", po::value(&attn_kernel)->default_value(attn_kernel),
       "both, dense or tiled: which kernels --attention-seqs runs (one alone: for the process's peak memory, "
       "e.g. under /usr/bin/time -v)");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw Error(fmt::format("loom-bench ops: {}", e.what()), "run 'loom-bench ops --help'");
  }
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return 0;
  }
  LOOM_CHECK(attn_kernel == "both" || attn_kernel == "dense" || attn_kernel == "tiled", "",
             "loom-bench ops: --attention-kernel must be both, dense or tiled, not '{}'", attn_kernel);
  LOOM_CHECK(B > 0 && T > 0 && C > 0 && H > 0 && V > 0 && C % H == 0 && repeat > 0, "",
             "loom-bench ops: sizes must be positive and heads must divide channels");

  auto be = make_backend(device == "cuda" ? Device::cuda : Device::cpu);
  const DType act = parse_dtype(dtype_name_);
  const std::int64_t N = B * T, F = 4 * C;
  std::vector<Buffer> keep;
  std::uint64_t stream = 0;
  // Random-normal buffer on the backend's device (generated on the host, copied over).
  // Random-normal buffer of dtype dt (f32 statistics, `act` for activations and weights).
  auto randn_dt = [&](Shape s, float std, DType dt) {
    std::vector<float> host(std::size_t(s.numel()));
    fill_normal(host.data(), s.numel(), 1234, stream++, 0, 0.0f, std);
    Buffer f(*be, s, DType::f32);
    be->copy(f, host_tensor(host.data(), s));
    keep.emplace_back(*be, s, dt);
    be->cast(keep.back(), f);
    return keep.back().tensor();
  };
  auto randn = [&](Shape s, float std = 0.02f) { return randn_dt(s, std, act); };
  auto randn32 = [&](Shape s, float std = 0.02f) { return randn_dt(s, std, DType::f32); };
  std::vector<std::int32_t> tok_host(static_cast<std::size_t>(N));
  for (std::int64_t i = 0; i < N; ++i) tok_host[std::size_t(i)] = std::int32_t(rng_u64(7, 0, i) % std::uint64_t(V));
  // The ids live where the backend reads them (int32 in 4-byte elements, as layers/gpt.cpp keeps them).
  keep.emplace_back(*be, Shape{B, T}, DType::f32);
  be->copy(keep.back(), Tensor{tok_host.data(), Shape{B, T}, DType::f32, Device::cpu});
  const TokenView tokens{static_cast<const std::int32_t*>(keep.back().tensor().ptr), Shape{B, T}, be->device()};

  // ---- dense vs tiled attention over sequence lengths (--attention-seqs) --------------
  // Causal MHA on a fused qkv as the layer stores it. Memory is what each kernel needs
  // beyond q, k, v, out and their gradients: dense keeps probs (B,H,T,T) f32 for backward
  // and a second (B,H,T,T) f32 scratch in it; tiled keeps lse (B,H,T) f32 and per-thread
  // tiles (backend/cpu/flash_attention.cpp: kBr = 64 query rows, kBc = 128 keys; the
  // backward's rowsum(dO O) of the group's rows and, for 16-bit dq, an f32 dQ of (G,T,D)).
  if (!attn_seqs.empty()) {
    const std::int64_t Ba = attn_batch, D = C / H, threads = omp_get_max_threads();
    auto local = [&](Shape sh, float std_) {
      std::vector<float> host(std::size_t(sh.numel()));
      fill_normal(host.data(), sh.numel(), 99, stream++, 0, 0.0f, std_);
      Buffer f(*be, sh, DType::f32), b(*be, sh, act);
      be->copy(f, host_tensor(host.data(), sh));
      be->cast(b, f);
      return b;
    };
    auto mib = [](double bytes) { return bytes / (1 << 20); };
    std::printf("loom-bench ops attention: device %s, dtype %s, B=%lld H=%lld D=%lld causal, %lld threads, "
                "median of %d (dense and tiled alternate)\n\n",
                device.c_str(), dtype_name_.c_str(), (long long)Ba, (long long)H, (long long)D, (long long)threads,
                attn_repeat);
    std::printf("| T | dense fwd ms | tiled fwd ms | dense fwd+bwd ms | tiled fwd+bwd ms | tiled / dense fwd+bwd | "
                "dense memory MiB | tiled memory MiB |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    std::size_t pos = 0;
    while (pos < attn_seqs.size()) {
      const std::size_t comma = std::min(attn_seqs.find(',', pos), attn_seqs.size());
      const std::int64_t Ts = std::stoll(attn_seqs.substr(pos, comma - pos));
      pos = comma + 1;
      Buffer qkv = local({Ba, Ts, 3 * C}, 1.0f), dout = local({Ba, Ts, C}, 1.0f);
      Buffer out(*be, {Ba, Ts, C}, act), dqkv(*be, {Ba, Ts, 3 * C}, act), lse(*be, {Ba, H, Ts}, DType::f32);
      auto part = [&](Tensor x, std::int64_t i) { return HeadsView::in(x, i * C, H, D); };
      auto tiled_fwd = [&] { be->flash_attention_forward(out, lse, part(qkv, 0), part(qkv, 1), part(qkv, 2), {}); };
      auto tiled_all = [&] {
        tiled_fwd();
        be->flash_attention_backward(part(dqkv, 0), part(dqkv, 1), part(dqkv, 2), dout, part(qkv, 0), part(qkv, 1),
                                     part(qkv, 2), out, lse, {});
      };
      const double fwd_tile = double(2 * 64 * D + 2 * 128 * D + 64 * 128 + 128) * 4;
      const double bwd_tile =
          double(2 * 64 * D + 4 * 128 * D + 2 * 64 * 128 + Ts + (act == DType::f32 ? 0 : Ts * D)) * 4;
      const double tiled_mem = double(Ba * H * Ts) * 4 + double(threads) * std::max(fwd_tile, bwd_tile);
      const double dense_mem = 2.0 * double(Ba * H * Ts * Ts) * 4 +
                               (act == DType::f32 ? 0.0 : double(threads) * 7 * double(Ts * D) * 4);
      const char* no_dense = attn_kernel == "tiled" ? "not run" : "does not fit";
      std::string dense_f = no_dense, dense_a = no_dense, ratio = "";
      double tf = 0, ta = 0;
      const bool run_dense = attn_kernel != "tiled" && dense_mem <= attn_limit_gib * double(1 << 30);
      if (run_dense && attn_kernel == "dense") {
        Buffer probs(*be, {Ba, H, Ts, Ts}, DType::f32), scratch(*be, {Ba, H, Ts, Ts}, DType::f32);
        const double df = median_seconds(*be, 1, attn_repeat, [&] { be->attention_forward(out, probs, qkv, int(H)); });
        const double da = median_seconds(*be, 1, attn_repeat, [&] {
          be->attention_forward(out, probs, qkv, int(H));
          be->attention_backward(dqkv, scratch, dout, qkv, probs, int(H));
        });
        dense_f = fmt::format("{:.2f}", df * 1e3), dense_a = fmt::format("{:.2f}", da * 1e3);
      } else if (run_dense) {
        Buffer probs(*be, {Ba, H, Ts, Ts}, DType::f32), scratch(*be, {Ba, H, Ts, Ts}, DType::f32);
        auto dense_fwd = [&] { be->attention_forward(out, probs, qkv, int(H)); };
        auto dense_all = [&] {
          dense_fwd();
          be->attention_backward(dqkv, scratch, dout, qkv, probs, int(H));
        };
        double df = 0, da = 0;
        std::tie(df, tf) = median_seconds_paired(*be, 1, attn_repeat, dense_fwd, tiled_fwd);
        std::tie(da, ta) = median_seconds_paired(*be, 1, attn_repeat, dense_all, tiled_all);
        dense_f = fmt::format("{:.2f}", df * 1e3), dense_a = fmt::format("{:.2f}", da * 1e3);
        ratio = fmt::format("{:.2f}", ta / da);
      } else if (attn_kernel != "dense") {
        tf = median_seconds(*be, 1, attn_repeat, tiled_fwd);
        ta = median_seconds(*be, 1, attn_repeat, tiled_all);
      }
      std::printf("| %lld | %s | %.2f | %s | %.2f | %s | %.1f%s | %.2f |\n", (long long)Ts, dense_f.c_str(), tf * 1e3,
                  dense_a.c_str(), ta * 1e3, ratio.c_str(), mib(dense_mem),
                  dense_f == "does not fit" ? fmt::format(" (over {} GiB)", attn_limit_gib).c_str() : "",
                  mib(tiled_mem));
      std::fflush(stdout);
    }
    std::printf("\n");
    if (attn_only) return 0;
  }

  std::vector<Row> rows;
  auto time = [&](const std::string& op, const std::string& shape, double flops, const std::function<void()>& fn) {
    rows.push_back({op, shape, median_seconds(*be, warmup, repeat, fn), flops});
    return rows.back().seconds;
  };

  // ---- linear layers: ours (with bias) next to raw sgemm ----------------------
  struct Lin { const char* name; std::int64_t in, out; bool bias; };
  const Lin lins[] = {{"qkv", C, 3 * C, true}, {"attn_proj", C, C, true}, {"fc", C, F, true},
                      {"fc_proj", F, C, true}, {"lm_head", C, V, false}};
  double peak = 0, t_lin[5] = {}, t_sgemm[5] = {};
  for (int li = 0; li < 5; ++li) {
    const Lin& l = lins[li];
    Tensor x = randn({N, l.in}), w = randn({l.out, l.in}), b = l.bias ? randn({l.out}) : Tensor{};
    Tensor y = randn({N, l.out}), dy = randn({N, l.out}), dx = randn({N, l.in}), dw = randn32({l.out, l.in});
    const double fl = 2.0 * N * l.in * l.out;
    const std::string sh = fmt::format("{}x{} -> {}", N, l.in, l.out);
    auto ours = [&] { be->matmul(y, x, w, b, {.trans_b = Trans::yes}); };
    if (device == "cpu" && act == DType::f32) {
      auto raw = [&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(N), int(l.out), int(l.in), 1.0f,
                    x.data<float>(), int(l.in), w.data<float>(), int(l.in), 0.0f, y.data<float>(), int(l.out));
      };
      std::tie(t_lin[li], t_sgemm[li]) = median_seconds_paired(*be, warmup, repeat, ours, raw);
      rows.push_back({fmt::format("matmul {} fwd (ours, {})", l.name, l.bias ? "with bias" : "no bias"), sh,
                      t_lin[li], fl});
      rows.push_back({fmt::format("cblas_sgemm {} (raw, no bias)", l.name), sh, t_sgemm[li], fl});
      peak = std::max(peak, fl / t_sgemm[li]);
    } else {
      t_lin[li] = time(fmt::format("matmul {} fwd (ours)", l.name), sh, fl, ours);
    }
    time(fmt::format("matmul {} bwd dx", l.name), sh, fl, [&] { be->matmul(dx, dy, w, {}, {}); });
    time(fmt::format("matmul {} bwd dW (+=)", l.name), sh, fl,
         [&] { be->matmul(dw, dy, x, {}, {.trans_a = Trans::yes, .accumulate = Accumulate::yes}); });
  }

  // ---- the other ops --------------------------------------------------------------
  Tensor x = randn({B, T, C}, 1.0f), y = randn({B, T, C}), w = randn({C}), b = randn({C});
  Tensor mean = randn32({N}), rstd = randn32({N}), dx = randn({B, T, C}), dw = randn({C}), db = randn({C});
  const std::string btc = fmt::format("({},{},{})", B, T, C);
  const double t_ln = time("layernorm fwd", btc, 0, [&] { be->layernorm_forward(y, mean, rstd, x, w, b, 1e-5f); });
  time("layernorm bwd", btc, 0,
       [&] { be->layernorm_backward(dx, dw, db, y, x, w, mean, rstd, Accumulate::yes); });
  Tensor h = randn({N, F}, 1.0f), g = randn({N, F});
  const std::string nf = fmt::format("({},{})", N, F);
  const double t_gelu = time("gelu fwd", nf, 0, [&] { be->gelu_forward(g, h); });
  time("gelu bwd", nf, 0, [&] { be->gelu_backward(g, g, h); });
  Tensor s = randn32({B, H, T, T}, 1.0f), sp = randn32({B, H, T, T});  // attention probs: f32
  Tensor s_act = randn({B, H, T, T}, 1.0f), sp_act = randn({B, H, T, T});
  const std::string bhtt = fmt::format("({},{},{},{})", B, H, T, T);
  const double t_sm = time("softmax fwd", bhtt, 0, [&] { be->softmax_forward(sp_act, s_act); });
  time("softmax bwd", bhtt, 0, [&] { be->softmax_backward(s_act, s_act, sp_act); });
  Tensor qkv = randn({B, T, 3 * C}, 1.0f), dqkv = randn({B, T, 3 * C}), att = randn({B, T, C});
  const double att_fl = 4.0 * B * H * T * T * (C / H);  // q k^T and p v, full squares
  time("attention fwd", fmt::format("({},{},{}) H={}", B, T, 3 * C, H), att_fl,
       [&] { be->attention_forward(att, sp, qkv, int(H)); });
  time("attention bwd", fmt::format("({},{},{}) H={}", B, T, 3 * C, H), 2 * att_fl,
       [&] { be->attention_backward(dqkv, s, att, qkv, sp, int(H)); });
  {  // the tiled kernel on the same qkv (causal MHA; backward after one forward for out and lse)
    const std::int64_t D = C / H;
    Tensor lse_a = randn32({B, H, T});
    auto part = [&](Tensor t, std::int64_t i) { return HeadsView::in(t, i * C, H, D); };
    time("flash attention fwd (tiled)", fmt::format("({},{},{}) H={}", B, T, 3 * C, H), att_fl,
         [&] { be->flash_attention_forward(att, lse_a, part(qkv, 0), part(qkv, 1), part(qkv, 2), {}); });
    time("flash attention bwd (tiled)", fmt::format("({},{},{}) H={}", B, T, 3 * C, H), 2 * att_fl, [&] {
      be->flash_attention_backward(part(dqkv, 0), part(dqkv, 1), part(dqkv, 2), att, part(qkv, 0), part(qkv, 1),
                                   part(qkv, 2), att, lse_a, {});
    });
  }
  Tensor wte = randn({V, C}), wpe = randn({T, C}), dwte = randn({V, C}), dwpe = randn({T, C});
  time("embedding fwd", btc, 0, [&] { be->embedding_forward(y, tokens, wte, wpe, 0); });
  time("embedding bwd", btc, 0, [&] { be->embedding_backward(dwte, dwpe, y, tokens, 0); });
  // The vocabulary-parallel loss on one shard (tp = 1), as the model runs it; the tp
  // all-reduces between the steps are not timed here.
  Tensor logits = randn({N, V}, 1.0f), ce_max = randn32({N}), ce_stats = randn32({2, N}), lse = randn32({N});
  Tensor losses = randn32({N});
  const std::string nv = fmt::format("({},{})", N, V);
  time("cross_entropy shard_max", nv, 0, [&] { be->cross_entropy_shard_max(ce_max, logits, 0, V); });
  time("cross_entropy shard_sumexp", nv, 0,
       [&] { be->cross_entropy_shard_sumexp(ce_stats, logits, ce_max, tokens, 0, V); });
  time("cross_entropy loss (+=)", fmt::format("({})", N), 0,
       [&] { be->cross_entropy_loss(lse, losses, ce_max, ce_stats, tokens); });
  time("cross_entropy bwd (in place)", nv, 0,
       [&] { be->cross_entropy_shard_backward(logits, logits, tokens, 0, V, lse, 1e-3f); });
  const std::int64_t P = 12 * C * C;  // one block's weights
  Tensor p = randn32({P}), pg = randn32({P}), pm = randn32({P}), pv = randn32({P}, 0.0f);
  be->fill(pv, 0.0f);
  time("adamw (one block's params)", fmt::format("({})", P), 0,
       [&] { be->adamw(p, pg, pm, pv, {.lr = 1e-4f, .weight_decay = 0.1f}); });

  // ---- report ---------------------------------------------------------------------
  std::printf("loom-bench ops: device %s, dtype %s, B=%lld T=%lld C=%lld H=%lld V=%lld, median of %d\n\n", device.c_str(),
              dtype_name_.c_str(), (long long)B, (long long)T, (long long)C, (long long)H, (long long)V, repeat);
  std::printf("| op | shape | ms | GFLOP/s |\n|---|---|---:|---:|\n");
  for (const Row& r : rows)
    std::printf("| %s | %s | %.3f | %s |\n", r.op.c_str(), r.shape.c_str(), r.seconds * 1e3,
                r.flops > 0 ? fmt::format("{:.1f}", r.flops / r.seconds / 1e9).c_str() : "");
  std::printf("\n");
  if (device == "cpu" && act == DType::f32) {
    std::printf("measured sgemm peak (best raw cblas_sgemm above): %.1f GFLOP/s\n", peak / 1e9);
    for (int li = 0; li < 5; ++li)
      std::printf("matmul %-9s ours / raw sgemm time: %.3f  (goal <= 1.05)\n", lins[li].name, t_lin[li] / t_sgemm[li]);
  }
  const double block_mm = t_lin[0] + t_lin[1] + t_lin[2] + t_lin[3];
  std::printf("layernorm fwd / block matmul fwd (qkv+attn_proj+fc+fc_proj): %.3f  (goal < 0.10)\n", t_ln / block_mm);
  std::printf("gelu fwd / MLP matmul fwd (fc+fc_proj):                       %.3f  (goal < 0.10)\n",
              t_gelu / (t_lin[2] + t_lin[3]));
  std::printf("softmax fwd / attention-layer matmul fwd (qkv+attn_proj):     %.3f  (goal < 0.10)\n",
              t_sm / (t_lin[0] + t_lin[1]));
  return 0;
}

}  // namespace loom::bench
