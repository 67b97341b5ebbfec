// DeepseekV3ForCausalLM (DeepSeek-V3 and Kimi-K2): MLA attention (optional q LoRA, latent KV,
// decoupled rope dims, interleaved rope), the first first_k_dense_replace layers dense, the rest
// MoE with sigmoid + e_score_correction_bias, group-limited top-k, renorm, routed_scaling_factor
// and n_shared_experts fused into one shared FFN.
// Tensors: self_attn.{q_a_proj, q_a_layernorm, q_b_proj | q_proj, kv_a_proj_with_mqa,
// kv_a_layernorm, kv_b_proj, o_proj}; mlp.{gate.weight, gate.e_score_correction_bias,
// experts.{e}.*, shared_experts.*} or dense mlp.{gate,up,down}_proj.
#include "model/arch/arch.h"

namespace strata {

void load_deepseek_v3(const ModelConfig& c, const WeightLoader& L, ModelWeights& w) {
  load_embeddings_and_head(c, L, w);
  // Dims formed from several config fields, checked once (64-bit, must fit an int).
  const int H = c.n_heads;
  const int qk = dim_add(c.qk_nope_head_dim, c.qk_rope_head_dim, "qk_nope_head_dim + qk_rope_head_dim");
  const int q_rows = dim_mul(H, qk, "num_attention_heads * (qk_nope_head_dim + qk_rope_head_dim) (q_proj / q_b_proj rows)");
  const int kv_a_rows = dim_add(c.kv_lora_rank, c.qk_rope_head_dim, "kv_lora_rank + qk_rope_head_dim (kv_a_proj_with_mqa rows)");
  const int kv_b_rows = dim_mul(H, dim_add(c.qk_nope_head_dim, c.v_head_dim, "qk_nope_head_dim + v_head_dim"),
                                "num_attention_heads * (qk_nope_head_dim + v_head_dim) (kv_b_proj rows)");
  const int o_cols = dim_mul(H, c.v_head_dim, "num_attention_heads * v_head_dim (o_proj columns)");
  const int shared_width = dim_mul(c.d_expert, c.n_shared_experts, "moe_intermediate_size * n_shared_experts (shared_experts width)");
  for (int il = 0; il < c.n_layers; il++) {
    LayerWeights& lw = w.layers.emplace_back();  // grown per layer found: see arch.h
    const std::string p = "model.layers." + std::to_string(il);
    const std::string a = p + ".self_attn";
    load_layer_norms(c, L, il, lw);
    lw.is_mla = true;
    MlaWeights& m = lw.mla;
    if (c.q_lora_rank > 0) {
      m.q_a = L.linear(a + ".q_a_proj", c.q_lora_rank, c.d_model, c.attention_bias);
      m.q_a_norm = L.vector(a + ".q_a_layernorm.weight", c.q_lora_rank);
      m.q_b = L.linear(a + ".q_b_proj", q_rows, c.q_lora_rank);
    } else {
      m.q = L.linear(a + ".q_proj", q_rows, c.d_model);
    }
    m.kv_a = L.linear(a + ".kv_a_proj_with_mqa", kv_a_rows, c.d_model, c.attention_bias);
    m.kv_a_norm = L.vector(a + ".kv_a_layernorm.weight", c.kv_lora_rank);
    m.kv_b = L.linear(a + ".kv_b_proj", kv_b_rows, c.kv_lora_rank);
    m.o = L.linear(a + ".o_proj", c.d_model, o_cols, c.attention_bias);

    lw.is_moe = c.is_moe_layer(il);
    const std::string mp = p + ".mlp";
    if (!lw.is_moe) {
      lw.ffn = load_ffn(L, mp + ".gate_proj", mp + ".up_proj", mp + ".down_proj", c.d_model, c.d_ffn);
      continue;
    }
    lw.moe.router = L.linear(mp + ".gate", c.n_experts, c.d_model);
    lw.moe.choice_bias = L.vector(mp + ".gate.e_score_correction_bias", c.n_experts);
    lw.moe.params = router_params(c);
    lw.moe.params.renorm_eps = 1e-20f;
    for (int e = 0; e < c.n_experts; e++) {
      const std::string ep = mp + ".experts." + std::to_string(e);
      lw.moe.experts.push_back(
          load_ffn(L, ep + ".gate_proj", ep + ".up_proj", ep + ".down_proj", c.d_model, c.d_expert));
    }
    if (c.n_shared_experts > 0) {
      lw.moe.has_shared = true;
      const std::string sp = mp + ".shared_experts";
      lw.moe.shared = load_ffn(L, sp + ".gate_proj", sp + ".up_proj", sp + ".down_proj", c.d_model, shared_width);
    }
  }
}

}  // namespace strata
