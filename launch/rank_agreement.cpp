// launch/rank_agreement.cpp — see rank_agreement.h.
#include "launch/rank_agreement.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <sstream>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace loom {

namespace {

std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// "section.key" -> value; keys not yet in `order` (shared by all ranks' texts) are appended.
std::map<std::string, std::string> parse_ini(const std::string& text, std::vector<std::string>& order) {
  std::map<std::string, std::string> fields;
  std::istringstream in(text);
  std::string line, section;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line.front() == '[' && line.back() == ']') {
      section = line.substr(1, line.size() - 2);
      continue;
    }
    const auto eq = line.find(" = ");
    const std::string key = section + "." + (eq == std::string::npos ? line : line.substr(0, eq));
    if (std::find(order.begin(), order.end(), key) == order.end()) order.push_back(key);
    fields[key] = eq == std::string::npos ? "" : line.substr(eq + 3);
  }
  return fields;
}

// Every rank's text, gathered to every rank (two collectives: lengths, then bytes).
std::vector<std::string> all_gather_text(MPI_Comm comm, const std::string& mine, int size) {
  const int len = int(mine.size());
  std::vector<int> lens(static_cast<std::size_t>(size)), displs(static_cast<std::size_t>(size));
  MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, comm);
  int total = 0;
  for (int r = 0; r < size; ++r) displs[std::size_t(r)] = total, total += lens[std::size_t(r)];
  std::string all(std::size_t(total), '\0');
  MPI_Allgatherv(mine.data(), len, MPI_CHAR, all.data(), lens.data(), displs.data(), MPI_CHAR, comm);
  std::vector<std::string> out;
  for (int r = 0; r < size; ++r)
    out.push_back(all.substr(std::size_t(displs[std::size_t(r)]), std::size_t(lens[std::size_t(r)])));
  return out;
}

}  // namespace

std::string ini_differences(const std::vector<std::string>& ini_per_rank) {
  std::vector<std::string> order;
  std::vector<std::map<std::string, std::string>> fields;
  for (const std::string& text : ini_per_rank) fields.push_back(parse_ini(text, order));
  std::string out;
  for (const std::string& key : order) {
    // value -> the ranks holding it, in order of first appearance ("(missing)" when absent).
    std::vector<std::pair<std::string, std::vector<int>>> groups;
    for (std::size_t r = 0; r < fields.size(); ++r) {
      const auto it = fields[r].find(key);
      const std::string value = it == fields[r].end() ? "(missing)" : it->second;
      auto g = std::find_if(groups.begin(), groups.end(), [&](const auto& p) { return p.first == value; });
      if (g == groups.end())
        groups.push_back({value, {int(r)}});
      else
        g->second.push_back(int(r));
    }
    if (groups.size() < 2) continue;
    std::string line = "  " + key + ":";
    for (std::size_t i = 0; i < groups.size(); ++i)
      line += fmt::format("{} {} on rank{} {}", i ? ";" : "", groups[i].first,
                          groups[i].second.size() > 1 ? "s" : "", fmt::join(groups[i].second, ","));
    out += (out.empty() ? "" : "\n") + line;
  }
  return out;
}

std::string data_checksums_ini(const Blend& train, const TokenSource& val) {
  std::string out = "[data]\n";
  for (std::size_t i = 0; i < train.sets.size(); ++i)
    out += fmt::format("train_source_{} = tokens {} checksum {:08x}\n", i, train.sets[i]->size(),
                       train.sets[i]->tokens_checksum());
  return out + fmt::format("val = tokens {} checksum {:08x}\n", val.size(), val.tokens_checksum());
}

void check_ranks_agree(MPI_Comm comm, const std::string& ini, const std::string& what) {
  int size = 1;
  MPI_Comm_size(comm, &size);
  if (size == 1) return;
  const std::uint64_t mine = fnv1a(ini);
  std::vector<std::uint64_t> hashes(static_cast<std::size_t>(size));
  MPI_Allgather(&mine, 1, MPI_UINT64_T, hashes.data(), 1, MPI_UINT64_T, comm);
  if (std::all_of(hashes.begin(), hashes.end(), [&](std::uint64_t h) { return h == hashes.front(); })) return;
  const std::string diff = ini_differences(all_gather_text(comm, ini, size));
  throw Error(
      fmt::format("the ranks of this job were given different {}:\n{}", what,
                  diff.empty() ? "  (the texts differ, but no section.key does)" : diff),
      "start every rank with the same options, config file and data files (check per-rank arguments of an "
      "MPMD launch, and relative paths or files that differ between nodes)");
}

}  // namespace loom
