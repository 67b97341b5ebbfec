// MixtralForCausalLM: Llama attention; every layer a sparse MoE with softmax top-k, always
// renormalised. Tensors: block_sparse_moe.gate (router), block_sparse_moe.experts.{e}.w1 (gate),
// w3 (up), w2 (down).
#include "model/arch/arch.h"

namespace strata {

void load_mixtral(const ModelConfig& c, const WeightLoader& L, ModelWeights& w) {
  load_embeddings_and_head(c, L, w);
  for (int il = 0; il < c.n_layers; il++) {
    LayerWeights& lw = w.layers.emplace_back();  // grown per layer found: see arch.h
    const std::string p = "model.layers." + std::to_string(il);
    load_layer_norms(c, L, il, lw);
    lw.gqa = load_gqa(c, L, p + ".self_attn", QkNorm::None);
    lw.is_moe = true;
    lw.moe.router = L.linear(p + ".block_sparse_moe.gate", c.n_experts, c.d_model);
    lw.moe.params = router_params(c);
    for (int e = 0; e < c.n_experts; e++) {
      const std::string ep = p + ".block_sparse_moe.experts." + std::to_string(e);
      lw.moe.experts.push_back(load_ffn(L, ep + ".w1", ep + ".w3", ep + ".w2", c.d_model, c.d_expert));
    }
  }
}

}  // namespace strata
