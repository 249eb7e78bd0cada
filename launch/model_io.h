// launch/model_io.h — the GPT model <-> the weights file (io/weights_file.h).
//
// Names are the ParamStore's GPT-2 names; shapes are the full, unpadded ones
// (wte is written as (vocab, C): the padding rows exist only in memory and
// are zero on load). The model config travels as JSON in the file, so
// loom-generate needs nothing but the file.
#pragma once

#include <string>

#include "layers/gpt.h"

namespace loom {

// Collective over the model's tp group (every tp rank calls it: shards are
// gathered) and, with pipeline stages, over `pp`: the ranks of the writer's
// pipeline (`in_writer_pipeline`, tp rank 0) send their stage's tensors to stage 0.
// Only the caller with write = true (world rank 0) writes the file. `split` is
// parallel.stages, to know which tensors each stage holds.
void save_weights(Gpt& model, const std::string& path, bool write = true, Communicator* pp = nullptr,
                  bool in_writer_pipeline = true, const std::string& split = "");
// Loads every parameter (this tp rank's shard of each); throws naming the
// parameter on a missing name or shape mismatch.
void load_weights(Gpt& model, const std::string& path);
ModelConfig read_model_config(const std::string& path);

}  // namespace loom
