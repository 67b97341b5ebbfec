// Loader pieces shared by the architectures, and the architecture registry.
#include <climits>
#include <map>

#include "core/error.h"
#include "model/arch/arch.h"

namespace strata {

ArchLoader find_arch_loader(const std::string& architecture) {
  static const std::map<std::string, ArchLoader> k = {
      {"LlamaForCausalLM", load_llama},         {"Qwen3ForCausalLM", load_qwen3},
      {"Qwen3MoeForCausalLM", load_qwen3_moe},  {"MixtralForCausalLM", load_mixtral},
      {"DeepseekV3ForCausalLM", load_deepseek_v3}, {"MiniMaxM2ForCausalLM", load_minimax_m2},
  };
  auto it = k.find(architecture);
  if (it == k.end()) {
    std::string list;
    for (const auto& [name, _] : k) list += (list.empty() ? "" : ", ") + name;
    throw Error("unsupported architecture '" + architecture + "' (supported: " + list + ")");
  }
  return it->second;
}

namespace {
int checked_dim(int64_t v, const std::string& what) {
  STRATA_CHECK(v >= 0 && v <= INT_MAX, "config: " + what + " = " + std::to_string(v) +
                                           " does not fit a tensor dimension (at most " + std::to_string(INT_MAX) + ")");
  return int(v);
}
}  // namespace

// Operands are ints widened to 64 bits, so neither the product nor the sum can overflow here.
int dim_mul(int64_t a, int64_t b, const std::string& what) { return checked_dim(a * b, what); }
int dim_add(int64_t a, int64_t b, const std::string& what) { return checked_dim(a + b, what); }

void load_embeddings_and_head(const ModelConfig& c, const WeightLoader& L, ModelWeights& w) {
  w.embed = L.linear("model.embed_tokens", c.n_vocab, c.d_model);
  w.final_norm = L.vector("model.norm.weight", c.d_model);
  // Tied checkpoints usually omit lm_head; some still store it, and then HF ties to the embedding.
  w.lm_head = c.tie_word_embeddings ? w.embed : L.linear("lm_head", c.n_vocab, c.d_model);
}

void load_layer_norms(const ModelConfig& c, const WeightLoader& L, int il, LayerWeights& lw) {
  const std::string p = "model.layers." + std::to_string(il);
  lw.attn_norm = L.vector(p + ".input_layernorm.weight", c.d_model);
  lw.ffn_norm = L.vector(p + ".post_attention_layernorm.weight", c.d_model);
}

GqaWeights load_gqa(const ModelConfig& c, const WeightLoader& L, const std::string& p, QkNorm qk) {
  GqaWeights g;
  const int q_dim = dim_mul(c.n_heads, c.head_dim, "num_attention_heads * head_dim (" + p + ".q_proj rows)");
  const int kv_dim = dim_mul(c.n_kv_heads, c.head_dim, "num_key_value_heads * head_dim (" + p + ".k_proj rows)");
  g.q = L.linear(p + ".q_proj", q_dim, c.d_model, c.attention_bias);
  g.k = L.linear(p + ".k_proj", kv_dim, c.d_model, c.attention_bias);
  g.v = L.linear(p + ".v_proj", kv_dim, c.d_model, c.attention_bias);
  g.o = L.linear(p + ".o_proj", c.d_model, q_dim, c.attention_bias);
  if (qk == QkNorm::PerHead) {
    g.q_norm = L.vector(p + ".q_norm.weight", c.head_dim);
    g.k_norm = L.vector(p + ".k_norm.weight", c.head_dim);
  } else if (qk == QkNorm::AllHeads) {
    g.q_norm = L.vector(p + ".q_norm.weight", q_dim);
    g.k_norm = L.vector(p + ".k_norm.weight", kv_dim);
  }
  return g;
}

FfnWeights load_ffn(const WeightLoader& L, const std::string& gate, const std::string& up, const std::string& down,
                    int d_model, int d_ffn, bool bias) {
  return {L.linear(gate, d_ffn, d_model, bias), L.linear(up, d_ffn, d_model, bias),
          L.linear(down, d_model, d_ffn, bias)};
}

RouterParams router_params(const ModelConfig& c) {
  RouterParams p;
  p.n_experts = c.n_experts;
  p.top_k = c.n_experts_per_tok;
  p.sigmoid = c.scoring == RouterScoring::Sigmoid;
  p.renormalize = c.norm_topk_prob;
  p.scaling = float(c.routed_scaling_factor);
  p.n_group = c.n_group;
  p.topk_group = c.topk_group;
  return p;
}

}  // namespace strata
