// tests/mpi/compare_runs.cpp — are two loom-train runs the same training run?
//
//   compare_runs REF_DIR RUN_DIR [rel_tol = 1e-5] [weights_rel_tol = rel_tol]
// When both folders hold init.h5 (loom-train --checkpoint.save_init), the initial
// weights must be equal bit for bit: every layout generates the same global tensors.
// Compares metrics.jsonl (loss, grad_norm, lr, val_loss, val_accuracy of every step) and
// weights.h5 (every parameter) of RUN_DIR against REF_DIR, the single-rank run.
// Metrics: |a - b| <= tol * max(|a|, |b|). Weights: per tensor, ||a - b|| <= tol ||a||
// (2-norm). Not elementwise: AdamW divides each gradient element by its own RMS, so
// an element whose gradient is tiny (a GELU unit that never fires, say) moves by
// about lr whatever its size, and the float summation order of a layout decides
// the low bits of that tiny gradient; such elements can differ by ~1e-4 of the
// tensor's scale while the tensor as a whole agrees to ~1e-6. The worst element
// is printed too.
// One exception, stated here so nobody wonders: the attention key bias (the
// middle third of h.*.attn.c_attn.bias; with grouped-query attention the k block of
// [q heads | k heads | v heads], sized from the config's heads and kv_heads) has an exact gradient of zero (softmax
// is unchanged by adding a constant to every score of a query), so what it holds
// after training is AdamW acting on rounding noise, which depends on summation
// order by nature; it is held to an absolute 1e-5 instead (or to 0 when the tolerance is
// 0: runs that must be the same bits, such as activation recompute against none).
// Prints the worst difference of each kind; exit 0 when all are within tol.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/weights_file.h"

namespace {

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

double rel(double a, double b, double scale) {
  return std::abs(a - b) / std::max({std::abs(a), std::abs(b), scale, 1e-30});
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: compare_runs REF_DIR RUN_DIR [rel_tol]\n");
    return 2;
  }
  const std::string ref = argv[1], run = argv[2];
  const double tol = argc > 3 ? std::stod(argv[3]) : 1e-5;
  const double wtol = argc > 4 ? std::stod(argv[4]) : tol;  // 16-bit runs: the weights' own tolerance
  // The key bias is rounding noise (see above): an absolute 1e-5, unless the same bits are asked for.
  const double key_tol = wtol == 0 ? 0.0 : std::max(wtol, 1e-5);
  try {
    const auto a = read_jsonl(ref + "/metrics.jsonl"), b = read_jsonl(run + "/metrics.jsonl");
    if (a.size() != b.size() || a.empty()) {
      std::printf("FAIL: %zu logged steps in %s, %zu in %s\n", a.size(), ref.c_str(), b.size(), run.c_str());
      return 1;
    }
    double worst_metric = 0;
    std::string worst_what;
    for (std::size_t i = 0; i < a.size(); ++i)
      for (const char* key : {"loss", "grad_norm", "lr", "val_loss", "val_accuracy"}) {
        if (a[i].contains(key) != b[i].contains(key)) {
          std::printf("FAIL: step %zu: '%s' logged in one run only\n", i, key);
          return 1;
        }
        if (!a[i].contains(key)) continue;
        if (a[i][key].is_null() || b[i][key].is_null()) {  // NaN / inf (a skipped step's norm) is logged as null
          if (a[i][key].is_null() != b[i][key].is_null()) {
            std::printf("FAIL: step %zu: '%s' is not finite in one run only\n", i, key);
            return 1;
          }
          continue;
        }
        const double d = rel(a[i][key].get<double>(), b[i][key].get<double>(), 0);
        if (d > worst_metric) worst_metric = d, worst_what = "step " + std::to_string(i) + " " + key;
      }
    // Loss-scaling decisions are not rounding: every layout must skip the same steps with
    // the same scales.
    for (std::size_t i = 0; i < a.size(); ++i)
      for (const char* key : {"skipped", "loss_scale"})
        if (a[i].value(key, nlohmann::json()) != b[i].value(key, nlohmann::json())) {
          std::printf("FAIL: step %zu: '%s' is %s in %s but %s in %s\n", i, key, a[i].value(key, nlohmann::json()).dump().c_str(),
                      ref.c_str(), b[i].value(key, nlohmann::json()).dump().c_str(), run.c_str());
          return 1;
        }
    std::printf("metrics: %zu steps, worst relative difference %.3g (%s)\n", a.size(), worst_metric,
                worst_what.c_str());

    const auto wa = loom::WeightsReader::open(ref + "/weights.h5"), wb = loom::WeightsReader::open(run + "/weights.h5");
    // The k block of c_attn's bias: rows [H, H + Hkv) of H + 2 Hkv head-sized blocks.
    const auto config = nlohmann::json::parse(wa.config_json());
    const double heads = config.value("heads", 1.0), kv_heads = config.value("kv_heads", heads);
    double worst_weight = 0, worst_element = 0;
    std::string worst_name;
    for (const std::string& name : wa.names()) {
      const auto shape = wa.shape(name);
      if (!wb.has(name) || wb.shape(name) != shape) {
        std::printf("FAIL: parameter %s missing or reshaped in %s\n", name.c_str(), run.c_str());
        return 1;
      }
      std::int64_t n = 1;
      for (auto d : shape) n *= d;
      std::vector<float> x(static_cast<std::size_t>(n)), y(static_cast<std::size_t>(n));
      wa.read(name, x.data(), n);
      wb.read(name, y.data(), n);
      double scale = 0, diff2 = 0, norm2 = 0;
      for (float v : x) scale = std::max(scale, double(std::abs(v)));
      const bool qkv_bias = name.ends_with("attn.c_attn.bias");
      for (std::int64_t i = 0; i < n; ++i) {
        const double a = x[std::size_t(i)], b = y[std::size_t(i)];
        const double unit = double(n) / (heads + 2 * kv_heads);
        if (qkv_bias && double(i) >= heads * unit && double(i) < (heads + kv_heads) * unit) {  // the key bias: absolute
          if (std::abs(a - b) > key_tol) {
            std::printf("FAIL: %s[%lld] (key bias) differs by %.3g\n", name.c_str(), (long long)i, std::abs(a - b));
            return 1;
          }
          continue;
        }
        diff2 += (a - b) * (a - b);
        norm2 += a * a;
        worst_element = std::max(worst_element, rel(a, b, scale));
      }
      const double d = norm2 > 0 ? std::sqrt(diff2 / norm2) : std::sqrt(diff2);
      if (d > worst_weight) worst_weight = d, worst_name = name;
    }
    std::printf("weights: %zu parameters, worst tensor relative difference %.3g (%s), worst element %.3g of its "
                "tensor's scale\n",
                wa.names().size(), worst_weight, worst_name.c_str(), worst_element);
    if (std::filesystem::exists(ref + "/init.h5") && std::filesystem::exists(run + "/init.h5")) {
      const auto ia = loom::WeightsReader::open(ref + "/init.h5"), ib = loom::WeightsReader::open(run + "/init.h5");
      std::size_t differing = 0;
      for (const std::string& name : ia.names()) {
        if (!ib.has(name) || ib.shape(name) != ia.shape(name)) {
          std::printf("FAIL: initial parameter %s missing or reshaped in %s\n", name.c_str(), run.c_str());
          return 1;
        }
        std::int64_t n = 1;
        for (auto d : ia.shape(name)) n *= d;
        std::vector<float> x(static_cast<std::size_t>(n)), y(static_cast<std::size_t>(n));
        ia.read(name, x.data(), n);
        ib.read(name, y.data(), n);
        if (std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) != 0) {
          std::printf("FAIL: initial %s differs from the single-rank run\n", name.c_str());
          ++differing;
        }
      }
      if (differing) return 1;
      std::printf("initial weights: %zu parameters, bit for bit equal\n", ia.names().size());
    }
    const bool ok = worst_metric <= tol && worst_weight <= wtol;
    std::printf("%s (tolerance %.1g, weights %.1g)\n", ok ? "SAME RUN" : "FAIL: runs differ", tol, wtol);
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::printf("FAIL: %s\n", e.what());
    return 1;
  }
}
