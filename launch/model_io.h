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

void save_weights(Gpt& model, const std::string& path);
// Loads every parameter; throws naming the parameter on a missing name or shape mismatch.
void load_weights(Gpt& model, const std::string& path);
ModelConfig read_model_config(const std::string& path);

}  // namespace loom
