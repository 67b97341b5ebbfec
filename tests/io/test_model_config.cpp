// config.json parsing: every fixture config against its own raw JSON (no fixture numbers here),
// legacy rope keys (top-level rope_theta + rope_scaling {"type"}) equal to rope_parameters, and
// bad configs giving strata::Error that names the field.
#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <source_location>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace strata {
namespace {

using test::expect_error;

using json = nlohmann::json;

json fixture_config(const std::string& name) {
  return json::parse(test::read_text(test::fixtures_dir() + "/models/" + name + "/config.json"));
}

// parse_model_config of `j` must throw, naming the source and every needle.
void expect_config_error(const json& j, std::vector<std::string> needles,
                         std::source_location loc = std::source_location::current()) {
  const std::string src = "broken/config.json";
  needles.push_back(src);
  expect_error([&] { parse_model_config(j.dump(), src); }, needles, loc);
}

// `rope_parameters` rewritten in the legacy style: rope_theta at top level, the rest in
// rope_scaling with "type" (null for the default type).
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

RopeType rope_type_of(const std::string& s) {
  if (s == "default") return RopeType::Default;
  if (s == "linear") return RopeType::Linear;
  if (s == "llama3") return RopeType::Llama3;
  if (s == "yarn") return RopeType::Yarn;
  ADD_FAILURE() << "fixture rope type " << s;
  return RopeType::Default;
}

void expect_same_rope(const RopeConfig& a, const RopeConfig& b) {
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.theta, b.theta);
  EXPECT_EQ(a.partial_rotary_factor, b.partial_rotary_factor);
  EXPECT_EQ(a.factor, b.factor);
  EXPECT_EQ(a.low_freq_factor, b.low_freq_factor);
  EXPECT_EQ(a.high_freq_factor, b.high_freq_factor);
  EXPECT_EQ(a.original_max_position_embeddings, b.original_max_position_embeddings);
  EXPECT_EQ(a.beta_fast, b.beta_fast);
  EXPECT_EQ(a.beta_slow, b.beta_slow);
  EXPECT_EQ(a.mscale, b.mscale);
  EXPECT_EQ(a.mscale_all_dim, b.mscale_all_dim);
  EXPECT_EQ(a.attention_factor, b.attention_factor);
  EXPECT_EQ(a.truncate, b.truncate);
}

// ---------------------------------------------------------------------------------------------
// Every fixture config, cross-checked against its raw JSON.

TEST(ModelConfigFixtures, EveryFixtureParsesAsItsRawJsonSays) {
  const json manifest = json::parse(test::read_text(test::fixtures_dir() + "/manifest.json"));
  const auto fixtures = test::manifest();
  ASSERT_GE(fixtures.size(), 10u);
  std::vector<std::string> seen_archs;
  for (const auto& f : fixtures) {
    SCOPED_TRACE(f.name);
    const std::string text = test::read_text(f.model_dir + "/config.json");
    const json j = json::parse(text);
    ModelConfig c;
    ASSERT_NO_THROW(c = load_model_config(f.model_dir));

    EXPECT_EQ(c.architecture, manifest.at(f.name).at("architecture").get<std::string>());
    EXPECT_EQ(c.architecture, j.at("architectures").at(0).get<std::string>());
    const auto& sup = supported_architectures();
    EXPECT_NE(std::find(sup.begin(), sup.end(), c.architecture), sup.end());
    seen_archs.push_back(c.architecture);
    EXPECT_EQ(c.model_type, j.at("model_type").get<std::string>());
    const bool deepseek = c.architecture == "DeepseekV3ForCausalLM";

    EXPECT_EQ(c.n_vocab, j.at("vocab_size").get<int>());
    EXPECT_EQ(c.d_model, j.at("hidden_size").get<int>());
    EXPECT_EQ(c.n_layers, j.at("num_hidden_layers").get<int>());
    EXPECT_EQ(c.n_heads, j.at("num_attention_heads").get<int>());
    EXPECT_EQ(c.n_kv_heads, j.value("num_key_value_heads", c.n_heads));
    EXPECT_EQ(c.n_heads % c.n_kv_heads, 0);
    if (deepseek)
      EXPECT_EQ(c.head_dim, j.at("qk_rope_head_dim").get<int>());
    else
      EXPECT_EQ(c.head_dim, j.value("head_dim", c.d_model / c.n_heads));
    EXPECT_EQ(c.d_ffn, j.value("intermediate_size", 0));
    EXPECT_EQ(c.max_position_embeddings, j.at("max_position_embeddings").get<int>());
    EXPECT_DOUBLE_EQ(c.rms_norm_eps, j.at("rms_norm_eps").get<double>());
    EXPECT_EQ(c.tie_word_embeddings, j.value("tie_word_embeddings", false));
    EXPECT_EQ(c.attention_bias, j.value("attention_bias", false));
    EXPECT_EQ(c.mlp_bias, j.value("mlp_bias", false));
    EXPECT_EQ(c.bos_token_id, j.at("bos_token_id").get<int>());
    ASSERT_FALSE(c.eos_token_ids.empty());
    if (j.at("eos_token_id").is_array())
      EXPECT_EQ(c.eos_token_ids, j.at("eos_token_id").get<std::vector<int>>());
    else
      EXPECT_EQ(c.eos_token_ids, std::vector<int>{j.at("eos_token_id").get<int>()});

    // Rope, from rope_parameters.
    const json& rp = j.at("rope_parameters");
    EXPECT_EQ(c.rope.type, rope_type_of(rp.at("rope_type").get<std::string>()));
    EXPECT_EQ(c.rope.theta, rp.at("rope_theta").get<double>());
    EXPECT_EQ(c.rope.factor, rp.value("factor", 1.0));
    EXPECT_EQ(c.rope.original_max_position_embeddings, rp.value("original_max_position_embeddings", 0.0));
    if (c.rope.type == RopeType::Llama3) {
      EXPECT_EQ(c.rope.low_freq_factor, rp.at("low_freq_factor").get<double>());
      EXPECT_EQ(c.rope.high_freq_factor, rp.at("high_freq_factor").get<double>());
    }
    if (c.rope.type == RopeType::Yarn) {
      EXPECT_EQ(c.rope.beta_fast, rp.value("beta_fast", 32.0));
      EXPECT_EQ(c.rope.beta_slow, rp.value("beta_slow", 1.0));
      EXPECT_EQ(c.rope.mscale, rp.value("mscale", 0.0));
      EXPECT_EQ(c.rope.mscale_all_dim, rp.value("mscale_all_dim", 0.0));
    }
    EXPECT_EQ(c.rope.partial_rotary_factor, rp.value("partial_rotary_factor", j.value("partial_rotary_factor", 1.0)));

    // Mixture of experts.
    if (deepseek) {
      EXPECT_EQ(c.n_experts, j.at("n_routed_experts").get<int>());
      EXPECT_EQ(c.d_expert, j.at("moe_intermediate_size").get<int>());
      EXPECT_EQ(c.n_shared_experts, j.at("n_shared_experts").get<int>());
      EXPECT_EQ(c.routed_scaling_factor, j.at("routed_scaling_factor").get<double>());
      EXPECT_EQ(c.n_group, std::max(1, j.at("n_group").get<int>()));
      EXPECT_EQ(c.topk_group, j.at("topk_group").get<int>() == 0 ? c.n_group : j.at("topk_group").get<int>());
      EXPECT_EQ(c.first_k_dense_replace, j.at("first_k_dense_replace").get<int>());
      EXPECT_EQ(c.norm_topk_prob, j.at("norm_topk_prob").get<bool>());
      EXPECT_EQ(c.scoring, RouterScoring::Sigmoid);
      EXPECT_EQ(c.q_lora_rank, j.value("q_lora_rank", 0));
      EXPECT_EQ(c.kv_lora_rank, j.at("kv_lora_rank").get<int>());
      EXPECT_EQ(c.qk_nope_head_dim, j.at("qk_nope_head_dim").get<int>());
      EXPECT_EQ(c.qk_rope_head_dim, j.at("qk_rope_head_dim").get<int>());
      EXPECT_EQ(c.v_head_dim, j.at("v_head_dim").get<int>());
      EXPECT_EQ(c.rope_interleave, j.value("rope_interleave", true));
      for (int il = 0; il < c.n_layers; il++) EXPECT_EQ(c.is_moe_layer(il), il >= c.first_k_dense_replace) << il;
    } else if (j.contains("num_experts") || j.contains("num_local_experts")) {
      EXPECT_EQ(c.n_experts, j.contains("num_experts") ? j.at("num_experts").get<int>()
                                                       : j.at("num_local_experts").get<int>());
      EXPECT_EQ(c.n_experts_per_tok, j.at("num_experts_per_tok").get<int>());
      if (c.architecture == "Qwen3MoeForCausalLM") {
        EXPECT_EQ(c.d_expert, j.at("moe_intermediate_size").get<int>());
        EXPECT_EQ(c.norm_topk_prob, j.value("norm_topk_prob", false));
        EXPECT_EQ(c.decoder_sparse_step, j.value("decoder_sparse_step", 1));
        EXPECT_EQ(c.mlp_only_layers, j.value("mlp_only_layers", std::vector<int>{}));
      } else {
        EXPECT_EQ(c.d_expert, j.at("intermediate_size").get<int>());
        EXPECT_TRUE(c.norm_topk_prob);
      }
      EXPECT_EQ(c.scoring,
                c.architecture == "MiniMaxM2ForCausalLM" ? RouterScoring::Sigmoid : RouterScoring::Softmax);
      for (int il = 0; il < c.n_layers; il++) {
        const auto& mlp_only = c.mlp_only_layers;
        const bool want = std::find(mlp_only.begin(), mlp_only.end(), il) == mlp_only.end() &&
                          (il + 1) % c.decoder_sparse_step == 0;
        EXPECT_EQ(c.is_moe_layer(il), want) << il;
      }
    } else {
      EXPECT_EQ(c.n_experts, 0);
      for (int il = 0; il < c.n_layers; il++) EXPECT_FALSE(c.is_moe_layer(il)) << il;
    }
    if (c.n_experts > 0) {
      EXPECT_EQ(c.n_experts_per_tok, j.at("num_experts_per_tok").get<int>());
      EXPECT_LE(c.n_experts_per_tok, c.n_experts);
    }

    // Quantization.
    if (j.contains("quantization_config") && !j["quantization_config"].is_null()) {
      const json& q = j["quantization_config"];
      EXPECT_EQ(c.quant.method, QuantMethod::CompressedTensorsInt4);
      EXPECT_EQ(c.quant.group_size, q.at("config_groups").begin().value().at("weights").at("group_size").get<int>());
      EXPECT_EQ(c.quant.ignore, q.value("ignore", std::vector<std::string>{}));
      EXPECT_TRUE(manifest.at(f.name).contains("quantized_linears"));
    } else {
      EXPECT_EQ(c.quant.method, QuantMethod::None);
      EXPECT_TRUE(c.quant.ignore.empty());
    }

    // parse_model_config on the same text agrees with load_model_config.
    const ModelConfig p = parse_model_config(text, "x/config.json");
    EXPECT_EQ(p.architecture, c.architecture);
    EXPECT_EQ(p.n_layers, c.n_layers);
    EXPECT_EQ(p.d_model, c.d_model);
    expect_same_rope(p.rope, c.rope);
  }
  // The fixtures cover every supported architecture.
  for (const auto& a : supported_architectures())
    EXPECT_NE(std::find(seen_archs.begin(), seen_archs.end(), a), seen_archs.end()) << a;
}

TEST(ModelConfigFixtures, PackedModulesAreNotIgnoredAndCountMatchesManifest) {
  // Each module the INT4 checkpoints store packed must not be on their ignore list, and the
  // number of packed modules is the manifest's quantized_linears.
  const json manifest = json::parse(test::read_text(test::fixtures_dir() + "/manifest.json"));
  int n_quantized_fixtures = 0;
  for (const auto& f : test::manifest()) {
    const ModelConfig c = load_model_config(f.model_dir);
    if (c.quant.method == QuantMethod::None) continue;
    SCOPED_TRACE(f.name);
    n_quantized_fixtures++;
    TensorStore s = TensorStore::open(f.model_dir);
    const std::string suffix = ".weight_packed";
    int n_packed = 0;
    for (const auto& [name, t] : s.tensors()) {
      if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
        continue;
      n_packed++;
      EXPECT_FALSE(c.quant.is_ignored(name.substr(0, name.size() - suffix.size()))) << name;
    }
    EXPECT_EQ(n_packed, manifest.at(f.name).at("quantized_linears").get<int>());
  }
  EXPECT_GE(n_quantized_fixtures, 3);
}

// ---------------------------------------------------------------------------------------------
// Legacy rope keys

TEST(ModelConfigLegacyRope, EveryFixtureGivesTheSameRope) {
  for (const auto& f : test::manifest()) {
    SCOPED_TRACE(f.name);
    const json modern = json::parse(test::read_text(f.model_dir + "/config.json"));
    const json legacy = to_legacy_rope(modern);
    ASSERT_FALSE(legacy.contains("rope_parameters"));
    const ModelConfig a = parse_model_config(modern.dump(), "modern/config.json");
    ModelConfig b;
    ASSERT_NO_THROW(b = parse_model_config(legacy.dump(), "legacy/config.json")) << legacy.dump();
    expect_same_rope(b.rope, a.rope);
    EXPECT_EQ(b.head_dim, a.head_dim);
    EXPECT_EQ(b.max_position_embeddings, a.max_position_embeddings);

    // HF's later legacy spelling: "rope_type" instead of "type" inside rope_scaling.
    json legacy2 = legacy;
    if (legacy2["rope_scaling"].is_object()) {
      legacy2["rope_scaling"]["rope_type"] = legacy2["rope_scaling"]["type"];
      legacy2["rope_scaling"].erase("type");
    } else {
      legacy2.erase("rope_scaling");  // default rope: no rope_scaling key at all
    }
    expect_same_rope(parse_model_config(legacy2.dump(), "legacy2/config.json").rope, a.rope);
  }
}

TEST(ModelConfigLegacyRope, ExplicitDefaultTypeAndNoRopeKeys) {
  json c = fixture_config("qwen3");
  ASSERT_EQ(c["rope_parameters"]["rope_type"], "default");
  const RopeConfig want = parse_model_config(c.dump(), "x").rope;
  json legacy = to_legacy_rope(c);
  legacy["rope_scaling"] = {{"type", "default"}};
  expect_same_rope(parse_model_config(legacy.dump(), "x").rope, want);
  // Neither rope_parameters nor rope_theta: default rope with theta 10000.
  json none = c;
  none.erase("rope_parameters");
  const RopeConfig r = parse_model_config(none.dump(), "x").rope;
  EXPECT_EQ(r.type, RopeType::Default);
  EXPECT_EQ(r.theta, 10000.0);
}

TEST(ModelConfigLegacyRope, LegacyLinearScaling) {
  json c = fixture_config("llama");
  c.erase("rope_parameters");
  c["rope_theta"] = 12345.0;
  c["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  const RopeConfig r = parse_model_config(c.dump(), "x").rope;
  EXPECT_EQ(r.type, RopeType::Linear);
  EXPECT_EQ(r.theta, 12345.0);
  EXPECT_EQ(r.factor, 4.0);
}

// ---------------------------------------------------------------------------------------------
// Bad configs

TEST(ModelConfigErrors, NotJson) {
  expect_error([] { parse_model_config("{ \"architectures\": [", "broken/config.json"); },
               {"broken/config.json", "JSON"});
  expect_error([] { parse_model_config("", "broken/config.json"); }, {"broken/config.json", "JSON"});
  expect_error([] { parse_model_config("[\"LlamaForCausalLM\"]", "broken/config.json"); },
               {"broken/config.json", "object"});
  test::TempDir dir;
  test::write_text(dir.path + "/config.json", "{ not json");
  expect_error([&] { load_model_config(dir.path); }, {dir.path + "/config.json", "JSON"});
}

TEST(ModelConfigErrors, MissingConfigFile) {
  test::TempDir dir;
  expect_error([&] { load_model_config(dir.path); }, {dir.path + "/config.json"});
}

TEST(ModelConfigErrors, UnsupportedOrMissingArchitecture) {
  json c = fixture_config("llama");
  c["architectures"] = {"GPT2LMHeadModel"};
  std::vector<std::string> needles = {"GPT2LMHeadModel"};
  for (const auto& a : supported_architectures()) needles.push_back(a);
  ASSERT_GE(supported_architectures().size(), 6u);
  expect_config_error(c, needles);
  c.erase("architectures");
  expect_config_error(c, {"architectures"});
  c["architectures"] = json::array();
  expect_config_error(c, {"architectures"});
  c["architectures"] = "LlamaForCausalLM";  // a string, not a list
  expect_config_error(c, {"architectures"});
}

TEST(ModelConfigErrors, MissingRequiredFields) {
  for (const char* fixture : {"llama", "qwen3_moe", "kimi_k2", "minimax_m2"}) {
    SCOPED_TRACE(fixture);
    for (const char* field : {"hidden_size", "vocab_size", "num_hidden_layers", "num_attention_heads"}) {
      json c = fixture_config(fixture);
      c.erase(field);
      expect_config_error(c, {field});
      c[field] = nullptr;
      expect_config_error(c, {field});
    }
  }
  json c = fixture_config("llama");
  c.erase("intermediate_size");
  expect_config_error(c, {"intermediate_size"});
  c = fixture_config("kimi_k2");
  c.erase("kv_lora_rank");
  expect_config_error(c, {"kv_lora_rank"});
  c = fixture_config("qwen3_moe");
  c.erase("moe_intermediate_size");
  expect_config_error(c, {"moe_intermediate_size"});
  c = fixture_config("mixtral");
  c.erase("num_local_experts");
  expect_config_error(c, {"num_local_experts"});
  c = fixture_config("mixtral");
  c.erase("num_experts_per_tok");
  expect_config_error(c, {"num_experts_per_tok"});
}

TEST(ModelConfigErrors, BadNumHiddenLayers) {
  for (const json& v : {json(-1), json(0), json(2.5), json(3.0), json("3"), json(true), json::array({3}),
                        json(int64_t(1) << 40)}) {
    SCOPED_TRACE(v.dump());
    json c = fixture_config("llama");
    c["num_hidden_layers"] = v;
    expect_config_error(c, {"num_hidden_layers"});
  }
}

TEST(ModelConfigErrors, HeadsNotAMultipleOfKvHeads) {
  for (int kv : {3, 0, 8}) {
    SCOPED_TRACE(kv);
    json c = fixture_config("llama");
    ASSERT_EQ(c["num_attention_heads"].get<int>() % 8 == 0, false) << "the 8-kv-head case needs heads < 8";
    c["num_key_value_heads"] = kv;
    expect_config_error(c, {"num_attention_heads", "num_key_value_heads"});
  }
  json c = fixture_config("mixtral");
  c["num_key_value_heads"] = -2;
  expect_config_error(c, {"num_key_value_heads"});
}

TEST(ModelConfigErrors, BadHeadDimOrActivation) {
  json c = fixture_config("qwen3");
  c["head_dim"] = 31;
  expect_config_error(c, {"head_dim"});
  c = fixture_config("qwen3");
  c["hidden_act"] = "gelu_pytorch_tanh";
  expect_config_error(c, {"hidden_act", "gelu_pytorch_tanh", "silu"});
}

TEST(ModelConfigErrors, UnsupportedRope) {
  for (const char* fixture : {"llama", "kimi_k2"}) {
    SCOPED_TRACE(fixture);
    json c = fixture_config(fixture);
    for (const char* type : {"longrope", "dynamic", "su"}) {
      c["rope_parameters"]["rope_type"] = type;
      expect_config_error(c, {type, "default", "linear", "llama3", "yarn"});
      json legacy = to_legacy_rope(fixture_config(fixture));
      legacy["rope_scaling"]["type"] = type;
      expect_config_error(legacy, {type, "yarn"});
    }
    c["rope_parameters"]["rope_type"] = 3;
    expect_config_error(c, {"rope_type"});
  }
  json c = fixture_config("llama");
  c["rope_parameters"].erase("factor");
  expect_config_error(c, {"llama3", "factor"});
  c = fixture_config("llama");
  c["rope_parameters"]["high_freq_factor"] = c["rope_parameters"]["low_freq_factor"];
  expect_config_error(c, {"high_freq_factor"});
  c = fixture_config("kimi_k2");
  c["rope_parameters"].erase("factor");
  expect_config_error(c, {"yarn", "factor"});
  c = fixture_config("qwen3");
  c["rope_parameters"]["rope_theta"] = -1.0;
  expect_config_error(c, {"rope_theta"});
  c = fixture_config("qwen3");
  c["rope_parameters"]["rope_theta"] = "10000";
  expect_config_error(c, {"rope_theta"});
  c = to_legacy_rope(fixture_config("llama"));
  c["rope_scaling"] = "llama3";
  expect_config_error(c, {"rope_scaling"});
}

TEST(ModelConfigErrors, UnsupportedQuantizationConfig) {
  const json base = fixture_config("llama_int4");
  ASSERT_TRUE(base.contains("quantization_config"));
  ASSERT_NO_THROW(parse_model_config(base.dump(), "ok/config.json"));
  auto weights = [](json& c) -> json& { return c["quantization_config"]["config_groups"].begin().value()["weights"]; };

  json c = base;
  c["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 128}, {"desc_act", false}};
  expect_config_error(c, {"quantization_config", "gptq"});
  c = base;
  c["quantization_config"]["quant_method"] = "awq";
  expect_config_error(c, {"quantization_config", "awq"});
  c = base;
  c["quantization_config"]["format"] = "float-quantized";
  expect_config_error(c, {"quantization_config", "float-quantized"});
  c = base;
  weights(c)["num_bits"] = 8;
  expect_config_error(c, {"quantization_config", "num_bits 4"});
  c = base;
  weights(c)["group_size"] = 128;
  expect_config_error(c, {"quantization_config", "group_size 32"});
  c = base;
  weights(c)["symmetric"] = false;
  expect_config_error(c, {"quantization_config", "symmetric"});
  c = base;
  weights(c)["strategy"] = "channel";
  expect_config_error(c, {"quantization_config", "strategy"});
  c = base;
  weights(c)["type"] = "float";
  expect_config_error(c, {"quantization_config", "type int"});
  c = base;
  weights(c)["actorder"] = "group";
  expect_config_error(c, {"quantization_config", "actorder"});
  c = base;
  weights(c)["dynamic"] = true;
  expect_config_error(c, {"quantization_config", "static"});
  c = base;
  c["quantization_config"]["config_groups"].begin().value()["input_activations"] = {
      {"num_bits", 8}, {"type", "int"}, {"symmetric", true}, {"strategy", "token"}, {"dynamic", true}};
  expect_config_error(c, {"quantization_config", "activation"});
  c = base;
  c["quantization_config"].erase("config_groups");
  expect_config_error(c, {"config_groups"});
  c = base;
  c["quantization_config"] = "int4";
  expect_config_error(c, {"quantization_config"});
}

TEST(ModelConfigErrors, BadIgnoreList) {
  const json base = fixture_config("kimi_k2_int4");
  for (const char* re : {"re:([", "re:*experts", "re:.*(?<=attn)", "re:a{2,1}"}) {
    SCOPED_TRACE(re);
    json c = base;
    c["quantization_config"]["ignore"].push_back(re);
    expect_config_error(c, {"ignore", "regex"});
  }
  json c = base;
  c["quantization_config"]["ignore"] = "lm_head";
  expect_config_error(c, {"ignore"});
  c = base;
  c["quantization_config"]["ignore"] = {"lm_head", 7};
  expect_config_error(c, {"ignore"});
}

TEST(ModelConfigErrors, BadMoeAndMlaFields) {
  json c = fixture_config("deepseek_v3");
  c["n_group"] = 3;  // does not divide the routed experts
  expect_config_error(c, {"n_group"});
  c = fixture_config("deepseek_v3");
  c["topk_group"] = c["n_group"].get<int>() + 1;
  expect_config_error(c, {"topk_group"});
  c = fixture_config("kimi_k2");
  c["num_experts_per_tok"] = c["n_routed_experts"].get<int>() + 1;
  expect_config_error(c, {"num_experts_per_tok"});
  c = fixture_config("mixtral");
  c["num_experts_per_tok"] = c["num_local_experts"].get<int>() + 1;
  expect_config_error(c, {"num_experts_per_tok"});
  c = fixture_config("kimi_k2");
  c["qk_rope_head_dim"] = 15;
  expect_config_error(c, {"qk_rope_head_dim"});
  c = fixture_config("kimi_k2");
  c["scoring_func"] = "softmax";
  expect_config_error(c, {"scoring_func", "softmax"});
  c = fixture_config("kimi_k2");
  c["topk_method"] = "greedy";
  expect_config_error(c, {"topk_method", "greedy"});
  c = fixture_config("minimax_m2");
  c["scoring_func"] = "softmax";
  expect_config_error(c, {"scoring_func"});
  c = fixture_config("qwen3_moe");
  c["decoder_sparse_step"] = 0;
  expect_config_error(c, {"decoder_sparse_step"});
  c = fixture_config("qwen3_moe");
  c["mlp_only_layers"] = {"0"};
  expect_config_error(c, {"mlp_only_layers"});
}

TEST(ModelConfigErrors, SizesBeyondTheLimitsNameTheField) {
  // Each value is a valid int; each is far beyond any real model. A corrupt value must be an
  // Error naming the field, not a huge allocation or an int overflow later (n_heads * head_dim...).
  struct Case {
    const char* fixture;
    const char* field;
    int64_t limit;  // largest accepted value
  };
  using L = ConfigLimits;
  const std::vector<Case> cases = {
      {"llama", "vocab_size", L::kVocab},
      {"llama", "hidden_size", L::kDim},
      {"llama", "num_hidden_layers", L::kLayers},
      {"llama", "num_attention_heads", L::kHeads},
      {"llama", "head_dim", L::kHeadDim},
      {"llama", "intermediate_size", L::kFfn},
      {"mixtral", "num_local_experts", L::kExperts},
      {"mixtral", "intermediate_size", L::kFfn},
      {"qwen3_moe", "moe_intermediate_size", L::kFfn},
      {"kimi_k2", "n_routed_experts", L::kExperts},
      {"kimi_k2", "moe_intermediate_size", L::kFfn},
      {"kimi_k2", "n_shared_experts", L::kExperts},
      {"kimi_k2", "q_lora_rank", L::kDim},
      {"kimi_k2", "kv_lora_rank", L::kDim},
      {"kimi_k2", "qk_nope_head_dim", L::kHeadDim},
      {"kimi_k2", "qk_rope_head_dim", L::kHeadDim},
      {"kimi_k2", "v_head_dim", L::kHeadDim},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(std::string(k.fixture) + " " + k.field);
    for (int64_t v : {k.limit + 2, int64_t(INT_MAX), int64_t(1) << 40}) {
      json c = fixture_config(k.fixture);
      ASSERT_TRUE(c.contains(k.field));
      c[k.field] = v;
      expect_config_error(c, {std::string("'") + k.field + "'", std::to_string(v), "out of range"});
    }
  }
  // The limits themselves parse (the checkpoint then disagrees, which is the loader's business).
  json c = fixture_config("llama");
  c["num_hidden_layers"] = L::kLayers;
  c["vocab_size"] = L::kVocab;
  c["num_attention_heads"] = L::kHeads;
  c["num_key_value_heads"] = L::kHeads;
  c["head_dim"] = L::kHeadDim;
  const ModelConfig m = parse_model_config(c.dump(), "ok/config.json");
  EXPECT_EQ(m.n_layers, L::kLayers);
  EXPECT_EQ(int64_t(m.n_heads) * m.head_dim, int64_t(L::kHeads) * L::kHeadDim);
  // A head_dim derived from hidden_size / num_attention_heads is bounded as well.
  c = fixture_config("llama");
  c.erase("head_dim");
  c["hidden_size"] = L::kDim;
  c["num_attention_heads"] = 1;
  c["num_key_value_heads"] = 1;
  expect_config_error(c, {"head_dim", std::to_string(L::kDim)});
}

TEST(ModelConfigErrors, SharedExpertWidthBeyondTheLimit) {
  // moe_intermediate_size and n_shared_experts each in range, their product (one fused FFN) not.
  json c = fixture_config("kimi_k2");
  c["moe_intermediate_size"] = 1 << 16;
  c["n_shared_experts"] = 32;
  expect_config_error(c, {"moe_intermediate_size * n_shared_experts", std::to_string(int64_t(1) << 21)});
  c["n_shared_experts"] = 16;  // exactly the limit
  EXPECT_EQ(parse_model_config(c.dump(), "ok/config.json").n_shared_experts, 16);
}

TEST(ModelConfigErrors, WrongJsonTypesAreErrorsNamingTheField) {
  // String-valued fields holding other JSON types: an Error naming the field, not a
  // nlohmann::json exception escaping the parser.
  struct Case {
    const char* fixture;
    const char* field;
    json value;
  };
  const std::vector<Case> cases = {
      {"llama", "model_type", 7},          {"llama", "hidden_act", json::array({"silu"})},
      {"kimi_k2", "scoring_func", 1},      {"kimi_k2", "topk_method", false},
      {"minimax_m2", "scoring_func", 2.5},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(std::string(k.fixture) + " " + k.field);
    json c = fixture_config(k.fixture);
    c[k.field] = k.value;
    expect_config_error(c, {k.field});
  }
  const json base = fixture_config("llama_int4");
  auto weights = [](json& c) -> json& { return c["quantization_config"]["config_groups"].begin().value()["weights"]; };
  for (const char* field : {"num_bits", "group_size", "symmetric", "type", "strategy", "dynamic"}) {
    SCOPED_TRACE(field);
    json c = base;
    weights(c)[field] = json::object({{"nested", true}});
    expect_config_error(c, {"quantization_config", "weights"});
  }
  json c = base;
  c["quantization_config"]["quant_method"] = 4;
  expect_config_error(c, {"quantization_config", "quant_method"});
  c = base;
  c["quantization_config"]["format"] = json::array();
  expect_config_error(c, {"quantization_config", "format"});
}

TEST(ModelConfigErrors, NumbersBeyondFloatAndOutOfRangeTokenIds) {
  for (const char* field : {"rms_norm_eps", "routed_scaling_factor"}) {
    SCOPED_TRACE(field);
    json c = fixture_config("kimi_k2");
    c[field] = 1e39;  // a finite double, not a float
    expect_config_error(c, {field, "finite"});
  }
  json c = fixture_config("llama");
  c["rope_parameters"]["factor"] = -3e38 * 10;
  expect_config_error(c, {"factor"});
  for (double eps : {0.0, -1e-6, 1.0}) {
    c = fixture_config("qwen3");
    c["rms_norm_eps"] = eps;
    expect_config_error(c, {"rms_norm_eps"});
  }
  for (const json& eos : {json(int64_t(1) << 40), json::array({2, int64_t(1) << 33}), json(uint64_t(1) << 63)}) {
    SCOPED_TRACE(eos.dump());
    c = fixture_config("llama");
    c["eos_token_id"] = eos;
    expect_config_error(c, {"eos_token_id"});
  }
  c = fixture_config("qwen3_moe");
  c["mlp_only_layers"] = {1, int64_t(1) << 32};
  expect_config_error(c, {"mlp_only_layers"});
  c["mlp_only_layers"] = {-1};
  expect_config_error(c, {"mlp_only_layers"});
}

TEST(ModelConfigErrors, PartialRotaryWithMla) {
  // MLA ropes all qk_rope_head_dim dims; a partial factor would shrink the rope table under them.
  json c = fixture_config("kimi_k2");
  c["partial_rotary_factor"] = 0.5;
  expect_config_error(c, {"partial_rotary_factor"});
  c = fixture_config("deepseek_v3");
  c["rope_parameters"]["partial_rotary_factor"] = 0.25;
  expect_config_error(c, {"partial_rotary_factor"});
}

TEST(ModelConfigErrors, ConfigJsonThatIsNotARegularFile) {
  test::TempDir dir;
  std::filesystem::create_directories(dir.path + "/config.json");  // a directory
  expect_error([&] { load_model_config(dir.path); }, {dir.path + "/config.json", "directory"});
  // The model "directory" is a file.
  test::write_text(dir.path + "/file", "{}");
  expect_error([&] { load_model_config(dir.path + "/file"); }, {dir.path + "/file", "not a directory"});
  expect_error([&] { load_model_config(dir.path + "/missing"); }, {dir.path + "/missing"});
}

}  // namespace
}  // namespace strata
