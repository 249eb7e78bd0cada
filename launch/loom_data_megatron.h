// launch/loom_data_megatron.h — loom-data's Megatron-LM conversion subcommands
// (launch/loom_data_megatron.cpp; formats in docs/data-format.md):
//
//   loom-data from-megatron --input PREFIX --output PATH.h5 --vocab-size N --eod-id K
//             [--val-fraction 0.05] [--tokenizer NAME] [--deflate-level 1] [--force] [--quiet]
//   loom-data to-megatron --input PATH.h5 --output PREFIX [--split all|train|val] [--force] [--quiet]
#pragma once

namespace loom_data {

// argv[1] names one of the subcommands above.
bool is_megatron_subcommand(int argc, char** argv);
// Runs it (argv[1] is the subcommand); throws loom::Error on bad input.
int megatron_main(int argc, char** argv);

}  // namespace loom_data
