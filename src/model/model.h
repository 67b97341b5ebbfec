// A loaded decoder-only model: weights (views into the mmapped checkpoint), its KV cache type and
// the forward pass over a backend. Architectures differ only in how model/arch/*.cpp fill
// ModelWeights; the layer loop (decoder.cpp) is shared because all six are pre-norm decoders.
// Not a scheduler: forward() runs one sequence's new tokens; forward_batch() runs the items a
// scheduler planned (several sequences, each over its own token and layer range) but plans nothing.
#pragma once
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "io/gguf.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "model/rope.h"

namespace strata {

// Grouped-query attention (Llama, Qwen3, Mixtral, MiniMax-M2).
struct GqaWeights {
  LinearWeight q, k, v, o;   // q [H*hd, D], k/v [Hkv*hd, D], o [D, H*hd]
  std::vector<float> q_norm;  // [hd] per head (Qwen3) or [H*hd] over all heads (MiniMax-M2); empty: none
  std::vector<float> k_norm;  // [hd] or [Hkv*hd]; empty: none
};

// Multi-head latent attention (DeepSeek-V3, Kimi-K2).
struct MlaWeights {
  LinearWeight q;               // q_proj [H*(nope+rope), D] when q_lora_rank == 0
  LinearWeight q_a, q_b;        // q_a [q_lora, D], q_b [H*(nope+rope), q_lora]
  std::vector<float> q_a_norm;  // [q_lora]
  LinearWeight kv_a;            // [kv_lora + rope, D]
  std::vector<float> kv_a_norm;  // [kv_lora]
  LinearWeight kv_b;            // [H*(nope+v), kv_lora]: per head nope rows (W_UK) then v rows (W_UV)
  LinearWeight o;               // [D, H*v]
};

struct MoeWeights {
  LinearWeight router;             // [E, D]
  std::vector<float> choice_bias;  // [E] e_score_correction_bias, or empty
  RouterParams params;             // choice_bias pointer set at load
  std::vector<FfnWeights> experts;  // [E]
  bool has_shared = false;
  FfnWeights shared;  // DeepSeek shared experts (one fused FFN of width n_shared * d_expert)
};

struct LayerWeights {
  std::vector<float> attn_norm, ffn_norm;  // [D]
  bool is_mla = false;
  GqaWeights gqa;
  MlaWeights mla;
  bool is_moe = false;
  FfnWeights ffn;
  MoeWeights moe;
};

struct ModelWeights {
  LinearWeight embed;  // [V, D] (a row per token)
  std::vector<LayerWeights> layers;
  std::vector<float> final_norm;  // [D]
  LinearWeight lm_head;           // [V, D] (the embedding when tied)
};

// Per-sequence KV cache, contiguous per layer. GQA layers keep K and V after rope; MLA layers keep
// only the compressed latent (kv_lora_rank, normalised) and the roped k_pe: MLA's whole point.
struct KvCache {
  int capacity = 0;  // tokens
  int n_past = 0;    // tokens already in the cache
  std::vector<std::vector<float>> k;  // per layer [capacity, Hkv, hd]   | MLA: latent [capacity, R]
  std::vector<std::vector<float>> v;  // per layer [capacity, Hkv, hdv]  | MLA: k_pe   [capacity, P]
};

// Paged KV storage for every layer: a pool of n_blocks blocks of block_size token rows. Which
// blocks hold which sequence's tokens is the engine's business (engine/kv_cache.h); the forward only
// reads and writes rows through a block table. Rows are laid out as in KvCache.
struct PagedKvCache {
  int block_size = 0, n_blocks = 0;
  std::vector<std::vector<float>> k;  // per layer [n_blocks, block_size, Hkv, hd]  | MLA: latent [.., R]
  std::vector<std::vector<float>> v;  // per layer [n_blocks, block_size, Hkv, hdv] | MLA: k_pe   [.., P]
};

// What the batched forward sees of a KV store: per layer, the base of its block pool.
// A contiguous KvCache is the special case of one block of `capacity` rows.
struct KvPool {
  int block_size = 0;
  std::vector<float*> k, v;  // per layer, as PagedKvCache
};
KvPool kv_pool(PagedKvCache& c);

// One sequence's share of a batched forward: tokens [pos0, pos0 + n) through layers
// [layer_begin, layer_end). Layered prefill keeps `hidden` between calls (layer_end < n_layers).
struct ForwardItem {
  const int* ids = nullptr;          // [n] token ids; read only when layer_begin == 0
  int n = 0;                         // tokens
  int pos0 = 0;                      // position of the first token; KV rows [0, pos0) already written
  int layer_begin = 0, layer_end = 0;
  const int* block_table = nullptr;  // blocks holding positions [0, pos0 + n)
  float* hidden = nullptr;           // [n, d_model] residual stream entering layer_begin (written at 0),
                                     // leaving layer_end - 1
  float* logits = nullptr;           // layer_end == n_layers: [n, vocab], or [1, vocab] when !all_logits;
                                     // null: none wanted (a prefill chunk that samples nothing)
  bool all_logits = false;
};

// Internal to the forward: one item's rows inside a layer's gathered batch.
struct AttnSegment {
  int row0 = 0, n = 0, pos0 = 0;
  const int* block_table = nullptr;
};

// Stats of one forward call, summed over layers.
struct ForwardStats {
  size_t expert_bytes = 0;
  int expert_activations = 0;              // sum over MoE layers of distinct experts touched
  std::vector<size_t> layer_expert_bytes;  // [n_layers] expert bytes read per layer (added to)
};

class Model {
 public:
  // Loads a directory (config.json + safetensors) or a .gguf file. Throws Error naming
  // file/tensor/field on any defect.
  static std::unique_ptr<Model> load(const std::string& path);

  const ModelConfig& config() const { return cfg_; }
  const ModelWeights& weights() const { return w_; }
  // Replaces the backend the forward runs on (e.g. a decorator that records linear inputs for
  // GPTQ calibration, or the CUDA backend).
  void set_backend(std::unique_ptr<Backend> backend) { backend_ = std::move(backend); }
  Backend& backend() { return *backend_; }
  KvCache new_cache(int capacity) const;
  PagedKvCache new_paged_cache(int n_blocks, int block_size) const;
  // KV bytes one token takes over all layers (f32), for sizing block pools.
  size_t kv_bytes_per_token() const;

  // Runs ids [n] at positions cache.n_past.. through every layer, appends them to the cache and
  // writes logits [n, vocab] (or [1, vocab] for the last token when !all_logits).
  // A thin wrapper over forward_batch() with one item and a one-block table.
  void forward(const int* ids, int n, KvCache& cache, float* logits, bool all_logits = true,
               ForwardStats* stats = nullptr);

  // Walks the layers in order; at each layer gathers the rows of every item active there, so the
  // layer's weights (each MoE expert included) are read once per call for all items together.
  // Everything is validated before any KV row is written. Items must be distinct sequences.
  void forward_batch(std::span<const ForwardItem> items, const KvPool& kv, ForwardStats* stats = nullptr);

 private:
  void attention_gqa(int il, const float* x, int n, std::span<const AttnSegment> segs, const KvPool& kv,
                     const float* cos, const float* sin, float* out);
  void attention_mla(int il, const float* x, int n, std::span<const AttnSegment> segs, const KvPool& kv,
                     const float* cos, const float* sin, float* out);
  void moe(int il, const float* x, int n, float* out, ForwardStats* stats);
  void validate_items(std::span<const ForwardItem> items, const KvPool& kv) const;
  void decoder_layer(int il, float* h, int n, std::span<const AttnSegment> segs, const KvPool& kv, const float* cos,
                     const float* sin, ForwardStats* stats);
  void lm_head_rows(std::span<const ForwardItem> items);
  int kv_row_k(int il) const;  // floats per token row of layer il's K (MLA: latent)
  int kv_row_v(int il) const;  // of V (MLA: k_pe)

  ModelConfig cfg_;
  TensorStore store_;
  std::shared_ptr<GgufFile> gguf_;  // when loaded from GGUF: owns the mapping the weights point into
  ModelWeights w_;
  RopeTable rope_;
  float attn_scale_ = 1.f;
  std::unique_ptr<Backend> backend_;
};

}  // namespace strata
