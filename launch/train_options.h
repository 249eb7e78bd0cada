// launch/train_options.h — loom-train's options: one table for the command line,
// the INI config file (--config run.ini, sections [model] [train] ...) and --help.
//
// Option names are `section.field` of the RunConfig structs (core/config.h)
// and are part of the user interface: keep them stable.
#pragma once

#include <optional>
#include <set>
#include <string>

#include "core/config.h"

namespace loom {

// Parses argv (and the --config file it names). Returns nullopt after printing
// --help. Throws loom::Error (exit code 2 in main) for unknown options, bad
// values, or a missing config file.
// `print` says whether this rank prints --help (rank 0 of a job). When `given` is not
// null it receives the names ("model.layers") of the options set explicitly, on the
// command line or in the --config file, as opposed to left at their defaults.
std::optional<RunConfig> parse_train_options(int argc, char** argv, bool print = true,
                                             std::set<std::string>* given = nullptr);

// --model.init takes the architecture from the weights file: refuses a model.* option in
// `given` whose value differs from the file's `file` config (naming both values).
void check_init_matches_options(const ModelConfig& options, const ModelConfig& file,
                                const std::set<std::string>& given, const std::string& path);

// The effective configuration in INI form (what --config accepts), printed at
// start and saved next to the outputs so a run can be repeated exactly.
std::string to_ini(const RunConfig& c);

}  // namespace loom
