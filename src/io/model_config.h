// HF config.json -> ModelConfig: the architecture-independent hyper-parameters Strata needs.
// Not the architectures themselves: arch-specific keys are read here too, but each field says
// which architectures use it; model/arch/*.cpp decide what the fields mean for their layers.
#pragma once
#include <string>
#include <vector>

#include "quant/int4_format.h"

namespace strata {

enum class RopeType { Default, Llama3, Yarn, Linear };

// Upper bounds on config sizes, enforced by parse_model_config (and the GGUF loader): far above
// any real model, low enough that a corrupt or hostile value is an Error naming the field rather
// than a huge allocation, and that every product the loaders form (n_heads * head_dim,
// n_heads * (qk_nope + qk_rope), moe_intermediate_size * n_shared_experts) fits an int.
struct ConfigLimits {
  static constexpr int kVocab = 1 << 24;     // vocab_size (largest real ones ~256K)
  static constexpr int kDim = 1 << 17;       // hidden_size, q/kv LoRA ranks
  static constexpr int kFfn = 1 << 20;       // intermediate sizes, incl. n_shared * moe_intermediate
  static constexpr int kLayers = 1024;       // num_hidden_layers
  static constexpr int kHeads = 1024;        // num_attention_heads, num_key_value_heads
  static constexpr int kHeadDim = 4096;      // head_dim, qk_nope/qk_rope/v_head_dim
  static constexpr int kExperts = 1 << 14;   // routed experts, shared experts, groups
};

// Rotary embedding parameters; names follow HF `rope_parameters`.
struct RopeConfig {
  RopeType type = RopeType::Default;
  double theta = 10000.0;
  double partial_rotary_factor = 1.0;
  double factor = 1.0;
  // llama3
  double low_freq_factor = 1.0, high_freq_factor = 4.0;
  double original_max_position_embeddings = 0;  // 0 = absent
  // yarn
  double beta_fast = 32.0, beta_slow = 1.0;
  double mscale = 0, mscale_all_dim = 0;  // 0 = absent
  double attention_factor = 0;            // 0 = absent (derived)
  bool truncate = true;
  // Per-frequency divisors [rot_dim / 2] from a GGUF rope_freqs tensor (llama.cpp's encoding of
  // llama3-style scaling); empty: none. Applied after `type`'s own scaling.
  std::vector<float> freq_factors;
};

enum class RouterScoring { Softmax, Sigmoid };

struct ModelConfig {
  std::string architecture;  // e.g. "Qwen3MoeForCausalLM"
  std::string model_type;
  int n_vocab = 0;
  int d_model = 0;
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int d_ffn = 0;  // dense MLP width (intermediate_size)
  int max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  bool mlp_bias = false;
  RopeConfig rope;
  // GQA rope on adjacent pairs instead of halves: GGUF llama checkpoints, whose q/k rows
  // convert_hf_to_gguf permuted for ggml's pairwise rope.
  bool gqa_rope_pairs = false;

  // Mixture of experts (0 experts = dense model).
  int n_experts = 0;
  int n_experts_per_tok = 0;
  int d_expert = 0;  // expert FFN width (moe_intermediate_size or intermediate_size)
  int n_shared_experts = 0;
  bool norm_topk_prob = false;
  double routed_scaling_factor = 1.0;
  int n_group = 1, topk_group = 1;
  RouterScoring scoring = RouterScoring::Softmax;
  int first_k_dense_replace = 0;     // DeepSeek: layers below this are dense
  int decoder_sparse_step = 1;       // Qwen3-MoE
  std::vector<int> mlp_only_layers;  // Qwen3-MoE

  // Multi-head latent attention (DeepSeek-V3 / Kimi-K2).
  int q_lora_rank = 0;  // 0 = no q LoRA (q_proj)
  int kv_lora_rank = 0;
  int qk_nope_head_dim = 0, qk_rope_head_dim = 0, v_head_dim = 0;
  bool rope_interleave = true;

  int bos_token_id = -1;
  std::vector<int> eos_token_ids;

  QuantConfig quant;  // method None when the checkpoint is unquantized

  bool is_moe_layer(int il) const;
};

// Reads `dir`/config.json. Throws Error naming the field on anything missing, malformed or
// unsupported (the message lists the supported architectures / options).
ModelConfig load_model_config(const std::string& dir);
ModelConfig parse_model_config(const std::string& json_text, const std::string& source);

const std::vector<std::string>& supported_architectures();

}  // namespace strata
