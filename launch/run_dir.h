// launch/run_dir.h — the run directory (checkpoint.dir) and the checkpoints in it.
//
//   RUN/config.ini            the effective configuration (written once it is validated)
//   RUN/metrics.jsonl         one record per step
//   RUN/step_00000100/        a complete checkpoint (index.h5 + shards; docs/checkpoint-format.md)
//   RUN/step_00000200.tmp/    a save in progress (or interrupted: never read, removed on the next save)
//   RUN/latest                the name of the newest complete checkpoint, one line
//   RUN/weights.h5            the final weights, when the run finished
//   RUN/.lock                 held (flock) by the run's rank 0 while it runs
// A directory belongs to one run: a new run refuses a directory holding another run's
// checkpoints or weights unless it resumes them (checkpoint.resume auto) or is told to
// start over (checkpoint.overwrite). Only world rank 0 changes the directory's
// bookkeeping (latest, pruning, removal); every rank writes its own shard.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace loom {

std::string step_dir_name(std::int64_t step);  // "step_00000100"

// Complete checkpoints in `dir` (step_* directories holding an index), oldest first,
// as paths.
std::vector<std::string> list_checkpoints(const std::string& dir);
// The checkpoints resume auto tries, in order: the one `latest` names, then every other
// complete one, newest first.
std::vector<std::string> resume_candidates(const std::string& dir);
// `path` as a checkpoint: itself when it holds an index, else (a run directory) the
// checkpoint its `latest` names, else its newest complete one; "" when it is none of these.
std::string find_checkpoint(const std::string& path);
// Points `latest` at checkpoint `name` (write then rename).
void write_latest(const std::string& dir, const std::string& name);
// Deletes the oldest complete checkpoints until `keep` remain (keep <= 0: keep all);
// never the newest. Returns the names deleted.
std::vector<std::string> prune_checkpoints(const std::string& dir, std::int64_t keep);

// What of an earlier run `dir` holds (checkpoints, latest, weights.h5, init.h5), as names.
std::vector<std::string> earlier_run_files(const std::string& dir);
// Deletes them (checkpoint.overwrite), and interrupted saves.
void remove_earlier_run(const std::string& dir);
// A new run (no checkpoint.resume) in `dir`: refuses a directory holding an earlier run's
// files, naming them, unless `overwrite` (then deletes them). Returns what was deleted.
std::vector<std::string> claim_run_dir(const std::string& dir, bool overwrite);

// Creates `dir` if needed and checks that files can be created in it; errors name the
// option checkpoint.dir and the reason.
void prepare_run_dir(const std::string& dir);

// An exclusive lock on dir/.lock for the lifetime of the object (flock: released by the
// kernel when the process dies, so a crashed run never leaves a stale lock). Throws,
// naming the holder's pid and host, when another run holds it.
class RunDirLock {
public:
  explicit RunDirLock(const std::string& dir);
  ~RunDirLock();
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

private:
  int fd_ = -1;
};

}  // namespace loom
