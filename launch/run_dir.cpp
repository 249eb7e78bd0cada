// launch/run_dir.cpp — see run_dir.h.
#include "launch/run_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "core/error.h"
#include "io/checkpoint_files.h"
#include "io/files.h"

namespace loom {

namespace fs = std::filesystem;

namespace {

bool is_step_name(const std::string& n) {
  return n.size() == 13 && n.rfind("step_", 0) == 0 &&
         std::all_of(n.begin() + 5, n.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string read_latest(const std::string& dir) {
  std::ifstream in(fs::path(dir) / "latest");
  std::string name;
  std::getline(in, name);
  return name;
}

}  // namespace

std::string step_dir_name(std::int64_t step) { return fmt::format("step_{:08d}", step); }

std::vector<std::string> list_checkpoints(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (is_step_name(n) && fs::is_regular_file(e.path() / kCheckpointIndex, ec)) names.push_back(n);
  }
  std::sort(names.begin(), names.end());  // zero-padded: name order is step order
  std::vector<std::string> paths;
  for (const auto& n : names) paths.push_back((fs::path(dir) / n).string());
  return paths;
}

std::vector<std::string> resume_candidates(const std::string& dir) {
  std::vector<std::string> all = list_checkpoints(dir), out;
  std::reverse(all.begin(), all.end());
  const std::string latest = read_latest(dir);
  for (const auto& p : all)
    if (!latest.empty() && fs::path(p).filename() == latest) out.push_back(p);
  for (const auto& p : all)
    if (latest.empty() || fs::path(p).filename() != latest) out.push_back(p);
  return out;
}

std::string find_checkpoint(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(fs::path(path) / kCheckpointIndex, ec)) return path;
  if (!fs::is_directory(path, ec)) return "";
  const std::vector<std::string> c = resume_candidates(path);
  return c.empty() ? "" : c.front();
}

void write_latest(const std::string& dir, const std::string& name) {
  AtomicWrite out((fs::path(dir) / "latest").string(), Overwrite::yes, "checkpoint pointer");
  std::ofstream(out.tmp_path()) << name << "\n";
  out.commit();
}

std::vector<std::string> prune_checkpoints(const std::string& dir, std::int64_t keep) {
  std::vector<std::string> all = list_checkpoints(dir), gone;
  if (keep <= 0) return gone;
  for (std::size_t i = 0; i + std::size_t(keep) < all.size(); ++i) {
    std::error_code ec;
    fs::remove_all(all[i], ec);
    LOOM_CHECK(!ec, "check the permissions of checkpoint.dir", "cannot delete old checkpoint '{}': {}", all[i],
               ec.message());
    gone.push_back(fs::path(all[i]).filename().string());
  }
  return gone;
}

std::vector<std::string> earlier_run_files(const std::string& dir) {
  std::vector<std::string> found;
  for (const auto& p : list_checkpoints(dir)) found.push_back(fs::path(p).filename().string());
  std::error_code ec;
  for (const char* f : {"latest", "weights.h5", "init.h5"})
    if (fs::exists(fs::path(dir) / f, ec)) found.emplace_back(f);
  return found;
}

void remove_earlier_run(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    const bool tmp = n.size() == 17 && is_step_name(n.substr(0, 13)) && n.substr(13) == ".tmp";
    if (is_step_name(n) || tmp || n == "latest" || n == "weights.h5" || n == "init.h5") {
      std::error_code rm;
      fs::remove_all(e.path(), rm);
      LOOM_CHECK(!rm, "check the permissions of checkpoint.dir", "cannot delete '{}': {}", e.path().string(),
                 rm.message());
    }
  }
}

std::vector<std::string> claim_run_dir(const std::string& dir, bool overwrite) {
  const std::vector<std::string> found = earlier_run_files(dir);
  if (found.empty()) return found;
  LOOM_CHECK(overwrite,
             "continue it with --checkpoint.resume auto, start over with --checkpoint.overwrite (deletes them), or "
             "choose another --checkpoint.dir",
             "checkpoint.dir '{}' holds an earlier run: {}", dir, fmt::join(found, ", "));
  remove_earlier_run(dir);
  return found;
}

void prepare_run_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  LOOM_CHECK(!ec, "choose a checkpoint.dir you can write to",
             "checkpoint.dir '{}' cannot be created: {}", dir, ec.message());
  LOOM_CHECK(fs::is_directory(dir, ec), "checkpoint.dir names the run's directory",
             "checkpoint.dir '{}' is not a directory", dir);
  const fs::path probe = fs::path(dir) / fmt::format(".write-test-{}", ::getpid());
  {
    std::ofstream out(probe);
    out << "loom\n";
    LOOM_CHECK(out.good(), "choose a checkpoint.dir you can write to (permissions, free space, read-only mount)",
               "checkpoint.dir '{}' is not writable: {}", dir, std::strerror(errno));
  }
  fs::remove(probe, ec);
}

RunDirLock::RunDirLock(const std::string& dir) {
  const std::string path = (fs::path(dir) / ".lock").string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  LOOM_CHECK(fd_ >= 0, "choose a checkpoint.dir you can write to", "cannot create the lock file '{}': {}", path,
             std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    std::string holder(256, '\0');
    const ssize_t n = ::pread(fd_, holder.data(), holder.size() - 1, 0);
    holder.resize(n > 0 ? std::size_t(n) : 0);
    ::close(fd_);
    fd_ = -1;
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == '\0')) holder.pop_back();
    throw Error(fmt::format("checkpoint.dir '{}' is in use by another run ({})", dir,
                            holder.empty() ? "lock held" : holder),
                "wait for it to finish, stop it, or choose another checkpoint.dir");
  }
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::string me = fmt::format("pid {} on {}\n", ::getpid(), host);
  if (::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, me.data(), me.size(), 0) < 0) {
    // the lock holds without the note; the note only makes the refusal message nicer
  }
}

RunDirLock::~RunDirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

}  // namespace loom
