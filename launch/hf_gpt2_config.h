// launch/hf_gpt2_config.h — a loom GPT's model config as Hugging Face's GPT2Config
// (config.json), and back. Used by launch/hf_gpt2.cpp only.
//
// loom's GPT is GPT-2 with fixed choices (tanh GELU, layernorm eps 1e-5, tied head,
// attention scaled by 1/sqrt(head size)); reading refuses a config.json that
// makes other choices rather than import a model that would compute something else.
#pragma once

#include <string>

#include "core/config.h"

namespace loom {

// config.json text (indented) for a GPT2LMHeadModel equal to loom's GPT `m`.
std::string hf_gpt2_config_json(const ModelConfig& m);

// The ModelConfig of the config.json at `path` (`init` left empty); throws naming
// the file and the key that is missing or that loom cannot honour.
ModelConfig read_hf_gpt2_config(const std::string& path);

}  // namespace loom
