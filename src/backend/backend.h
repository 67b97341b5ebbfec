// The backend op interface: every computation the models run goes through these ops, so a new
// backend (CUDA) is a new implementation tested op by op against the CPU one.
// Not a graph or a scheduler: ops run eagerly, in the order the model calls them. Pointers are
// the backend's memory (host memory for the CPU backend).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/weight.h"
#include "kernels/cpu/attention_paged.h"
#include "kernels/cpu/ops.h"

namespace strata {

// A SwiGLU FFN: down(silu(gate(x)) * up(x)). Dense MLPs, routed and shared experts.
struct FfnWeights {
  LinearWeight gate;  // [F, D]
  LinearWeight up;    // [F, D]
  LinearWeight down;  // [D, F]
};

// Per-call expert accounting: which experts a MoE layer read, and how many weight bytes.
struct ExpertLoad {
  int n_active_experts = 0;
  size_t bytes = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // y[M, N] = x[M, K] . W^T + bias (any weight kind, INT4 dequantised in the kernel).
  virtual void linear(const float* x, int M, const LinearWeight& w, float* y) = 0;
  // y[M, D] = rms_norm(x) * weight
  virtual void rms_norm(const float* x, const float* weight, int M, int D, float eps, float* y) = 0;
  // y[M, D] = swiglu ffn(x)
  virtual void ffn(const float* x, int M, const FfnWeights& w, float* y) = 0;
  // See kernels/cpu/ops.h for the shapes.
  virtual void rope(float* x, int M, int n_heads, int stride, int rot_dim, const float* cos, const float* sin,
                    bool interleaved) = 0;
  virtual void attention(const float* q, int M, int H, int Hkv, int hd, int hdv, const float* k, const float* v,
                         int pos0, float scale, float* out) = 0;
  virtual void mla_attention(const float* q_lat, const float* q_pe, int M, int H, int R, int P, const float* latent,
                             const float* k_pe, int pos0, float scale, float* out_lat) = 0;
  // The same over a paged KV pool (kernels/cpu/attention_paged.h for the layout). Default: the CPU
  // kernel on host memory, so a backend that does not override them keeps working.
  virtual void attention_paged(const float* q, int M, int H, int Hkv, int hd, int hdv, const float* k_pool,
                               const float* v_pool, const int* block_table, int block_size, int pos0, float scale,
                               float* out) {
    attention_paged_f32(q, M, H, Hkv, hd, hdv, k_pool, v_pool, block_table, block_size, pos0, scale, out);
  }
  virtual void mla_attention_paged(const float* q_lat, const float* q_pe, int M, int H, int R, int P,
                                   const float* latent_pool, const float* k_pe_pool, const int* block_table,
                                   int block_size, int pos0, float scale, float* out_lat) {
    mla_attention_paged_f32(q_lat, q_pe, M, H, R, P, latent_pool, k_pe_pool, block_table, block_size, pos0, scale,
                            out_lat);
  }
  // logits [M, E] -> ids/weights [M, top_k]
  virtual void moe_route(const float* logits, int M, const RouterParams& p, int* ids, float* weights) = 0;
  // y[M, D] += sum_j weights[m, j] * experts[ids[m, j]](x[m]) over the active experts only.
  virtual ExpertLoad moe_experts(const float* x, int M, int D, const std::vector<FfnWeights>& experts, const int* ids,
                                 const float* weights, int top_k, float* y) = 0;
};

// The CPU backend (the reference every other backend is checked against).
std::unique_ptr<Backend> make_cpu_backend();

}  // namespace strata
