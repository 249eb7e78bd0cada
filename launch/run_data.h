// launch/run_data.h — the data of a loom-train run, whichever the head (model.head):
// language modelling reads token datasets, Megatron pairs or blends (io/data_loader.h);
// classification reads a labelled dataset (io/labelled_dataset.h, docs/finetuning.md).
// Opening checks that every rank sees the same data (collective over MPI_COMM_WORLD);
// batches() then serves the trainer (launch/batches.h). Owns everything it opened.
#pragma once

#include <memory>
#include <optional>

#include <mpi.h>

#include "core/config.h"
#include "io/data_loader.h"
#include "io/embedded_tokenizer.h"
#include "io/labelled_dataset.h"
#include "launch/batches.h"

namespace loom {

struct RunData {
  EmbeddedTokenizer tokenizer;  // travels into the model (launch/model_tokenizer.h)
  std::int64_t vocab = 0;       // the largest vocabulary of the data
  std::int64_t resident_bytes = 0;
  std::string train_path;  // for messages
  // language modelling
  Blend blend;
  std::unique_ptr<TokenSource> val_source;
  std::unique_ptr<DataLoader> train_loader, val_loader;
  std::optional<MlmMasker> mlm;  // model.family bert: masks the batches (set before make_batches)
  // model.family t5: corrupts the batches (set before make_batches; its windows are
  // layout.raw tokens, its rows layout.row())
  std::optional<SpanCorruptor> spans;
  // classification
  std::optional<LabelledDataset> labelled;
  std::unique_ptr<Batches> train, val;
};

// Opens cfg.data for cfg.model.head (fills data.val's default). Classification: data.train
// is a labelled dataset (its val split evaluates, or data.val's); model.classes = 0 takes
// the dataset's label count, any other value must equal it.
RunData open_run_data(RunConfig& cfg, MPI_Comm world);
// The trainer's batches of T tokens (after validate(cfg)); `pooling` places the labels.
// With span corruption T is ignored: the windows are spans->layout.raw tokens.
void make_batches(RunData& d, const RunConfig& cfg, std::int64_t T, Pooling pooling);

}  // namespace loom
