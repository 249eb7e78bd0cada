// plan/collectives.cpp — see collectives.h.
#include "plan/collectives.h"

#include <algorithm>
#include <cstdint>

namespace loom::plan {

double all_reduce_time(double bytes, int p, const Link& l) {
  if (p <= 1) return 0;
  return 2.0 * (p - 1) * l.latency + 2.0 * double(p - 1) / p * bytes * l.beta();
}

double all_gather_time(double bytes, int p, const Link& l) {
  if (p <= 1) return 0;
  return double(p - 1) * l.latency + double(p - 1) / p * bytes * l.beta();
}

double reduce_scatter_time(double bytes, int p, const Link& l) { return all_gather_time(bytes, p, l); }

double p2p_time(double bytes, const Link& l) { return l.latency + bytes * l.beta(); }

int ranks_per_node(const Cluster& c, int ranks, int stride) {
  return std::max(1, std::min(ranks, c.devices_per_node / std::max(stride, 1)));
}

Link p2p_link(const Cluster& c, int ranks, int stride) {
  return std::int64_t(ranks) * stride <= c.devices_per_node ? c.intra_node : c.inter_node;
}

Link group_link(const Cluster& c, int ranks, int stride) {
  if (std::int64_t(ranks) * stride <= c.devices_per_node) return c.intra_node;
  // Multi-rail: NCCL spreads its channels over the NICs of the group's devices on a node
  // (nccl-tests' multi-node busbw on a DGX is about the node's NICs together, not one).
  Link l = c.inter_node;
  l.bandwidth = std::min(l.bandwidth * ranks_per_node(c, ranks, stride), c.intra_node.bandwidth);
  return l;
}

}  // namespace loom::plan
