// AVX2 linear: the AVX-512 kernel's scheme on 8-lane registers, 4 rows of x per weight pass.
// Compiled with -mavx2 -mfma.
#include <immintrin.h>

#include "core/dtype.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/linear_tiling.h"
#include "quant/gguf_blocks.h"
#include "quant/int4_format.h"

namespace strata {

namespace {

inline float bf16f(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// 32 INT4 codes times scale -> four [8] f32 vectors (elements 0..7, 8..15, 16..23, 24..31).
inline void dequant32(const uint8_t* bytes, __m256 scale, __m256 w[4]) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes));
  const __m128i mask = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_and_si128(v, mask);
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), mask);
  const __m128i eight = _mm_set1_epi8(8);
  const __m128i e0 = _mm_sub_epi8(_mm_unpacklo_epi8(lo, hi), eight);
  const __m128i e1 = _mm_sub_epi8(_mm_unpackhi_epi8(lo, hi), eight);
  w[0] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(e0)), scale);
  w[1] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(e0, 8))), scale);
  w[2] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(e1)), scale);
  w[3] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(e1, 8))), scale);
}

template <int MT>
inline void int4_col(const float* x, int K, int k0, int k1, const LinearWeight& w, int n, int m0, float* out) {
  const uint8_t* row = reinterpret_cast<const uint8_t*>(w.packed + size_t(n) * (K / 8));
  const uint16_t* sc = w.scales + size_t(n) * (K / kInt4GroupSize);
  __m256 acc[MT];
  for (int i = 0; i < MT; i++) acc[i] = _mm256_setzero_ps();
  for (int g = k0 / 32; g < k1 / 32; g++) {
    __m256 wv[4];
    dequant32(row + g * 16, _mm256_set1_ps(bf16f(sc[g])), wv);
    for (int i = 0; i < MT; i++) {
      const float* xr = x + size_t(m0 + i) * K + g * 32;
      for (int q = 0; q < 4; q++) acc[i] = _mm256_fmadd_ps(wv[q], _mm256_loadu_ps(xr + 8 * q), acc[i]);
    }
  }
  for (int i = 0; i < MT; i++) out[i] += hsum(acc[i]);
}

template <int MT>
inline void bf16_col(const float* x, int K, int k0, int k1, const LinearWeight& w, int n, int m0, float* out) {
  const uint16_t* row = static_cast<const uint16_t*>(w.dense) + size_t(n) * K;
  __m256 acc[MT];
  for (int i = 0; i < MT; i++) acc[i] = _mm256_setzero_ps();
  int k = k0;
  for (; k + 8 <= k1; k += 8) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k));
    const __m256 wv = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    for (int i = 0; i < MT; i++) acc[i] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + size_t(m0 + i) * K + k), acc[i]);
  }
  for (int i = 0; i < MT; i++) {
    float s = hsum(acc[i]);
    for (int kk = k; kk < k1; kk++) s += bf16f(row[kk]) * x[size_t(m0 + i) * K + kk];
    out[i] += s;
  }
}

// GGUF 32-element blocks (quant/gguf_blocks.h) dequantised to four [8] f32 vectors.
inline float f16f(const uint8_t* p) {
  uint16_t h;
  __builtin_memcpy(&h, p, 2);
  return f16_to_f32(h);  // once per 32 weights; keeps the file free of an F16C requirement
}
inline void nibbles_to_f32(__m128i q, __m256 d, __m256 m, bool add_min, __m256 w[4]) {
  // elements 0..15 are the low nibbles of bytes 0..15, elements 16..31 the high nibbles
  const __m128i mask = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_and_si128(q, mask), hi = _mm_and_si128(_mm_srli_epi16(q, 4), mask);
  const __m256 f[4] = {_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo)),
                       _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8))),
                       _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi)),
                       _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)))};
  for (int i = 0; i < 4; i++) w[i] = add_min ? _mm256_fmadd_ps(f[i], d, m) : _mm256_mul_ps(f[i], d);
}
inline void gguf_block(uint32_t type, const uint8_t* b, __m256 w[4]) {
  switch (GgmlType(type)) {
    case GgmlType::Q4_0: {
      const __m256 d = _mm256_set1_ps(f16f(b));
      // (q - 8) * d = q * d - 8 d
      nibbles_to_f32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2)), d,
                     _mm256_mul_ps(d, _mm256_set1_ps(-8.f)), true, w);
      break;
    }
    case GgmlType::Q4_1:
      nibbles_to_f32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 4)), _mm256_set1_ps(f16f(b)),
                     _mm256_set1_ps(f16f(b + 2)), true, w);
      break;
    default: {  // Q8_0
      const __m256 d = _mm256_set1_ps(f16f(b));
      for (int i = 0; i < 4; i++) {
        const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + 2 + 8 * i));
        w[i] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d);
      }
      break;
    }
  }
}

template <int MT>
inline void gguf_col(const float* x, int K, int k0, int k1, const LinearWeight& w, int n, int m0, float* out) {
  const uint8_t* row = w.blocks + size_t(n) * w.row_bytes;
  const size_t bb = w.row_bytes / size_t(K / 32);  // bytes per 32-element block
  __m256 acc[MT];
  for (int i = 0; i < MT; i++) acc[i] = _mm256_setzero_ps();
  for (int g = k0 / 32; g < k1 / 32; g++) {
    __m256 wv[4];
    gguf_block(w.ggml_type, row + size_t(g) * bb, wv);
    for (int i = 0; i < MT; i++) {
      const float* xr = x + size_t(m0 + i) * K + g * 32;
      for (int q = 0; q < 4; q++) acc[i] = _mm256_fmadd_ps(wv[q], _mm256_loadu_ps(xr + 8 * q), acc[i]);
    }
  }
  for (int i = 0; i < MT; i++) out[i] += hsum(acc[i]);
}

template <int MT>
inline void col_tile(const float* x, int K, int k0, int k1, const LinearWeight& w, int n, int m0, float* out) {
  if (w.kind == WeightKind::Int4)
    int4_col<MT>(x, K, k0, k1, w, n, m0, out);
  else if (w.kind == WeightKind::Gguf)
    gguf_col<MT>(x, K, k0, k1, w, n, m0, out);
  else
    bf16_col<MT>(x, K, k0, k1, w, n, m0, out);
}

bool avx2_gguf_type(uint32_t t) {
  return t == uint32_t(GgmlType::Q4_0) || t == uint32_t(GgmlType::Q4_1) || t == uint32_t(GgmlType::Q8_0);
}

}  // namespace

void linear_cols_avx2(const float* x, int M, const LinearWeight& w, int n_begin, int n_end, float* y) {
  if (w.kind != WeightKind::Int4 && w.kind != WeightKind::BF16 &&
      !(w.kind == WeightKind::Gguf && avx2_gguf_type(w.ggml_type))) {
    linear_cols_scalar(x, M, w, n_begin, n_end, y);
    return;
  }
  const int K = w.n_in;
  linear_cols_tiled<4, 2048>(M, w, n_begin, n_end, y, [&](int mt, int k0, int k1, int n, int m0, float* out) {
    switch (mt) {
      case 4: col_tile<4>(x, K, k0, k1, w, n, m0, out); break;
      case 3: col_tile<3>(x, K, k0, k1, w, n, m0, out); break;
      case 2: col_tile<2>(x, K, k0, k1, w, n, m0, out); break;
      default: col_tile<1>(x, K, k0, k1, w, n, m0, out); break;
    }
  });
}

}  // namespace strata
