// AVX-512 linear: bf16 and INT4 weights expanded to f32 in registers, FMA against up to 8 rows
// of x at a time so each weight row is dequantised once per 8 tokens. Compiled with -mavx512*.
#include <immintrin.h>

#include <vector>

#include "kernels/cpu/linear.h"
#include "kernels/cpu/linear_tiling.h"
#include "quant/int4_format.h"

namespace strata {

namespace {

// 32 INT4 codes (16 bytes, compressed-tensors order) times `scale` -> two [16] f32 vectors.
inline void dequant32(const uint8_t* bytes, __m512 scale, __m512& w0, __m512& w1) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes));
  const __m128i mask = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_and_si128(v, mask);                     // elements 0, 2, 4, ...
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), mask);  // elements 1, 3, 5, ...
  const __m128i eight = _mm_set1_epi8(8);
  const __m128i e0 = _mm_sub_epi8(_mm_unpacklo_epi8(lo, hi), eight);  // elements 0..15
  const __m128i e1 = _mm_sub_epi8(_mm_unpackhi_epi8(lo, hi), eight);  // elements 16..31
  w0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(e0)), scale);
  w1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(e1)), scale);
}

inline __m512 load_bf16x16(const uint16_t* p) {
  __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

inline float bf16f(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}

// One output column n for MT rows of x starting at row m0.
template <int MT>
inline void int4_col(const float* x, int K, int k0, int k1, const LinearWeight& w, int n, int m0, float* out) {
  const uint8_t* row = reinterpret_cast<const uint8_t*>(w.packed + size_t(n) * (K / 8));
  const uint16_t* sc = w.scales + size_t(n) * (K / kInt4GroupSize);
  __m512 acc[MT];
  for (int i = 0; i < MT; i++) acc[i] = _mm512_setzero_ps();
  for (int g = k0 / 32; g < k1 / 32; g++) {
    __m512 w0, w1;
    dequant32(row + g * 16, _mm512_set1_ps(bf16f(sc[g])), w0, w1);
    for (int i = 0; i < MT; i++) {
      const float* xr = x + size_t(m0 + i) * K + g * 32;
      acc[i] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xr), acc[i]);
      acc[i] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xr + 16), acc[i]);
    }
  }
  for (int i = 0; i < MT; i++) out[i] += _mm512_reduce_add_ps(acc[i]);
}

template <int MT>
inline void bf16_col(const float* x, int K, int k0, int k1, const LinearWeight& w, int n, int m0, float* out) {
  const uint16_t* row = static_cast<const uint16_t*>(w.dense) + size_t(n) * K;
  __m512 acc[MT];
  for (int i = 0; i < MT; i++) acc[i] = _mm512_setzero_ps();
  int k = k0;
  for (; k + 16 <= k1; k += 16) {
    const __m512 wv = load_bf16x16(row + k);
    for (int i = 0; i < MT; i++) acc[i] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + size_t(m0 + i) * K + k), acc[i]);
  }
  for (int i = 0; i < MT; i++) {
    float s = _mm512_reduce_add_ps(acc[i]);
    for (int kk = k; kk < k1; kk++) s += bf16f(row[kk]) * x[size_t(m0 + i) * K + kk];
    out[i] += s;
  }
}

template <int MT>
inline void col_tile(const float* x, int K, int k0, int k1, const LinearWeight& w, int n, int m0, float* out) {
  if (w.kind == WeightKind::Int4)
    int4_col<MT>(x, K, k0, k1, w, n, m0, out);
  else
    bf16_col<MT>(x, K, k0, k1, w, n, m0, out);
}

}  // namespace

void linear_cols_avx512(const float* x, int M, const LinearWeight& w, int n_begin, int n_end, float* y) {
  if (w.kind == WeightKind::Gguf) {  // GGUF blocks: the AVX2 kernels (every AVX-512 CPU has AVX2)
    linear_cols_avx2(x, M, w, n_begin, n_end, y);
    return;
  }
  if (w.kind != WeightKind::Int4 && w.kind != WeightKind::BF16) {
    linear_cols_scalar(x, M, w, n_begin, n_end, y);
    return;
  }
  const int K = w.n_in;
  linear_cols_tiled<8, 1024>(M, w, n_begin, n_end, y, [&](int mt, int k0, int k1, int n, int m0, float* out) {
    switch (mt) {
      case 8: col_tile<8>(x, K, k0, k1, w, n, m0, out); break;
      case 7: col_tile<7>(x, K, k0, k1, w, n, m0, out); break;
      case 6: col_tile<6>(x, K, k0, k1, w, n, m0, out); break;
      case 5: col_tile<5>(x, K, k0, k1, w, n, m0, out); break;
      case 4: col_tile<4>(x, K, k0, k1, w, n, m0, out); break;
      case 3: col_tile<3>(x, K, k0, k1, w, n, m0, out); break;
      case 2: col_tile<2>(x, K, k0, k1, w, n, m0, out); break;
      default: col_tile<1>(x, K, k0, k1, w, n, m0, out); break;
    }
  });
}

}  // namespace strata
