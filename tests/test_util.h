// Test helpers: fixture paths (../shared/fixtures, read-only), reference tensors, error metrics,
// scratch directories. Not assertions: each test states its own.
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <source_location>
#include <string>
#include <vector>

#include "core/error.h"

#include "io/safetensors.h"

namespace strata::test {

std::string fixtures_dir();
// Fixture names from manifest.json with their model dir, reference file and prompt count.
struct FixtureCase {
  std::string name, model_dir, reference;
  int n_prompts = 0;
};
std::vector<FixtureCase> manifest();

// Tensor `name` of a reference file as f32 / int32.
std::vector<float> read_f32(const TensorStore& s, const std::string& name);
std::vector<int> read_i32(const TensorStore& s, const std::string& name);

// ||a - b|| / ||b||
double rel_err(const float* a, const float* b, size_t n);

// A fresh empty directory under the build's temp area, removed by the caller's TempDir.
struct TempDir {
  std::string path;
  TempDir();
  ~TempDir();
};

// EXPECT_THROW(f(), strata::Error), and the message contains every needle.
inline void expect_error(const std::function<void()>& f, const std::vector<std::string>& needles,
                         std::source_location loc = std::source_location::current()) {
  SCOPED_TRACE(::testing::Message() << "expect_error called from " << loc.file_name() << ":" << loc.line());
  std::string msg;
  bool threw = false;
  EXPECT_THROW(
      {
        try {
          f();
        } catch (const Error& e) {
          msg = e.what();
          threw = true;
          throw;
        }
      },
      Error);
  if (!threw) return;
  for (const auto& n : needles)
    EXPECT_NE(msg.find(n), std::string::npos) << "error message lacks \"" << n << "\": " << msg;
}

// Both checkpoints hold the same tensor names, each with the same dtype, shape and bytes.
void expect_same_tensors(const std::string& a_dir, const std::string& b_dir);

void write_text(const std::string& path, const std::string& text);
std::string read_text(const std::string& path);

}  // namespace strata::test
