// Qwen3MoeForCausalLM: Qwen3 attention; MoE layers with softmax top-k routing, renormalised when
// norm_topk_prob; dense layers where mlp_only_layers / decoder_sparse_step say so.
// Tensors: mlp.gate [E, D] (router), mlp.experts.{e}.{gate,up,down}_proj.
#include "model/arch/arch.h"

namespace strata {

void load_qwen3_moe(const ModelConfig& c, const WeightLoader& L, ModelWeights& w) {
  load_embeddings_and_head(c, L, w);
  for (int il = 0; il < c.n_layers; il++) {
    LayerWeights& lw = w.layers.emplace_back();  // grown per layer found: see arch.h
    const std::string p = "model.layers." + std::to_string(il);
    load_layer_norms(c, L, il, lw);
    lw.gqa = load_gqa(c, L, p + ".self_attn", QkNorm::PerHead);
    lw.is_moe = c.is_moe_layer(il);
    if (!lw.is_moe) {
      lw.ffn = load_ffn(L, p + ".mlp.gate_proj", p + ".mlp.up_proj", p + ".mlp.down_proj", c.d_model, c.d_ffn);
      continue;
    }
    lw.moe.router = L.linear(p + ".mlp.gate", c.n_experts, c.d_model);
    lw.moe.params = router_params(c);
    for (int e = 0; e < c.n_experts; e++) {
      const std::string ep = p + ".mlp.experts." + std::to_string(e);
      lw.moe.experts.push_back(
          load_ffn(L, ep + ".gate_proj", ep + ".up_proj", ep + ".down_proj", c.d_model, c.d_expert));
    }
  }
}

}  // namespace strata
