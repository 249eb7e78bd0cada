// launch/loom_data_tokenizer.h — loom-data train-tokenizer (launch/loom_data_tokenizer.cpp;
// docs/data-format.md): trains a SentencePiece BPE or unigram model on text files.
//
//   loom-data train-tokenizer --input FILE... --output PREFIX --model-type bpe|unigram --vocab-size N
//             [--character-coverage 0.9995] [--byte-fallback] [--special-tokens LIST] [--sentinels K]
//             [--normalization nmt_nfkc|nfkc|identity|...] [--keep-whitespace] [--max-sentence-length N]
//             [--input-sentence-size N] [--threads N] [--force] [--quiet]
#pragma once

namespace loom_data {

// argv[1] is "train-tokenizer".
bool is_tokenizer_subcommand(int argc, char** argv);
// Runs it; throws loom::Error on bad options (PREFIX.model / PREFIX.vocab are then not written).
int tokenizer_main(int argc, char** argv);

}  // namespace loom_data
