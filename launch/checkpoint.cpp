// launch/checkpoint.cpp — see checkpoint.h.
#include "launch/checkpoint.h"
#include "launch/model_tokenizer.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/param_blocks.h"
#include "io/checkpoint_files.h"
#include "io/h5.h"
#include "io/weights_file.h"
#include "launch/run_dir.h"

#ifndef LOOM_VERSION
#define LOOM_VERSION "unknown"
#endif

namespace loom {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kKinds[3] = {"params", "exp_avg", "exp_avg_sq"};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The communicators move floats only; a u64 travels as four 16-bit pieces (exact in f32).
std::vector<std::uint64_t> all_gather_u64(Communicator& world, const std::vector<std::uint64_t>& mine) {
  const std::size_t n = mine.size(), w = std::size_t(world.size());
  std::vector<float> in(4 * n), out(4 * n * w);
  for (std::size_t i = 0; i < n; ++i)
    for (int k = 0; k < 4; ++k) in[4 * i + k] = float((mine[i] >> (16 * k)) & 0xffff);
  world.all_gather(host_tensor(out.data(), Shape{std::int64_t(out.size())}),
                   host_tensor(in.data(), Shape{std::int64_t(in.size())}));
  std::vector<std::uint64_t> all(n * w, 0);
  for (std::size_t i = 0; i < n * w; ++i)
    for (int k = 0; k < 4; ++k) all[i] |= std::uint64_t(out[4 * i + k]) << (16 * k);
  return all;
}

// `text` of rank `root`, on every rank (bytes as floats: these are short messages).
std::string share_string(Communicator& world, const std::string& text, int root) {
  float len = float(text.size());
  world.broadcast(host_tensor(&len, Shape{1}), root);
  std::vector<float> bytes(static_cast<std::size_t>(len));
  if (world.rank() == root)
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = float(static_cast<unsigned char>(text[i]));
  if (!bytes.empty()) world.broadcast(host_tensor(bytes.data(), Shape{std::int64_t(bytes.size())}), root);
  std::string out;
  for (float b : bytes) out += char(static_cast<unsigned char>(b));
  return out;
}

// The lowest rank with a non-empty `problem` tells everyone; "" when no rank has one.
std::string first_problem(Communicator& world, const std::string& problem) {
  float neg = problem.empty() ? -float(world.size()) : -float(world.rank());
  world.all_reduce(host_tensor(&neg, Shape{1}), ReduceOp::max);  // -(the lowest rank with a problem)
  const int r = int(-neg);
  return r >= world.size() ? "" : share_string(world, problem, r);
}

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// Copies block b out of `run` (a run of local elements starting at local element `first`)
// into `block`, row-major (rows, cols). (Reading back: read_local_run, io/checkpoint_files.h.)
void pack(const GlobalBlock& b, std::int64_t first, const float* run, float* block) {
  for (std::int64_t r = 0; r < b.rows; ++r)
    std::copy_n(run + (b.local - first) + r * b.local_stride, b.cols, block + r * b.cols);
}

// "model.layers: the checkpoint has 4, this run 6; ..." for every differing field.
std::string config_differences(const json& ckpt, const json& mine) {
  std::string out;
  for (const auto& [k, v] : mine.items()) {
    if (k == "architecture") continue;
    const json theirs = ckpt.contains(k) ? ckpt[k] : json();
    if (theirs != v) out += fmt::format("{}model.{}: the checkpoint has {}, this run {}", out.empty() ? "" : "; ", k,
                                        theirs.is_null() ? "nothing" : theirs.dump(), v.dump());
  }
  return out;
}

}  // namespace

Checkpointer::Checkpointer(const RunConfig& cfg, ParallelContext& ctx, Backend& be, StageModel& model,
                           std::vector<StateSlice> state, std::function<void()> params_from_master,
                           std::map<std::string, std::string> attrs)
    : cfg_(cfg),
      ctx_(ctx),
      be_(be),
      model_(model),
      state_(std::move(state)),
      params_from_master_(std::move(params_from_master)),
      attrs_(std::move(attrs)) {
  std::int64_t total = 0;
  for (std::size_t s = 0; s < state_.size(); ++s)
    if (writes(state_[s].param)) {
      items_.push_back({s, total});
      total += state_[s].elems.size();
    }
  snapshot_elems_ = std::size_t(total);
  for (auto& a : snapshot_) a.resize(snapshot_elems_);
}

Checkpointer::~Checkpointer() {
  if (writer_.valid()) writer_.wait();
}

bool Checkpointer::writes(std::size_t param) const {
  const ParamSpec& s = model_.params().spec(param);
  if (!s.tied.empty() && model_.tied_stages(s.tied).front() != ctx_.coord.pp) return false;  // a later copy
  if (s.tp_replicated == TpReplicated::yes && ctx_.coord.tp != 0) return false;            // tp rank 0's copy
  return cfg_.optim.zero == 1 || ctx_.coord.dp == 0;  // ZeRO-1: the owner of the optimizer state
}

MemoryPlan Checkpointer::memory_plan() const {
  MemoryPlan p;
  p.add("checkpoint snapshot (host: master, m, v)", 3 * snapshot_elems_ * sizeof(float));
  return p;
}

void Checkpointer::release_snapshot() {
  LOOM_CHECK(!pending_, "", "internal: release_snapshot() with a save not yet committed");
  for (auto& a : snapshot_) std::vector<float>().swap(a);
  released_ = true;
  h5::release_free_memory();
}

bool Checkpointer::writing() const {
  return writer_.valid() && writer_.wait_for(std::chrono::seconds(0)) != std::future_status::ready;
}

void Checkpointer::save(const TrainProgress& p) {
  LOOM_CHECK(!released_, "", "internal: save() after release_snapshot()");
  if (pending_) commit();
  const auto t0 = std::chrono::steady_clock::now();
  Communicator& world = *ctx_.world;
  final_dir_ = (fs::path(cfg_.checkpoint.dir) / step_dir_name(p.step)).string();
  tmp_dir_ = final_dir_ + ".tmp";
  if (ctx_.world_rank == 0) {
    std::error_code ec;
    fs::remove_all(tmp_dir_, ec);  // an interrupted save of the same step
    fs::create_directories(tmp_dir_, ec);
    LOOM_CHECK(!ec, "check checkpoint.dir (permissions, free space)", "cannot create '{}': {}", tmp_dir_,
               ec.message());
  }
  world.barrier();  // the directory exists before any rank writes into it
  for (const Item& it : items_) {
    const StateSlice& s = state_[it.slice];
    const Tensor src[3] = {s.master, s.m, s.v};
    for (int k = 0; k < 3; ++k)
      be_.copy(host_tensor(snapshot_[k].data() + it.host, Shape{s.elems.size()}), src[k]);
  }
  be_.synchronize();
  saved_ = p;
  pending_ = true;
  const std::string path = (fs::path(tmp_dir_) / fmt::format("rank_{:05d}.h5", ctx_.world_rank)).string();
  writer_ = std::async(std::launch::async, [this, path] { return write_shard(path); });
  blocked_s_ = seconds_since(t0);
}

Checkpointer::Written Checkpointer::write_shard(const std::string& path) const {
  const auto t0 = std::chrono::steady_clock::now();
  Written w;
  if (items_.empty()) return w;
  try {
    // Weights or moments that are no longer finite (a run diverging) are never saved: the
    // last good checkpoint stays `latest`. The values are on the host already; this is
    // one pass, off the step loop.
    for (const Item& it : items_)
      for (int k = 0; k < 3; ++k) {
        const float* run = snapshot_[k].data() + it.host;
        const std::int64_t n = state_[it.slice].elems.size();
        for (std::int64_t j = 0; j < n; ++j)
          if (!std::isfinite(run[j])) {
            w.error = fmt::format("{} of parameter {} holds {} at step {}: training diverged; this checkpoint is not "
                                  "saved, the last good one stays latest (lower optim.lr and resume from it)",
                                  kKinds[k], model_.params().spec(state_[it.slice].param).name, run[j], saved_.step);
            w.seconds = seconds_since(t0);
            return w;
          }
      }
    // What the steps since the last save freed but malloc kept (MPI's all-reduce
    // temporaries: 12.6 MiB on a dp 2 rank of the default model) goes back to the system
    // before HDF5 allocates, so the write's own memory does not stack on it. Once per save;
    // the next step maps those pages again (a few ms).
    h5::release_free_memory();
    ShardWriter out(path);
    std::vector<float> block;
    for (const Item& it : items_) {
      const StateSlice& s = state_[it.slice];
      const ParamSpec& spec = model_.params().spec(s.param);
      const std::vector<std::int64_t> shape = stored_shape(spec).dims();
      for (const GlobalBlock& b : global_blocks(spec, s.elems.begin, s.elems.end)) {
        // A block whose rows are adjacent in the run is written from the snapshot itself.
        const bool contiguous = b.rows == 1 || b.local_stride == b.cols;
        if (!contiguous) block.resize(std::size_t(b.numel()));
        for (int k = 0; k < 3; ++k) {
          const float* run = snapshot_[k].data() + it.host;
          if (contiguous) {
            out.add(kKinds[k], spec.name, shape, b, run + (b.local - s.elems.begin));
          } else {
            pack(b, s.elems.begin, run, block.data());
            out.add(kKinds[k], spec.name, shape, b, block.data());
          }
        }
      }
    }
    w.info = out.close();
    fsync_path(path);
    w.has_shard = true;
  } catch (const std::exception& e) {
    w.error = e.what();
  }
  // HDF5's metadata, free lists and this thread's malloc arena would otherwise stay
  // resident until the process ends, under every later allocation peak.
  h5::release_free_memory();
  w.seconds = seconds_since(t0);
  return w;
}

void Checkpointer::commit() {
  if (!pending_) return;
  const Written w = writer_.get();
  write_s_ = w.seconds;
  pending_ = false;
  Communicator& world = *ctx_.world;
  const std::string problem = first_problem(
      world, w.error.empty() ? "" : fmt::format("rank {} did not write its checkpoint shard: {}", ctx_.world_rank, w.error));
  if (!problem.empty() && ctx_.world_rank == 0) {
    std::error_code ec;
    fs::remove_all(tmp_dir_, ec);  // never committed: leave nothing half-made behind
  }
  LOOM_CHECK(problem.empty(), "the previous checkpoint is intact and stays latest; for a write error, check "
             "checkpoint.dir (free space, permissions)", "{}", problem);
  const std::vector<std::uint64_t> all =
      all_gather_u64(world, {std::uint64_t(w.has_shard), std::uint64_t(w.info.bytes), w.info.crc32});
  if (ctx_.world_rank == 0) {
    std::vector<ShardInfo> shards;
    for (int r = 0; r < world.size(); ++r)
      if (all[3 * r] != 0)
        shards.push_back({fmt::format("rank_{:05d}.h5", r), std::int64_t(all[3 * r + 1]), std::uint32_t(all[3 * r + 2])});
    std::map<std::string, std::string> attrs = attrs_;
    auto config = json::parse(model_.config_json());
    config["architecture"] = model_.architecture();
    attrs["config"] = config.dump();
    attrs["architecture"] = model_.architecture();
    attrs["loom_version"] = LOOM_VERSION;
    attrs["layout"] = json{{"world", world.size()},
                           {"dp", ctx_.shape.dp},
                           {"tp", ctx_.shape.tp},
                           {"pp", ctx_.shape.pp},
                           {"virtual_stages", cfg_.parallel.virtual_stages},
                           {"zero", cfg_.optim.zero},
                           {"precision", cfg_.train.precision}}
                          .dump();
    const LossScaler::State sc = saved_.scaler;
    attrs["loss_scaler"] = json{{"scale", sc.scale},
                                {"good_steps", sc.good},
                                {"skipped_steps", sc.skipped},
                                {"skipped_at_min_scale", sc.skipped_at_min}}
                               .dump();
    const std::map<std::string, std::int64_t> ints = {{"step", saved_.step},
                                                      {"updates", saved_.updates},
                                                      {"tokens", saved_.tokens},
                                                      {"seed", std::int64_t(cfg_.train.seed)}};
    write_checkpoint_index(tmp_dir_, shards, attrs, ints);
    fsync_path((fs::path(tmp_dir_) / kCheckpointIndex).string());
    fsync_path(tmp_dir_);
    std::error_code ec;
    const std::string old = final_dir_ + ".old";
    if (fs::exists(final_dir_, ec)) fs::rename(final_dir_, old, ec);  // a resumed run saving a step again
    fs::rename(tmp_dir_, final_dir_, ec);
    LOOM_CHECK(!ec, "check checkpoint.dir", "cannot commit checkpoint '{}': {}", final_dir_, ec.message());
    fs::remove_all(old, ec);
    write_latest(cfg_.checkpoint.dir, fs::path(final_dir_).filename().string());
    fsync_path(cfg_.checkpoint.dir);
    const std::vector<std::string> gone = prune_checkpoints(cfg_.checkpoint.dir, cfg_.checkpoint.keep);
    std::int64_t bytes = 0;
    for (const ShardInfo& s : shards) bytes += s.bytes;
    fmt::print("checkpoint: {} ({:.1f} MB in {} shard(s); the step loop waited {:.0f} ms, rank 0 wrote for {:.2f} s){}\n",
               final_dir_, double(bytes) / 1e6, shards.size(), blocked_s_ * 1e3, write_s_,
               gone.empty() ? "" : fmt::format("; deleted {}", fmt::join(gone, ", ")));
    std::fflush(stdout);
  }
  h5::release_free_memory();  // the index's HDF5 buffers (rank 0)
  world.barrier();  // committed before any rank moves on (or exits)
}

std::string Checkpointer::verify(const std::string& path) {
  Communicator& world = *ctx_.world;
  std::string problem;
  try {
    const CheckpointReader r = CheckpointReader::open(path);
    const std::vector<ShardInfo>& shards = r.shards();
    for (std::size_t i = std::size_t(ctx_.world_rank); i < shards.size() && problem.empty();
         i += std::size_t(world.size()))
      problem = verify_shard(path, shards[i]);
  } catch (const std::exception& e) {
    problem = e.what();
  }
  return first_problem(world, problem);
}

TrainProgress Checkpointer::load(const std::string& path) {
  const CheckpointReader r = CheckpointReader::open(path);
  LOOM_CHECK(r.attr("architecture") == model_.architecture(), "resume a checkpoint of the same model family",
             "checkpoint '{}' holds a '{}' model, not '{}'", path, r.attr("architecture"), model_.architecture());
  // Through the model's own reading: a checkpoint written before a config field existed
  // has that field's default (what the model it was written by computed).
  const std::string diff = config_differences(json::parse(model_.canonical_config_json(r.attr("config"))),
                                              json::parse(model_.config_json()));
  LOOM_CHECK(diff.empty(), "give the model.* options the checkpoint was written with (its config.ini has them)",
             "checkpoint '{}' does not fit this model: {}", path, diff);
  // The run's tokenizer (in attrs_, taken from its data) must be the checkpoint's.
  const AttrGetter run_attr = [&](const std::string& a) {
    return attrs_.contains(a) ? std::optional(attrs_.at(a)) : std::nullopt;
  };
  const AttrGetter ckpt_attr = [&](const std::string& a) { return r.has_attr(a) ? std::optional(r.attr(a)) : std::nullopt; };
  if (const auto data = tokenizer_from_attrs(run_attr, "this run's data"))
    check_model_tokenizer("checkpoint.resume", path, tokenizer_from_attrs(ckpt_attr, "checkpoint '" + path + "'"), *data);
  // Only the runs whose state this rank keeps are read (master weights, m, v); the working
  // weights are made from the master weights (rounded, and under ZeRO-1 all-gathered over
  // dp), exactly as after an update.
  for (const StateSlice& s : state_) {
    const Tensor dst[3] = {s.master, s.m, s.v};
    std::vector<float> run(std::size_t(s.elems.size()));
    for (int k = 0; k < 3; ++k) {
      std::fill(run.begin(), run.end(), 0.0f);  // padding rows stay 0
      read_local_run(r, kKinds[k], model_.params().spec(s.param), s.elems.begin, s.elems.size(), run.data());
      be_.copy(dst[k], host_tensor(run.data(), Shape{s.elems.size()}));
    }
  }
  be_.synchronize();
  params_from_master_();
  be_.synchronize();
  TrainProgress p;
  p.step = r.int_attr("step");
  p.updates = r.int_attr("updates");
  p.tokens = r.int_attr("tokens");
  const json sc = json::parse(r.attr("loss_scaler"));
  p.scaler = {sc["scale"].get<float>(), sc["good_steps"].get<std::int64_t>(), sc["skipped_steps"].get<std::int64_t>(),
              sc.value("skipped_at_min_scale", std::int64_t(0))};
  return p;
}

}  // namespace loom
