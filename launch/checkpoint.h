// launch/checkpoint.h — saving and loading training checkpoints (docs/checkpoint-format.md).
//
// A checkpoint holds, for every parameter, three global, layout-free tensors: `params`
// (the f32 master weights), `exp_avg` and `exp_avg_sq` (AdamW's moments), plus the
// progress (step, updates, tokens, loss scaler), the configuration and the layout it was
// written with. Each element is written by exactly one rank: the pipeline stage that holds
// it (a tied group's first holder), tp rank 0 for tensors every tp rank holds alike, and
// dp rank 0 — or, under ZeRO-1, the dp rank that owns its optimizer state. Any layout
// loads any checkpoint: each rank reads the global blocks (core/param_blocks.h) of exactly
// the elements whose optimizer state it keeps, by hyperslab through the index, and the
// working weights are made from those master weights (params_from_master).
//
// Saving is asynchronous: save() copies this rank's part to a host snapshot (allocated
// once, in the memory plan) — the only time the step loop waits — and a background thread
// writes the shard file. commit() (collective) runs once every rank's shard is written:
// world rank 0 writes the index, renames step_N.tmp to step_N, points `latest` at it and
// deletes checkpoints beyond checkpoint.keep. A save interrupted anywhere before the rename
// leaves the previous checkpoints untouched.
#pragma once

#include <functional>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/config.h"
#include "core/memory_plan.h"
#include "io/checkpoint_files.h"
#include "launch/trainer.h"
#include "layers/stage_model.h"
#include "optimizer/adamw.h"
#include "parallel/parallel_context.h"

namespace loom {

class Checkpointer {
public:
  // `state`: the optimizer's slices on this rank (Trainer::optimizer_state);
  // `params_from_master`: makes the working parameters from the master weights once load()
  // wrote those (Trainer::params_from_master: rounding; under ZeRO-1 an all-gather over dp,
  // so each rank reads only the part of the weights whose state it keeps). `attrs`: more
  // string attributes for the index (the run configuration).
  Checkpointer(const RunConfig& cfg, ParallelContext& ctx, Backend& be, StageModel& model,
               std::vector<StateSlice> state, std::function<void()> params_from_master,
               std::map<std::string, std::string> attrs);
  ~Checkpointer();  // waits for a running write (it is not committed)
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  MemoryPlan memory_plan() const;  // the host snapshot
  // Frees the host snapshot once the last save is committed (no save may follow), and
  // hands the freed memory back to the system (h5::release_free_memory), so that the final
  // weights file's host copy (launch/model_io.h save_weights) reuses it instead of stacking
  // on it: the plan counts the weights file only beyond the snapshot.
  void release_snapshot();

  // Collective. Waits for (and commits) an earlier save still in flight, copies this
  // rank's part to the snapshot and starts writing it in the background.
  void save(const TrainProgress& p);
  bool pending() const { return pending_; }            // a save not yet committed
  bool writing() const;                                // this rank's shard still being written
  // Collective: waits until every rank's shard is written, then commits the checkpoint.
  void commit();
  // Seconds the last save() held the step loop, and the last write took in the background.
  double blocked_seconds() const { return blocked_s_; }
  double write_seconds() const { return write_s_; }

  // Collective: loads every parameter and the optimizer state this rank holds from the
  // checkpoint directory `path` (checks the model configuration, naming differing fields).
  TrainProgress load(const std::string& path);
  // Collective: "" when every shard of `path` has its size and checksum (each rank checks
  // some), otherwise the first problem found.
  std::string verify(const std::string& path);

private:
  struct Item {  // a run of one parameter's elements this rank writes
    std::size_t slice;
    std::int64_t host;  // offset in each of the three snapshot arrays
  };
  struct Written {
    bool has_shard = false;
    ShardInfo info;
    std::string error;
    double seconds = 0;
  };
  Written write_shard(const std::string& path) const;  // on the background thread
  bool writes(std::size_t param) const;

  const RunConfig& cfg_;
  ParallelContext& ctx_;
  Backend& be_;
  StageModel& model_;
  std::vector<StateSlice> state_;
  std::function<void()> params_from_master_;
  std::map<std::string, std::string> attrs_;
  std::vector<Item> items_;
  std::vector<float> snapshot_[3];  // master, m, v of the items, back to back
  std::size_t snapshot_elems_ = 0;  // of each of the three (kept after release_snapshot)
  bool released_ = false;
  bool pending_ = false;
  std::string tmp_dir_, final_dir_;
  TrainProgress saved_;
  std::future<Written> writer_;
  double blocked_s_ = 0, write_s_ = 0;
};

}  // namespace loom
