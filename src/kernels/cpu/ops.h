// CPU element-wise and attention kernels (f32): RMSNorm, SiLU-and-multiply, RoPE, causal GQA
// attention over a KV cache, absorbed MLA attention, MoE routing. The reference for other backends.
// Not model logic: which op runs with which weights is decided in model/.
#pragma once
#include <vector>

#include "core/weight.h"

namespace strata {

// y[m, :] = x[m, :] / rms(x[m, :]) * weight   (x, y: [M, D]; may alias)
void rms_norm_f32(const float* x, const float* weight, int M, int D, float eps, float* y);

// out[i] = silu(gate[i]) * up[i]
void silu_mul_f32(const float* gate, const float* up, size_t n, float* out);

// y[i] += x[i]
void add_f32(float* y, const float* x, size_t n);

// Rotary embedding in place on x [M, n_heads, stride] at dims [0, rot_dim) of each head.
// cos/sin: [M, rot_dim/2] for the M tokens' positions. Pairs are (i, i + rot_dim/2) ("rotate
// half", Llama/Qwen) or (2i, 2i+1) when `interleaved` (DeepSeek's rope_interleave, equivalent to
// HF's de-interleave + rotate-half because q and k get the same permutation).
void rope_apply_f32(float* x, int M, int n_heads, int stride, int rot_dim, const float* cos, const float* sin,
                    bool interleaved);

// In-place softmax over n scores (max-subtracted, double-accumulated sum): attention and routing.
void softmax_inplace(float* p, int n);

// Causal GQA attention. q: [M, H, hd]; k: [n_ctx, Hkv, hd]; v: [n_ctx, Hkv, hdv];
// query m is at position pos0 + m and sees keys [0, pos0 + m]. out: [M, H, hdv].
void attention_causal_f32(const float* q, int M, int H, int Hkv, int hd, int hdv, const float* k, const float* v,
                          int pos0, float scale, float* out);

// Absorbed MLA attention (all heads share one latent KV). q_lat: [M, H, R] (q_nope through
// W_UK), q_pe: [M, H, P]; latent: [n_ctx, R]; k_pe: [n_ctx, P]; out_lat: [M, H, R] (before W_UV).
void mla_attention_f32(const float* q_lat, const float* q_pe, int M, int H, int R, int P, const float* latent,
                       const float* k_pe, int pos0, float scale, float* out_lat);

// y[M, C] = x[M, R] . W[R, C] where W's rows are w's rows [row0, row0 + R) (x times W, not W^T):
// MLA's absorption of q_nope through kv_b's key part.
void matmul_rows_f32(const float* x, int M, const LinearWeight& w, int row0, int R, float* y);


struct RouterParams {
  int n_experts = 0;
  int top_k = 0;
  bool sigmoid = false;       // false: softmax over experts
  bool renormalize = false;   // divide the top-k weights by their sum
  float renorm_eps = 0.f;     // added to that sum (DeepSeek: 1e-20)
  float scaling = 1.f;        // routed_scaling_factor
  int n_group = 1, topk_group = 1;  // group-limited selection (DeepSeek)
  const float* choice_bias = nullptr;  // [E] e_score_correction_bias added for selection only
};

// logits [M, E] -> ids [M, top_k], weights [M, top_k] (HF semantics for the four router kinds).
void moe_route_f32(const float* logits, int M, const RouterParams& p, int* ids, float* weights);

}  // namespace strata
