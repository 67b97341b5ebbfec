// Paged causal attention (GQA and absorbed MLA) on the CPU: the reference the batched forward
// uses for every sequence, contiguous caches included (as a one-block table); both dispatch to the AVX2 kernels
// (attention_paged_avx2.cpp) where the CPU has them.
#include "kernels/cpu/attention_paged.h"

#include "kernels/cpu/linear.h"  // cpu_isa_active
#include "kernels/cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace strata {

namespace {
// Pool row of token position t: block_table[t / bs] * bs + t % bs.
inline size_t pool_row(const int* block_table, int block_size, int t) {
  return size_t(block_table[t / block_size]) * size_t(block_size) + size_t(t % block_size);
}
}  // namespace

void attention_paged_f32(const float* q, int M, int H, int Hkv, int hd, int hdv, const float* k_pool,
                         const float* v_pool, const int* block_table, int block_size, int pos0, float scale,
                         float* out) {
  const auto f = cpu_isa_active() >= CpuIsa::Avx2 && hd % 8 == 0 && hdv % 8 == 0 ? attention_paged_f32_avx2
                                                                                  : attention_paged_f32_scalar;
  f(q, M, H, Hkv, hd, hdv, k_pool, v_pool, block_table, block_size, pos0, scale, out);
}

void attention_paged_f32_scalar(const float* q, int M, int H, int Hkv, int hd, int hdv, const float* k_pool,
                                const float* v_pool, const int* block_table, int block_size, int pos0, float scale,
                                float* out) {
  const int group = H / Hkv;
  // Row index of every visible position, computed once for all heads and queries.
  const int n_ctx = pos0 + M;
  std::vector<size_t> rows(static_cast<size_t>(n_ctx));
  for (int t = 0; t < n_ctx; t++) rows[size_t(t)] = pool_row(block_table, block_size, t);
#pragma omp parallel for collapse(2) schedule(dynamic, 4) if (size_t(M) * H * n_ctx > 4096)
  for (int m = 0; m < M; m++) {
    for (int h = 0; h < H; h++) {
      const int n_keys = pos0 + m + 1;
      const int hk = h / group;
      const float* qv = q + (size_t(m) * H + h) * hd;
      std::vector<float> p(static_cast<size_t>(n_keys));
      for (int t = 0; t < n_keys; t++) {
        const float* kv = k_pool + (rows[size_t(t)] * Hkv + hk) * hd;
        float dot = 0.f;
        for (int d = 0; d < hd; d++) dot += qv[d] * kv[d];
        p[t] = dot * scale;
      }
      softmax_inplace(p.data(), n_keys);
      float* o = out + (size_t(m) * H + h) * hdv;
      std::fill(o, o + hdv, 0.f);
      for (int t = 0; t < n_keys; t++) {
        const float* vv = v_pool + (rows[size_t(t)] * Hkv + hk) * hdv;
        for (int d = 0; d < hdv; d++) o[d] += p[t] * vv[d];
      }
    }
  }
}

void mla_attention_paged_f32(const float* q_lat, const float* q_pe, int M, int H, int R, int P,
                             const float* latent_pool, const float* k_pe_pool, const int* block_table,
                             int block_size, int pos0, float scale, float* out_lat) {
  const auto f = cpu_isa_active() >= CpuIsa::Avx2 && R % 8 == 0 && P % 8 == 0 ? mla_attention_paged_f32_avx2
                                                                              : mla_attention_paged_f32_scalar;
  f(q_lat, q_pe, M, H, R, P, latent_pool, k_pe_pool, block_table, block_size, pos0, scale, out_lat);
}

void mla_attention_paged_f32_scalar(const float* q_lat, const float* q_pe, int M, int H, int R, int P,
                                    const float* latent_pool, const float* k_pe_pool, const int* block_table,
                                    int block_size, int pos0, float scale, float* out_lat) {
  const int n_ctx = pos0 + M;
  std::vector<size_t> rows(static_cast<size_t>(n_ctx));
  for (int t = 0; t < n_ctx; t++) rows[size_t(t)] = pool_row(block_table, block_size, t);
#pragma omp parallel for collapse(2) schedule(dynamic, 4) if (size_t(M) * H * n_ctx > 4096)
  for (int m = 0; m < M; m++) {
    for (int h = 0; h < H; h++) {
      const int n_keys = pos0 + m + 1;
      const float* ql = q_lat + (size_t(m) * H + h) * R;
      const float* qp = q_pe + (size_t(m) * H + h) * P;
      std::vector<float> p(static_cast<size_t>(n_keys));
      for (int t = 0; t < n_keys; t++) {
        const float* c = latent_pool + rows[size_t(t)] * R;
        const float* kp = k_pe_pool + rows[size_t(t)] * P;
        float dot = 0.f;
        for (int d = 0; d < R; d++) dot += ql[d] * c[d];
        for (int d = 0; d < P; d++) dot += qp[d] * kp[d];
        p[t] = dot * scale;
      }
      softmax_inplace(p.data(), n_keys);
      float* o = out_lat + (size_t(m) * H + h) * R;
      std::fill(o, o + R, 0.f);
      for (int t = 0; t < n_keys; t++) {
        const float* c = latent_pool + rows[size_t(t)] * R;
        for (int d = 0; d < R; d++) o[d] += p[t] * c[d];
      }
    }
  }
}

}  // namespace strata
