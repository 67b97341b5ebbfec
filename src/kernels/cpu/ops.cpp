// Scalar f32 implementations of the non-GEMM ops; OpenMP over rows/heads where it pays.
#include "kernels/cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/cpu/attention_paged.h"
#include "kernels/cpu/linear.h"

namespace strata {

void rms_norm_f32(const float* x, const float* weight, int M, int D, float eps, float* y) {
  for (int m = 0; m < M; m++) {
    const float* xr = x + size_t(m) * D;
    float* yr = y + size_t(m) * D;
    double ss = 0;
    for (int i = 0; i < D; i++) ss += double(xr[i]) * xr[i];
    const float inv = 1.0f / std::sqrt(float(ss / D) + eps);
    for (int i = 0; i < D; i++) yr[i] = weight[i] * (xr[i] * inv);
  }
}

void silu_mul_f32(const float* gate, const float* up, size_t n, float* out) {
  for (size_t i = 0; i < n; i++) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void add_f32(float* y, const float* x, size_t n) {
  for (size_t i = 0; i < n; i++) y[i] += x[i];
}

void rope_apply_f32(float* x, int M, int n_heads, int stride, int rot_dim, const float* cos, const float* sin,
                    bool interleaved) {
  const int half = rot_dim / 2;
  for (int m = 0; m < M; m++) {
    const float* c = cos + size_t(m) * half;
    const float* s = sin + size_t(m) * half;
    for (int h = 0; h < n_heads; h++) {
      float* v = x + (size_t(m) * n_heads + h) * stride;
      for (int i = 0; i < half; i++) {
        const int a = interleaved ? 2 * i : i;
        const int b = interleaved ? 2 * i + 1 : i + half;
        const float x0 = v[a], x1 = v[b];
        v[a] = x0 * c[i] - x1 * s[i];
        v[b] = x1 * c[i] + x0 * s[i];
      }
    }
  }
}

void softmax_inplace(float* p, int n) {
  float mx = p[0];
  for (int i = 1; i < n; i++) mx = std::max(mx, p[i]);
  double sum = 0;
  for (int i = 0; i < n; i++) {
    p[i] = std::exp(p[i] - mx);
    sum += p[i];
  }
  const float inv = float(1.0 / sum);
  for (int i = 0; i < n; i++) p[i] *= inv;
}

// The contiguous caches are one-block tables of the paged kernels (same arithmetic, same bits).
void attention_causal_f32(const float* q, int M, int H, int Hkv, int hd, int hdv, const float* k, const float* v,
                          int pos0, float scale, float* out) {
  const int table[1] = {0};
  attention_paged_f32(q, M, H, Hkv, hd, hdv, k, v, table, pos0 + M, pos0, scale, out);
}

void mla_attention_f32(const float* q_lat, const float* q_pe, int M, int H, int R, int P, const float* latent,
                       const float* k_pe, int pos0, float scale, float* out_lat) {
  const int table[1] = {0};
  mla_attention_paged_f32(q_lat, q_pe, M, H, R, P, latent, k_pe, table, pos0 + M, pos0, scale, out_lat);
}

void matmul_rows_f32(const float* x, int M, const LinearWeight& w, int row0, int R, float* y) {
  const int C = w.n_in;
  std::fill(y, y + size_t(M) * C, 0.f);
  std::vector<float> row(static_cast<size_t>(C));  // [C] f32: W[row0 + r, :]
  for (int r = 0; r < R; r++) {
    decode_weight_row(w, row0 + r, row.data());
    for (int m = 0; m < M; m++) {
      const float a = x[size_t(m) * R + r];
      float* yr = y + size_t(m) * C;
      for (int c = 0; c < C; c++) yr[c] += a * row[c];
    }
  }
}

void moe_route_f32(const float* logits, int M, const RouterParams& p, int* ids, float* weights) {
  const int E = p.n_experts, K = p.top_k;
  std::vector<float> score(static_cast<size_t>(E)), choice(static_cast<size_t>(E));
  std::vector<int> order(static_cast<size_t>(E));
  for (int m = 0; m < M; m++) {
    const float* l = logits + size_t(m) * E;
    if (p.sigmoid) {
      for (int e = 0; e < E; e++) score[e] = 1.0f / (1.0f + std::exp(-l[e]));
    } else {
      std::copy(l, l + E, score.begin());
      softmax_inplace(score.data(), E);
    }
    for (int e = 0; e < E; e++) choice[e] = score[e] + (p.choice_bias ? p.choice_bias[e] : 0.f);
    if (p.n_group > 1) {
      // Group score = sum of its two best choice scores; experts outside the best topk_group
      // groups get choice 0 (HF masked_fill(0.0), not -inf: kept for exact parity).
      const int per = E / p.n_group;
      std::vector<float> gs(static_cast<size_t>(p.n_group));
      for (int g = 0; g < p.n_group; g++) {
        std::vector<float> v(choice.begin() + g * per, choice.begin() + (g + 1) * per);
        std::partial_sort(v.begin(), v.begin() + 2, v.end(), std::greater<float>());
        gs[g] = v[0] + v[1];
      }
      std::vector<int> gi(static_cast<size_t>(p.n_group));
      std::iota(gi.begin(), gi.end(), 0);
      std::stable_sort(gi.begin(), gi.end(), [&](int a, int b) { return gs[a] > gs[b]; });
      std::vector<char> keep(size_t(p.n_group), 0);
      for (int i = 0; i < p.topk_group; i++) keep[gi[i]] = 1;
      for (int e = 0; e < E; e++)
        if (!keep[e / per]) choice[e] = 0.f;
    }
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + K, order.end(), [&](int a, int b) {
      return choice[a] > choice[b] || (choice[a] == choice[b] && a < b);
    });
    float sum = 0.f;
    for (int i = 0; i < K; i++) {
      ids[size_t(m) * K + i] = order[i];
      weights[size_t(m) * K + i] = score[order[i]];
      sum += score[order[i]];
    }
    for (int i = 0; i < K; i++) {
      float& w = weights[size_t(m) * K + i];
      if (p.renormalize) w /= (sum + p.renorm_eps);
      w *= p.scaling;
    }
  }
}

}  // namespace strata
