// The one error type of the Jinja engine: a message and the template line it refers to, so a
// caller can always say where a template went wrong. Not for engine bugs (those are asserts).
#pragma once
#include <string>

#include "core/error.h"

namespace strata::jinja {

// kind: "syntax error" (lexer/parser), "unsupported" (valid Jinja this engine does not
// implement), "error" (a runtime error jinja2 would also raise), "raise_exception" (the
// template's own raise_exception(msg)).
class JinjaError : public strata::Error {
 public:
  JinjaError(const std::string& kind, const std::string& msg, int line)
      : strata::Error("chat template line " + std::to_string(line) + ": " + kind + ": " + msg),
        kind_(kind), message_(msg), line_(line) {}
  const std::string& kind() const { return kind_; }
  const std::string& message() const { return message_; }  // without the line prefix
  int line() const { return line_; }

 private:
  std::string kind_, message_;
  int line_;
};

// A runtime error raised where the line is not known yet (inside a filter or a value
// operation); the interpreter catches it and rethrows it as JinjaError with the line.
class ValueError : public strata::Error {
 public:
  explicit ValueError(const std::string& msg, bool unsupported = false)
      : strata::Error(msg), unsupported_(unsupported) {}
  bool unsupported() const { return unsupported_; }

 private:
  bool unsupported_;
};

[[noreturn]] inline void fail(const std::string& msg) { throw ValueError(msg); }
[[noreturn]] inline void unsupported(const std::string& msg) { throw ValueError(msg, true); }

}  // namespace strata::jinja
