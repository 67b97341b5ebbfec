// MiniMaxM2ForCausalLM: GQA with RMSNorm over all heads' q and k (before the head split),
// partial rotary (rotary_dim), and Mixtral-named experts routed by sigmoid + e_score_correction_bias,
// top-k weights renormalised. Tensors: self_attn.{q,k}_norm [H*hd]/[Hkv*hd],
// block_sparse_moe.{gate, e_score_correction_bias, experts.{e}.w1/w2/w3}.
#include "model/arch/arch.h"

namespace strata {

void load_minimax_m2(const ModelConfig& c, const WeightLoader& L, ModelWeights& w) {
  load_embeddings_and_head(c, L, w);
  for (int il = 0; il < c.n_layers; il++) {
    LayerWeights& lw = w.layers.emplace_back();  // grown per layer found: see arch.h
    const std::string p = "model.layers." + std::to_string(il);
    load_layer_norms(c, L, il, lw);
    lw.gqa = load_gqa(c, L, p + ".self_attn", QkNorm::AllHeads);
    lw.is_moe = true;
    const std::string mp = p + ".block_sparse_moe";
    lw.moe.router = L.linear(mp + ".gate", c.n_experts, c.d_model);
    lw.moe.choice_bias = L.vector(mp + ".e_score_correction_bias", c.n_experts);
    lw.moe.params = router_params(c);
    for (int e = 0; e < c.n_experts; e++) {
      const std::string ep = mp + ".experts." + std::to_string(e);
      lw.moe.experts.push_back(load_ffn(L, ep + ".w1", ep + ".w3", ep + ".w2", c.d_model, c.d_expert));
    }
  }
}

}  // namespace strata
