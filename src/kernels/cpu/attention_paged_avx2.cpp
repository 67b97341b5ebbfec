// AVX2 + FMA paged attention (GQA): the reference's math (attention_paged.cpp) with the dot products and the
// value sums in 8-wide vectors, and the query heads of one KV head taken together so that each key and value
// row is loaded once for the whole group. The reference's dot product is a serial scalar chain (64 dependent
// FMAs per key at hd 64); on SmolLM2 serving at 4 streams it was 42% of the server's CPU time (perf). Absorbed
// MLA the same way, all heads of a query at once (they share the latent rows).
// Compiled with -mavx2 -mfma (CMakeLists.txt); called only when cpu_isa_active() has AVX2.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/attention_paged.h"

namespace strata {

namespace {
inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// sum_d a[d] b[d], n % 8 == 0: two accumulators to halve the FMA dependency chain.
inline float dot8(const float* a, const float* b, int n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int d = 0;
  for (; d + 16 <= n; d += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), _mm256_loadu_ps(b + d), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d + 8), _mm256_loadu_ps(b + d + 8), s1);
  }
  if (d < n) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), _mm256_loadu_ps(b + d), s0);
  return hsum8(_mm256_add_ps(s0, s1));
}
// e^x for x <= 0 (scores minus their maximum): Cody-Waite reduction by ln 2 and the Cephes expf polynomial
// (about 1 ulp); 0 below -87.3, where e^x leaves the normal floats.
inline __m256 exp_nonpositive(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.33654f);
  const __m256 live = _mm256_cmp_ps(x, lo, _CMP_GE_OQ);
  x = _mm256_max_ps(x, lo);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);  // x - n ln2, ln2 in two parts
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_and_ps(_mm256_mul_ps(y, _mm256_castsi256_ps(e)), live);
}

// softmax_inplace (ops.h) in 8 lanes: the scalar one's std::exp was ~5% of a 4-stream server's time.
inline void softmax8(float* p, int n) {
  __m256 mv = _mm256_set1_ps(-INFINITY);
  int i = 0;
  for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(p + i));
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mv), _mm256_extractf128_ps(mv, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  float mx = std::max(_mm_cvtss_f32(m4), _mm_cvtss_f32(_mm_movehdup_ps(m4)));
  for (int j = i; j < n; j++) mx = std::max(mx, p[j]);
  const __m256 mxv = _mm256_set1_ps(mx);
  __m256 sv = _mm256_setzero_ps();
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256 e = exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(p + i), mxv));
    _mm256_storeu_ps(p + i, e);
    sv = _mm256_add_ps(sv, e);
  }
  double sum = hsum8(sv);
  for (; i < n; i++) {
    p[i] = std::exp(p[i] - mx);
    sum += p[i];
  }
  const __m256 inv = _mm256_set1_ps(float(1.0 / sum));
  for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(p + i, _mm256_mul_ps(_mm256_loadu_ps(p + i), inv));
  for (; i < n; i++) p[i] *= float(1.0 / sum);
}

// o[0, n) = sum_t p[t] * pool[rows[t] * stride + off + (0, n)], n % 8 == 0. 64 columns at a time stay in 8
// registers while the keys stream by, so each value row is read once per 64 columns (a column-slice-outer loop
// re-reads every row n / 8 times).
inline void weighted_rows(const float* p, int n_keys, const float* pool, const size_t* rows, size_t stride,
                          size_t off, int n, float* o) {
  int d0 = 0;
  for (; d0 + 64 <= n; d0 += 64) {
    __m256 acc[8];
    for (int j = 0; j < 8; j++) acc[j] = _mm256_setzero_ps();
    for (int t = 0; t < n_keys; t++) {
      const __m256 pt = _mm256_set1_ps(p[t]);
      const float* v = pool + rows[t] * stride + off + d0;
      for (int j = 0; j < 8; j++) acc[j] = _mm256_fmadd_ps(pt, _mm256_loadu_ps(v + 8 * j), acc[j]);
    }
    for (int j = 0; j < 8; j++) _mm256_storeu_ps(o + d0 + 8 * j, acc[j]);
  }
  for (; d0 < n; d0 += 8) {
    __m256 acc = _mm256_setzero_ps();
    for (int t = 0; t < n_keys; t++)
      acc = _mm256_fmadd_ps(_mm256_set1_ps(p[t]), _mm256_loadu_ps(pool + rows[t] * stride + off + d0), acc);
    _mm256_storeu_ps(o + d0, acc);
  }
}
}  // namespace

void attention_paged_f32_avx2(const float* q, int M, int H, int Hkv, int hd, int hdv, const float* k_pool,
                              const float* v_pool, const int* block_table, int block_size, int pos0, float scale,
                              float* out) {
  const int group = H / Hkv;
  const int n_ctx = pos0 + M;
  std::vector<size_t> rows(static_cast<size_t>(n_ctx));  // pool row of every visible position
  for (int t = 0; t < n_ctx; t++)
    rows[size_t(t)] = size_t(block_table[t / block_size]) * size_t(block_size) + size_t(t % block_size);
#pragma omp parallel for collapse(2) schedule(dynamic, 2) if (size_t(M) * H * n_ctx > 4096)
  for (int m = 0; m < M; m++) {
    for (int hk = 0; hk < Hkv; hk++) {
      const int n_keys = pos0 + m + 1;
      // p[g][t]: the scores, then the probabilities, of query head hk * group + g.
      std::vector<float> p(size_t(group) * size_t(n_keys));
      const float* q0 = q + (size_t(m) * H + size_t(hk) * group) * hd;
      for (int t = 0; t < n_keys; t++) {
        const float* kv = k_pool + (rows[size_t(t)] * Hkv + hk) * hd;
        for (int g = 0; g < group; g++) p[size_t(g) * n_keys + t] = dot8(q0 + size_t(g) * hd, kv, hd) * scale;
      }
      for (int g = 0; g < group; g++) softmax8(p.data() + size_t(g) * n_keys, n_keys);
      float* o0 = out + (size_t(m) * H + size_t(hk) * group) * hdv;
      for (int g = 0; g < group; g++)
        weighted_rows(p.data() + size_t(g) * n_keys, n_keys, v_pool, rows.data(), size_t(Hkv) * hdv,
                      size_t(hk) * hdv, hdv, o0 + size_t(g) * hdv);
    }
  }
}

// Absorbed MLA: every head reads the same latent and rope-key rows, so all H heads of a query go together and
// each row is loaded once per query (the scalar reference loads it once per head).
void mla_attention_paged_f32_avx2(const float* q_lat, const float* q_pe, int M, int H, int R, int P,
                                  const float* latent_pool, const float* k_pe_pool, const int* block_table,
                                  int block_size, int pos0, float scale, float* out_lat) {
  const int n_ctx = pos0 + M;
  std::vector<size_t> rows(static_cast<size_t>(n_ctx));
  for (int t = 0; t < n_ctx; t++)
    rows[size_t(t)] = size_t(block_table[t / block_size]) * size_t(block_size) + size_t(t % block_size);
#pragma omp parallel for schedule(dynamic, 1) if (size_t(M) * H * n_ctx > 4096)
  for (int m = 0; m < M; m++) {
    const int n_keys = pos0 + m + 1;
    std::vector<float> p(size_t(H) * size_t(n_keys));  // p[h][t]
    for (int t = 0; t < n_keys; t++) {
      const float* c = latent_pool + rows[size_t(t)] * R;
      const float* kp = k_pe_pool + rows[size_t(t)] * P;
      for (int h = 0; h < H; h++) {
        const float* ql = q_lat + (size_t(m) * H + h) * R;
        const float* qp = q_pe + (size_t(m) * H + h) * P;
        p[size_t(h) * n_keys + t] = (dot8(ql, c, R) + dot8(qp, kp, P)) * scale;
      }
    }
    for (int h = 0; h < H; h++) softmax8(p.data() + size_t(h) * n_keys, n_keys);
    for (int h = 0; h < H; h++)
      weighted_rows(p.data() + size_t(h) * n_keys, n_keys, latent_pool, rows.data(), size_t(R), 0, R,
                    out_lat + (size_t(m) * H + h) * R);
  }
}

}  // namespace strata
