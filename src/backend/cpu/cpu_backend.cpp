// CPU backend: the op table over kernels/cpu. MoE runs expert by expert over the tokens routed
// to it, so each active expert's weights are streamed once per call.
#include <algorithm>
#include <vector>

#include "backend/backend.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/ops.h"

namespace strata {

namespace {

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }

  void linear(const float* x, int M, const LinearWeight& w, float* y) override { linear_f32(x, M, w, y); }

  void rms_norm(const float* x, const float* weight, int M, int D, float eps, float* y) override {
    rms_norm_f32(x, weight, M, D, eps, y);
  }

  void ffn(const float* x, int M, const FfnWeights& w, float* y) override {
    const int F = w.gate.n_out;
    std::vector<float> g(size_t(M) * F), u(size_t(M) * F);  // [M, F]
    linear_f32(x, M, w.gate, g.data());
    linear_f32(x, M, w.up, u.data());
    silu_mul_f32(g.data(), u.data(), g.size(), g.data());
    linear_f32(g.data(), M, w.down, y);
  }

  void rope(float* x, int M, int n_heads, int stride, int rot_dim, const float* cos, const float* sin,
            bool interleaved) override {
    rope_apply_f32(x, M, n_heads, stride, rot_dim, cos, sin, interleaved);
  }

  void attention(const float* q, int M, int H, int Hkv, int hd, int hdv, const float* k, const float* v, int pos0,
                 float scale, float* out) override {
    attention_causal_f32(q, M, H, Hkv, hd, hdv, k, v, pos0, scale, out);
  }

  void mla_attention(const float* q_lat, const float* q_pe, int M, int H, int R, int P, const float* latent,
                     const float* k_pe, int pos0, float scale, float* out_lat) override {
    mla_attention_f32(q_lat, q_pe, M, H, R, P, latent, k_pe, pos0, scale, out_lat);
  }

  void moe_route(const float* logits, int M, const RouterParams& p, int* ids, float* weights) override {
    moe_route_f32(logits, M, p, ids, weights);
  }

  ExpertLoad moe_experts(const float* x, int M, int D, const std::vector<FfnWeights>& experts, const int* ids,
                         const float* weights, int top_k, float* y) override {
    // tokens[e] = (row m, routing weight) pairs routed to expert e.
    std::vector<std::vector<std::pair<int, float>>> tokens(experts.size());
    for (int m = 0; m < M; m++)
      for (int j = 0; j < top_k; j++) tokens[size_t(ids[m * top_k + j])].push_back({m, weights[m * top_k + j]});
    ExpertLoad load;
    std::vector<float> xe, ye;
    for (size_t e = 0; e < experts.size(); e++) {
      const auto& rows = tokens[e];
      if (rows.empty()) continue;
      const FfnWeights& w = experts[e];
      load.n_active_experts++;
      load.bytes += w.gate.bytes() + w.up.bytes() + w.down.bytes();
      const int Me = int(rows.size());
      xe.resize(size_t(Me) * D);  // [Me, D] gathered rows
      ye.resize(size_t(Me) * D);  // [Me, D] expert output
      for (int i = 0; i < Me; i++) std::copy_n(x + size_t(rows[i].first) * D, D, xe.data() + size_t(i) * D);
      ffn(xe.data(), Me, w, ye.data());
      for (int i = 0; i < Me; i++) {
        float* yr = y + size_t(rows[i].first) * D;
        const float* er = ye.data() + size_t(i) * D;
        for (int d = 0; d < D; d++) yr[d] += rows[i].second * er[d];
      }
    }
    return load;
  }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace strata
