// safetensors: writer/reader round trip (every dtype, odd shapes, every fixture), sharded
// checkpoints (model.safetensors.index.json), and corrupt files. Every defect must be a
// strata::Error whose message names the file and, where there is one, the tensor; never a crash.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <future>
#include <nlohmann/json.hpp>
#include <random>
#include <source_location>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace strata {
namespace {

using test::expect_error;

namespace fs = std::filesystem;
using json = nlohmann::json;

void expect_open_error(const std::string& path, const std::vector<std::string>& needles,
                       std::source_location loc = std::source_location::current()) {
  expect_error([&] { TensorStore::open(path); }, needles, loc);
}

// A safetensors file from a raw header string: 8-byte little-endian length, header, then
// `data_bytes` bytes of data (0, 1, 2, ...).
std::string raw_safetensors(const std::string& header, size_t data_bytes) {
  std::string f(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(f.data(), &n, 8);
  f += header;
  for (size_t i = 0; i < data_bytes; i++) f.push_back(char(i & 0xff));
  return f;
}

// A file whose header is one tensor entry "w": `entry` (a JSON object text), with `data_bytes`.
std::string one_entry_file(const std::string& entry, size_t data_bytes) {
  return raw_safetensors("{\"w\": " + entry + "}", data_bytes);
}

// Runs `f` on a thread and returns "Error: <message>" (or what else happened). Should it not
// return within a few seconds (blocked opening a FIFO), fails the test and opens each of
// `fifos` for writing, which releases the blocked open(), so the test ends instead of hanging.
std::string outcome_within_deadline(const std::function<void()>& f, const std::vector<std::string>& fifos) {
  auto result = std::make_shared<std::promise<std::string>>();
  std::future<std::string> done = result->get_future();
  std::thread t([f, result] {
    try {
      f();
      result->set_value("no error");
    } catch (const Error& e) {
      result->set_value(std::string("Error: ") + e.what());
    } catch (const std::exception& e) {
      result->set_value(std::string("other exception: ") + e.what());
    }
  });
  if (done.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    ADD_FAILURE() << "still running after 5 s (blocked opening a FIFO?)";
    for (const auto& p : fifos) {
      const int fd = ::open(p.c_str(), O_WRONLY | O_NONBLOCK);
      if (fd >= 0) ::close(fd);
    }
  }
  t.join();
  return done.get();
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = uint8_t(rng());
  return v;
}

bool same_bytes(const TensorView& t, const void* want, size_t n) {
  if (t.nbytes != n) return false;
  return n == 0 || std::memcmp(t.data, want, n) == 0;
}

// ---------------------------------------------------------------------------------------------
// Round trip

TEST(SafetensorsRoundTrip, EveryDtypeAndShape) {
  test::TempDir dir;
  struct Case {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
  };
  const std::vector<Case> cases = {
      {"f32", DType::F32, {2, 3}},     {"f16", DType::F16, {5}},          {"bf16", DType::BF16, {3, 1, 2}},
      {"f64", DType::F64, {2, 2}},     {"i8", DType::I8, {7}},            {"u8", DType::U8, {3, 3}},
      {"i16", DType::I16, {4}},        {"i32", DType::I32, {2, 5}},       {"i64", DType::I64, {3}},
      {"bool", DType::BOOL, {6}},      {"scalar", DType::F32, {}},        {"empty", DType::F32, {0, 4}},
      {"empty_tail", DType::I64, {3, 0}}, {"model.layers.0.x-y/z:w", DType::BF16, {1, 1, 1, 1}},
  };
  std::vector<std::vector<uint8_t>> data;
  std::vector<TensorToWrite> ts;
  size_t total = 0;
  for (size_t i = 0; i < cases.size(); i++) {
    int64_t n = 1;
    for (int64_t d : cases[i].shape) n *= d;
    data.push_back(random_bytes(size_t(n) * dtype_size(cases[i].dtype), uint32_t(i + 1)));
    total += data.back().size();
  }
  for (size_t i = 0; i < cases.size(); i++) ts.push_back({cases[i].name, cases[i].dtype, cases[i].shape, data[i].data()});
  const std::string path = dir.path + "/x.safetensors";
  write_safetensors(path, ts);

  // On-disk layout: header length padded to 8, data section exactly the tensors' bytes.
  const std::string raw = test::read_text(path);
  ASSERT_GE(raw.size(), 8u);
  uint64_t hlen;
  std::memcpy(&hlen, raw.data(), 8);
  EXPECT_EQ(hlen % 8, 0u);
  EXPECT_EQ(raw.size(), 8 + hlen + total);

  TensorStore s = TensorStore::open(path);
  EXPECT_EQ(s.source(), path);
  ASSERT_EQ(s.tensors().size(), cases.size());
  for (size_t i = 0; i < cases.size(); i++) {
    SCOPED_TRACE(cases[i].name);
    ASSERT_TRUE(s.has(cases[i].name));
    const TensorView& t = s.get(cases[i].name);
    EXPECT_EQ(t.name, cases[i].name);
    EXPECT_EQ(t.file, path);
    EXPECT_EQ(t.dtype, cases[i].dtype);
    EXPECT_EQ(t.shape, cases[i].shape);
    EXPECT_EQ(size_t(t.numel()) * dtype_size(t.dtype), t.nbytes);
    EXPECT_TRUE(same_bytes(t, data[i].data(), data[i].size()));
  }
  EXPECT_EQ(s.get("f32").shape_str(), "[2, 3]");
  EXPECT_EQ(s.get("scalar").shape_str(), "[]");
  EXPECT_EQ(s.get("scalar").numel(), 1);
  EXPECT_EQ(s.get("empty").numel(), 0);
  EXPECT_FALSE(s.has("F32"));
}

TEST(SafetensorsRoundTrip, EveryFixtureRewritesIdentically) {
  // Fixtures hold BF16, I32 (packed INT4) and I64 (weight_shape) tensors as HF saves them.
  test::TempDir dir;
  int n_fixtures = 0;
  for (const auto& f : test::manifest()) {
    SCOPED_TRACE(f.name);
    TensorStore src = TensorStore::open(f.model_dir);
    ASSERT_GT(src.tensors().size(), 10u);
    std::vector<TensorToWrite> ts;
    for (const auto& [name, t] : src.tensors()) ts.push_back({name, t.dtype, t.shape, t.data});
    const std::string path = dir.path + "/" + f.name + ".safetensors";
    write_safetensors(path, ts);
    TensorStore back = TensorStore::open(path);
    ASSERT_EQ(back.tensors().size(), src.tensors().size());
    for (const auto& [name, t] : src.tensors()) {
      ASSERT_TRUE(back.has(name)) << name;
      const TensorView& b = back.get(name);
      EXPECT_EQ(b.dtype, t.dtype) << name;
      EXPECT_EQ(b.shape, t.shape) << name;
      EXPECT_TRUE(same_bytes(b, t.data, t.nbytes)) << name;
    }
    n_fixtures++;
  }
  EXPECT_GE(n_fixtures, 10);
}

TEST(SafetensorsRoundTrip, MetadataIsNotATensor) {
  test::TempDir dir;
  const std::string path = dir.path + "/m.safetensors";
  test::write_text(path, raw_safetensors(R"({"__metadata__": {"format": "pt"},
      "w": {"dtype": "I16", "shape": [2], "data_offsets": [0, 4]}})", 4));
  TensorStore s = TensorStore::open(path);
  EXPECT_EQ(s.tensors().size(), 1u);
  EXPECT_FALSE(s.has("__metadata__"));
  const uint8_t want[4] = {0, 1, 2, 3};
  EXPECT_TRUE(same_bytes(s.get("w"), want, 4));
}

TEST(SafetensorsRoundTrip, ZeroSizeTensorsMayShareAnOffset) {
  test::TempDir dir;
  const std::string path = dir.path + "/z.safetensors";
  test::write_text(path, raw_safetensors(R"({"a": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]},
      "b": {"dtype": "F32", "shape": [0, 3], "data_offsets": [4, 4]},
      "c": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 8));
  TensorStore s = TensorStore::open(path);
  EXPECT_EQ(s.tensors().size(), 3u);
  EXPECT_EQ(s.get("b").nbytes, 0u);
}

TEST(SafetensorsRoundTrip, MissingTensorNamesItAndTheSource) {
  test::TempDir dir;
  const float a[2] = {1, 2};
  const std::string path = dir.path + "/x.safetensors";
  write_safetensors(path, {{"a", DType::F32, {2}, a}});
  TensorStore s = TensorStore::open(path);
  expect_error([&] { s.get("model.norm.weight"); }, {"model.norm.weight", "x.safetensors"});
}

TEST(SafetensorsRoundTrip, DirectoryWithSingleFile) {
  test::TempDir dir;
  const int32_t a[3] = {1, -2, 3};
  write_safetensors(dir.path + "/model.safetensors", {{"a", DType::I32, {3}, a}});
  TensorStore s = TensorStore::open(dir.path);
  EXPECT_TRUE(same_bytes(s.get("a"), a, sizeof a));
  EXPECT_NE(s.get("a").file.find("model.safetensors"), std::string::npos);
}

TEST(SafetensorsRoundTrip, MissingFilesAreNamed) {
  test::TempDir dir;
  expect_open_error(dir.path, {dir.path, "model.safetensors"});  // empty directory
  expect_open_error(dir.path + "/nope.safetensors", {"nope.safetensors"});
  fs::create_directories(dir.path + "/sub/model.safetensors");  // a directory where the file should be
  expect_open_error(dir.path + "/sub", {"model.safetensors"});
}

// ---------------------------------------------------------------------------------------------
// Sharded checkpoints

const char* kShard1 = "model-00001-of-00002.safetensors";
const char* kShard2 = "model-00002-of-00002.safetensors";
const char* kIndex = "model.safetensors.index.json";

struct TwoShards {
  test::TempDir dir;
  const float a[2] = {1, 2};
  const int32_t b[3] = {3, -4, 5};
  const uint16_t c[4] = {0x3f80, 0xc000, 0x4040, 0x0000};
  json index;
  TwoShards() {
    write_safetensors(dir.path + "/" + kShard1, {{"a", DType::F32, {2}, a}, {"b", DType::I32, {3}, b}});
    write_safetensors(dir.path + "/" + kShard2, {{"c", DType::BF16, {2, 2}, c}});
    index = {{"metadata", {{"total_size", 28}}}, {"weight_map", {{"a", kShard1}, {"b", kShard1}, {"c", kShard2}}}};
    write_index();
  }
  void write_index() const { test::write_text(dir.path + "/" + kIndex, index.dump(2)); }
};

TEST(SafetensorsSharded, TensorsComeFromTheirShard) {
  TwoShards m;
  TensorStore s = TensorStore::open(m.dir.path);
  ASSERT_EQ(s.tensors().size(), 3u);
  EXPECT_EQ(s.source(), m.dir.path);
  EXPECT_EQ(fs::path(s.get("a").file).filename(), kShard1);
  EXPECT_EQ(fs::path(s.get("b").file).filename(), kShard1);
  EXPECT_EQ(fs::path(s.get("c").file).filename(), kShard2);
  EXPECT_TRUE(same_bytes(s.get("a"), m.a, sizeof m.a));
  EXPECT_TRUE(same_bytes(s.get("b"), m.b, sizeof m.b));
  EXPECT_TRUE(same_bytes(s.get("c"), m.c, sizeof m.c));
  EXPECT_EQ(s.get("c").shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(s.get("b").dtype, DType::I32);
}

TEST(SafetensorsSharded, FixtureSplitIntoTwoShards) {
  const std::string src_dir = test::fixtures_dir() + "/models/llama";
  TensorStore src = TensorStore::open(src_dir);
  test::TempDir dir;
  std::vector<TensorToWrite> s1, s2;
  json wm = json::object();
  int i = 0;
  for (const auto& [name, t] : src.tensors()) {
    const bool first = i++ % 2 == 0;
    (first ? s1 : s2).push_back({name, t.dtype, t.shape, t.data});
    wm[name] = first ? kShard1 : kShard2;
  }
  write_safetensors(dir.path + "/" + kShard1, s1);
  write_safetensors(dir.path + "/" + kShard2, s2);
  test::write_text(dir.path + "/" + kIndex, json{{"metadata", json::object()}, {"weight_map", wm}}.dump());
  TensorStore s = TensorStore::open(dir.path);
  ASSERT_EQ(s.tensors().size(), src.tensors().size());
  for (const auto& [name, t] : src.tensors()) {
    ASSERT_TRUE(s.has(name)) << name;
    const TensorView& v = s.get(name);
    EXPECT_EQ(fs::path(v.file).filename().string(), wm[name].get<std::string>()) << name;
    EXPECT_EQ(v.dtype, t.dtype) << name;
    EXPECT_EQ(v.shape, t.shape) << name;
    EXPECT_TRUE(same_bytes(v, t.data, t.nbytes)) << name;
  }
}

TEST(SafetensorsSharded, IndexNamesATensorItsShardLacks) {
  TwoShards m;
  m.index["weight_map"]["model.layers.0.mlp.up_proj.weight"] = kShard2;
  m.write_index();
  expect_open_error(m.dir.path, {kShard2, "model.layers.0.mlp.up_proj.weight"});
}

TEST(SafetensorsSharded, ShardNameMustStayInTheDirectory) {
  // The escaping paths exist, so only the name check can stop them.
  test::TempDir root;
  const std::string dir = root.path + "/model";
  fs::create_directories(dir + "/sub");
  const float a[2] = {1, 2};
  write_safetensors(root.path + "/outside.safetensors", {{"a", DType::F32, {2}, a}});
  write_safetensors(dir + "/sub/inner.safetensors", {{"a", DType::F32, {2}, a}});
  const std::vector<std::string> shards = {"../outside.safetensors", "sub/inner.safetensors",
                                           root.path + "/outside.safetensors", "..", "./../outside.safetensors"};
  for (const std::string& shard : shards) {
    SCOPED_TRACE(shard);
    test::write_text(dir + "/" + kIndex, json{{"weight_map", {{"a", shard}}}}.dump());
    expect_open_error(dir, {kIndex, shard});
  }
}

TEST(SafetensorsSharded, MissingShardFile) {
  TwoShards m;
  fs::remove(m.dir.path + "/" + kShard2);
  expect_open_error(m.dir.path, {kShard2});
}

TEST(SafetensorsSharded, BadIndexFiles) {
  TwoShards m;
  auto with_index = [&](const std::string& text, const std::vector<std::string>& needles,
                        std::source_location loc = std::source_location::current()) {
    test::write_text(m.dir.path + "/" + kIndex, text);
    expect_open_error(m.dir.path, needles, loc);
  };
  with_index("{\"weight_map\": {\"a\": ", {kIndex, "JSON"});
  with_index("", {kIndex, "JSON"});
  with_index("[1, 2]", {kIndex, "weight_map"});
  with_index(R"({"metadata": {}})", {kIndex, "weight_map"});
  with_index(R"({"weight_map": ["a"]})", {kIndex, "weight_map"});
  with_index(R"({"weight_map": {}})", {kIndex, "weight_map"});
  with_index(R"({"weight_map": {"a": 3}})", {kIndex, "'a'"});
  with_index(R"({"weight_map": {"a": null}})", {kIndex, "'a'"});
}

TEST(SafetensorsSharded, DuplicateTensorAcrossShards) {
  // "b" lives in both shards; whichever shard the index assigns it to, opening must fail and
  // name the tensor and both files.
  for (const char* owner : {kShard1, kShard2}) {
    SCOPED_TRACE(owner);
    test::TempDir dir;
    const float a[2] = {1, 2}, b[2] = {3, 4}, c[2] = {5, 6};
    write_safetensors(dir.path + "/" + kShard1, {{"a", DType::F32, {2}, a}, {"b", DType::F32, {2}, b}});
    write_safetensors(dir.path + "/" + kShard2, {{"b", DType::F32, {2}, b}, {"c", DType::F32, {2}, c}});
    test::write_text(dir.path + "/" + kIndex,
                     json{{"weight_map", {{"a", kShard1}, {"b", owner}, {"c", kShard2}}}}.dump());
    expect_open_error(dir.path, {"'b'", kShard1, kShard2});
  }
}

// ---------------------------------------------------------------------------------------------
// Corrupt single files. Each message must name the file; tensor-level defects also the tensor.

struct CorruptFile {
  test::TempDir dir;
  std::string path = dir.path + "/broken.safetensors";
  void write(const std::string& bytes) const { test::write_text(path, bytes); }
  void expect(const std::string& bytes, std::vector<std::string> needles,
              std::source_location loc = std::source_location::current()) const {
    write(bytes);
    needles.push_back("broken.safetensors");
    expect_open_error(path, needles, loc);
  }
};

TEST(SafetensorsCorrupt, EmptyFile) {
  CorruptFile f;
  f.expect("", {"truncated"});
}

TEST(SafetensorsCorrupt, ShorterThanTheLengthPrefix) {
  CorruptFile f;
  for (size_t n = 1; n < 8; n++) {
    SCOPED_TRACE(n);
    f.expect(std::string(n, '\x10'), {"truncated"});
  }
}

TEST(SafetensorsCorrupt, HeaderLengthBeyondTheFile) {
  CorruptFile f;
  const std::string good = raw_safetensors(R"({"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}})", 4);
  auto with_len = [&](uint64_t len) {
    std::string b = good;
    std::memcpy(b.data(), &len, 8);
    return b;
  };
  f.expect(with_len(1000), {"1000"});
  f.expect(with_len(good.size() - 8 + 1), {std::to_string(good.size() - 8 + 1)});
  f.expect(with_len(uint64_t(1) << 40), {"header"});
  f.expect(with_len(~uint64_t(0)), {"header"});
  f.expect(raw_safetensors("", 0), {});  // zero-length header: not JSON
}

TEST(SafetensorsCorrupt, HeaderNotValidJson) {
  CorruptFile f;
  f.expect(raw_safetensors("{\"w\": {\"dtype\": \"F32\", ", 0), {"JSON"});
  f.expect(raw_safetensors("        ", 0), {"JSON"});
  f.expect(raw_safetensors(std::string("\xff\xfe\x00\x01garbage", 11), 16), {"JSON"});
  f.expect(raw_safetensors("{} trailing", 0), {"JSON"});
}

TEST(SafetensorsCorrupt, HeaderNotAnObject) {
  CorruptFile f;
  for (const char* h : {"[1, 2, 3]", "\"tensors\"", "42", "null", "true"}) {
    SCOPED_TRACE(h);
    f.expect(raw_safetensors(h, 0), {"object"});
  }
}

TEST(SafetensorsCorrupt, EntryNotAnObject) {
  CorruptFile f;
  f.expect(one_entry_file("[\"F32\", [1], [0, 4]]", 4), {"'w'"});
  f.expect(one_entry_file("null", 0), {"'w'"});
}

TEST(SafetensorsCorrupt, EntryMissingAField) {
  CorruptFile f;
  f.expect(one_entry_file(R"({"shape": [1], "data_offsets": [0, 4]})", 4), {"'w'", "dtype"});
  f.expect(one_entry_file(R"({"dtype": 7, "shape": [1], "data_offsets": [0, 4]})", 4), {"'w'", "dtype"});
  f.expect(one_entry_file(R"({"dtype": "F32", "data_offsets": [0, 4]})", 4), {"'w'", "shape"});
  f.expect(one_entry_file(R"({"dtype": "F32", "shape": 1, "data_offsets": [0, 4]})", 4), {"'w'", "shape"});
  f.expect(one_entry_file(R"({"dtype": "F32", "shape": [1]})", 4), {"'w'", "data_offsets"});
  f.expect(one_entry_file(R"({"dtype": "F32", "shape": [1], "data_offsets": [0]})", 4), {"'w'", "data_offsets"});
  f.expect(one_entry_file(R"({"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]})", 8), {"'w'", "data_offsets"});
  f.expect(one_entry_file(R"({"dtype": "F32", "shape": [1], "data_offsets": {"begin": 0}})", 4), {"'w'", "data_offsets"});
}

TEST(SafetensorsCorrupt, UnknownDtype) {
  CorruptFile f;
  for (const std::string dt : {"F8_E4M3", "f32", "", "Q4_K", "COMPLEX64"}) {
    SCOPED_TRACE(dt);
    f.expect(one_entry_file(R"({"dtype": ")" + dt + R"(", "shape": [4], "data_offsets": [0, 4]})", 4),
             {"'w'", "dtype " + dt});
  }
}

TEST(SafetensorsCorrupt, BadDims) {
  CorruptFile f;
  f.expect(one_entry_file(R"({"dtype": "U8", "shape": [-4], "data_offsets": [0, 4]})", 4), {"'w'", "negative"});
  f.expect(one_entry_file(R"({"dtype": "U8", "shape": [2, -2], "data_offsets": [0, 4]})", 4), {"'w'", "negative"});
  f.expect(one_entry_file(R"({"dtype": "U8", "shape": [2.5], "data_offsets": [0, 4]})", 4), {"'w'", "shape"});
  f.expect(one_entry_file(R"({"dtype": "U8", "shape": ["4"], "data_offsets": [0, 4]})", 4), {"'w'", "shape"});
  f.expect(one_entry_file(R"({"dtype": "U8", "shape": [18446744073709551615], "data_offsets": [0, 4]})", 4),
           {"'w'", "shape"});
  f.expect(one_entry_file(R"({"dtype": "U8", "shape": [4294967296, 4294967296], "data_offsets": [0, 4]})", 4),
           {"'w'", "shape"});
}

TEST(SafetensorsCorrupt, ShapeWhoseByteSizeOverflows) {
  // Element counts that fit in 64 bits but whose byte size (numel * dtype size) does not: unchecked,
  // it wraps to 0 and an empty byte range would "match" a 2^62-element tensor.
  CorruptFile f;
  f.expect(one_entry_file(R"({"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 0]})", 0),
           {"'w'", "too large"});
  f.expect(one_entry_file(R"({"dtype": "F64", "shape": [2147483648, 2147483648], "data_offsets": [0, 0]})", 0),
           {"'w'", "too large"});
  f.expect(one_entry_file(R"({"dtype": "BF16", "shape": [2, 4, 8, 288230376151711744], "data_offsets": [0, 0]})", 0),
           {"'w'", "too large"});
  // A zero dim makes the tensor empty, but the other dims are still bounded (their products must
  // not overflow either).
  f.expect(one_entry_file(R"({"dtype": "U8", "shape": [0, 4611686018427387905], "data_offsets": [0, 0]})", 0),
           {"'w'", "too large"});
  f.expect(one_entry_file(R"({"dtype": "U8", "shape": [0, 4294967296, 4294967296], "data_offsets": [0, 0]})", 0),
           {"'w'", "too large"});
  // Exactly 2^62 bytes is representable: then the byte range is what is wrong.
  f.expect(one_entry_file(R"({"dtype": "U8", "shape": [4611686018427387904], "data_offsets": [0, 0]})", 0),
           {"'w'", "needs 4611686018427387904"});
  f.expect(one_entry_file(R"({"dtype": "F32", "shape": [1073741824, 1073741824], "data_offsets": [0, 0]})", 0),
           {"'w'", "needs 4611686018427387904"});
  // Large but sane dims with a zero are an empty tensor.
  f.write(one_entry_file(R"({"dtype": "F32", "shape": [0, 1048576, 1048576], "data_offsets": [0, 0]})", 0));
  TensorStore s = TensorStore::open(f.path);
  EXPECT_EQ(s.get("w").numel(), 0);
  EXPECT_EQ(s.get("w").nbytes, 0u);
}

TEST(SafetensorsCorrupt, BadDataOffsets) {
  CorruptFile f;
  f.expect(one_entry_file(R"({"dtype": "U8", "shape": [4], "data_offsets": [-4, 0]})", 4), {"'w'", "data_offsets"});
  f.expect(one_entry_file(R"({"dtype": "U8", "shape": [4], "data_offsets": [0, 4.0]})", 4), {"'w'", "data_offsets"});
  f.expect(one_entry_file(R"({"dtype": "U8", "shape": [4], "data_offsets": ["0", "4"]})", 4), {"'w'", "data_offsets"});
  f.expect(one_entry_file(R"({"dtype": "U8", "shape": [4], "data_offsets": [0, 18446744073709551615]})", 4),
           {"'w'", "data_offsets"});
}

TEST(SafetensorsCorrupt, BeginAfterEnd) {
  CorruptFile f;
  f.expect(one_entry_file(R"({"dtype": "U8", "shape": [0], "data_offsets": [4, 0]})", 4), {"'w'", "begin > end"});
}

TEST(SafetensorsCorrupt, RangeBeyondTheData) {
  CorruptFile f;
  f.expect(one_entry_file(R"({"dtype": "F32", "shape": [4], "data_offsets": [0, 16]})", 15), {"'w'", "out of range"});
  f.expect(one_entry_file(R"({"dtype": "F32", "shape": [4], "data_offsets": [16, 32]})", 16), {"'w'", "out of range"});
}

TEST(SafetensorsCorrupt, TruncatedValidFile) {
  test::TempDir dir;
  const std::string good = dir.path + "/good.safetensors";
  const std::vector<uint8_t> a = random_bytes(64, 1), b = random_bytes(96, 2), last = random_bytes(40, 3);
  write_safetensors(good, {{"a", DType::F32, {4, 4}, a.data()},
                           {"b", DType::BF16, {48}, b.data()},
                           {"last.weight", DType::I64, {5}, last.data()}});
  const std::string bytes = test::read_text(good);
  ASSERT_NO_THROW(TensorStore::open(good));
  CorruptFile f;
  // Data cut: the last tensor (in file order) runs past the end.
  for (size_t cut : {size_t(1), size_t(7), size_t(40)}) {
    SCOPED_TRACE(cut);
    f.expect(bytes.substr(0, bytes.size() - cut), {"'last.weight'", "out of range"});
  }
  // Cut into "b" as well: some tensor is named (both are out of range).
  f.expect(bytes.substr(0, bytes.size() - 41), {"out of range", "tensor '"});
  // Header cut.
  uint64_t hlen;
  std::memcpy(&hlen, bytes.data(), 8);
  f.expect(bytes.substr(0, 8 + hlen - 1), {"truncated"});
  f.expect(bytes.substr(0, 8 + hlen / 2), {"truncated"});
  f.expect(bytes.substr(0, 8), {"truncated"});
}

TEST(SafetensorsCorrupt, ByteRangeSizeMismatch) {
  CorruptFile f;
  f.expect(one_entry_file(R"({"dtype": "F32", "shape": [4], "data_offsets": [0, 12]})", 32), {"'w'", "needs 16"});
  f.expect(one_entry_file(R"({"dtype": "F32", "shape": [4], "data_offsets": [0, 20]})", 32), {"'w'", "needs 16"});
  f.expect(one_entry_file(R"({"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 24]})", 32), {"'w'", "needs 12"});
  f.expect(one_entry_file(R"({"dtype": "I64", "shape": [], "data_offsets": [0, 0]})", 32), {"'w'", "needs 8"});
  f.expect(one_entry_file(R"({"dtype": "U8", "shape": [0], "data_offsets": [0, 1]})", 32), {"'w'", "needs 0"});
}

TEST(SafetensorsCorrupt, OverlappingRanges) {
  CorruptFile f;
  // The message names both tensors and their ranges.
  f.expect(raw_safetensors(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                               "v": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})", 16),
           {"overlap", "'w' [0, 8)", "'v' [4, 12)"});
  f.expect(raw_safetensors(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                               "v": {"dtype": "U8", "shape": [2], "data_offsets": [6, 8]}})", 16),
           {"overlap", "'w' [0, 16)", "'v' [6, 8)"});
  f.expect(raw_safetensors(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]},
                               "v": {"dtype": "I32", "shape": [2], "data_offsets": [8, 16]}})", 16),
           {"overlap", "'w'", "'v'", "[8, 16)"});
  // Among several tensors, the pair that overlaps (not a neighbour that does not).
  f.expect(raw_safetensors(R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                               "b": {"dtype": "U8", "shape": [8], "data_offsets": [4, 12]},
                               "c": {"dtype": "U8", "shape": [2], "data_offsets": [10, 12]},
                               "d": {"dtype": "U8", "shape": [4], "data_offsets": [12, 16]}})", 16),
           {"overlap", "'b' [4, 12)", "'c' [10, 12)"});
  // Adjacent ranges do not overlap.
  f.write(raw_safetensors(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                              "v": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})", 16));
  EXPECT_NO_THROW(TensorStore::open(f.path));
}

TEST(SafetensorsCorrupt, FifoDeviceOrDirectoryIsAnErrorNotAHang) {
  // open() on a FIFO blocks until a writer appears: every path is stat'ed first.
  test::TempDir dir;
  std::vector<std::string> fifos;
  auto make_fifo = [&](const std::string& p) {
    EXPECT_EQ(::mkfifo(p.c_str(), 0600), 0) << p;
    fifos.push_back(p);
  };
  const std::string fifo = dir.path + "/pipe.safetensors";
  make_fifo(fifo);
  auto expect = [&](const std::string& path, const std::vector<std::string>& needles,
                    std::source_location loc = std::source_location::current()) {
    SCOPED_TRACE(::testing::Message() << "called from line " << loc.line() << ": " << path);
    const std::string got = outcome_within_deadline([&] { TensorStore::open(path); }, fifos);
    EXPECT_EQ(got.rfind("Error: ", 0), 0u) << got;
    for (const auto& n : needles) EXPECT_NE(got.find(n), std::string::npos) << "lacks \"" << n << "\": " << got;
  };
  expect(fifo, {"pipe.safetensors", "FIFO"});
  for (const char* dev : {"/dev/null", "/dev/zero"})
    if (fs::exists(dev)) expect(dev, {dev, "character device"});

  // model.safetensors in a directory is a FIFO.
  const std::string single = dir.path + "/single";
  fs::create_directories(single);
  make_fifo(single + "/model.safetensors");
  expect(single, {"model.safetensors", "FIFO"});

  // The index, or a shard it names, is a FIFO.
  const std::string sharded = dir.path + "/sharded";
  fs::create_directories(sharded);
  const float a[2] = {1, 2};
  write_safetensors(sharded + "/" + kShard1, {{"a", DType::F32, {2}, a}});
  make_fifo(sharded + "/" + kShard2);
  test::write_text(sharded + "/" + kIndex, json{{"weight_map", {{"a", kShard1}, {"b", kShard2}}}}.dump());
  expect(sharded, {kShard2, "FIFO"});
  fs::remove(sharded + "/" + kIndex);
  make_fifo(sharded + "/" + kIndex);
  expect(sharded, {kIndex, "FIFO"});

  // A directory where the index should be, and shard names that point at the directory itself.
  const std::string odd = dir.path + "/odd";
  fs::create_directories(odd + "/" + kIndex);
  expect(odd, {kIndex, "directory"});
  fs::remove(odd + "/" + kIndex);
  for (const char* shard : {"", "."}) {
    test::write_text(odd + "/" + kIndex, json{{"weight_map", {{"a", shard}}}}.dump());
    expect(odd, {kIndex, "plain file name"});
  }
}

TEST(SafetensorsCorrupt, DeeplyNestedHeaderIsAnError) {
  // The JSON parser and the value's destructor must not recurse once per nesting level.
  CorruptFile f;
  const size_t depth = 200000;
  f.expect(one_entry_file(std::string(depth, '[') + std::string(depth, ']'), 0), {"'w'", "not an object"});
  f.expect(raw_safetensors(std::string(depth, '['), 0), {"JSON"});
}

TEST(SafetensorsCorrupt, EveryTruncationAndHeaderByteFlipIsValidOrAnError) {
  // Mechanical damage of a small valid file: each prefix, and each header byte replaced by a few
  // values. Opening must either succeed with self-consistent views or throw strata::Error.
  test::TempDir dir;
  const std::string good = dir.path + "/good.safetensors";
  const std::vector<uint8_t> a = random_bytes(24, 4), b = random_bytes(8, 5);
  write_safetensors(good, {{"a", DType::BF16, {3, 4}, a.data()}, {"b", DType::I64, {1}, b.data()}});
  const std::string bytes = test::read_text(good);
  uint64_t hlen;
  std::memcpy(&hlen, bytes.data(), 8);
  const std::string path = dir.path + "/damaged.safetensors";
  auto check = [&](const std::string& damaged, const std::string& what) {
    test::write_text(path, damaged);
    try {
      TensorStore s = TensorStore::open(path);
      for (const auto& [name, t] : s.tensors()) {
        EXPECT_EQ(size_t(t.numel()) * dtype_size(t.dtype), t.nbytes) << what << " tensor " << name;
        EXPECT_LE(t.nbytes, damaged.size()) << what << " tensor " << name;
        unsigned sum = 0;
        for (size_t i = 0; i < t.nbytes; i++) sum += t.data[i];  // touch every byte
        (void)sum;
      }
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("damaged.safetensors"), std::string::npos) << what << ": " << e.what();
    }
  };
  for (size_t n = 0; n < bytes.size(); n++) check(bytes.substr(0, n), "prefix " + std::to_string(n));
  for (size_t i = 0; i < 8 + hlen; i++)
    for (char c : {'\0', '0', '9', '-', '"', '}', ']', '\xff'}) {
      std::string d = bytes;
      d[i] = c;
      check(d, "byte " + std::to_string(i) + " = " + std::to_string(int(uint8_t(c))));
    }
}

}  // namespace
}  // namespace strata
