// launch/bench_train.cpp — `loom-bench train`: training throughput of the GPT model
// on random tokens (no dataset needed), GPT-2-small shape by default (12 layers,
// C=768, 12 heads, T=256, B=4, vocab 50304). Reports tokens/s, model FLOP/s
// (Megatron's count, Gpt::flops_per_token), MFU against cblas_sgemm measured in the
// same run, the time split of one step, and peak memory against the plan.
#include <chrono>
#include <cstdio>
#include <iostream>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "backend/registry.h"
#include "core/rng.h"
#include "launch/gemm_peak.h"
#include "launch/process_memory.h"
#include "layers/gpt.h"
#include "optimizer/adamw.h"
#include "parallel/local_communicator.h"

namespace po = boost::program_options;

namespace loom::bench {

int run_train(int argc, char** argv) {
  ModelConfig m;
  m.layers = 12, m.channels = 768, m.heads = 12, m.vocab = 50304, m.seq_len = 256;
  std::int64_t B = 4;
  int steps = 3;
  std::string device = "cpu", recompute = "none", precision = "fp32", attention = "auto";
  po::options_description opts("loom-bench train options");
  opts.add_options()("help", "show this help")
      ("device", po::value(&device)->default_value(device), "cpu or cuda")
      ("recompute", po::value(&recompute)->default_value(recompute), "activation recompute: none, attention or full")
      ("attention", po::value(&attention)->default_value(attention),
       "attention kernel: tiled, dense or auto (tiled on cpu, dense on cuda)")
      ("precision", po::value(&precision)->default_value(precision),
       "fp32, or bf16 / fp16 (16-bit model, f32 master weights; MFU against the 16-bit GEMM peak)")
      ("family", po::value(&m.family)->default_value(m.family),
       "gpt (causal) or bert (bidirectional attention; every position a target here, as the masking does not change the work)")
      ("ln_placement", po::value(&m.ln_placement)->default_value(m.ln_placement), "pre or post (BERT's) layernorm")
      ("layers", po::value(&m.layers)->default_value(m.layers), "transformer blocks")
      ("channels", po::value(&m.channels)->default_value(m.channels), "width C")
      ("heads", po::value(&m.heads)->default_value(m.heads), "attention heads")
      ("vocab", po::value(&m.vocab)->default_value(m.vocab), "vocabulary")
      ("seq", po::value(&m.seq_len)->default_value(m.seq_len), "sequence length T")
      ("batch", po::value(&B)->default_value(B), "sequences per step B")
      ("steps", po::value(&steps)->default_value(steps), "timed steps (after one warm-up step)");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw Error(fmt::format("loom-bench train: {}", e.what()), "run 'loom-bench train --help'");
  }
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return 0;
  }
  validate(m);
  LOOM_CHECK(B > 0 && steps > 0, "", "loom-bench train: --batch and --steps must be positive");

  auto be = make_backend(device == "cuda" ? Device::cuda : Device::cpu);
  if (attention == "auto") attention = device == "cuda" ? "dense" : "tiled";
  const DType dtype = parse_dtype(precision);
  const double peak = measure_gemm_peak_flops(*be, dtype);
  LocalCommunicator one;
  Gpt model(*be, m, B, m.seq_len, one, {}, {}, {.recompute = parse_recompute(recompute), .dtype = dtype, .attention = parse_attention_kernel(attention)});
  model.params().init(1);
  OptimConfig oc;
  AdamW opt(*be, model.params().specs(), model.params().flat_params(), model.params().flat_grads(), oc);
  MemoryPlan plan = model.memory_plan();
  plan.add(opt.memory_plan());

  const std::int64_t N = B * m.seq_len;
  std::vector<std::int32_t> x(static_cast<std::size_t>(N)), y(static_cast<std::size_t>(N));
  using clock = std::chrono::steady_clock;
  double t_fwd = 0, t_bwd = 0, t_opt = 0;
  for (int s = 0; s <= steps; ++s) {
    for (std::int64_t i = 0; i < N; ++i) {
      x[std::size_t(i)] = std::int32_t(rng_u64(3, std::uint64_t(s), std::uint64_t(i)) % std::uint64_t(m.vocab));
      y[std::size_t(i)] = std::int32_t(rng_u64(4, std::uint64_t(s), std::uint64_t(i)) % std::uint64_t(m.vocab));
    }
    const auto t0 = clock::now();
    model.params().zero_grads();
    model.forward(0, {x.data(), y.data()}, 0);
    model.take_loss_sum();
    be->synchronize();
    const auto t1 = clock::now();
    model.backward(0, 0, 1.0f / float(N));
    be->synchronize();
    const auto t2 = clock::now();
    opt.step(1e-4f, s + 1);
    be->synchronize();
    const auto t3 = clock::now();
    if (s == 0) continue;  // warm-up
    t_fwd += std::chrono::duration<double>(t1 - t0).count();
    t_bwd += std::chrono::duration<double>(t2 - t1).count();
    t_opt += std::chrono::duration<double>(t3 - t2).count();
  }
  const double t_step = (t_fwd + t_bwd + t_opt) / steps;
  const double tok_s = double(N) / t_step, flops = tok_s * model.flops_per_token();
  const double rss = peak_rss_bytes();
  std::printf("loom-bench train: device %s, precision %s, recompute %s, attention %s, L=%lld C=%lld H=%lld V=%lld (padded %lld) T=%lld B=%lld, %d steps\n",
              device.c_str(), precision.c_str(), recompute.c_str(), attention.c_str(), (long long)m.layers, (long long)m.channels, (long long)m.heads, (long long)m.vocab,
              (long long)m.padded_vocab(), (long long)m.seq_len, (long long)B, steps);
  std::printf("parameters                 %.2f M\n", double(model.params().numel()) / 1e6);
  std::printf("model FLOPs per token      %.4g (Megatron count: 6 x matmul weights + 12 L T C)\n", model.flops_per_token());
  std::printf("step time                  %.3f s  (forward %.3f, backward %.3f, optimizer %.3f)\n", t_step,
              t_fwd / steps, t_bwd / steps, t_opt / steps);
  std::printf("tokens/s                   %.1f\n", tok_s);
  std::printf("model FLOP/s               %.1f GFLOP/s\n", flops / 1e9);
  std::printf("gemm peak (this run)       %.1f GFLOP/s in %s (OpenBLAS kernels: %s)\n", peak / 1e9,
              std::string(dtype_name(dtype)).c_str(), blas_core_name().c_str());
  std::printf("MFU                        %.1f %%\n", 100.0 * flops / peak);
  std::printf("memory plan                %.1f MiB; backend peak %.1f MiB; process peak RSS %.1f MiB (%+.1f%% vs plan)\n",
              double(plan.total()) / (1 << 20), double(be->peak_bytes()) / (1 << 20), rss / (1 << 20),
              100.0 * (rss / double(plan.total()) - 1.0));
  return 0;
}

}  // namespace loom::bench
