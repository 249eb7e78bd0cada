// plan/bubble.h — the pipeline bubble of loom's schedules (schedule/pipeline_plan.h), in
// closed form. p stages, m micro-batches per optimizer step, v model chunks per stage.
//
// Bubble fraction = idle time / ideal time (Narayanan et al. 2021):
//   1F1B and GPipe   (p-1) / m
//   interleaved      (p-1) / (v m)        (chunk costs f/v, b/v)
// and of the whole step: bubble / (1 + bubble), i.e. (p-1) / (v m + p - 1), what
// schedule/pipeline_sim.h measures as bubble_fraction (tests/unit/test_plan_bubble.cpp
// checks one against the other).
#pragma once

namespace loom::plan {

double bubble_over_ideal(int stages, int microbatches, int chunks = 1);
double bubble_share_of_step(int stages, int microbatches, int chunks = 1);

// Micro-batches (units of one chunk) stage 0 holds in flight at its peak, the stage holding
// the most activations: 1F1B min(p, m); interleaved min(2(p-1) + (v-1)p + 1, v m) chunk
// units; GPipe m. Expressed in whole-stage micro-batches (units / v): Korthikanti et al.'s
// p (1 + (p-1)/(p v)) for interleaved.
double stage0_in_flight(int stages, int microbatches, int chunks, bool gpipe);

}  // namespace loom::plan
