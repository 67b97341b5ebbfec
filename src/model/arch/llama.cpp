// LlamaForCausalLM: GQA with rope (default / llama3 / yarn / linear), SwiGLU MLP.
// Tensors: model.layers.{il}.self_attn.{q,k,v,o}_proj, mlp.{gate,up,down}_proj.
#include "model/arch/arch.h"

namespace strata {

void load_llama(const ModelConfig& c, const WeightLoader& L, ModelWeights& w) {
  load_embeddings_and_head(c, L, w);
  for (int il = 0; il < c.n_layers; il++) {
    LayerWeights& lw = w.layers.emplace_back();  // grown per layer found: see arch.h
    const std::string p = "model.layers." + std::to_string(il);
    load_layer_norms(c, L, il, lw);
    lw.gqa = load_gqa(c, L, p + ".self_attn", QkNorm::None);
    lw.ffn = load_ffn(L, p + ".mlp.gate_proj", p + ".mlp.up_proj", p + ".mlp.down_proj", c.d_model, c.d_ffn,
                      c.mlp_bias);
  }
}

}  // namespace strata
