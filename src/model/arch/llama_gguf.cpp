// Llama-family GGUF checkpoints (llama.cpp's convert_hf_to_gguf output): config from
// `llama.*` metadata, tensors `token_embd`, `blk.N.{attn_norm,attn_q,attn_k,attn_v,attn_output,
// ffn_norm,ffn_gate,ffn_up,ffn_down}`, `output_norm`, `output` (absent: tied to token_embd).
// ggml dims are [K, N] (innermost first). Quantized tensors stay as ggml blocks in the mapping.
// The converter permutes q/k rows so ggml's rope rotates adjacent pairs; we rope pairs too
// (cfg.gqa_rope_pairs) instead of undoing the permutation.
#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "model/arch/arch.h"
#include "quant/gguf_blocks.h"

namespace strata {

bool is_gguf_path(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  char magic[4] = {};
  bool ok = std::fread(magic, 1, 4, f) == 4 && std::memcmp(magic, "GGUF", 4) == 0;
  std::fclose(f);
  return ok;
}

namespace {

int bounded(const GgufFile& g, const std::string& key, int64_t v, int64_t lo, int64_t hi) {
  STRATA_CHECK(v >= lo && v <= hi, g.path() + ": " + key + " = " + std::to_string(v) + " is outside [" +
                                       std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return int(v);
}

}  // namespace

ModelConfig gguf_model_config(const GgufFile& g) {
  const std::string arch = g.get_string("general.architecture");
  STRATA_CHECK(arch == "llama", g.path() + ": GGUF architecture '" + arch + "' is not supported (llama is)");
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  auto key = [&](const char* k) { return arch + "." + k; };
  auto geti = [&](const char* k, int64_t lo, int64_t hi) { return bounded(g, key(k), g.get_int(key(k)), lo, hi); };
  c.n_layers = geti("block_count", 1, ConfigLimits::kLayers);
  c.d_model = geti("embedding_length", 1, ConfigLimits::kDim);
  c.d_ffn = geti("feed_forward_length", 1, ConfigLimits::kFfn);
  c.n_heads = geti("attention.head_count", 1, ConfigLimits::kHeads);
  c.n_kv_heads = g.has(key("attention.head_count_kv")) ? geti("attention.head_count_kv", 1, ConfigLimits::kHeads) : c.n_heads;
  STRATA_CHECK(c.n_heads % c.n_kv_heads == 0, g.path() + ": head_count is not a multiple of head_count_kv");
  c.head_dim = g.has(key("attention.key_length")) ? geti("attention.key_length", 1, ConfigLimits::kHeadDim) : c.d_model / c.n_heads;
  STRATA_CHECK(c.head_dim % 2 == 0 && c.head_dim > 0, g.path() + ": head dimension must be even");
  c.max_position_embeddings = g.has(key("context_length")) ? geti("context_length", 1, 1 << 24) : 4096;
  c.rms_norm_eps = g.get_float(key("attention.layer_norm_rms_epsilon"), 1e-5);
  STRATA_CHECK(c.rms_norm_eps > 0 && c.rms_norm_eps < 1, g.path() + ": bad layer_norm_rms_epsilon");
  c.rope.theta = g.get_float(key("rope.freq_base"), 10000.0);
  STRATA_CHECK(c.rope.theta > 1, g.path() + ": bad rope.freq_base");
  const int rot = g.has(key("rope.dimension_count")) ? geti("rope.dimension_count", 2, c.head_dim) : c.head_dim;
  c.rope.partial_rotary_factor = double(rot) / c.head_dim;
  if (g.has(key("rope.scaling.type"))) {
    const std::string t = g.get_string(key("rope.scaling.type"));
    if (t == "linear") {
      c.rope.type = RopeType::Linear;
      c.rope.factor = g.get_float(key("rope.scaling.factor"), 1.0);
      STRATA_CHECK(c.rope.factor > 0, g.path() + ": bad rope.scaling.factor");
    } else if (t != "none") {
      throw Error(g.path() + ": rope scaling '" + t + "' in GGUF is not supported (none and linear are)");
    }
  }
  if (const GgufTensor* rf = g.find_tensor("rope_freqs.weight")) {
    // llama3-style scaling as llama.cpp stores it: inv_freq[i] / rope_freqs[i].
    STRATA_CHECK(rf->type == 0 && rf->dims.size() == 1 && rf->dims[0] == rot / 2,
                 g.path() + ": rope_freqs.weight must be F32 [rope.dimension_count / 2]");
    c.rope.freq_factors.assign(reinterpret_cast<const float*>(rf->data), reinterpret_cast<const float*>(rf->data) + rot / 2);
    for (float f : c.rope.freq_factors)
      STRATA_CHECK(std::isfinite(f) && f > 0, g.path() + ": rope_freqs.weight holds a non-positive factor");
  }
  c.gqa_rope_pairs = true;
  const GgufTensor* emb = g.find_tensor("token_embd.weight");
  STRATA_CHECK(emb && emb->dims.size() == 2, g.path() + ": missing 2-D tensor token_embd.weight");
  c.n_vocab = bounded(g, "token_embd rows", emb->dims[1], 1, ConfigLimits::kVocab);
  c.tie_word_embeddings = g.find_tensor("output.weight") == nullptr;
  if (g.has("tokenizer.ggml.bos_token_id")) c.bos_token_id = int(g.get_int("tokenizer.ggml.bos_token_id"));
  if (g.has("tokenizer.ggml.eos_token_id")) c.eos_token_ids.push_back(int(g.get_int("tokenizer.ggml.eos_token_id")));
  if (g.has("tokenizer.ggml.eot_token_id")) {
    int eot = int(g.get_int("tokenizer.ggml.eot_token_id"));
    if (c.eos_token_ids.empty() || c.eos_token_ids[0] != eot) c.eos_token_ids.push_back(eot);
  }
  return c;
}

void load_gguf_weights(const GgufFile& g, const ModelConfig& c, ModelWeights& w) {
  auto tensor = [&](const std::string& name, std::vector<int64_t> dims) -> const GgufTensor& {
    const GgufTensor* t = g.find_tensor(name);
    STRATA_CHECK(t, g.path() + ": missing tensor " + name);
    STRATA_CHECK(t->dims == dims, g.path() + ": tensor " + name + " has the wrong shape for this config");
    return *t;
  };
  auto lin = [&](const std::string& name, int n_out, int n_in) {
    const GgufTensor& t = tensor(name, {n_in, n_out});
    LinearWeight lw;
    lw.name = name;
    lw.n_out = n_out;
    lw.n_in = n_in;
    switch (GgmlType(t.type)) {
      case GgmlType::F32: lw.kind = WeightKind::F32; lw.dense = t.data; break;
      case GgmlType::F16: lw.kind = WeightKind::F16; lw.dense = t.data; break;
      case GgmlType::BF16: lw.kind = WeightKind::BF16; lw.dense = t.data; break;
      default:
        STRATA_CHECK(gguf_can_dequant(t.type), g.path() + ": tensor " + name + " has ggml type " +
                                                   ggml_type_info(t.type)->name + ", which Strata cannot run yet");
        lw.kind = WeightKind::Gguf;
        lw.ggml_type = t.type;
        lw.blocks = t.data;
        lw.row_bytes = gguf_row_bytes(t.type, n_in);
    }
    return lw;
  };
  auto vec = [&](const std::string& name, int n) {
    const GgufTensor& t = tensor(name, {n});
    STRATA_CHECK(gguf_can_dequant(t.type) && ggml_type_info(t.type)->block_elems == 1,
                 g.path() + ": norm tensor " + name + " must be F32, F16 or BF16");
    std::vector<float> out(static_cast<size_t>(n));
    gguf_dequant_row(t.type, t.data, n, out.data());
    return out;
  };
  const int D = c.d_model;
  const int q_dim = dim_mul(c.n_heads, c.head_dim, "llama.attention.head_count * key_length (attn_q rows)");
  const int kv_dim = dim_mul(c.n_kv_heads, c.head_dim, "llama.attention.head_count_kv * key_length (attn_k rows)");
  w.embed = lin("token_embd.weight", c.n_vocab, D);
  w.final_norm = vec("output_norm.weight", D);
  w.lm_head = c.tie_word_embeddings ? w.embed : lin("output.weight", c.n_vocab, D);
  // Check the last layer first: a wrong block_count fails before anything is allocated.
  tensor("blk." + std::to_string(c.n_layers - 1) + ".ffn_down.weight", {c.d_ffn, D});
  w.layers.resize(size_t(c.n_layers));
  for (int il = 0; il < c.n_layers; il++) {
    LayerWeights& lw = w.layers[size_t(il)];
    const std::string p = "blk." + std::to_string(il) + ".";
    lw.attn_norm = vec(p + "attn_norm.weight", D);
    lw.ffn_norm = vec(p + "ffn_norm.weight", D);
    lw.gqa.q = lin(p + "attn_q.weight", q_dim, D);
    lw.gqa.k = lin(p + "attn_k.weight", kv_dim, D);
    lw.gqa.v = lin(p + "attn_v.weight", kv_dim, D);
    lw.gqa.o = lin(p + "attn_output.weight", D, q_dim);
    lw.ffn = {lin(p + "ffn_gate.weight", c.d_ffn, D), lin(p + "ffn_up.weight", c.d_ffn, D),
              lin(p + "ffn_down.weight", D, c.d_ffn)};
  }
}

}  // namespace strata
