// Error type for everything that can fail on bad input (files, configs, CLI, API).
// Not for programming errors: those are asserts. Messages name the file, tensor or field.
#pragma once
#include <stdexcept>
#include <string>

namespace strata {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Throws Error(msg) when cond is false; the message is built only on failure.
#define STRATA_CHECK(cond, msg)                          \
  do {                                                   \
    if (!(cond)) throw ::strata::Error(std::string(msg)); \
  } while (0)

}  // namespace strata
