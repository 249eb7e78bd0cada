// launch/model_tokenizer.h — loom-train's side of "the tokenizer travels with the data
// and the model" (io/embedded_tokenizer.h): the run takes its tokenizer from the training
// data and refuses to continue a model that was trained on another one.
#pragma once

#include <optional>
#include <string>

#include "io/data_loader.h"
#include "io/embedded_tokenizer.h"
#include "io/token_source.h"

namespace loom {

// The tokenizer every source of the blend and the val set were made with; loom::Error
// naming both files and both tokenizers when two differ.
EmbeddedTokenizer data_tokenizer(const Blend& train, const TokenSource& val);

// Refuses a model (`option` = "model.init" or "checkpoint.resume", at `path`) whose
// embedded tokenizer is not the data's. Passes when either is unknown (written before
// tokenizers were embedded): there is nothing to compare.
void check_model_tokenizer(const std::string& option, const std::string& path,
                           const std::optional<EmbeddedTokenizer>& model, const EmbeddedTokenizer& data);

}  // namespace loom
