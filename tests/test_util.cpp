// Test helpers (see test_util.h).
#include "test_util.h"

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <stdexcept>

namespace strata::test {

namespace fs = std::filesystem;

std::string fixtures_dir() {
  const char* e = std::getenv("STRATA_FIXTURES");
  return e ? e : STRATA_FIXTURES_DIR;
}

std::vector<FixtureCase> manifest() {
  const std::string path = fixtures_dir() + "/manifest.json";
  const std::string text = read_text(path);
  // Runs while GoogleTest registers the parameterised tests: a missing file must say so, not fail as bad JSON.
  if (text.empty()) throw std::runtime_error("fixtures manifest missing or empty: " + path + " (set STRATA_FIXTURES)");
  auto j = nlohmann::json::parse(text);
  std::vector<FixtureCase> out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    FixtureCase c;
    c.name = it.key();
    c.model_dir = fixtures_dir() + "/" + it.value()["model"].get<std::string>();
    c.reference = fixtures_dir() + "/" + it.value()["reference"].get<std::string>();
    c.n_prompts = it.value()["prompts"].get<int>();
    out.push_back(c);
  }
  return out;
}

std::vector<float> read_f32(const TensorStore& s, const std::string& name) {
  const TensorView& t = s.get(name);
  if (t.dtype != DType::F32) throw std::runtime_error(name + " is not F32");
  std::vector<float> v(size_t(t.numel()));
  std::memcpy(v.data(), t.data, t.nbytes);
  return v;
}

std::vector<int> read_i32(const TensorStore& s, const std::string& name) {
  const TensorView& t = s.get(name);
  if (t.dtype != DType::I32) throw std::runtime_error(name + " is not I32");
  std::vector<int> v(size_t(t.numel()));
  std::memcpy(v.data(), t.data, t.nbytes);
  return v;
}

double rel_err(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num) / std::sqrt(den);
}

TempDir::TempDir() {
  std::random_device rd;
  path = (fs::temp_directory_path() / ("strata_test_" + std::to_string(getpid()) + "_" + std::to_string(rd()))).string();
  fs::create_directories(path);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path, ec);
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void expect_same_tensors(const std::string& a_dir, const std::string& b_dir) {
  TensorStore a = TensorStore::open(a_dir), b = TensorStore::open(b_dir);
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (const auto& [name, ta] : a.tensors()) {
    ASSERT_TRUE(b.has(name)) << name;
    const TensorView& tb = b.get(name);
    EXPECT_EQ(ta.dtype, tb.dtype) << name;
    EXPECT_EQ(ta.shape, tb.shape) << name;
    ASSERT_EQ(ta.nbytes, tb.nbytes) << name;
    EXPECT_EQ(std::memcmp(ta.data, tb.data, ta.nbytes), 0) << name;
  }
}

}  // namespace strata::test
