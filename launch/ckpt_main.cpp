// launch/ckpt_main.cpp — loom-ckpt: look into, check and convert checkpoints.
//
//   loom-ckpt inspect CKPT [--all]          step, progress, layout, config, shards, tensors
//   loom-ckpt verify CKPT                   every shard present, with its size and CRC-32
//   loom-ckpt export CKPT --output W.h5     one consolidated weights file (loom-generate, --model.init)
//   loom-ckpt export CKPT --hf DIR          DIR/model.safetensors + config.json: a Hugging Face GPT-2
//   loom-ckpt import M.safetensors --output W.h5   a Hugging Face GPT-2 into a loom weights file
// CKPT is a checkpoint directory (step_N) or a run directory (its latest checkpoint);
// export --hf also takes a weights file. Outputs are never overwritten without --force.
// Exit codes: 0 done (verify: intact), 1 verify found damage, 2 bad input (a loom::Error).
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/checkpoint_files.h"
#include "io/weights_file.h"
#include "launch/hf_gpt2.h"
#include "launch/model_io.h"
#include "launch/run_dir.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;
using nlohmann::json;

namespace loom {

namespace {

std::string checkpoint_or_throw(const std::string& path) {
  const std::string c = find_checkpoint(path);
  LOOM_CHECK(!c.empty(), "give a checkpoint directory (step_N, holding index.h5) or a run directory holding one",
             "'{}' is not a loom checkpoint", path);
  return c;
}

std::int64_t numel(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

// A whole tensor as one block (exporting reads everything anyway).
std::vector<float> read_whole(const CheckpointReader& r, const std::string& kind, const std::string& name) {
  const std::vector<std::int64_t> shape = r.shape(kind, name);
  GlobalBlock b{0, 0, shape.at(0), shape.size() == 2 ? shape[1] : 1, 0, 0};
  std::vector<float> out(std::size_t(numel(shape)));
  r.read(kind, name, b, out.data());
  return out;
}

int inspect(const std::string& path, bool all) {
  const CheckpointReader r = CheckpointReader::open(checkpoint_or_throw(path));
  fmt::print("checkpoint {}\n  step {} (updates applied {}), tokens {}, seed {}\n", r.dir(), r.int_attr("step"),
             r.int_attr("updates"), r.int_attr("tokens"), r.int_attr("seed"));
  fmt::print("  loss scaler {}\n  written by loom {} with layout {}\n  model {}\n", r.attr("loss_scaler"),
             r.attr("loom_version"), r.attr("layout"), r.attr("config"));
  std::int64_t bytes = 0;
  for (const ShardInfo& s : r.shards()) bytes += s.bytes;
  fmt::print("  {} shard(s), {:.1f} MB:", r.shards().size(), double(bytes) / 1e6);
  for (const ShardInfo& s : r.shards()) fmt::print(" {} ({} B, crc32 {:08x})", s.file, s.bytes, s.crc32);
  fmt::print("\n");
  for (const char* kind : {"params", "exp_avg", "exp_avg_sq"}) {
    const std::vector<std::string> names = r.tensors(kind);
    std::int64_t n = 0;
    for (const auto& t : names) n += numel(r.shape(kind, t));
    fmt::print("  {}: {} tensors, {} float32 values\n", kind, names.size(), n);
    if (all || std::string(kind) == "params")
      for (const auto& t : names) fmt::print("    {:<32} {}\n", t, shape_string(r.shape(kind, t)));
  }
  return 0;
}

int verify(const std::string& path) {
  const std::string dir = checkpoint_or_throw(path);
  const CheckpointReader r = CheckpointReader::open(dir);
  int bad = 0;
  for (const ShardInfo& s : r.shards()) {
    const std::string problem = verify_shard(dir, s);
    fmt::print("{} {}\n", problem.empty() ? "ok  " : "BAD ", problem.empty() ? (fs::path(dir) / s.file).string() : problem);
    bad += !problem.empty();
  }
  // Files that look like shards but are not in the index (a save mixed with another's).
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    bool listed = n == kCheckpointIndex;
    for (const ShardInfo& s : r.shards()) listed |= s.file == n;
    if (!listed) fmt::print("note: {} is not part of this checkpoint\n", e.path().string());
  }
  fmt::print("{}: {}\n", dir, bad ? fmt::format("{} damaged shard(s)", bad) : "intact");
  return bad ? 1 : 0;
}

int export_weights(const std::string& path, const std::string& output, Overwrite overwrite, bool say = true) {
  const CheckpointReader r = CheckpointReader::open(checkpoint_or_throw(path));
  std::vector<std::vector<float>> data;
  std::vector<NamedArray> arrays;
  const std::vector<std::string> names = r.tensors("params");
  data.reserve(names.size());
  for (const auto& n : names) {
    data.push_back(read_whole(r, "params", n));
    arrays.push_back({n, r.shape("params", n), data.back().data()});
  }
  // The checkpoint's embedded tokenizer goes along (verified: its checksum is read back).
  std::map<std::string, std::string> tok;
  if (const auto t = read_model_tokenizer(path)) tok = tokenizer_attrs(*t);
  write_weights(output, arrays, r.attr("config"), overwrite, tok);
  if (say) fmt::print("wrote {} ({} tensors, step {})\n", output, arrays.size(), r.int_attr("step"));
  return 0;
}

int export_hf(const std::string& path, const std::string& out_dir, Overwrite overwrite) {
  std::error_code ec;
  std::vector<std::string> written;
  if (fs::is_regular_file(path, ec)) {  // a weights file
    written = export_hf_gpt2(path, out_dir, overwrite);
  } else {
    fs::create_directories(out_dir, ec);
    LOOM_CHECK(!ec, "choose a directory you can write to", "cannot create '{}': {}", out_dir, ec.message());
    const std::string tmp = (fs::path(out_dir) / ".loom-export-weights.h5").string();
    export_weights(path, tmp, Overwrite::yes, false);
    try {
      written = export_hf_gpt2(tmp, out_dir, overwrite);
    } catch (...) {
      fs::remove(tmp, ec);
      throw;
    }
    fs::remove(tmp, ec);
  }
  for (const std::string& f : written) fmt::print("wrote {}/{}\n", out_dir, f);
  return 0;
}

int run(int argc, char** argv) {
  std::string command, input, output, hf;
  bool all = false, force = false;
  po::options_description opts("loom-ckpt options");
  opts.add_options()("help,h", "show this help")("command", po::value(&command), "inspect, verify, export or import")(
      "input", po::value(&input), "a checkpoint (step_N/ or a run directory); import: a .safetensors file")(
      "output", po::value(&output), "export / import: the weights file (HDF5) to write")(
      "hf", po::value(&hf), "export: write a Hugging Face GPT-2 directory (model.safetensors, config.json)")(
      "all", po::bool_switch(&all), "inspect: list the optimizer tensors too")(
      "force", po::bool_switch(&force), "replace existing outputs");
  po::positional_options_description pos;
  pos.add("command", 1).add("input", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(opts).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw Error(e.what(), "run 'loom-ckpt --help'");
  }
  if (vm.count("help") || command.empty()) {
    std::cout << "usage: loom-ckpt inspect|verify|export|import PATH [options]\n" << opts << "\n";
    return command.empty() && !vm.count("help") ? 2 : 0;
  }
  LOOM_CHECK(!input.empty(), "run 'loom-ckpt --help'", "loom-ckpt {}: give the checkpoint or file to read", command);
  const Overwrite ow = force ? Overwrite::yes : Overwrite::no;
  if (command == "inspect") return inspect(input, all);
  if (command == "verify") return verify(input);
  if (command == "export") {
    LOOM_CHECK(!output.empty() || !hf.empty(), "add --output W.h5 or --hf DIR",
               "loom-ckpt export: nothing to write");
    if (!output.empty()) export_weights(input, output, ow);
    if (!hf.empty()) export_hf(input, hf, ow);
    return 0;
  }
  if (command == "import") {
    LOOM_CHECK(!output.empty(), "add --output W.h5", "loom-ckpt import: give the weights file to write");
    import_hf_gpt2(input, output, ow);
    fmt::print("wrote {}\n", output);
    return 0;
  }
  throw Error(fmt::format("unknown command '{}'", command), "use inspect, verify, export or import");
}

}  // namespace
}  // namespace loom

int main(int argc, char** argv) {
  try {
    return loom::run(argc, argv);
  } catch (const loom::Error& e) {
    std::fprintf(stderr, "loom-ckpt: error: %s\n", e.full_message().c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "loom-ckpt: error: %s\n", e.what());
    return 2;
  }
}
