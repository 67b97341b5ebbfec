// Public CUDA fused MoE W4A16 layer (Hopper): router logits (bf16, f32 out: a GEMV of ours up to
// kMoeRouterGemvMaxT tokens, else cuBLAS) or given logits ->
// top-k routing (the CPU backend's four router kinds: softmax, softmax + renorm, sigmoid + choice bias +
// renorm + scaling, group-limited) -> token-to-expert permutation -> grouped gate/up GEMM with SiLU*up fused
// -> grouped down GEMM over the active experts only -> weighted combine (+ shared expert), all on one stream
// with no host synchronisation inside the layer, the launches chained with programmatic dependent launch.
// Not a model: norms, residuals and the dense first layers live elsewhere. No CUDA types here (streams are void*).
// The shared expert is INT4 here (it runs as expert E of the grouped pass); Kimi-K2 ships it bf16.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/weight.h"

namespace strata::cuda {

// Routing parameters (mirror of RouterParams in kernels/cpu/ops.h; choice bias on the device).
struct MoeRouting {
  int n_experts = 0;
  int top_k = 0;
  bool sigmoid = false;      // false: softmax over experts
  bool renormalize = false;  // divide the top-k weights by their sum (+ renorm_eps)
  float renorm_eps = 0.f;
  float scaling = 1.f;       // routed_scaling_factor
  int n_group = 1, topk_group = 1;
  const float* choice_bias = nullptr;  // device f32 [E] (e_score_correction_bias), or nullptr
};

// A MoE layer's weights on the device, in the kernels' layout. Expert e in [0, E) is routed; e == E is the
// shared expert when has_shared. gate and up are interleaved per 16-row block (block 2b = gate rows 16b..,
// block 2b+1 = up rows 16b..) so one CTA holds both halves of SiLU(gate) * up.
struct W4A16MoeLayer {
  int n_experts = 0;   // E (routed)
  int d_model = 0;     // D
  int d_ffn = 0;       // F (expert width)
  bool has_shared = false;
  uint32_t* gu_packed = nullptr;  // [E+shared][2F/16, D/64, 32, 4]
  uint16_t* gu_scales = nullptr;  // [E+shared][2F/16, D/64, 8, 4] bf16
  uint32_t* dn_packed = nullptr;  // [E+shared][D/16, F/64, 32, 4]
  uint16_t* dn_scales = nullptr;  // [E+shared][D/16, F/64, 8, 4] bf16
  const void** ptrs = nullptr;    // device [4][E+shared]: gu_packed, gu_scales, dn_packed, dn_scales per expert
  const uint16_t* router = nullptr;  // device bf16 [E, D] router weight (not owned), or nullptr: pass logits

  int n_total() const { return n_experts + (has_shared ? 1 : 0); }
  // Bytes one expert's weights occupy (gate + up + down, nibbles + scales).
  size_t expert_bytes() const { return size_t(3) * d_model * d_ffn / 2 + size_t(3) * d_model * d_ffn / 16; }
};

// Allocates the layer (weights uninitialised). Needs D % 64 == 0, F % 64 == 0. Throws strata::Error.
W4A16MoeLayer w4a16_moe_create(int n_experts, int d_model, int d_ffn, bool has_shared);
void w4a16_moe_free(W4A16MoeLayer& layer);

// Repacks expert e (e == E: the shared expert) from compressed-tensors buffers already on the device:
// gate/up int32 [F, D/8] + bf16 [F, D/32], down int32 [D, F/8] + bf16 [D, F/32]. Asynchronous on `stream`.
void w4a16_moe_set_expert(W4A16MoeLayer& layer, int e, const uint32_t* gate_packed, const uint16_t* gate_scales,
                          const uint32_t* up_packed, const uint16_t* up_scales, const uint32_t* down_packed,
                          const uint16_t* down_scales, void* stream);
// Same from host LinearWeights of kind Int4 (synchronous upload).
void w4a16_moe_upload_expert(W4A16MoeLayer& layer, int e, const LinearWeight& gate, const LinearWeight& up,
                             const LinearWeight& down);

// Device scratch the forward needs for T tokens.
size_t w4a16_moe_workspace_bytes(const W4A16MoeLayer& layer, int top_k, int T);

// Optional device outputs of the forward's intermediate steps (for checks and expert-load accounting).
struct MoeTrace {
  float* logits = nullptr;  // [T, E] f32 copy of the router logits
  int* ids = nullptr;       // [T, top_k]
  float* weights = nullptr; // [T, top_k]
  int* n_active = nullptr;  // [1] experts run (routed + shared)
  int* active = nullptr;    // [E+1] their ids
};

// Tokens up to which the forward computes the router logits with its own GEMV instead of cuBLAS (H200, Kimi-K2
// router 384 x 7168: 7.1 vs 8.6 us at one token, but 18.2 vs 8.9 at eight; bench/cuda/results).
constexpr int kMoeRouterGemvMaxT = 2;

// Tuning overrides for the grouped expert GEMMs (0 = chosen).
struct MoeOptions {
  // gate/up: row blocks per warp (2, 4; 8 with the pipelined kernel, at most 8 warps), warps per CTA (4, 8, 16)
  int gu_rows = 0, gu_warps = 0;
  int dn_rows = 0, dn_warps = 0;  // down: row blocks per warp (1, 2, 4; 8 as for gate/up), warps per CTA
  // The pipelined skinny kernel (1; -1 = the default) or the register-staged one (0); its ring stages (2..8; 0 = as
  // many as fit two CTAs per SM).
  int pipe = -1, stages = 0;
  // Chain the layer's launches with programmatic dependent launch (1, the default) or launch them plainly (0).
  int pdl = 1;
  // Router logits of up to kMoeRouterGemvMaxT tokens: our GEMV (1, the default) or cuBLAS (0, as for more tokens).
  int router_gemv = 1;
  // Profiling: six cudaEvent_t (as void*) recorded on the stream after the router GEMM, the routing, the plan, the
  // gate/up GEMM, the down GEMM and the combine (w4a16_moe_experts records the last four); nullptr: none.
  void* const* stage_events = nullptr;
};

// y[T, D] f32 (=, or += when accumulate) = sum_j w[t, j] * expert_{id[t, j]}(x[t]) (+ shared(x[t])).
// x: device bf16 [T, D], 16-byte aligned rows. logits: device f32 [T, E], or nullptr to compute x . router^T.
// Asynchronous on `stream`; workspace: at least w4a16_moe_workspace_bytes bytes.
void w4a16_moe_forward(const W4A16MoeLayer& layer, const MoeRouting& routing, const uint16_t* x, int T,
                       const float* logits, float* y, bool accumulate, void* workspace, size_t workspace_bytes,
                       void* stream, const MoeTrace* trace = nullptr, const MoeOptions& opt = {});

// Routing alone: logits device f32 [T, E] -> ids [T, k], weights [T, k] (device). Asynchronous.
void w4a16_moe_route(const float* logits, int T, const MoeRouting& routing, int* ids, float* weights, void* stream);

// The experts alone, on given routing (device ids/weights [T, k]): permutation, grouped GEMMs, combine (+ shared).
// Same workspace as the forward.
void w4a16_moe_experts(const W4A16MoeLayer& layer, const uint16_t* x, int T, const int* ids, const float* weights,
                       int top_k, float* y, bool accumulate, void* workspace, size_t workspace_bytes, void* stream,
                       const MoeOptions& opt = {});

}  // namespace strata::cuda
