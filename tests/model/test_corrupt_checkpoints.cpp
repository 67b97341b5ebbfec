// Broken model directories built from the fixtures in a scratch dir: Model::load must throw
// strata::Error naming the file, tensor or field, never crash, hang or allocate for sizes the
// checkpoint does not hold. Also paths that are FIFOs/devices/files where a directory is expected,
// forward() on bad token ids and past the KV cache, and configs in the legacy rope style loading
// to HF's reference logits. (Header-level safetensors corruption: tests/io/test_safetensors.cpp;
// config.json parsing: tests/io/test_model_config.cpp.)
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <future>
#include <nlohmann/json.hpp>
#include <source_location>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "model/arch/arch.h"
#include "model/model.h"
#include "model/weight_loader.h"
#include "test_util.h"

namespace strata {
namespace {

using test::expect_error;

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr double kTol = 1e-3;

void expect_load_error(const std::string& dir, const std::vector<std::string>& needles,
                       std::source_location loc = std::source_location::current()) {
  expect_error([&] { Model::load(dir); }, needles, loc);
}

std::string fixture_dir(const std::string& name) { return test::fixtures_dir() + "/models/" + name; }

json fixture_config(const std::string& name) {
  return json::parse(test::read_text(fixture_dir(name) + "/config.json"));
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A copy of fixture `name` in a scratch dir: config.json through `edit_config`, model.safetensors
// rewritten with write_safetensors from the fixture's tensors after `edit` (which may drop,
// reshape or retype them; replacement bytes go in `owned`, which outlives the write).
struct BrokenModel {
  test::TempDir dir;
  TensorStore src;
  std::vector<TensorToWrite> tensors;
  std::vector<std::vector<uint8_t>> owned;

  explicit BrokenModel(const std::string& name) : src(TensorStore::open(fixture_dir(name))) {
    for (const auto& [n, t] : src.tensors()) tensors.push_back({n, t.dtype, t.shape, t.data});
    test::write_text(dir.path + "/config.json", test::read_text(fixture_dir(name) + "/config.json"));
  }
  TensorToWrite& at(const std::string& n) {
    for (auto& t : tensors)
      if (t.name == n) return t;
    throw std::runtime_error("test bug: no tensor " + n);
  }
  void remove(const std::string& n) {
    at(n);
    std::erase_if(tensors, [&](const TensorToWrite& t) { return t.name == n; });
  }
  // New bytes for tensor `n` (e.g. when its dtype changes size).
  void set_bytes(const std::string& n, std::vector<uint8_t> bytes) {
    owned.push_back(std::move(bytes));
    at(n).data = owned.back().data();
  }
  void edit_config(const std::function<void(json&)>& f) {
    json c = json::parse(test::read_text(dir.path + "/config.json"));
    f(c);
    test::write_text(dir.path + "/config.json", c.dump(2));
  }
  const std::string& write() {
    write_safetensors(dir.path + "/model.safetensors", tensors);
    return dir.path;
  }
};

// Tensor names of store `s` to mutate: a spread over the sorted names (offset `phase` so
// the mutations pick different tensors) plus the embedding/head/final norm. STRATA_EXHAUSTIVE=1
// takes every tensor instead.
std::vector<std::string> sample_tensors(const TensorStore& s, int phase, bool skip_weight_shape) {
  std::vector<std::string> names;
  for (const auto& [n, t] : s.tensors())
    if (!(skip_weight_shape && ends_with(n, ".weight_shape"))) names.push_back(n);
  const char* ex = std::getenv("STRATA_EXHAUSTIVE");
  if (ex && std::string(ex) == "1") return names;
  std::vector<std::string> out;
  const size_t stride = std::max<size_t>(1, names.size() / 5);
  for (size_t i = size_t(phase) % stride; i < names.size(); i += stride) out.push_back(names[i]);
  for (const char* n : {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"})
    if (s.has(n) && std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Control: the rewrite itself is faithful.

TEST(CorruptCheckpointControl, UneditedRewriteLoadsAndMatchesReference) {
  for (const auto& f : test::manifest()) {
    SCOPED_TRACE(f.name);
    BrokenModel m(f.name);
    std::unique_ptr<Model> model;
    ASSERT_NO_THROW(model = Model::load(m.write()));
    TensorStore ref = TensorStore::open(f.reference);
    const auto ids = test::read_i32(ref, "prompt_1.input_ids");
    const auto want = test::read_f32(ref, "prompt_1.logits");
    KvCache kv = model->new_cache(int(ids.size()));
    std::vector<float> got(want.size());
    model->forward(ids.data(), int(ids.size()), kv, got.data());
    EXPECT_LE(test::rel_err(got.data(), want.data(), got.size()), kTol);
  }
}

// ---------------------------------------------------------------------------------------------
// Broken tensors, over every fixture.

TEST(CorruptCheckpoint, TensorRemoved) {
  for (const auto& f : test::manifest()) {
    TensorStore s = TensorStore::open(f.model_dir);
    for (const auto& victim : sample_tensors(s, 0, /*skip_weight_shape=*/true)) {
      SCOPED_TRACE(f.name + ": " + victim);
      BrokenModel m(f.name);
      m.remove(victim);
      // Without weight_packed the module reads as dense: then X.weight is what is missing.
      const std::string suffix = ".weight_packed";
      const std::string needle = ends_with(victim, suffix) ? victim.substr(0, victim.size() - suffix.size()) : victim;
      expect_load_error(m.write(), {needle, "missing"});
    }
  }
}

TEST(CorruptCheckpoint, TensorShapeChanged) {
  // Same bytes, other shape: [n] -> [1, n], [a, b] -> [a * b].
  for (const auto& f : test::manifest()) {
    TensorStore s = TensorStore::open(f.model_dir);
    for (const auto& victim : sample_tensors(s, 1, /*skip_weight_shape=*/false)) {
      SCOPED_TRACE(f.name + ": " + victim);
      BrokenModel m(f.name);
      auto& t = m.at(victim);
      if (t.shape.size() == 1)
        t.shape = {1, t.shape[0]};
      else
        t.shape = {t.shape[0] * t.shape[1]};
      expect_load_error(m.write(), {victim, "shape"});
    }
  }
}

TEST(CorruptCheckpoint, DenseWeightTransposed) {
  // Same bytes, 2-D -> 2-D: [N, K] stored as [K, N].
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"qwen3", "model.layers.0.mlp.up_proj.weight"},
      {"llama", "model.layers.2.self_attn.k_proj.weight"},
      {"kimi_k2", "model.layers.1.self_attn.kv_b_proj.weight"}};
  for (const auto& [fixture, victim] : cases) {
    SCOPED_TRACE(victim);
    BrokenModel m(fixture);
    auto& t = m.at(victim);
    ASSERT_EQ(t.shape.size(), 2u);
    ASSERT_NE(t.shape[0], t.shape[1]);
    t.shape = {t.shape[1], t.shape[0]};
    expect_load_error(m.write(), {victim, "shape"});
  }
}

TEST(CorruptCheckpoint, TensorDtypeChangedToAWrongOne) {
  // Same element size, wrong kind: BF16 -> I16, I32 (packed) -> F32, I64 (weight_shape) -> F64.
  // The message names the tensor and the dtype found.
  for (const auto& f : test::manifest()) {
    TensorStore s = TensorStore::open(f.model_dir);
    for (const auto& victim : sample_tensors(s, 2, /*skip_weight_shape=*/false)) {
      SCOPED_TRACE(f.name + ": " + victim);
      BrokenModel m(f.name);
      auto& t = m.at(victim);
      switch (t.dtype) {
        case DType::BF16: t.dtype = DType::I16; break;
        case DType::I32: t.dtype = DType::F32; break;
        case DType::I64: t.dtype = DType::F64; break;
        default: FAIL() << "fixture dtype " << dtype_name(t.dtype);
      }
      expect_load_error(m.write(), {victim, dtype_name(t.dtype)});
    }
  }
}

TEST(CorruptCheckpoint, DtypeChangedNamesTheDtype) {
  {
    BrokenModel m("llama");
    const std::string w = "model.layers.1.mlp.down_proj.weight";
    auto& t = m.at(w);
    t.dtype = DType::U8;  // half the bytes of the BF16 original: still readable
    expect_load_error(m.write(), {w, "U8"});
  }
  {
    BrokenModel m("qwen3");
    const std::string w = "model.layers.0.self_attn.q_norm.weight";
    auto& t = m.at(w);
    t.dtype = DType::I32;
    m.set_bytes(w, std::vector<uint8_t>(size_t(t.shape[0]) * 4, 0));
    expect_load_error(m.write(), {w, "I32"});
  }
  {
    BrokenModel m("minimax_m2");
    const std::string w = "model.layers.2.block_sparse_moe.e_score_correction_bias";
    auto& t = m.at(w);
    t.dtype = DType::I64;
    m.set_bytes(w, std::vector<uint8_t>(size_t(t.shape[0]) * 8, 0));
    expect_load_error(m.write(), {w, "I64"});
  }
}

// ---------------------------------------------------------------------------------------------
// INT4 (compressed-tensors pack-quantized) modules.

// The first packed module of fixture `name` whose name contains `part`.
std::string packed_module(const TensorStore& s, const std::string& part) {
  for (const auto& [n, t] : s.tensors())
    if (ends_with(n, ".weight_packed") && n.find(part) != std::string::npos)
      return n.substr(0, n.size() - std::string(".weight_packed").size());
  ADD_FAILURE() << "no packed module matching " << part;
  return "?";
}

TEST(CorruptCheckpoint, Int4WeightScaleRemoved) {
  for (const char* name : {"kimi_k2_int4", "qwen3_moe_int4", "llama_int4"}) {
    BrokenModel m(name);
    const std::string mod = packed_module(m.src, "layers.2.");
    SCOPED_TRACE(mod);
    m.remove(mod + ".weight_scale");
    expect_load_error(m.write(), {mod + ".weight_scale", "missing"});
  }
}

TEST(CorruptCheckpoint, Int4WeightPackedWrongShape) {
  for (const char* name : {"kimi_k2_int4", "qwen3_moe_int4", "llama_int4"}) {
    BrokenModel m(name);
    const std::string mod = packed_module(m.src, name == std::string("llama_int4") ? "layers.2.mlp." : "experts.3.");
    SCOPED_TRACE(mod);
    auto& p = m.at(mod + ".weight_packed");
    const auto shape = p.shape;  // [N, K/8]
    ASSERT_EQ(shape.size(), 2u);
    p.shape = {shape[1], shape[0]};  // transposed: same bytes
    expect_load_error(m.write(), {mod + ".weight_packed", "shape"});
    p.shape = {shape[0] / 2, shape[1] * 2};  // K doubled, N halved: same bytes
    expect_load_error(m.write(), {mod + ".weight_packed", "shape"});
    p.shape = shape;
    // As if K were stored unpacked-width: [N, K/4] (twice the bytes).
    p.shape = {shape[0], shape[1] * 2};
    m.set_bytes(p.name, std::vector<uint8_t>(size_t(shape[0] * shape[1]) * 8, 0x88));
    expect_load_error(m.write(), {mod + ".weight_packed", "shape"});
  }
}

TEST(CorruptCheckpoint, Int4WrongDtypesAndWeightShape) {
  BrokenModel base("kimi_k2_int4");
  const std::string mod = packed_module(base.src, "layers.1.mlp.experts.0.");
  {
    BrokenModel m("kimi_k2_int4");
    m.at(mod + ".weight_packed").dtype = DType::F32;
    expect_load_error(m.write(), {mod + ".weight_packed", "I32", "F32"});
  }
  {
    BrokenModel m("kimi_k2_int4");
    m.at(mod + ".weight_scale").dtype = DType::F16;
    expect_load_error(m.write(), {mod + ".weight_scale", "BF16", "F16"});
  }
  {
    // weight_shape disagreeing with the config ([K, N] instead of [N, K]).
    BrokenModel m("kimi_k2_int4");
    auto& ws = m.at(mod + ".weight_shape");
    ASSERT_EQ(ws.dtype, DType::I64);
    int64_t dims[2];
    std::memcpy(dims, ws.data, 16);
    ASSERT_NE(dims[0], dims[1]);
    std::vector<uint8_t> swapped(16);
    const int64_t sw[2] = {dims[1], dims[0]};
    std::memcpy(swapped.data(), sw, 16);
    m.set_bytes(ws.name, swapped);
    expect_load_error(m.write(), {mod + ".weight_shape", std::to_string(dims[0]), std::to_string(dims[1])});
  }
  {
    BrokenModel m("kimi_k2_int4");
    auto& ws = m.at(mod + ".weight_shape");
    ws.dtype = DType::I16;
    m.set_bytes(ws.name, std::vector<uint8_t>(4, 1));
    expect_load_error(m.write(), {mod + ".weight_shape"});
  }
}

TEST(CorruptCheckpoint, IgnoredModuleStoredPacked) {
  {
    // A plain module name on the ignore list.
    BrokenModel m("llama_int4");
    const std::string mod = packed_module(m.src, "layers.1.mlp.down_proj");
    m.edit_config([&](json& c) { c["quantization_config"]["ignore"].push_back(mod); });
    expect_load_error(m.write(), {mod, "ignore"});
  }
  {
    // A regex on the ignore list.
    BrokenModel m("kimi_k2_int4");
    ASSERT_NE(packed_module(m.src, "experts.3."), "?");
    m.edit_config([&](json& c) { c["quantization_config"]["ignore"].push_back("re:.*experts\\.3\\..*"); });
    expect_load_error(m.write(), {"experts.3.", "ignore"});
  }
}

TEST(CorruptCheckpoint, PackedWithoutQuantizationConfig) {
  for (const char* name : {"kimi_k2_int4", "qwen3_moe_int4", "llama_int4"}) {
    SCOPED_TRACE(name);
    BrokenModel m(name);
    m.edit_config([](json& c) { c.erase("quantization_config"); });
    expect_load_error(m.write(), {"weight_packed", "quantization_config"});
    m.edit_config([](json& c) { c["quantization_config"] = nullptr; });
    expect_load_error(m.dir.path, {"weight_packed", "quantization_config"});
  }
}

// ---------------------------------------------------------------------------------------------
// Truncated and missing files.

TEST(CorruptCheckpoint, TruncatedModelFile) {
  for (const char* name : {"llama", "kimi_k2_int4"}) {
    SCOPED_TRACE(name);
    const std::string bytes = test::read_text(fixture_dir(name) + "/model.safetensors");
    // The tensor whose bytes end the file.
    TensorStore s = TensorStore::open(fixture_dir(name));
    std::string last;
    const uint8_t* last_end = nullptr;
    for (const auto& [n, t] : s.tensors())
      if (!last_end || t.data + t.nbytes > last_end) {
        last_end = t.data + t.nbytes;
        last = n;
      }
    uint64_t hlen;
    std::memcpy(&hlen, bytes.data(), 8);
    ASSERT_LT(8 + hlen, bytes.size());

    test::TempDir dir;
    fs::copy_file(fixture_dir(name) + "/config.json", dir.path + "/config.json");
    auto with_prefix = [&](size_t n) {
      test::write_text(dir.path + "/model.safetensors", bytes.substr(0, n));
      return dir.path;
    };
    expect_load_error(with_prefix(bytes.size() - 1), {"model.safetensors", "'" + last + "'", "out of range"});
    expect_load_error(with_prefix(bytes.size() - 2), {"model.safetensors", "'" + last + "'"});
    expect_load_error(with_prefix((bytes.size() + 8 + hlen) / 2), {"model.safetensors", "out of range"});
    expect_load_error(with_prefix(8 + hlen), {"model.safetensors", "out of range"});
    expect_load_error(with_prefix(8 + hlen - 1), {"model.safetensors", "truncated"});
    expect_load_error(with_prefix(7), {"model.safetensors", "truncated"});
    expect_load_error(with_prefix(0), {"model.safetensors", "truncated"});
  }
}

TEST(CorruptCheckpoint, MissingModelFile) {
  test::TempDir dir;
  fs::copy_file(fixture_dir("qwen3") + "/config.json", dir.path + "/config.json");
  expect_load_error(dir.path, {"model.safetensors"});
  expect_load_error(dir.path + "/does-not-exist", {"does-not-exist"});
}

// ---------------------------------------------------------------------------------------------
// Broken or inconsistent config.json next to a good checkpoint.

TEST(CorruptConfig, InvalidOrMissingConfigJson) {
  test::TempDir dir;
  fs::create_symlink(fixture_dir("llama") + "/model.safetensors", dir.path + "/model.safetensors");
  expect_load_error(dir.path, {"config.json"});  // none
  const std::string good = test::read_text(fixture_dir("llama") + "/config.json");
  for (const std::string& bad : {std::string("{ not json"), std::string(""), good.substr(0, good.size() / 2),
                                 std::string("\xff\xfe{}", 4), std::string("[") + good + "]"}) {
    test::write_text(dir.path + "/config.json", bad);
    expect_load_error(dir.path, {dir.path + "/config.json"});
  }
}

TEST(CorruptConfig, UnsupportedArchitecture) {
  BrokenModel m("mixtral");
  m.edit_config([](json& c) { c["architectures"] = {"MistralForCausalLM"}; });
  std::vector<std::string> needles = {"config.json", "MistralForCausalLM"};
  for (const auto& a : supported_architectures()) needles.push_back(a);
  expect_load_error(m.write(), needles);
}

TEST(CorruptConfig, FieldsDisagreeWithTheCheckpoint) {
  struct Case {
    const char* fixture;
    std::function<void(json&)> edit;
    std::vector<std::string> needles;
  };
  const std::vector<Case> cases = {
      {"llama", [](json& c) { c["hidden_size"] = c["hidden_size"].get<int>() / 2; }, {"model.embed_tokens.weight", "shape"}},
      {"qwen3", [](json& c) { c["vocab_size"] = c["vocab_size"].get<int>() + 1; }, {"model.embed_tokens.weight", "shape"}},
      {"llama", [](json& c) { c["intermediate_size"] = c["intermediate_size"].get<int>() * 2; }, {"mlp", "shape"}},
      {"llama", [](json& c) { c["num_key_value_heads"] = c["num_attention_heads"]; }, {"k_proj", "shape"}},
      {"qwen3", [](json& c) { c["head_dim"] = c["head_dim"].get<int>() * 2; }, {"q_proj", "shape"}},
      {"qwen3", [](json& c) { c["tie_word_embeddings"] = false; }, {"lm_head.weight", "missing"}},
      {"kimi_k2", [](json& c) { c["kv_lora_rank"] = c["kv_lora_rank"].get<int>() * 2; }, {"kv_a_proj_with_mqa", "shape"}},
      {"kimi_k2", [](json& c) { c["q_lora_rank"] = 0; }, {"q_proj", "missing"}},
      {"kimi_k2", [](json& c) { c["first_k_dense_replace"] = 0; }, {"model.layers.0.mlp.gate", "missing"}},
      {"kimi_k2", [](json& c) { c["n_shared_experts"] = 2; }, {"shared_experts", "shape"}},
      {"mixtral", [](json& c) { c["num_local_experts"] = c["num_local_experts"].get<int>() * 2; }, {"block_sparse_moe.gate", "shape"}},
      {"qwen3_moe", [](json& c) { c["moe_intermediate_size"] = c["moe_intermediate_size"].get<int>() * 2; }, {"experts.0.", "shape"}},
      {"minimax_m2", [](json& c) { c["num_hidden_layers"] = c["num_hidden_layers"].get<int>() + 1; }, {"model.layers.", "missing"}},
      {"qwen3_moe_int4", [](json& c) { c["hidden_size"] = 96; }, {"shape"}},
  };
  for (const auto& k : cases) {
    BrokenModel m(k.fixture);
    m.edit_config(k.edit);
    SCOPED_TRACE(std::string(k.fixture) + ": " + k.needles[0]);
    expect_load_error(m.write(), k.needles);
  }
  // One more layer than stored: the message names the first missing layer.
  BrokenModel m("llama");
  int n_layers = 0;
  m.edit_config([&](json& c) {
    n_layers = c["num_hidden_layers"].get<int>();
    c["num_hidden_layers"] = n_layers + 1;
  });
  expect_load_error(m.write(), {"model.layers." + std::to_string(n_layers) + ".", "missing"});
}

TEST(CorruptConfig, HugeDimensionsAreErrors) {
  // Each field is a valid int on its own; beyond the config limits it is an Error naming the field
  // (not a huge allocation, nor an int overflow in n_heads * head_dim and the like).
  struct Case {
    const char* fixture;
    std::function<void(json&)> edit;
    std::vector<std::string> needles;
  };
  const std::vector<Case> cases = {
      {"llama", [](json& c) { c["vocab_size"] = INT_MAX; }, {"vocab_size"}},
      {"llama", [](json& c) { c["hidden_size"] = INT_MAX; }, {"hidden_size"}},
      {"llama", [](json& c) { c["intermediate_size"] = INT_MAX; }, {"intermediate_size"}},
      {"llama",
       [](json& c) {
         c["num_attention_heads"] = 65536;
         c["num_key_value_heads"] = 65536;
         c["head_dim"] = 65536;
       },
       {"num_attention_heads"}},
      {"kimi_k2", [](json& c) { c["n_shared_experts"] = 1 << 26; }, {"n_shared_experts"}},
      {"kimi_k2", [](json& c) { c["num_attention_heads"] = 1 << 26; }, {"num_attention_heads"}},
      {"mixtral", [](json& c) { c["num_local_experts"] = 1 << 30; }, {"num_local_experts"}},
  };
  for (size_t i = 0; i < cases.size(); i++) {
    SCOPED_TRACE(std::string(cases[i].fixture) + " case " + std::to_string(i));
    BrokenModel m(cases[i].fixture);
    m.edit_config(cases[i].edit);
    std::vector<std::string> needles = cases[i].needles;
    needles.push_back("config.json");
    needles.push_back("out of range");
    expect_load_error(m.write(), needles);
  }
  // At the limits the config parses; the shape checks then name the tensor.
  BrokenModel m("llama");
  m.edit_config([](json& c) {
    c["num_attention_heads"] = ConfigLimits::kHeads;
    c["num_key_value_heads"] = ConfigLimits::kHeads;
    c["head_dim"] = ConfigLimits::kHeadDim;
  });
  expect_load_error(m.write(), {"q_proj", "shape", std::to_string(ConfigLimits::kHeads * ConfigLimits::kHeadDim)});
}

TEST(CorruptConfig, HugeLayerCountIsAnErrorNotAnAllocation) {
  {
    BrokenModel m("llama");
    m.edit_config([](json& c) { c["num_hidden_layers"] = INT_MAX; });
    expect_load_error(m.write(), {"config.json", "num_hidden_layers", std::to_string(INT_MAX), "out of range"});
  }
  {
    // Within the limit but far more than stored: the first missing layer is named.
    BrokenModel m("llama");
    int stored = 0;
    m.edit_config([&](json& c) {
      stored = c["num_hidden_layers"].get<int>();
      c["num_hidden_layers"] = ConfigLimits::kLayers;
    });
    expect_load_error(m.write(), {"model.layers." + std::to_string(stored) + ".", "missing"});
  }
}

TEST(CorruptConfig, ArchLoadersAllocateOnlyForLayersFound) {
  // The loaders themselves, given a config no parser bounded (as a future config source might):
  // n_layers = INT_MAX must fail at the first missing layer, not reserve INT_MAX layers up front
  // (which is std::bad_alloc, or an OOM kill where memory is overcommitted).
  for (const auto& f : test::manifest()) {
    SCOPED_TRACE(f.name);
    ModelConfig cfg = load_model_config(f.model_dir);
    const int stored = cfg.n_layers;
    cfg.n_layers = INT_MAX;
    TensorStore store = TensorStore::open(f.model_dir);
    WeightLoader loader(store, cfg);
    ModelWeights w;
    expect_error([&] { find_arch_loader(cfg.architecture)(cfg, loader, w); },
                 {"model.layers." + std::to_string(stored) + ".", "missing"});
    EXPECT_LE(w.layers.size(), size_t(stored) + 1);
  }
}

TEST(CorruptConfig, ArchLoaderDimProductsAreCheckedNotOverflowed) {
  // Products of config fields (n_heads * head_dim, ...) computed in 64 bits: too large for a
  // tensor dimension is an Error naming the fields and the true value, not a wrapped int.
  struct Case {
    const char* fixture;
    std::function<void(ModelConfig&)> edit;
    std::vector<std::string> needles;
  };
  const std::vector<Case> cases = {
      {"llama", [](ModelConfig& c) { c.n_heads = c.n_kv_heads = c.head_dim = 65536; },
       {"num_attention_heads * head_dim", "4294967296", "q_proj"}},
      {"qwen3", [](ModelConfig& c) { c.n_kv_heads = 1 << 20, c.head_dim = 1 << 12; },
       {"num_key_value_heads * head_dim", "4294967296", "k_proj"}},
      {"kimi_k2", [](ModelConfig& c) { c.n_heads = 1 << 26; },
       {"num_attention_heads * (qk_nope_head_dim + qk_rope_head_dim)", std::to_string((int64_t(1) << 26) * 48)}},
      {"kimi_k2", [](ModelConfig& c) { c.v_head_dim = INT_MAX; },
       {"qk_nope_head_dim + v_head_dim", std::to_string(int64_t(INT_MAX) + 32)}},
      {"kimi_k2", [](ModelConfig& c) { c.n_shared_experts = 1 << 26; },
       {"moe_intermediate_size * n_shared_experts", std::to_string((int64_t(1) << 26) * 64)}},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(std::string(k.fixture) + ": " + k.needles[0]);
    ModelConfig cfg = load_model_config(fixture_dir(k.fixture));
    k.edit(cfg);
    TensorStore store = TensorStore::open(fixture_dir(k.fixture));
    WeightLoader loader(store, cfg);
    ModelWeights w;
    expect_error([&] { find_arch_loader(cfg.architecture)(cfg, loader, w); }, k.needles);
  }
}

// ---------------------------------------------------------------------------------------------
// Paths that are not what they claim: FIFOs (open() would block), devices, files for directories.

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

TEST(CorruptCheckpoint, FifoDeviceOrFileWhereADirectoryIsExpected) {
  test::TempDir dir;
  std::vector<std::string> fifos;
  auto make_fifo = [&](const std::string& p) {
    EXPECT_EQ(::mkfifo(p.c_str(), 0600), 0) << p;
    fifos.push_back(p);
  };
  auto expect = [&](const std::string& path, const std::vector<std::string>& needles,
                    std::source_location loc = std::source_location::current()) {
    SCOPED_TRACE(::testing::Message() << "called from line " << loc.line() << ": " << path);
    const std::string got = outcome_within_deadline([&] { Model::load(path); }, fifos);
    EXPECT_EQ(got.rfind("Error: ", 0), 0u) << got;
    for (const auto& n : needles) EXPECT_NE(got.find(n), std::string::npos) << "lacks \"" << n << "\": " << got;
  };
  // The model path itself: a FIFO, a device, a regular file that is not GGUF.
  make_fifo(dir.path + "/model.gguf");
  expect(dir.path + "/model.gguf", {"model.gguf", "not a model directory"});
  if (fs::exists("/dev/zero")) expect("/dev/zero", {"/dev/zero", "not a model directory"});
  test::write_text(dir.path + "/notes.txt", "not a model");
  expect(dir.path + "/notes.txt", {"notes.txt", "not a model directory"});
  // config.json a FIFO next to good weights.
  const std::string a = dir.path + "/a";
  fs::create_directories(a);
  fs::create_symlink(fixture_dir("llama") + "/model.safetensors", a + "/model.safetensors");
  make_fifo(a + "/config.json");
  expect(a, {a + "/config.json", "FIFO"});
  // model.safetensors a FIFO next to a good config.json.
  const std::string b = dir.path + "/b";
  fs::create_directories(b);
  fs::copy_file(fixture_dir("llama") + "/config.json", b + "/config.json");
  make_fifo(b + "/model.safetensors");
  expect(b, {b + "/model.safetensors", "FIFO"});
  // A symlink to a FIFO is followed and still refused.
  const std::string c = dir.path + "/c";
  fs::create_directories(c);
  fs::create_symlink(a + "/config.json", c + "/config.json");
  fs::create_symlink(fixture_dir("llama") + "/model.safetensors", c + "/model.safetensors");
  expect(c, {c + "/config.json", "FIFO"});
  // config.json a directory.
  const std::string d = dir.path + "/d";
  fs::create_directories(d + "/config.json");
  expect(d, {d + "/config.json", "directory"});
}

// ---------------------------------------------------------------------------------------------
// forward() on bad input.

TEST(CorruptInput, ForwardRejectsOutOfRangeTokenIds) {
  for (const char* name : {"llama", "kimi_k2", "qwen3_moe_int4"}) {
    SCOPED_TRACE(name);
    auto model = Model::load(fixture_dir(name));
    const int V = model->config().n_vocab;
    ASSERT_EQ(V, fixture_config(name)["vocab_size"].get<int>());
    KvCache kv = model->new_cache(8);
    std::vector<float> logits(size_t(8) * V);
    const std::vector<std::vector<int>> bad = {{V}, {-1}, {3, 4, V + 7}, {INT_MIN}, {INT_MAX}, {5, -2}};
    for (const auto& ids : bad) {
      expect_error([&] { model->forward(ids.data(), int(ids.size()), kv, logits.data()); },
                   {"token id", std::to_string(ids.back())});
      EXPECT_EQ(kv.n_past, 0);
    }
    // The failed calls left the cache untouched: same logits as a fresh cache.
    const int ok[] = {V - 1, 0, 7};
    model->forward(ok, 3, kv, logits.data());
    KvCache fresh = model->new_cache(8);
    std::vector<float> want(size_t(3) * V);
    model->forward(ok, 3, fresh, want.data());
    EXPECT_EQ(std::memcmp(logits.data(), want.data(), want.size() * sizeof(float)), 0);
  }
}

TEST(CorruptInput, ForwardBeyondTheKvCache) {
  for (const char* name : {"llama", "kimi_k2"}) {
    SCOPED_TRACE(name);
    auto model = Model::load(fixture_dir(name));
    const int V = model->config().n_vocab;
    std::vector<float> logits(size_t(8) * V);
    const int ids[] = {1, 2, 3, 4, 5, 6, 7, 8};
    KvCache kv = model->new_cache(4);
    expect_error([&] { model->forward(ids, 5, kv, logits.data()); }, {"capacity", "4"});
    EXPECT_EQ(kv.n_past, 0);
    model->forward(ids, 3, kv, logits.data());
    expect_error([&] { model->forward(ids, 2, kv, logits.data()); }, {"capacity"});
    EXPECT_EQ(kv.n_past, 3);
    model->forward(ids, 1, kv, logits.data());
    EXPECT_EQ(kv.n_past, 4);
    expect_error([&] { model->forward(ids, 1, kv, logits.data(), false); }, {"capacity"});
    EXPECT_EQ(kv.n_past, 4);
    expect_error([&] { model->forward(ids, 0, kv, logits.data()); }, {"no tokens"});
    KvCache empty = model->new_cache(0);
    expect_error([&] { model->forward(ids, 1, empty, logits.data()); }, {"capacity"});
  }
}

// ---------------------------------------------------------------------------------------------
// Legacy rope keys: same logits as HF's reference.

// config.json with rope_parameters moved to top-level rope_theta + rope_scaling {"type": ...}.
json to_legacy_rope(json c) {
  json rp = c.at("rope_parameters");
  c.erase("rope_parameters");
  c["rope_theta"] = rp.at("rope_theta");
  rp.erase("rope_theta");
  const std::string type = rp.value("rope_type", std::string("default"));
  rp.erase("rope_type");
  if (type == "default" && rp.empty()) {
    c["rope_scaling"] = nullptr;
  } else {
    rp["type"] = type;
    c["rope_scaling"] = rp;
  }
  return c;
}

TEST(LegacyConfig, RopeKeysGiveTheReferenceLogits) {
  int n_checked = 0;
  for (const auto& f : test::manifest()) {
    if (f.name != "llama" && f.name != "kimi_k2" && f.name != "llama_int4" && f.name != "kimi_k2_int4") continue;
    SCOPED_TRACE(f.name);
    const json modern = json::parse(test::read_text(f.model_dir + "/config.json"));
    ASSERT_NE(modern["rope_parameters"]["rope_type"], "default") << "wants a scaled rope";
    const json legacy = to_legacy_rope(modern);
    ASSERT_TRUE(legacy["rope_scaling"].contains("type"));
    test::TempDir dir;
    test::write_text(dir.path + "/config.json", legacy.dump(2));
    fs::create_symlink(f.model_dir + "/model.safetensors", dir.path + "/model.safetensors");

    auto model = Model::load(dir.path);
    const RopeConfig& got_rope = model->config().rope;
    const RopeConfig want_rope = load_model_config(f.model_dir).rope;
    EXPECT_EQ(got_rope.type, want_rope.type);
    EXPECT_EQ(got_rope.theta, want_rope.theta);
    EXPECT_EQ(got_rope.factor, want_rope.factor);
    EXPECT_EQ(got_rope.original_max_position_embeddings, want_rope.original_max_position_embeddings);

    TensorStore ref = TensorStore::open(f.reference);
    const int V = model->config().n_vocab;
    ASSERT_GE(f.n_prompts, 1);
    for (int i = 0; i < f.n_prompts; i++) {
      const std::string p = "prompt_" + std::to_string(i);
      const auto ids = test::read_i32(ref, p + ".input_ids");
      const auto want = test::read_f32(ref, p + ".logits");
      ASSERT_EQ(want.size(), ids.size() * size_t(V)) << p;
      KvCache kv = model->new_cache(int(ids.size()));
      std::vector<float> got(want.size());
      model->forward(ids.data(), int(ids.size()), kv, got.data());
      EXPECT_LE(test::rel_err(got.data(), want.data(), got.size()), kTol) << p;
    }
    n_checked++;
  }
  EXPECT_EQ(n_checked, 4);
}

}  // namespace
}  // namespace strata
