// One loader per architecture: config keys -> tensor names -> ModelWeights. Each arch file lists
// its tensor names and which blocks each layer uses; the shared pieces are in arch_common.cpp.
// Not the forward pass (model/decoder.cpp runs every architecture's layers).
#pragma once
#include <cstdint>
#include <string>

#include "model/model.h"
#include "model/weight_loader.h"

namespace strata {

using ArchLoader = void (*)(const ModelConfig&, const WeightLoader&, ModelWeights&);
// The loader for cfg.architecture; throws Error listing the supported ones.
ArchLoader find_arch_loader(const std::string& architecture);

void load_llama(const ModelConfig& c, const WeightLoader& L, ModelWeights& w);
void load_qwen3(const ModelConfig& c, const WeightLoader& L, ModelWeights& w);
void load_qwen3_moe(const ModelConfig& c, const WeightLoader& L, ModelWeights& w);
void load_mixtral(const ModelConfig& c, const WeightLoader& L, ModelWeights& w);
void load_deepseek_v3(const ModelConfig& c, const WeightLoader& L, ModelWeights& w);
void load_minimax_m2(const ModelConfig& c, const WeightLoader& L, ModelWeights& w);

// GGUF checkpoints (arch/llama_gguf.cpp): llama.cpp's metadata keys and `blk.N.*` names.
bool is_gguf_path(const std::string& path);  // a regular file starting with the GGUF magic
ModelConfig gguf_model_config(const GgufFile& g);
void load_gguf_weights(const GgufFile& g, const ModelConfig& c, ModelWeights& w);

// Shared pieces (arch_common.cpp).
// Loaders append layers one at a time (w.layers.emplace_back() per layer, never a resize to
// n_layers up front): a config claiming more layers than the checkpoint holds fails at the first
// missing tensor, without allocating for the claimed count.

// a * b and a + b as a tensor dimension (e.g. num_attention_heads * head_dim), computed in 64
// bits; Error naming `what` (the config keys) when the result does not fit an int. parse_model_config
// bounds the fields so that a parsed config.json never trips this; it guards every other source.
int dim_mul(int64_t a, int64_t b, const std::string& what);
int dim_add(int64_t a, int64_t b, const std::string& what);
enum class QkNorm { None, PerHead, AllHeads };
// embed_tokens, final norm, lm_head (or the tied embedding).
void load_embeddings_and_head(const ModelConfig& c, const WeightLoader& L, ModelWeights& w);
// model.layers.{il}.input_layernorm / post_attention_layernorm.
void load_layer_norms(const ModelConfig& c, const WeightLoader& L, int il, LayerWeights& lw);
// q/k/v/o_proj (+ q_norm/k_norm) under `prefix` ("model.layers.3.self_attn").
GqaWeights load_gqa(const ModelConfig& c, const WeightLoader& L, const std::string& prefix, QkNorm qk);
// A SwiGLU FFN from three module names.
FfnWeights load_ffn(const WeightLoader& L, const std::string& gate, const std::string& up, const std::string& down,
                    int d_model, int d_ffn, bool bias = false);
// Router params from the config (softmax/sigmoid, renorm, groups, scaling); bias pointer unset.
RouterParams router_params(const ModelConfig& c);

}  // namespace strata
