// launch/train_options.h — loom-train's options: one table for the command line,
// the INI config file (--config run.ini, sections [model] [train] ...) and --help.
//
// Option names are `section.field` of the RunConfig structs (core/config.h)
// and are part of the user interface: keep them stable.
#pragma once

#include <optional>
#include <string>

#include "core/config.h"

namespace loom {

// Parses argv (and the --config file it names). Returns nullopt after printing
// --help. Throws loom::Error (exit code 2 in main) for unknown options, bad
// values, or a missing config file.
// `print` says whether this rank prints --help (rank 0 of a job).
std::optional<RunConfig> parse_train_options(int argc, char** argv, bool print = true);

// The effective configuration in INI form (what --config accepts), printed at
// start and saved next to the outputs so a run can be repeated exactly.
std::string to_ini(const RunConfig& c);

}  // namespace loom
