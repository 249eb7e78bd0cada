// launch/model_tokenizer.cpp — see model_tokenizer.h.
#include "launch/model_tokenizer.h"

#include <fmt/format.h>

#include "core/error.h"

namespace loom {

EmbeddedTokenizer data_tokenizer(const Blend& train, const TokenSource& val) {
  const TokenSource& first = *train.sets.front();
  const EmbeddedTokenizer tok = first.embedded_tokenizer();
  auto agree = [&](const TokenSource& other) {
    const EmbeddedTokenizer theirs = other.embedded_tokenizer();
    LOOM_CHECK(same_tokenizer(tok, theirs), "re-tokenise one of them with the other's tokenizer (loom-data --tokenizer)",
               "token datasets '{}' and '{}' were made with different tokenizers: {} and {}", first.path(),
               other.path(), tok.describe(), theirs.describe());
  };
  for (const auto& s : train.sets) agree(*s);
  agree(val);
  return tok;
}

void check_model_tokenizer(const std::string& option, const std::string& path,
                           const std::optional<EmbeddedTokenizer>& model, const EmbeddedTokenizer& data) {
  if (!model || !model->known() || !data.known()) return;
  LOOM_CHECK(same_tokenizer(*model, data),
             "train on data made with the model's tokenizer (loom-data --tokenizer), or start a new model",
             "{} '{}': the data was tokenised with {}, the model with {}", option, path, data.describe(),
             model->describe());
}

}  // namespace loom
