// plan/collectives.h — alpha-beta costs of ring collectives and point-to-point messages.
//
// n is the bytes of the whole tensor (all-reduce: the buffer each rank holds; all-gather:
// the gathered result; reduce-scatter: the input), p the ranks of the group. A ring moves
// (p-1)/p of n per rank per phase in p-1 steps of latency alpha each (Thakur et al. 2005;
// NCCL's "bus bandwidth" is exactly n (p-1)/p / t per phase):
//   all_reduce      2 (p-1) alpha + 2 (p-1)/p n beta
//   all_gather      (p-1) alpha + (p-1)/p n beta      (reduce_scatter the same)
//   p2p             alpha + n beta
// The link is the slowest one the group crosses: intra-node while the group's ranks sit in
// one node, the inter-node link otherwise. A cluster file gives the inter-node bandwidth per
// device (one NIC per GPU, rail-optimised, as on a DGX); a group with k ranks on each node
// runs NCCL's rings (one or more channels per NIC) through all k of its devices' NICs at
// once, so it crosses between nodes at k x that bandwidth, capped by the intra-node link
// its data also crosses (group_link).
#pragma once

#include "plan/cluster.h"

namespace loom::plan {

double all_reduce_time(double bytes, int ranks, const Link& link);
double all_gather_time(double bytes, int ranks, const Link& link);
double reduce_scatter_time(double bytes, int ranks, const Link& link);
double p2p_time(double bytes, const Link& link);

// The link a group of `ranks` ranks, `stride` global ranks apart (tp: 1; dp: tp; pp: tp*dp),
// crosses: intra-node when ranks * stride fits in a node; otherwise inter-node with the
// bandwidth of the NICs of the group's ranks_per_node() ranks on one node (at most the
// intra-node bandwidth), latency and efficiency unchanged.
Link group_link(const Cluster& c, int ranks, int stride);
// The link a pipeline message between adjacent stages of such a group crosses: one GPU's
// NIC (a send/recv pair is one connection), so no multi-rail bandwidth.
Link p2p_link(const Cluster& c, int ranks, int stride);
// Ranks of such a group on one node (nodes hold devices_per_node consecutive ranks).
int ranks_per_node(const Cluster& c, int ranks, int stride);

}  // namespace loom::plan
