// schedule/pipeline_sim.h — a discrete-event simulator of pipeline plans (pipeline_plan.h).
//
// Runs every stage's plan at once with compute costs per microbatch and free
// communication, under one of several communication models, and reports the time, the
// idle time (bubble) and the in-flight microbatches per stage. It checks what an executor
// relies on: messages match, nothing deadlocks, nothing is backwarded before its forward.
// Glossary as in pipeline_plan.h (p stages, m microbatches, V chunks per stage).
#pragma once

#include <vector>

#include "schedule/pipeline_plan.h"

namespace loom {

// How the simulator treats communication (which always costs 0 time). In every model the
// messages from rank a to rank b form one stream: the k-th send on a to b is received by the
// k-th recv on b from a, whatever their kind.
// Which plans finish: buffered and grouped all; paired_rendezvous GPipe and 1F1B;
// rendezvous GPipe only.
enum class CommModel {
  buffered,           // a send completes at once (isend into a per-microbatch buffer)
  rendezvous,         // every send and recv waits for its partner, one step at a time
  paired_rendezvous,  // rendezvous, but pairs_with_next steps form one exchange (send_recv)
  grouped,            // each run [i, comm_group_end(plan, i)) is posted at once (Isend/Irecv)
                      // and completes when every step in it has its partner posted (Waitall):
                      // what the executor does
};

struct SimOptions {
  double forward_cost = 1;   // time units per forward of one (microbatch, chunk) on one stage
  double backward_cost = 2;  // time units per backward
  CommModel comm = CommModel::buffered;
};

struct PlanStats {
  double total_time = 0;           // until the last stage finishes its last step
  std::vector<double> idle_time;   // per stage: total_time minus its compute time
  double bubble_fraction = 0;      // sum(idle_time) / (p * total_time)
  std::vector<int> max_in_flight;  // per stage: most (microbatch, chunk) forwarded, not backwarded
};

// Runs plans[s] for every stage s at once. A blocking step or group completes at the later
// of its own posting time and its partners' (buffered: a recv at the later of its own clock
// and the send's). Throws loom::Error on deadlock (naming where each stage waits); on a
// matched send and recv that disagree on kind (activation / grad), microbatch or chunk (the
// receiver's chunk is the sender's, +1 for an activation from rank p-1 to rank 0, -1 for a
// gradient from rank 0 to rank p-1); on a send never received or a recv never sent; on
// communication with a single stage; and on a backward of a (microbatch, chunk) not forwarded.
PlanStats simulate(const std::vector<PipePlan>& plans, const SimOptions& options = {});

}  // namespace loom
