// plan/cluster.cpp — see cluster.h. JSON via nlohmann-json; readable units on disk.
#include "plan/cluster.h"

#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace loom::plan {

namespace {

constexpr double GB = 1e9, MiB = 1024.0 * 1024.0, GiB = 1024.0 * MiB, T = 1e12, us = 1e-6;

double number(const nlohmann::json& j, const char* key, const std::string& origin) {
  LOOM_CHECK(j.contains(key) && j.at(key).is_number(), "see plan/clusters/a100-80gb.json for the fields",
             "{}: the number '{}' is missing", origin, key);
  return j.at(key).get<double>();
}

Link parse_link(const nlohmann::json& j, const char* key, const std::string& origin) {
  LOOM_CHECK(j.contains(key) && j.at(key).is_object(), "see plan/clusters/a100-80gb.json for the fields",
             "{}: the object '{}' is missing", origin, key);
  const auto& l = j.at(key);
  const std::string where = origin + " " + key;
  Link out{.bandwidth = number(l, "bandwidth_GB_per_s", where) * GB,
           .latency = number(l, "latency_us", where) * us,
           .efficiency = l.value("efficiency", 1.0)};
  LOOM_CHECK(out.bandwidth > 0 && out.efficiency > 0 && out.latency >= 0, "",
             "{}: bandwidth and efficiency must be > 0", where);
  return out;
}

nlohmann::json link_json(const Link& l) {
  return {
      {"bandwidth_GB_per_s", l.bandwidth / GB}, {"latency_us", l.latency / us}, {"efficiency", l.efficiency}};
}

}  // namespace

const char* to_string(GemmPass p) {
  switch (p) {
    case GemmPass::forward:
      return "forward";
    case GemmPass::data_grad:
      return "dx";
    case GemmPass::weight_grad:
      return "dw";
  }
  return "forward";
}

GemmPass parse_gemm_pass(const std::string& s) {
  for (GemmPass p : {GemmPass::forward, GemmPass::data_grad, GemmPass::weight_grad})
    if (s == to_string(p)) return p;
  throw Error(fmt::format("unknown GEMM pass '{}' in a cluster file's gemm_rates", s),
              "a GEMM rate's pass is forward, dx or dw (absent: forward)");
}

Cluster parse_cluster(const std::string& text, const std::string& origin) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text, nullptr, true, /*ignore_comments=*/true);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: not JSON: {}", origin, e.what()), "see plan/clusters/a100-80gb.json");
  }
  Cluster c;
  c.name = j.value("name", origin);
  c.sources = j.value("sources", "");
  c.devices_per_node = int(number(j, "devices_per_node", origin));
  c.device_memory = number(j, "device_memory_GiB", origin) * GiB;
  c.peak_16bit = number(j, "peak_bf16_TFLOP_per_s", origin) * T;
  c.peak_fp32 = number(j, "peak_fp32_TFLOP_per_s", origin) * T;
  c.memory_bandwidth = number(j, "memory_bandwidth_GB_per_s", origin) * GB;
  c.memory_efficiency = j.value("memory_efficiency", 1.0);
  c.gemm_efficiency = j.value("gemm_efficiency", 1.0);
  c.kernel_overhead = j.value("kernel_overhead_us", 0.0) * us;
  const std::string device = j.value("device", "gpu");
  LOOM_CHECK(device == "gpu" || device == "cpu", "write \"device\": \"gpu\" or \"cpu\"",
             "{}: unknown device '{}'", origin, device);
  c.host_is_device = device == "cpu";
  c.process_resident = j.value("process_resident_MiB", 0.0) * MiB;
  c.hdf5_resident = j.value("hdf5_resident_MiB", 0.0) * MiB;
  c.iallreduce_temp_per_byte = j.value("iallreduce_temp_per_byte", 0.0);
  c.attention_resident = j.value("attention_resident_MiB", 0.0) * MiB;
  LOOM_CHECK(c.process_resident >= 0 && c.hdf5_resident >= 0 && c.iallreduce_temp_per_byte >= 0 &&
                 c.attention_resident >= 0,
             "remeasure with 'loom-plan calibrate' or remove the field",
             "{}: process_resident_MiB, hdf5_resident_MiB, iallreduce_temp_per_byte and "
             "attention_resident_MiB cannot be "
             "negative",
             origin);
  c.intra_node = parse_link(j, "intra_node", origin);
  c.inter_node = parse_link(j, "inter_node", origin);
  c.gemm_rates_dtype = j.value("gemm_rates_dtype", "fp32");
  if (j.contains("gemm_rates"))
    for (const auto& r : j.at("gemm_rates"))
      c.gemm_rates.push_back({.m = r.at("m"),
                              .n = r.at("n"),
                              .k = r.at("k"),
                              .flops = double(r.at("TFLOP_per_s")) * T,
                              .pass = parse_gemm_pass(r.value("pass", "forward"))});
  if (j.contains("attention_rates"))
    for (const auto& r : j.at("attention_rates"))
      c.attention_rates.push_back({.s = r.at("s"),
                                   .d = r.at("d"),
                                   .causal = r.at("causal"),
                                   .forward = double(r.at("forward_TFLOP_per_s")) * T,
                                   .backward = double(r.at("backward_TFLOP_per_s")) * T});
  for (const AttentionRate& r : c.attention_rates)
    LOOM_CHECK(r.s > 0 && r.d > 0 && r.forward > 0 && r.backward > 0, "fix the cluster file (or calibrate again)",
               "{}: an attention rate has a non-positive s, d or rate", origin);
  for (const GemmRate& r : c.gemm_rates)
    LOOM_CHECK(r.m > 0 && r.n > 0 && r.k > 0 && r.flops > 0, "fix the cluster file (or calibrate again)",
               "{}: a GEMM rate has a non-positive shape or rate", origin);
  LOOM_CHECK(c.devices_per_node >= 1 && c.device_memory > 0 && c.peak_16bit > 0 && c.peak_fp32 > 0 &&
                 c.memory_bandwidth > 0 && c.gemm_efficiency > 0 && c.memory_efficiency > 0,
             "fix the cluster file",
             "{}: devices, memory, peaks, bandwidth and efficiencies must be positive", origin);
  return c;
}

Cluster load_cluster(const std::string& path) {
  std::ifstream in(path);
  LOOM_CHECK(in.good(),
             "give a file such as plan/clusters/a100-80gb.json, or make one with 'loom-plan calibrate'",
             "cannot open cluster file '{}'", path);
  std::stringstream s;
  s << in.rdbuf();
  return parse_cluster(s.str(), path);
}

std::string to_json(const Cluster& c) {
  nlohmann::json j{{"name", c.name},
                   {"sources", c.sources},
                   {"devices_per_node", c.devices_per_node},
                   {"device_memory_GiB", c.device_memory / GiB},
                   {"peak_bf16_TFLOP_per_s", c.peak_16bit / T},
                   {"peak_fp32_TFLOP_per_s", c.peak_fp32 / T},
                   {"memory_bandwidth_GB_per_s", c.memory_bandwidth / GB},
                   {"memory_efficiency", c.memory_efficiency},
                   {"gemm_efficiency", c.gemm_efficiency},
                   {"kernel_overhead_us", c.kernel_overhead / us},
                   {"intra_node", link_json(c.intra_node)},
                   {"inter_node", link_json(c.inter_node)},
                   {"device", c.host_is_device ? "cpu" : "gpu"}};
  if (c.process_resident > 0) j["process_resident_MiB"] = c.process_resident / MiB;
  if (c.hdf5_resident > 0) j["hdf5_resident_MiB"] = c.hdf5_resident / MiB;
  if (c.iallreduce_temp_per_byte > 0) j["iallreduce_temp_per_byte"] = c.iallreduce_temp_per_byte;
  if (c.attention_resident > 0) j["attention_resident_MiB"] = c.attention_resident / MiB;
  if (!c.gemm_rates.empty()) {
    j["gemm_rates_dtype"] = c.gemm_rates_dtype;
    auto& rates = j["gemm_rates"] = nlohmann::json::array();
    for (const GemmRate& r : c.gemm_rates)
      rates.push_back(
          {{"m", r.m}, {"n", r.n}, {"k", r.k}, {"pass", to_string(r.pass)}, {"TFLOP_per_s", r.flops / T}});
  }
  if (!c.attention_rates.empty()) {
    auto& rates = j["attention_rates"] = nlohmann::json::array();
    for (const AttentionRate& r : c.attention_rates)
      rates.push_back({{"s", r.s},
                       {"d", r.d},
                       {"causal", r.causal},
                       {"forward_TFLOP_per_s", r.forward / T},
                       {"backward_TFLOP_per_s", r.backward / T}});
  }
  return j.dump(2) + "\n";
}

}  // namespace loom::plan
