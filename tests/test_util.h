// Test helpers: fixture paths (../shared/fixtures, read-only), reference tensors, error metrics,
// scratch directories. Not assertions: each test states its own.
#pragma once
#include <string>
#include <vector>

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

void write_text(const std::string& path, const std::string& text);
std::string read_text(const std::string& path);

}  // namespace strata::test
