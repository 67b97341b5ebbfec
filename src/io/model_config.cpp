// config.json parsing for the supported architectures, both rope key styles
// (`rope_parameters`, and legacy top-level `rope_theta` + `rope_scaling` with `type`).
#include "io/model_config.h"

#include <algorithm>
#include <cfloat>
#include <climits>
#include <cmath>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/error.h"
#include "core/file.h"

namespace strata {

using json = nlohmann::json;
using L = ConfigLimits;

// config.json is a few KB; anything this large is not one.
constexpr size_t kMaxConfigBytes = 64u << 20;

const std::vector<std::string>& supported_architectures() {
  static const std::vector<std::string> k = {"LlamaForCausalLM",     "Qwen3ForCausalLM",
                                             "Qwen3MoeForCausalLM",  "MixtralForCausalLM",
                                             "DeepseekV3ForCausalLM", "MiniMaxM2ForCausalLM"};
  return k;
}

bool ModelConfig::is_moe_layer(int il) const {
  if (n_experts == 0) return false;
  if (architecture == "DeepseekV3ForCausalLM") return il >= first_k_dense_replace;
  if (architecture == "Qwen3MoeForCausalLM") {
    if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), il) != mlp_only_layers.end()) return false;
    return (il + 1) % decoder_sparse_step == 0;
  }
  return true;
}

namespace {

// Field readers that name the field and the file in their errors.
struct Reader {
  const json& j;
  std::string src;

  bool has(const char* k) const { return j.contains(k) && !j[k].is_null(); }
  int get_int(const char* k) const {
    STRATA_CHECK(has(k), src + ": missing required field '" + k + "'");
    STRATA_CHECK(j[k].is_number_integer(), src + ": field '" + k + "' must be an integer");
    int64_t v = j[k].get<int64_t>();
    STRATA_CHECK(v >= 0 && v < (int64_t(1) << 31), src + ": field '" + k + "' out of range");
    return int(v);
  }
  int get_int(const char* k, int def) const { return has(k) ? get_int(k) : def; }
  int get_positive(const char* k) const {
    int v = get_int(k);
    STRATA_CHECK(v > 0, src + ": field '" + k + "' must be positive");
    return v;
  }
  // Required integer in [lo, hi]; the message names the field, its value and the range.
  int get_in(const char* k, int lo, int hi) const {
    STRATA_CHECK(has(k), src + ": missing required field '" + k + "'");
    STRATA_CHECK(j[k].is_number_integer(), src + ": field '" + k + "' must be an integer");
    const int64_t v = j[k].get<int64_t>();  // an unsigned above INT64_MAX reads negative: rejected too
    STRATA_CHECK(v >= lo && v <= hi, src + ": field '" + k + "' = " + j[k].dump() + " is out of range [" +
                                         std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return int(v);
  }
  int get_in(const char* k, int lo, int hi, int def) const { return has(k) ? get_in(k, lo, hi) : def; }
  // A finite number whose magnitude fits a float (the engine computes in f32).
  double get_num(const char* k, double def) const {
    if (!has(k)) return def;
    STRATA_CHECK(j[k].is_number(), src + ": field '" + k + "' must be a number");
    const double v = j[k].get<double>();
    STRATA_CHECK(std::isfinite(v) && std::fabs(v) <= FLT_MAX,
                 src + ": field '" + k + "' = " + j[k].dump() + " is not a finite float");
    return v;
  }
  std::string get_str(const char* k, const std::string& def) const {
    if (!has(k)) return def;
    STRATA_CHECK(j[k].is_string(), src + ": field '" + k + "' must be a string");
    return j[k].get<std::string>();
  }
  bool get_bool(const char* k, bool def) const {
    if (!has(k)) return def;
    STRATA_CHECK(j[k].is_boolean(), src + ": field '" + k + "' must be true or false");
    return j[k].get<bool>();
  }
};

void parse_rope(const json& root, const std::string& src, ModelConfig& c) {
  // Modern: rope_parameters {rope_type, rope_theta, ...}. Legacy: rope_theta at top level and
  // rope_scaling {type|rope_type, factor, ...} or null.
  json params = json::object();
  if (root.contains("rope_parameters") && root["rope_parameters"].is_object()) {
    params = root["rope_parameters"];
  } else {
    if (root.contains("rope_scaling") && !root["rope_scaling"].is_null()) {
      STRATA_CHECK(root["rope_scaling"].is_object(), src + ": 'rope_scaling' must be an object or null");
      params = root["rope_scaling"];
    }
    if (root.contains("rope_theta")) params["rope_theta"] = root["rope_theta"];
  }
  if (!params.contains("partial_rotary_factor") && root.contains("partial_rotary_factor"))
    params["partial_rotary_factor"] = root["partial_rotary_factor"];
  Reader r{params, src + ": rope"};
  std::string type = "default";
  for (const char* k : {"rope_type", "type"})
    if (r.has(k)) {
      STRATA_CHECK(params[k].is_string(), src + ": rope '" + k + "' must be a string");
      type = params[k].get<std::string>();
      break;
    }
  RopeConfig& rc = c.rope;
  rc.theta = r.get_num("rope_theta", 10000.0);
  STRATA_CHECK(rc.theta > 0, src + ": rope_theta must be positive");
  rc.partial_rotary_factor = r.get_num("partial_rotary_factor", 1.0);
  rc.factor = r.get_num("factor", 1.0);
  rc.original_max_position_embeddings = r.get_num("original_max_position_embeddings", 0);
  if (type == "default") {
    rc.type = RopeType::Default;
  } else if (type == "linear") {
    rc.type = RopeType::Linear;
  } else if (type == "llama3") {
    rc.type = RopeType::Llama3;
    for (const char* k : {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"})
      STRATA_CHECK(r.has(k), src + ": llama3 rope needs '" + std::string(k) + "'");
    rc.low_freq_factor = r.get_num("low_freq_factor", 1.0);
    rc.high_freq_factor = r.get_num("high_freq_factor", 4.0);
    STRATA_CHECK(rc.high_freq_factor != rc.low_freq_factor, src + ": llama3 rope needs high_freq_factor != low_freq_factor");
  } else if (type == "yarn") {
    rc.type = RopeType::Yarn;
    STRATA_CHECK(r.has("factor"), src + ": yarn rope needs 'factor'");
    rc.beta_fast = r.get_num("beta_fast", 0);
    if (rc.beta_fast == 0) rc.beta_fast = 32;  // HF: `get("beta_fast") or 32`
    rc.beta_slow = r.get_num("beta_slow", 0);
    if (rc.beta_slow == 0) rc.beta_slow = 1;
    rc.mscale = r.get_num("mscale", 0);
    rc.mscale_all_dim = r.get_num("mscale_all_dim", 0);
    rc.attention_factor = r.get_num("attention_factor", 0);
    rc.truncate = r.get_bool("truncate", true);
  } else {
    throw Error(src + ": unsupported rope type '" + type + "' (supported: default, linear, llama3, yarn)");
  }
  STRATA_CHECK(rc.factor > 0, src + ": rope factor must be positive");
  STRATA_CHECK(rc.partial_rotary_factor > 0 && rc.partial_rotary_factor <= 1,
               src + ": partial_rotary_factor must be in (0, 1]");
}

void parse_quant(const json& root, const std::string& src, ModelConfig& c) {
  if (!root.contains("quantization_config") || root["quantization_config"].is_null()) return;
  const json& q = root["quantization_config"];
  const std::string where = src + ": quantization_config";
  STRATA_CHECK(q.is_object(), where + " must be an object");
  const Reader qr{q, where};
  std::string method = qr.get_str("quant_method", "?");
  std::string format = qr.get_str("format", "?");
  STRATA_CHECK(method == "compressed-tensors" && format == "pack-quantized",
               where + ": quant_method '" + method + "' format '" + format +
                   "' is not supported (supported: compressed-tensors pack-quantized int4, group 32, symmetric)");
  STRATA_CHECK(q.contains("config_groups") && q["config_groups"].is_object() && !q["config_groups"].empty(),
               where + ": missing config_groups");
  for (auto it = q["config_groups"].begin(); it != q["config_groups"].end(); ++it) {
    const std::string g = where + ".config_groups." + it.key();
    STRATA_CHECK(it.value().is_object() && it.value().contains("weights") && it.value()["weights"].is_object(),
                 g + ": missing 'weights'");
    const json& w = it.value()["weights"];
    bool ok;
    try {
      ok = w.value("num_bits", 0) == 4 && w.value("type", std::string()) == "int" && w.value("symmetric", false) &&
           w.value("strategy", std::string()) == "group" && w.value("group_size", 0) == kInt4GroupSize &&
           (!w.contains("actorder") || w["actorder"].is_null()) && !w.value("dynamic", false);
    } catch (const json::exception& e) {  // a field of the wrong JSON type
      throw Error(g + ".weights: " + e.what());
    }
    STRATA_CHECK(ok, g + ": weights scheme not supported (supported: num_bits 4, type int, symmetric, strategy "
                         "group, group_size 32, no actorder, static)");
    if (it.value().contains("input_activations"))
      STRATA_CHECK(it.value()["input_activations"].is_null(),
                   g + ": activation quantization is not supported (W4A16 only)");
  }
  c.quant.method = QuantMethod::CompressedTensorsInt4;
  c.quant.group_size = kInt4GroupSize;
  if (q.contains("ignore") && !q["ignore"].is_null()) {
    STRATA_CHECK(q["ignore"].is_array(), where + ".ignore must be a list");
    for (const json& s : q["ignore"]) {
      STRATA_CHECK(s.is_string(), where + ".ignore entries must be strings");
      c.quant.ignore.push_back(s.get<std::string>());
    }
  }
  try {
    (void)c.quant.is_ignored("");  // compiles the regexes now, so a bad one fails at load
  } catch (const std::regex_error& e) {
    throw Error(where + ".ignore: invalid regex: " + e.what());
  }
}

// The fields of a parsed config.json object; parse_model_config turns stray json exceptions into Errors.
ModelConfig parse_root(const json& root, const std::string& src) {
  Reader r{root, src};
  ModelConfig c;
  STRATA_CHECK(r.has("architectures") && root["architectures"].is_array() && !root["architectures"].empty() &&
                   root["architectures"][0].is_string(),
               src + ": missing 'architectures'");
  c.architecture = root["architectures"][0].get<std::string>();
  const auto& sup = supported_architectures();
  if (std::find(sup.begin(), sup.end(), c.architecture) == sup.end()) {
    std::string list;
    for (const auto& a : sup) list += (list.empty() ? "" : ", ") + a;
    throw Error(src + ": unsupported architecture '" + c.architecture + "' (supported: " + list + ")");
  }
  c.model_type = r.get_str("model_type", "");
  const bool deepseek = c.architecture == "DeepseekV3ForCausalLM";

  c.n_vocab = r.get_in("vocab_size", 1, L::kVocab);
  c.d_model = r.get_in("hidden_size", 1, L::kDim);
  c.n_layers = r.get_in("num_hidden_layers", 1, L::kLayers);
  c.n_heads = r.get_in("num_attention_heads", 1, L::kHeads);
  c.n_kv_heads = r.get_int("num_key_value_heads", c.n_heads);
  STRATA_CHECK(c.n_kv_heads > 0 && c.n_heads % c.n_kv_heads == 0,
               src + ": num_attention_heads (" + std::to_string(c.n_heads) +
                   ") must be a multiple of num_key_value_heads (" + std::to_string(c.n_kv_heads) + ")");
  c.head_dim = r.get_in("head_dim", 0, L::kHeadDim, c.d_model / c.n_heads);
  c.d_ffn = r.get_in("intermediate_size", 0, L::kFfn, 0);
  c.max_position_embeddings = r.get_in("max_position_embeddings", 1, INT_MAX, 4096);
  c.rms_norm_eps = r.get_num("rms_norm_eps", 1e-6);
  STRATA_CHECK(c.rms_norm_eps > 0 && c.rms_norm_eps < 1, src + ": rms_norm_eps must be in (0, 1)");
  c.tie_word_embeddings = r.get_bool("tie_word_embeddings", false);
  c.attention_bias = r.get_bool("attention_bias", false);
  c.mlp_bias = r.get_bool("mlp_bias", false);
  std::string act = r.get_str("hidden_act", "silu");
  STRATA_CHECK(act == "silu", src + ": hidden_act '" + act + "' not supported (supported: silu)");
  parse_rope(root, src, c);
  if (root.contains("rotary_dim") && !deepseek) {  // MiniMax-M2 spells partial rotary this way
    int rd = r.get_positive("rotary_dim");
    STRATA_CHECK(rd <= c.head_dim && rd % 2 == 0, src + ": rotary_dim must be even and <= head_dim");
    c.rope.partial_rotary_factor = double(rd) / c.head_dim;
  }

  if (c.architecture == "Qwen3MoeForCausalLM" || c.architecture == "MixtralForCausalLM" ||
      c.architecture == "MiniMaxM2ForCausalLM") {
    c.n_experts = r.has("num_experts") ? r.get_in("num_experts", 1, L::kExperts)
                                       : r.get_in("num_local_experts", 1, L::kExperts);
    c.n_experts_per_tok = r.get_positive("num_experts_per_tok");
    c.d_expert = c.architecture == "Qwen3MoeForCausalLM" ? r.get_in("moe_intermediate_size", 1, L::kFfn)
                                                         : r.get_in("intermediate_size", 1, L::kFfn);
    c.norm_topk_prob = c.architecture == "Qwen3MoeForCausalLM" ? r.get_bool("norm_topk_prob", false) : true;
    c.scoring = c.architecture == "MiniMaxM2ForCausalLM" ? RouterScoring::Sigmoid : RouterScoring::Softmax;
    if (c.architecture == "MiniMaxM2ForCausalLM") {
      std::string sf = r.get_str("scoring_func", "sigmoid");
      STRATA_CHECK(sf == "sigmoid", src + ": MiniMax-M2 scoring_func '" + sf + "' not supported (sigmoid)");
    }
    c.decoder_sparse_step = r.get_int("decoder_sparse_step", 1);
    STRATA_CHECK(c.decoder_sparse_step > 0, src + ": decoder_sparse_step must be positive");
    if (r.has("mlp_only_layers")) {
      STRATA_CHECK(root["mlp_only_layers"].is_array(), src + ": mlp_only_layers must be a list");
      for (const json& v : root["mlp_only_layers"]) {
        STRATA_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() <= INT_MAX,
                     src + ": mlp_only_layers entries must be non-negative integers (layer indices), not " + v.dump());
        c.mlp_only_layers.push_back(v.get<int>());
      }
    }
  }
  if (deepseek) {
    c.n_experts = r.get_in("n_routed_experts", 1, L::kExperts);
    c.n_experts_per_tok = r.get_positive("num_experts_per_tok");
    c.d_expert = r.get_in("moe_intermediate_size", 1, L::kFfn);
    c.n_shared_experts = r.get_in("n_shared_experts", 0, L::kExperts, 0);
    STRATA_CHECK(int64_t(c.d_expert) * c.n_shared_experts <= L::kFfn,
                 src + ": moe_intermediate_size * n_shared_experts = " +
                     std::to_string(int64_t(c.d_expert) * c.n_shared_experts) + " (the shared FFN width) exceeds " +
                     std::to_string(L::kFfn));
    c.norm_topk_prob = r.get_bool("norm_topk_prob", true);
    c.routed_scaling_factor = r.get_num("routed_scaling_factor", 1.0);
    c.n_group = r.get_in("n_group", 0, L::kExperts, 1);
    c.topk_group = r.get_in("topk_group", 0, L::kExperts, 1);
    if (c.n_group == 0) c.n_group = 1;
    if (c.topk_group == 0) c.topk_group = c.n_group;
    STRATA_CHECK(c.n_experts % c.n_group == 0 && c.topk_group <= c.n_group && c.n_experts / c.n_group >= 2,
                 src + ": n_group must divide n_routed_experts (>= 2 per group) and topk_group <= n_group");
    STRATA_CHECK(c.n_experts_per_tok <= c.topk_group * (c.n_experts / c.n_group),
                 src + ": num_experts_per_tok exceeds the experts in the selected groups");
    std::string sf = r.get_str("scoring_func", "sigmoid");
    STRATA_CHECK(sf == "sigmoid", src + ": DeepSeek scoring_func '" + sf + "' not supported (sigmoid)");
    std::string tm = r.get_str("topk_method", "noaux_tc");
    STRATA_CHECK(tm == "noaux_tc", src + ": topk_method '" + tm + "' not supported (noaux_tc)");
    c.scoring = RouterScoring::Sigmoid;
    c.first_k_dense_replace = r.get_int("first_k_dense_replace", 0);
    c.q_lora_rank = r.get_in("q_lora_rank", 0, L::kDim, 0);
    c.kv_lora_rank = r.get_in("kv_lora_rank", 1, L::kDim);
    c.qk_nope_head_dim = r.get_in("qk_nope_head_dim", 1, L::kHeadDim);
    c.qk_rope_head_dim = r.get_in("qk_rope_head_dim", 1, L::kHeadDim);
    c.v_head_dim = r.get_in("v_head_dim", 1, L::kHeadDim);
    STRATA_CHECK(c.qk_rope_head_dim % 2 == 0, src + ": qk_rope_head_dim must be even");
    c.rope_interleave = r.get_bool("rope_interleave", true);
    c.head_dim = c.qk_rope_head_dim;  // HF: the rotary embedding's dim is the rope part
    // MLA ropes all qk_rope_head_dim dims of k_pe and q_pe; a partial factor would leave the rope
    // table shorter than the rows roped with it.
    STRATA_CHECK(c.rope.partial_rotary_factor == 1.0,
                 src + ": partial_rotary_factor is not supported for DeepseekV3ForCausalLM (MLA ropes all "
                       "qk_rope_head_dim dims)");
  }
  if (c.n_experts > 0)
    STRATA_CHECK(c.n_experts_per_tok <= c.n_experts, src + ": num_experts_per_tok exceeds the number of experts");
  if (!deepseek) {
    STRATA_CHECK(c.head_dim > 0 && c.head_dim % 2 == 0 && c.head_dim <= L::kHeadDim,
                 src + ": head_dim (" + std::to_string(c.head_dim) + ") must be positive, even and at most " +
                     std::to_string(L::kHeadDim));
    if (c.n_experts == 0 || c.architecture == "Qwen3MoeForCausalLM")
      STRATA_CHECK(c.d_ffn > 0 || c.n_experts > 0, src + ": missing required field 'intermediate_size'");
  } else {
    STRATA_CHECK(c.first_k_dense_replace == 0 || c.d_ffn > 0, src + ": missing required field 'intermediate_size'");
  }

  c.bos_token_id = r.get_int("bos_token_id", -1);
  auto token_id = [&](const json& v) {
    const bool fits = v.is_number_unsigned() ? v.get<uint64_t>() <= uint64_t(INT_MAX)
                                             : v.get<int64_t>() >= INT_MIN && v.get<int64_t>() <= INT_MAX;
    STRATA_CHECK(fits, src + ": eos_token_id " + v.dump() + " is out of range");
    return int(v.get<int64_t>());
  };
  if (r.has("eos_token_id")) {
    const json& e = root["eos_token_id"];
    if (e.is_array()) {
      for (const json& v : e)
        if (v.is_number_integer()) c.eos_token_ids.push_back(token_id(v));
    } else if (e.is_number_integer()) {
      c.eos_token_ids.push_back(token_id(e));
    }
  }
  parse_quant(root, src, c);
  return c;
}

}  // namespace

ModelConfig parse_model_config(const std::string& text, const std::string& src) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(src + ": not valid JSON: " + e.what());
  }
  STRATA_CHECK(root.is_object(), src + ": not a JSON object");
  try {
    return parse_root(root, src);
  } catch (const json::exception& e) {
    // Backstop: every field is type-checked before use, so this is a reader bug, but a corrupt
    // config must still give an Error naming the file.
    throw Error(src + ": malformed config: " + e.what());
  }
}

ModelConfig load_model_config(const std::string& dir) {
  require_directory(dir);
  const std::string path = dir + "/config.json";
  return parse_model_config(read_regular_file(path, kMaxConfigBytes), path);
}

}  // namespace strata
