// launch/loom_data_classify.h — loom-data classify: a TSV of text<TAB>label lines ->
// an HDF5 labelled dataset for sequence classification (io/labelled_dataset.h,
// docs/data-format.md "Labelled datasets").
//
//   loom-data classify --input FILE.tsv --output PATH.h5 [--seq-len 128] [--val-fraction 0.1]
//             [--seed 1234] [--tokenizer bytes|PATH.json|PATH.model] [--force] [--quiet]
#pragma once

namespace loom_data {

// argv[1] is "classify".
bool is_classify_subcommand(int argc, char** argv);
// Runs it; throws loom::Error on bad options or a bad line (nothing is written then).
int classify_main(int argc, char** argv);

}  // namespace loom_data
