// schedule/pipeline_sim.cpp — the pipeline simulator (see pipeline_sim.h).
//
// First every send is matched with its receive, stream by stream (ordered pair of ranks, in
// plan order), and the pair checked. Then a discrete-event loop: every stage has a clock and
// runs as far as it can. A blocking group (one step under rendezvous, a pairs_with_next pair
// under paired_rendezvous, a comm_group_end run under grouped) is first posted, at the
// stage's clock, then completes once each step's partner is posted too. When no stage can
// move and some are unfinished, that is a deadlock.
#include "schedule/pipeline_sim.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "core/error.h"

namespace loom {
namespace {

// The step on the peer that completes `op`.
PipeOp partner_op(PipeOp op) {
  switch (op) {
    case PipeOp::send_activation:
      return PipeOp::recv_activation;
    case PipeOp::recv_activation:
      return PipeOp::send_activation;
    case PipeOp::send_grad:
      return PipeOp::recv_grad;
    case PipeOp::recv_grad:
      return PipeOp::send_grad;
    default:
      return op;
  }
}

// The chunk on the receiving rank of what `send` (on rank `from`) sends.
int receiver_chunk(PipeStep send, int from, int stages) {
  if (send.op == PipeOp::send_activation && from == stages - 1) return send.chunk + 1;
  if (send.op == PipeOp::send_grad && from == 0) return send.chunk - 1;
  return send.chunk;
}

struct Where {
  int stage = -1;
  std::size_t step = 0;
};

struct StageState {
  std::size_t next = 0;        // index of the next step to complete
  std::size_t posted_end = 0;  // steps before this have been posted (or completed)
  double clock = 0, busy = 0;
  std::set<std::pair<int, int>> in_flight;  // (microbatch, chunk)
  int max_in_flight = 0;
};

struct Simulator {
  Simulator(const std::vector<PipePlan>& plans, const SimOptions& opt)
      : plans(plans),
        opt(opt),
        p(int(plans.size())),
        st(plans.size()),
        partner(plans.size()),
        posted_at(plans.size()) {
    for (int s = 0; s < p; ++s) {
      partner[std::size_t(s)].resize(plans[std::size_t(s)].size());
      posted_at[std::size_t(s)].resize(plans[std::size_t(s)].size());
    }
    match_streams();
  }

  const std::vector<PipePlan>& plans;
  SimOptions opt;
  int p;
  std::vector<StageState> st;
  std::vector<std::vector<Where>> partner;     // per communication step: its partner step
  std::vector<std::vector<double>> posted_at;  // per step: when it was posted (a send: sent)

  const PipeStep& step_at(Where w) const { return plans[std::size_t(w.stage)][w.step]; }

  void match_streams() {
    // (from, to) -> the sends on `from` and the recvs on `to`, in plan order.
    std::map<std::pair<int, int>, std::pair<std::vector<std::size_t>, std::vector<std::size_t>>> streams;
    for (int s = 0; s < p; ++s) {
      const PipePlan& plan = plans[std::size_t(s)];
      for (std::size_t i = 0; i < plan.size(); ++i) {
        if (!is_communication(plan[i].op)) continue;
        const int peer = peer_stage(plan[i].op, s, p);
        LOOM_CHECK(peer != s, "", "simulate: stage {} has {} but no other stage to talk to", s,
                   to_string(plan[i]));
        if (is_send(plan[i].op))
          streams[{s, peer}].first.push_back(i);
        else
          streams[{peer, s}].second.push_back(i);
      }
    }
    for (const auto& [edge, ends] : streams) {
      const auto& [sends, recvs] = ends;
      const auto [from, to] = edge;
      for (std::size_t k = 0; k < std::max(sends.size(), recvs.size()); ++k) {
        LOOM_CHECK(k < recvs.size(), "", "simulate: stage {} sends {} that stage {} never receives", from,
                   to_string(plans[std::size_t(from)][sends[k]]), to);
        LOOM_CHECK(k < sends.size(), "", "simulate: stage {} waits for {} that stage {} never sends", to,
                   to_string(plans[std::size_t(to)][recvs[k]]), from);
        const Where send{from, sends[k]}, recv{to, recvs[k]};
        const PipeStep &a = step_at(send), &b = step_at(recv);
        LOOM_CHECK(
            b.op == partner_op(a.op) && b.microbatch == a.microbatch && b.chunk == receiver_chunk(a, from, p),
            "", "simulate: message {} from stage {} to stage {} is sent as {} but received as {}", k, from,
            to, to_string(a), to_string(b));
        partner[std::size_t(from)][sends[k]] = recv;
        partner[std::size_t(to)][recvs[k]] = send;
      }
    }
  }

  // One past the blocking group that starts at plan[i] (a communication step).
  std::size_t group_end(int s, std::size_t i) const {
    const PipePlan& plan = plans[std::size_t(s)];
    switch (opt.comm) {
      case CommModel::grouped:
        return comm_group_end(plan, i);
      case CommModel::paired_rendezvous:
        return pairs_with_next(plan, i, s) ? i + 2 : i + 1;
      default:
        return i + 1;
    }
  }

  bool posted(Where w) const { return st[std::size_t(w.stage)].posted_end > w.step; }

  // Runs stage s's next step or group, or posts it; false when it is finished or must wait.
  bool advance(int s) {
    StageState& x = st[std::size_t(s)];
    const PipePlan& plan = plans[std::size_t(s)];
    if (x.next >= plan.size()) return false;
    const PipeStep step = plan[x.next];
    if (!is_communication(step.op)) {
      const bool fwd = step.op == PipeOp::forward;
      const std::pair<int, int> key{step.microbatch, step.chunk};
      LOOM_CHECK(fwd || x.in_flight.erase(key) == 1, "", "simulate: stage {} runs {} before its forward", s,
                 to_string(step));
      LOOM_CHECK(!fwd || x.in_flight.insert(key).second, "", "simulate: stage {} runs {} twice", s,
                 to_string(step));
      x.max_in_flight = std::max(x.max_in_flight, int(x.in_flight.size()));
      const double cost = fwd ? opt.forward_cost : opt.backward_cost;
      x.clock += cost;
      x.busy += cost;
      x.posted_end = ++x.next;
      return true;
    }
    if (opt.comm == CommModel::buffered) {
      if (!is_send(step.op)) {
        const Where from = partner[std::size_t(s)][x.next];
        if (!posted(from)) return false;
        x.clock = std::max(x.clock, posted_at[std::size_t(from.stage)][from.step]);
      }
      posted_at[std::size_t(s)][x.next] = x.clock;
      x.posted_end = ++x.next;
      return true;
    }
    bool progress = false;
    if (x.posted_end <= x.next) {
      x.posted_end = group_end(s, x.next);
      for (std::size_t i = x.next; i < x.posted_end; ++i) posted_at[std::size_t(s)][i] = x.clock;
      progress = true;
    }
    double done = x.clock;
    for (std::size_t i = x.next; i < x.posted_end; ++i) {
      const Where other = partner[std::size_t(s)][i];
      if (!posted(other)) return progress;
      done = std::max(done, posted_at[std::size_t(other.stage)][other.step]);
    }
    x.clock = done;
    x.next = x.posted_end;
    return true;
  }

  PlanStats run() {
    for (int progress = 1; progress;) {
      progress = 0;
      for (int s = 0; s < p; ++s)
        while (advance(s)) progress = 1;
    }
    std::string stuck;
    for (int s = 0; s < p; ++s) {
      const StageState& x = st[std::size_t(s)];
      if (x.next < plans[std::size_t(s)].size())
        stuck += fmt::format("; stage {} waits at step {} ({})", s, x.next,
                             to_string(plans[std::size_t(s)][x.next]));
    }
    LOOM_CHECK(stuck.empty(),
               "a stage waits for a step its neighbour never reaches: check the plans' order; with "
               "blocking sends, post each comm_group_end() run at once (or each pairs_with_next() pair "
               "as one send_recv)",
               "simulate: deadlock{}", stuck);
    PlanStats stats;
    double idle = 0;
    for (const StageState& x : st) stats.total_time = std::max(stats.total_time, x.clock);
    for (const StageState& x : st) {
      stats.idle_time.push_back(stats.total_time - x.busy);
      stats.max_in_flight.push_back(x.max_in_flight);
      idle += stats.idle_time.back();
    }
    stats.bubble_fraction = stats.total_time > 0 ? idle / (p * stats.total_time) : 0;
    return stats;
  }
};

}  // namespace

PlanStats simulate(const std::vector<PipePlan>& plans, const SimOptions& options) {
  LOOM_CHECK(!plans.empty(), "", "simulate: no stages");
  LOOM_CHECK(options.forward_cost >= 0 && options.backward_cost >= 0, "", "simulate: negative cost ({}, {})",
             options.forward_cost, options.backward_cost);
  return Simulator(plans, options).run();
}

}  // namespace loom
