// core/error.h — the one error type loom throws, and the checks that build it.
//
// Every error says what is wrong (naming the op or option and the offending
// values) and, where we know one, how to fix it: the hint is printed after
// "HINT:" the way llm.c does. launch/ catches loom::Error at the top level and
// exits with code 2 for bad input; nothing below launch/ calls exit().
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace loom {

class Error : public std::runtime_error {
public:
  explicit Error(const std::string& what, std::string hint = {})
      : std::runtime_error(what), hint_(std::move(hint)) {}
  const std::string& hint() const { return hint_; }
  // "what" followed by "\nHINT: hint" when a hint exists: what users see.
  std::string full_message() const {
    return hint_.empty() ? std::string(what()) : std::string(what()) + "\nHINT: " + hint_;
  }

private:
  std::string hint_;
};

// Throws loom::Error(message, hint) when `cond` is false. The message is only
// formatted on failure, so checks on hot paths cost one branch.
#define LOOM_CHECK(cond, hint, ...)                                                   \
  do {                                                                                \
    if (!(cond)) throw ::loom::Error(::fmt::format(__VA_ARGS__), (hint));             \
  } while (0)

}  // namespace loom
