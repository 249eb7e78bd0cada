// launch/model_io.h — any StageModel <-> the weights file (io/weights_file.h), through
// its parameter specs (core/param_spec.h) alone.
//
// Tensors are stored global and unpadded: tp shards are gathered by their Shard
// (global_index), pipeline stages are gathered to world rank 0, a tied group is written
// once (its first holder's copy), and a spec's stored_rows drops padding rows (GPT's
// wte is written (vocab, C); its padding rows are zero on load). The file carries the
// model's architecture and config JSON, so loom-generate needs nothing but the file,
// and a file of another architecture is refused by name.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "io/embedded_tokenizer.h"

#include "layers/stage_model.h"
#include "parallel/communicator.h"

namespace loom {

// Collective over `tp` (every tp rank calls it: shards are gathered) and, with pipeline
// stages, over `pp`: the ranks of the writer's pipeline (`in_writer_pipeline`: dp rank 0,
// tp rank 0) send their stage's tensors to stage 0. Only the caller with write = true
// (world rank 0) writes the file.
// `attrs`: more root attributes for the file (the embedded tokenizer's).
void save_weights(StageModel& model, Communicator& tp, const std::string& path, bool write = true,
                  Communicator* pp = nullptr, bool in_writer_pipeline = true,
                  const std::map<std::string, std::string>& attrs = {});
// Host bytes save_weights holds on this rank while it writes (the memory plan's entry): the
// stored f32 tensors of its stage, tp shards gathered; on stage 0 of the writer's pipeline,
// every stage's (`stages` > 1), i.e. the whole model.
std::size_t save_weights_host_bytes(StageModel& model, int stages, int stage, bool in_writer_pipeline);
// Loads every parameter this rank holds (its tp shard of each; every tied copy) from a
// weights file, or from a checkpoint (a step_N directory, or a run directory: its latest;
// the master weights, read block by block, launch/checkpoint.h); throws
// naming the parameter on a missing name or shape mismatch, and naming both
// architectures when the file's is not the model's.
// `keep_init` (fine-tuning: a new head on a pretrained backbone): parameters the file may
// lack, which then keep the values they have; the file's tensors the model does not hold
// (another head's) are never read.
using KeepInit = std::function<bool(const ParamSpec&)>;
void load_weights(StageModel& model, const std::string& path, const KeepInit& keep_init = {});
// The file's (or checkpoint's) architecture attribute and model config JSON.
std::string read_architecture(const std::string& path);
std::string read_config_json(const std::string& path);
// The tokenizer embedded in the file (or checkpoint index); nullopt for one written
// before tokenizers travelled with the model (io/embedded_tokenizer.h).
std::optional<EmbeddedTokenizer> read_model_tokenizer(const std::string& path);

}  // namespace loom
