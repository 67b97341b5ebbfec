// safetensors writer/reader round trip and sharded checkpoints (model.safetensors.index.json).
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace strata {
namespace {

TEST(Safetensors, RoundTrip) {
  test::TempDir dir;
  const float a[6] = {1, -2, 3.5f, 4, 5, 6};
  const int32_t b[3] = {7, -8, 9};
  const uint16_t c[2] = {0x3f80, 0xc000};
  write_safetensors(dir.path + "/x.safetensors",
                    {{"a", DType::F32, {2, 3}, a}, {"b", DType::I32, {3}, b}, {"c", DType::BF16, {2}, c}});
  TensorStore s = TensorStore::open(dir.path + "/x.safetensors");
  ASSERT_EQ(s.tensors().size(), 3u);
  EXPECT_EQ(s.get("a").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(s.get("b").dtype, DType::I32);
  EXPECT_EQ(std::memcmp(s.get("a").data, a, sizeof a), 0);
  EXPECT_EQ(std::memcmp(s.get("b").data, b, sizeof b), 0);
  EXPECT_EQ(std::memcmp(s.get("c").data, c, sizeof c), 0);
  EXPECT_THROW(s.get("d"), Error);
}

TEST(Safetensors, ShardedIndex) {
  test::TempDir dir;
  const float a[2] = {1, 2}, b[3] = {3, 4, 5};
  write_safetensors(dir.path + "/model-00001-of-00002.safetensors", {{"a", DType::F32, {2}, a}});
  write_safetensors(dir.path + "/model-00002-of-00002.safetensors", {{"b", DType::F32, {3}, b}});
  nlohmann::json idx = {{"metadata", {{"total_size", 20}}},
                        {"weight_map", {{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00002-of-00002.safetensors"}}}};
  test::write_text(dir.path + "/model.safetensors.index.json", idx.dump());
  TensorStore s = TensorStore::open(dir.path);
  EXPECT_EQ(s.get("b").numel(), 3);
  EXPECT_NE(s.get("b").file.find("00002"), std::string::npos);
  EXPECT_EQ(std::memcmp(s.get("a").data, a, sizeof a), 0);

  // The index names a tensor its shard does not hold.
  idx["weight_map"]["c"] = "model-00001-of-00002.safetensors";
  test::write_text(dir.path + "/model.safetensors.index.json", idx.dump());
  try {
    TensorStore::open(dir.path);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'c'"), std::string::npos) << e.what();
  }
  // A shard name that escapes the directory.
  idx["weight_map"].erase("c");
  idx["weight_map"]["a"] = "../model-00001-of-00002.safetensors";
  test::write_text(dir.path + "/model.safetensors.index.json", idx.dump());
  EXPECT_THROW(TensorStore::open(dir.path), Error);
}

TEST(Safetensors, EveryFixtureOpens) {
  int n = 0;
  for (const auto& f : test::manifest()) {
    TensorStore s = TensorStore::open(f.model_dir);
    EXPECT_GT(s.tensors().size(), 10u) << f.name;
    n++;
  }
  EXPECT_GE(n, 10);
}

}  // namespace
}  // namespace strata
