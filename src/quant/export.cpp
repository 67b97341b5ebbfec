// GGUF / compressed-tensors -> dense HF checkpoints (quant/export.h), streamed a tensor at a time.
#include "quant/export.h"

#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/file.h"
#include "core/weight.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "quant/checkpoint_writer.h"
#include "quant/int4_quantize.h"

namespace strata {

namespace {

// f32 values -> bytes of `dtype` (F32 or BF16).
std::vector<uint8_t> encode(const float* v, size_t n, DType dtype) {
  std::vector<uint8_t> out(n * dtype_size(dtype));
  if (dtype == DType::F32) {
    std::memcpy(out.data(), v, n * 4);
  } else {
    STRATA_CHECK(dtype == DType::BF16, "export: dtype must be bf16 or f32");
    for (size_t i = 0; i < n; i++) {
      const uint16_t h = f32_to_bf16(v[i]);
      std::memcpy(&out[i * 2], &h, 2);
    }
  }
  return out;
}

std::string read_text(const std::string& path) { return read_regular_file(path); }

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  f.close();
  STRATA_CHECK(f.good(), "write error on " + path);
}

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

}  // namespace

void ct_dequantize(const uint32_t* packed, const uint16_t* scales, const uint32_t* zeros, int N, int K, int gs,
                   float* out) {
  const int G = K / gs;
  for (int n = 0; n < N; n++)
    for (int k = 0; k < K; k++) {
      const int z = zeros ? int4_zero_at(zeros, G, n, k / gs) : 0;
      const int q = int((packed[size_t(n) * (K / 8) + k / 8] >> ((k % 8) * 4)) & 0xF) - 8;
      out[size_t(n) * K + k] = float(q - z) * bf16_to_f32(scales[size_t(n) * G + k / gs]);
    }
}

void export_gguf_to_hf(const std::string& gguf_path, const std::string& out_dir, DType dtype) {
  auto model = Model::load(gguf_path);
  const ModelConfig& c = model->config();
  STRATA_CHECK(c.model_type == "llama" && !c.is_moe_layer(0), gguf_path + ": only Llama GGUF checkpoints export");
  STRATA_CHECK(c.rope.type == RopeType::Default && c.rope.freq_factors.empty() && c.rope.partial_rotary_factor == 1.0,
               gguf_path + ": rope scaling is not exported yet (only plain rope)");
  const ModelWeights& w = model->weights();
  const int D = c.d_model, hd = c.head_dim;

  // Tensors by HF name, each produced on demand so only one is decoded at a time.
  struct Out {
    std::string name;
    std::vector<int64_t> shape;
    std::function<std::vector<float>()> make;
  };
  std::vector<Out> outs;
  auto dense = [](const LinearWeight* lw, int n_heads) {  // n_heads > 0: undo the rope permutation
    return [lw, n_heads]() {
      const int N = lw->n_out, K = lw->n_in;
      std::vector<float> m(size_t(N) * K), row(static_cast<size_t>(K));
      const int hd = n_heads > 0 ? N / n_heads : 0;
      for (int r = 0; r < N; r++) {
        decode_weight_row(*lw, r, row.data());
        int dst = r;
        if (n_heads > 0) {  // GGUF row h*hd + 2i + half holds HF row h*hd + half*hd/2 + i
          const int h = r / hd, j = r % hd, i = j / 2, half = j % 2;
          dst = h * hd + half * (hd / 2) + i;
        }
        std::memcpy(&m[size_t(dst) * K], row.data(), size_t(K) * 4);
      }
      return m;
    };
  };
  auto vec = [](const std::vector<float>* v) { return [v]() { return *v; }; };
  auto lin = [&](const std::string& name, const LinearWeight& lw, int n_heads = 0) {
    outs.push_back({name, {lw.n_out, lw.n_in}, dense(&lw, n_heads)});
  };
  lin("model.embed_tokens.weight", w.embed);
  for (int il = 0; il < c.n_layers; il++) {
    const LayerWeights& L = w.layers[size_t(il)];
    const std::string p = "model.layers." + std::to_string(il) + ".";
    STRATA_CHECK(!L.is_mla && !L.is_moe && L.gqa.q_norm.empty() && L.gqa.q.bias.empty(),
                 gguf_path + ": layer " + std::to_string(il) + " is not a plain Llama layer");
    outs.push_back({p + "input_layernorm.weight", {D}, vec(&L.attn_norm)});
    lin(p + "self_attn.q_proj.weight", L.gqa.q, c.gqa_rope_pairs ? c.n_heads : 0);
    lin(p + "self_attn.k_proj.weight", L.gqa.k, c.gqa_rope_pairs ? c.n_kv_heads : 0);
    lin(p + "self_attn.v_proj.weight", L.gqa.v);
    lin(p + "self_attn.o_proj.weight", L.gqa.o);
    outs.push_back({p + "post_attention_layernorm.weight", {D}, vec(&L.ffn_norm)});
    lin(p + "mlp.gate_proj.weight", L.ffn.gate);
    lin(p + "mlp.up_proj.weight", L.ffn.up);
    lin(p + "mlp.down_proj.weight", L.ffn.down);
  }
  outs.push_back({"model.norm.weight", {D}, vec(&w.final_norm)});
  if (!c.tie_word_embeddings) lin("lm_head.weight", w.lm_head);

  std::vector<PlannedTensor> plan;
  for (const Out& o : outs) plan.push_back({o.name, dtype, o.shape});
  make_dirs(out_dir);
  ShardedSafetensorsWriter wr(out_dir, plan, size_t(5) << 30);
  for (const Out& o : outs) {
    const std::vector<float> v = o.make();
    const std::vector<uint8_t> b = encode(v.data(), v.size(), dtype);
    wr.write(o.name, b.data(), b.size());
  }
  wr.finish();

  nlohmann::ordered_json j;
  j["architectures"] = {"LlamaForCausalLM"};
  j["attention_bias"] = false;
  j["attention_dropout"] = 0.0;
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  j["dtype"] = dtype == DType::BF16 ? "bfloat16" : "float32";
  if (!c.eos_token_ids.empty()) j["eos_token_id"] = c.eos_token_ids[0];
  j["head_dim"] = hd;
  j["hidden_act"] = "silu";
  j["hidden_size"] = D;
  j["intermediate_size"] = c.d_ffn;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["mlp_bias"] = false;
  j["model_type"] = "llama";
  j["num_attention_heads"] = c.n_heads;
  j["num_hidden_layers"] = c.n_layers;
  j["num_key_value_heads"] = c.n_kv_heads;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope.theta;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["vocab_size"] = c.n_vocab;
  write_text(out_dir + "/config.json", j.dump(2) + "\n");
}

void dequantize_checkpoint(const std::string& ct_dir, const std::string& out_dir, DType dtype) {
  nlohmann::ordered_json cfg;
  try {
    cfg = nlohmann::ordered_json::parse(read_text(ct_dir + "/config.json"));
  } catch (const nlohmann::json::exception& e) {
    throw Error(ct_dir + "/config.json: " + e.what());
  }
  STRATA_CHECK(cfg.contains("quantization_config"), ct_dir + "/config.json has no quantization_config");
  const auto& groups = cfg["quantization_config"]["config_groups"];
  STRATA_CHECK(groups.is_object() && groups.size() == 1, ct_dir + ": expected one quantization config group");
  const auto& wq = groups.begin().value()["weights"];
  const int gs = wq.value("group_size", 0);
  const bool sym = wq.value("symmetric", true);
  STRATA_CHECK(wq.value("num_bits", 0) == 4 && gs > 0 && gs % 8 == 0 && wq.value("strategy", "") == "group",
               ct_dir + ": only 4-bit group quantization is supported");
  TensorStore store = TensorStore::open(ct_dir);
  std::vector<PlannedTensor> plan;
  for (const auto& [name, t] : store.tensors()) {
    if (ends_with(name, ".weight_scale") || ends_with(name, ".weight_zero_point") || ends_with(name, ".weight_shape"))
      continue;
    if (ends_with(name, ".weight_packed")) {
      plan.push_back({name.substr(0, name.size() - 14) + ".weight", dtype, {t.shape[0], t.shape[1] * 8}});
    } else {
      plan.push_back({name, t.dtype, t.shape});
    }
  }
  make_dirs(out_dir);
  ShardedSafetensorsWriter wr(out_dir, plan, size_t(5) << 30);
  for (const auto& [name, t] : store.tensors()) {
    if (ends_with(name, ".weight_scale") || ends_with(name, ".weight_zero_point") || ends_with(name, ".weight_shape"))
      continue;
    if (!ends_with(name, ".weight_packed")) {
      wr.write(name, t.data, t.nbytes);
      continue;
    }
    const std::string mod = name.substr(0, name.size() - 14);
    const int N = int(t.shape[0]), K = int(t.shape[1]) * 8;
    const TensorView& s = store.get(mod + ".weight_scale");
    STRATA_CHECK(t.dtype == DType::I32 && s.dtype == DType::BF16 && s.shape == std::vector<int64_t>({N, K / gs}),
                 ct_dir + ": " + mod + " is not int32 weight_packed [N, K/8] + bf16 weight_scale [N, K/group]");
    const uint32_t* zp = nullptr;
    if (!sym) {
      const TensorView& z = store.get(mod + ".weight_zero_point");
      STRATA_CHECK(z.dtype == DType::I32 && z.shape == std::vector<int64_t>({(N + 7) / 8, K / gs}),
                   ct_dir + ": " + mod + ".weight_zero_point must be int32 [ceil(N/8), K/group]");
      zp = reinterpret_cast<const uint32_t*>(z.data);
    }
    std::vector<float> w(size_t(N) * K);
    ct_dequantize(reinterpret_cast<const uint32_t*>(t.data), reinterpret_cast<const uint16_t*>(s.data), zp, N, K, gs,
                  w.data());
    const std::vector<uint8_t> b = encode(w.data(), w.size(), dtype);
    wr.write(mod + ".weight", b.data(), b.size());
  }
  wr.finish();
  cfg.erase("quantization_config");
  if (cfg.contains("dtype")) cfg["dtype"] = dtype == DType::BF16 ? "bfloat16" : "float32";
  write_text(out_dir + "/config.json", cfg.dump(2) + "\n");
  copy_side_files(ct_dir, out_dir);
}

}  // namespace strata
