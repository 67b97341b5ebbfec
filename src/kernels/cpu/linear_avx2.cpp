// AVX2 linear: the AVX-512 kernel's scheme on 8-lane registers, 4 rows of x per weight pass.
// Compiled with -mavx2 -mfma -mf16c (every AVX2 CPU has F16C; linear.cpp checks all three).
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/linear_gemm.h"
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
  // Exact fp16 -> f32 without F16C (keeps the file free of that requirement): the exponent and
  // mantissa bits shifted into f32 position read as 2^-112 times the value (subnormals included,
  // as f32 denormals), so one multiply by 2^112 rescales exactly; inf / nan kept apart.
  uint16_t h;
  __builtin_memcpy(&h, p, 2);
  const uint32_t sign = uint32_t(h & 0x8000) << 16, em = uint32_t(h & 0x7fff) << 13;
  float f;
  if (__builtin_expect(em >= (0x7c00u << 13), 0)) {
    const uint32_t u = sign | 0x7f800000u | (em & 0x7fffff);
    __builtin_memcpy(&f, &u, 4);
    return f;
  }
  __builtin_memcpy(&f, &em, 4);
  f *= 0x1p112f;
  uint32_t u;
  __builtin_memcpy(&u, &f, 4);
  u |= sign;
  __builtin_memcpy(&f, &u, 4);
  return f;
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
template <GgmlType T>
__attribute__((always_inline)) inline void gguf_block_t(const uint8_t* b, __m256 w[4]) {
  if constexpr (T == GgmlType::Q4_0) {
    const __m256 d = _mm256_set1_ps(f16f(b));
    // (q - 8) * d = q * d - 8 d
    nibbles_to_f32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2)), d,
                   _mm256_mul_ps(d, _mm256_set1_ps(-8.f)), true, w);
  } else if constexpr (T == GgmlType::Q4_1) {
    nibbles_to_f32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 4)), _mm256_set1_ps(f16f(b)),
                   _mm256_set1_ps(f16f(b + 2)), true, w);
  } else {  // Q8_0
    const __m256 d = _mm256_set1_ps(f16f(b));
    for (int i = 0; i < 4; i++) {
      const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + 2 + 8 * i));
      w[i] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d);
    }
  }
}

// Blocks [g0, g1) of a GGUF row (32-element blocks of bb bytes) as f32 into out.
template <GgmlType T>
void gguf_blocks_to_f32(const uint8_t* row, size_t bb, int g0, int g1, float* out) {
  for (int g = g0; g < g1; g++) {
    __m256 wv[4];
    gguf_block_t<T>(row + size_t(g) * bb, wv);
    for (int q = 0; q < 4; q++) _mm256_storeu_ps(out + (g - g0) * 32 + 8 * q, wv[q]);
  }
}

// Q4_0 / Q4_1 / Q8_0 without expanding the weights: a block's dot product with x is
//   sum_k (d q_k + c) x_k = d * sum_k q_k x_k + c * sum_k x_k   (Q4_1: c = m; Q4_0: c = -8 d; Q8_0: c = 0)
// so per block only the raw codes are converted and multiplied, the scale is applied once to the
// block's partial sums, and the offset term uses the block sums of x computed once per call
// (xsum, [M][K/32]). F16C converts d and m. bench: 1536 x 576 Q4_1 at M = 1, one thread,
// 163-189 us -> 58-63 us per call against the dequantise-then-FMA loop (gguf_col); the decode
// GEMV is instruction-bound on unpacking, not bandwidth-bound, on this 2-core machine.
template <int MT, GgmlType T>
inline void scaled_block_col(const float* x, const float* xsum, int K, int k0, int k1, const LinearWeight& w, int n,
                             int m0, float* out) {
  static_assert(T == GgmlType::Q4_0 || T == GgmlType::Q4_1 || T == GgmlType::Q8_0);
  const uint8_t* row = w.blocks + size_t(n) * w.row_bytes;
  constexpr size_t bb = T == GgmlType::Q4_1 ? 20 : T == GgmlType::Q4_0 ? 18 : 34;
  constexpr size_t qoff = T == GgmlType::Q4_1 ? 4 : 2;
  const int G = K / 32;
  const __m256i low4 = _mm256_set1_epi32(0x0F);
  __m256 acc[MT];
  float off[MT] = {};
  for (int i = 0; i < MT; i++) acc[i] = _mm256_setzero_ps();
  for (int g = k0 / 32; g < k1 / 32; g++) {
    const uint8_t* b = row + size_t(g) * bb;
    uint32_t dm;  // Q4_1: d (low half) and m; else d and two code bytes
    __builtin_memcpy(&dm, b, 4);
    const __m128 dmf = _mm_cvtph_ps(_mm_cvtsi32_si128(int(dm)));
    const float d = _mm_cvtss_f32(dmf);
    __m256 q[4];
    auto bytes8 = [&](size_t at) { return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + qoff + at)); };
    if constexpr (T == GgmlType::Q8_0) {
      for (int j = 0; j < 4; j++) q[j] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes8(8 * size_t(j))));
    } else {
      // Bytes 0..7 and 8..15 zero-extended to 32-bit lanes; low nibbles are elements 0..15, high 16..31.
      const __m256i a0 = _mm256_cvtepu8_epi32(bytes8(0)), a1 = _mm256_cvtepu8_epi32(bytes8(8));
      q[0] = _mm256_cvtepi32_ps(_mm256_and_si256(a0, low4));
      q[1] = _mm256_cvtepi32_ps(_mm256_and_si256(a1, low4));
      q[2] = _mm256_cvtepi32_ps(_mm256_srli_epi32(a0, 4));
      q[3] = _mm256_cvtepi32_ps(_mm256_srli_epi32(a1, 4));
    }
    const __m256 dv = _mm256_set1_ps(d);
    const float c = T == GgmlType::Q4_1 ? _mm_cvtss_f32(_mm_movehdup_ps(dmf)) : -8.f * d;
    for (int i = 0; i < MT; i++) {
      const float* xr = x + size_t(m0 + i) * K + g * 32;
      __m256 t = _mm256_mul_ps(q[0], _mm256_loadu_ps(xr));
      t = _mm256_fmadd_ps(q[1], _mm256_loadu_ps(xr + 8), t);
      t = _mm256_fmadd_ps(q[2], _mm256_loadu_ps(xr + 16), t);
      t = _mm256_fmadd_ps(q[3], _mm256_loadu_ps(xr + 24), t);
      acc[i] = _mm256_fmadd_ps(t, dv, acc[i]);
      if constexpr (T != GgmlType::Q8_0) off[i] += c * xsum[size_t(m0 + i) * G + g];
    }
  }
  for (int i = 0; i < MT; i++) out[i] += hsum(acc[i]) + off[i];
}

// xsum [M][K/32]: the sums of each 32-element block of each row of x.
void block_sums(const float* x, int M, int K, float* xsum) {
  for (int m = 0; m < M; m++)
    for (int g = 0; g < K / 32; g++) {
      const float* p = x + size_t(m) * K + g * 32;
      const __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)),
                                     _mm256_add_ps(_mm256_loadu_ps(p + 16), _mm256_loadu_ps(p + 24)));
      xsum[size_t(m) * (K / 32) + g] = hsum(s);
    }
}

template <int MT>
inline void col_tile(const float* x, int K, int k0, int k1, const LinearWeight& w, int n, int m0, float* out) {
  if (w.kind == WeightKind::Int4)
    int4_col<MT>(x, K, k0, k1, w, n, m0, out);
  else
    bf16_col<MT>(x, K, k0, k1, w, n, m0, out);
}

bool avx2_gguf_type(uint32_t t) {
  return t == uint32_t(GgmlType::Q4_0) || t == uint32_t(GgmlType::Q4_1) || t == uint32_t(GgmlType::Q8_0);
}

// 8 x 8 f32 transpose: rows src[0..8) (stride lds) become columns of dst (stride ldd).
inline void transpose8x8(const float* src, size_t lds, float* dst, size_t ldd) {
  const __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + lds), r2 = _mm256_loadu_ps(src + 2 * lds),
               r3 = _mm256_loadu_ps(src + 3 * lds), r4 = _mm256_loadu_ps(src + 4 * lds),
               r5 = _mm256_loadu_ps(src + 5 * lds), r6 = _mm256_loadu_ps(src + 6 * lds),
               r7 = _mm256_loadu_ps(src + 7 * lds);
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
               t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
               t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE),
               s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE),
               s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE),
               s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(dst, _mm256_permute2f128_ps(s0, s4, 0x20));
  _mm256_storeu_ps(dst + ldd, _mm256_permute2f128_ps(s1, s5, 0x20));
  _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(s2, s6, 0x20));
  _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(s3, s7, 0x20));
  _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(s0, s4, 0x31));
  _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(s1, s5, 0x31));
  _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(s2, s6, 0x31));
  _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(s3, s7, 0x31));
}

}  // namespace

void dequant_slice_avx2(const LinearWeight& w, int n, int k0, int k1, float* out) {
  const int K = w.n_in;
  switch (w.kind) {
    case WeightKind::F32:
      std::memcpy(out, static_cast<const float*>(w.dense) + size_t(n) * K + k0, sizeof(float) * size_t(k1 - k0));
      return;
    case WeightKind::BF16: {
      const uint16_t* row = static_cast<const uint16_t*>(w.dense) + size_t(n) * K;
      int k = k0;
      for (; k + 8 <= k1; k += 8) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k));
        _mm256_storeu_ps(out + (k - k0), _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
      }
      for (; k < k1; k++) out[k - k0] = bf16f(row[k]);
      return;
    }
    case WeightKind::Int4: {  // k0, k1 multiples of the group (32)
      const uint8_t* row = reinterpret_cast<const uint8_t*>(w.packed + size_t(n) * (K / 8));
      const uint16_t* sc = w.scales + size_t(n) * (K / kInt4GroupSize);
      for (int g = k0 / 32; g < k1 / 32; g++) {
        __m256 wv[4];
        dequant32(row + g * 16, _mm256_set1_ps(bf16f(sc[g])), wv);
        for (int q = 0; q < 4; q++) _mm256_storeu_ps(out + (g * 32 - k0) + 8 * q, wv[q]);
      }
      return;
    }
    case WeightKind::Gguf:
      if (avx2_gguf_type(w.ggml_type)) {  // 32-element blocks; k0, k1 multiples of 32
        const uint8_t* row = w.blocks + size_t(n) * w.row_bytes;
        const size_t bb = w.row_bytes / size_t(K / 32);
        switch (GgmlType(w.ggml_type)) {
          case GgmlType::Q4_0: gguf_blocks_to_f32<GgmlType::Q4_0>(row, bb, k0 / 32, k1 / 32, out); break;
          case GgmlType::Q4_1: gguf_blocks_to_f32<GgmlType::Q4_1>(row, bb, k0 / 32, k1 / 32, out); break;
          default: gguf_blocks_to_f32<GgmlType::Q8_0>(row, bb, k0 / 32, k1 / 32, out); break;
        }
        return;
      }
      break;
    default: break;
  }
  decode_weight_slice(w, n, k0, k1, out);
}

void gemm_pack_panel_avx2(const LinearWeight& w, int n0, int ncols, int nr, int k0, int k1, float* tmp, float* out) {
  // 8 columns at a time, so the dequantised strip (8 x kc f32) is still in L1 when transposed.
  const int kc = k1 - k0, ldt = (kc + 7) / 8 * 8;
  for (int c0 = 0; c0 < nr; c0 += 8) {
    for (int c = 0; c < 8; c++) {
      float* r = tmp + size_t(c) * ldt;
      if (c0 + c < ncols)
        dequant_slice_avx2(w, n0 + c0 + c, k0, k1, r);
      else
        std::memset(r, 0, sizeof(float) * size_t(kc));
      for (int k = kc; k < ldt; k++) r[k] = 0.f;
    }
    for (int k = 0; k < ldt; k += 8) transpose8x8(tmp + k, size_t(ldt), out + size_t(k) * nr + c0, size_t(nr));
  }
}

void linear_cols_avx2(const float* x, int M, const LinearWeight& w, int n_begin, int n_end, float* y) {
  if (w.kind != WeightKind::Int4 && w.kind != WeightKind::BF16 &&
      !(w.kind == WeightKind::Gguf && avx2_gguf_type(w.ggml_type))) {
    linear_cols_scalar(x, M, w, n_begin, n_end, y);
    return;
  }
  const int K = w.n_in;
  if (w.kind == WeightKind::Gguf && avx2_gguf_type(w.ggml_type)) {
    thread_local std::vector<float> xsum;  // [M][K/32]
    const GgmlType t = GgmlType(w.ggml_type);
    if (t != GgmlType::Q8_0) {
      xsum.resize(size_t(M) * (K / 32));
      block_sums(x, M, K, xsum.data());
    }
    const float* xs = xsum.data();
    auto run = [&]<GgmlType T>() {
      linear_cols_tiled<4, 2048>(M, w, n_begin, n_end, y, [&](int mt, int k0, int k1, int n, int m0, float* out) {
        switch (mt) {
          case 4: scaled_block_col<4, T>(x, xs, K, k0, k1, w, n, m0, out); break;
          case 3: scaled_block_col<3, T>(x, xs, K, k0, k1, w, n, m0, out); break;
          case 2: scaled_block_col<2, T>(x, xs, K, k0, k1, w, n, m0, out); break;
          default: scaled_block_col<1, T>(x, xs, K, k0, k1, w, n, m0, out); break;
        }
      });
    };
    switch (t) {
      case GgmlType::Q4_0: run.template operator()<GgmlType::Q4_0>(); break;
      case GgmlType::Q4_1: run.template operator()<GgmlType::Q4_1>(); break;
      default: run.template operator()<GgmlType::Q8_0>(); break;
    }
    return;
  }
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
