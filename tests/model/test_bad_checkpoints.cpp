// Corrupt checkpoints and configs: each must give strata::Error naming the file, tensor or field,
// never a crash. Broken copies are built from the fixtures in a scratch directory.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/model.h"
#include "test_util.h"

namespace strata {
namespace {

namespace fs = std::filesystem;

// Copies fixture `name` into a scratch dir, rewriting model.safetensors through `edit` (which may
// drop, reshape or retype tensors) and config.json through `edit_config`.
struct BrokenModel {
  test::TempDir dir;
  BrokenModel(const std::string& name, const std::function<void(std::vector<TensorToWrite>&)>& edit,
              const std::function<void(nlohmann::json&)>& edit_config = nullptr) {
    const std::string src = test::fixtures_dir() + "/models/" + name;
    auto cfg = nlohmann::json::parse(test::read_text(src + "/config.json"));
    if (edit_config) edit_config(cfg);
    test::write_text(dir.path + "/config.json", cfg.dump(2));
    TensorStore store = TensorStore::open(src);
    std::vector<TensorToWrite> ts;
    for (const auto& [n, t] : store.tensors()) ts.push_back({n, t.dtype, t.shape, t.data});
    if (edit) edit(ts);
    write_safetensors(dir.path + "/model.safetensors", ts);
  }
};

// Expects Model::load(dir) to throw Error mentioning every needle.
void expect_load_error(const std::string& dir, const std::vector<std::string>& needles) {
  try {
    Model::load(dir);
    ADD_FAILURE() << "no error loading " << dir;
  } catch (const Error& e) {
    for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
}

TensorToWrite* find(std::vector<TensorToWrite>& ts, const std::string& name) {
  for (auto& t : ts)
    if (t.name == name) return &t;
  return nullptr;
}

TEST(BadCheckpoint, MissingTensor) {
  const std::string victim = "model.layers.1.self_attn.k_proj.weight";
  BrokenModel m("llama", [&](auto& ts) { ts.erase(ts.begin() + (find(ts, victim) - ts.data())); });
  expect_load_error(m.dir.path, {victim, "missing"});
}

TEST(BadCheckpoint, WrongShape) {
  const std::string victim = "model.layers.0.mlp.up_proj.weight";
  BrokenModel m("qwen3", [&](auto& ts) { find(ts, victim)->shape = {128, 256}; });  // bytes still match
  expect_load_error(m.dir.path, {victim, "shape"});
}

TEST(BadCheckpoint, WrongDtype) {
  const std::string victim = "model.layers.0.self_attn.o_proj.weight";
  BrokenModel m("mixtral", [&](auto& ts) {
    auto* t = find(ts, victim);
    t->dtype = DType::I16;  // same byte size as BF16
  });
  expect_load_error(m.dir.path, {victim, "I16"});
}

TEST(BadCheckpoint, Int4ScaleMissingOrPackedWrongShape) {
  const std::string mod = "model.layers.2.mlp.experts.3.down_proj";
  BrokenModel a("kimi_k2_int4", [&](auto& ts) { ts.erase(ts.begin() + (find(ts, mod + ".weight_scale") - ts.data())); });
  expect_load_error(a.dir.path, {mod + ".weight_scale"});
  BrokenModel b("kimi_k2_int4", [&](auto& ts) {
    auto* t = find(ts, mod + ".weight_packed");
    t->shape = {t->shape[1], t->shape[0]};
  });
  expect_load_error(b.dir.path, {mod + ".weight_packed", "shape"});
}

TEST(BadCheckpoint, IgnoredModuleStoredPacked) {
  // Claim the experts stay bf16 while the file packs them.
  BrokenModel m("qwen3_moe_int4", nullptr, [](nlohmann::json& c) {
    c["quantization_config"]["ignore"].push_back("re:.*experts.*");
  });
  expect_load_error(m.dir.path, {"ignore", "experts"});
}

TEST(BadCheckpoint, PackedWithoutQuantizationConfig) {
  BrokenModel m("llama_int4", nullptr, [](nlohmann::json& c) { c.erase("quantization_config"); });
  expect_load_error(m.dir.path, {"weight_packed", "quantization_config"});
}

TEST(BadCheckpoint, TruncatedFile) {
  test::TempDir dir;
  const std::string src = test::fixtures_dir() + "/models/minimax_m2";
  fs::copy_file(src + "/config.json", dir.path + "/config.json");
  const std::string bytes = test::read_text(src + "/model.safetensors");
  test::write_text(dir.path + "/model.safetensors", bytes.substr(0, bytes.size() - 1000));
  expect_load_error(dir.path, {"model.safetensors", "out of range"});
  test::write_text(dir.path + "/model.safetensors", bytes.substr(0, 5));
  expect_load_error(dir.path, {"model.safetensors", "truncated"});
}

TEST(BadCheckpoint, BadHeaderJsonAndOffsets) {
  test::TempDir dir;
  const std::string src = test::fixtures_dir() + "/models/llama";
  fs::copy_file(src + "/config.json", dir.path + "/config.json");
  auto write_header = [&](const std::string& h, size_t data_bytes) {
    std::string f(8, '\0');
    uint64_t n = h.size();
    std::memcpy(f.data(), &n, 8);
    f += h + std::string(data_bytes, '\0');
    test::write_text(dir.path + "/model.safetensors", f);
  };
  write_header("{\"a\": [1, 2", 0);
  expect_load_error(dir.path, {"not valid JSON"});
  write_header(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 64]}})", 16);
  expect_load_error(dir.path, {"'w'", "out of range"});
  write_header(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}})", 16);
  expect_load_error(dir.path, {"'w'", "needs 16"});
  write_header(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                   "v": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})", 16);
  expect_load_error(dir.path, {"overlap"});
  write_header(R"({"w": {"dtype": "Q9", "shape": [2], "data_offsets": [0, 8]}})", 8);
  expect_load_error(dir.path, {"'w'", "unsupported dtype"});
}

TEST(BadCheckpoint, BadConfigs) {
  test::TempDir dir;
  test::write_text(dir.path + "/config.json", "{ not json");
  expect_load_error(dir.path, {"config.json", "not valid JSON"});
  BrokenModel a("llama", nullptr, [](nlohmann::json& c) { c["architectures"] = {"GPT2LMHeadModel"}; });
  expect_load_error(a.dir.path, {"GPT2LMHeadModel", "LlamaForCausalLM", "MiniMaxM2ForCausalLM"});
  BrokenModel b("qwen3", nullptr, [](nlohmann::json& c) { c.erase("hidden_size"); });
  expect_load_error(b.dir.path, {"hidden_size"});
  BrokenModel c("llama", nullptr, [](nlohmann::json& c) { c["rope_parameters"]["rope_type"] = "longrope"; });
  expect_load_error(c.dir.path, {"longrope", "yarn"});
  BrokenModel d("llama_int4", nullptr, [](nlohmann::json& c) {
    c["quantization_config"]["config_groups"]["group_0"]["weights"]["group_size"] = 128;
  });
  expect_load_error(d.dir.path, {"group_size 32"});
  BrokenModel e("mixtral", nullptr, [](nlohmann::json& c) { c["num_key_value_heads"] = 3; });
  expect_load_error(e.dir.path, {"num_key_value_heads"});
}

TEST(BadCheckpoint, LegacyRopeKeysGiveTheSameLogits) {
  // Legacy style: top-level rope_theta + rope_scaling {"type": ...}; must match the HF reference.
  for (const std::string name : {"llama", "kimi_k2"}) {
    BrokenModel m(name, nullptr, [](nlohmann::json& c) {
      nlohmann::json rp = c["rope_parameters"];
      c.erase("rope_parameters");
      c["rope_theta"] = rp["rope_theta"];
      rp.erase("rope_theta");
      rp["type"] = rp["rope_type"];
      rp.erase("rope_type");
      c["rope_scaling"] = rp;
    });
    auto model = Model::load(m.dir.path);
    TensorStore ref = TensorStore::open(test::fixtures_dir() + "/reference/" + name + ".safetensors");
    auto ids = test::read_i32(ref, "prompt_2.input_ids");
    auto want = test::read_f32(ref, "prompt_2.logits");
    KvCache kv = model->new_cache(int(ids.size()));
    std::vector<float> got(want.size());
    model->forward(ids.data(), int(ids.size()), kv, got.data());
    EXPECT_LE(test::rel_err(got.data(), want.data(), got.size()), 1e-3) << name;
  }
}

TEST(BadCheckpoint, ForwardRejectsBadTokensAndOverflow) {
  auto model = Model::load(test::fixtures_dir() + "/models/llama");
  KvCache kv = model->new_cache(4);
  std::vector<float> logits(4 * 512);
  const int bad[] = {5, 512};
  EXPECT_THROW(model->forward(bad, 2, kv, logits.data()), Error);
  const int neg[] = {-1};
  EXPECT_THROW(model->forward(neg, 1, kv, logits.data()), Error);
  const int many[] = {1, 2, 3, 4, 5};
  EXPECT_THROW(model->forward(many, 5, kv, logits.data()), Error);
  EXPECT_EQ(kv.n_past, 0);
  EXPECT_NO_THROW(model->forward(many, 4, kv, logits.data()));
}

}  // namespace
}  // namespace strata
