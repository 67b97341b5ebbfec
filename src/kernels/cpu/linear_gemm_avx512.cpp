// AVX-512 GEMM path (kernels/cpu/linear_gemm.h): micro-kernel of up to 12 rows x 32 columns,
// 24 zmm accumulators; per k two weight vectors and 12 broadcasts of x. Compiled with -mavx512*.
#include <immintrin.h>

#include "kernels/cpu/linear.h"
#include "kernels/cpu/linear_gemm.h"

namespace strata {

namespace {

template <int MR>
inline void kernel_12x32(const float* xp, const float* pw, int kc, float* y, size_t ldy, bool first,
                         const float* bias) {
  __m512 a0[MR], a1[MR];
  if (first) {
    const __m512 b0 = _mm512_loadu_ps(bias), b1 = _mm512_loadu_ps(bias + 16);
    #pragma GCC unroll 16
    for (int i = 0; i < MR; i++) a0[i] = b0, a1[i] = b1;
  } else {
    #pragma GCC unroll 16
    for (int i = 0; i < MR; i++) a0[i] = _mm512_loadu_ps(y + i * ldy), a1[i] = _mm512_loadu_ps(y + i * ldy + 16);
  }
  for (int k = 0; k < kc; k++) {
    const __m512 w0 = _mm512_load_ps(pw + 32 * k), w1 = _mm512_load_ps(pw + 32 * k + 16);
    #pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      const __m512 xv = _mm512_set1_ps(xp[k * MR + i]);
      a0[i] = _mm512_fmadd_ps(xv, w0, a0[i]);
      a1[i] = _mm512_fmadd_ps(xv, w1, a1[i]);
    }
  }
  #pragma GCC unroll 16
  for (int i = 0; i < MR; i++) {
    _mm512_storeu_ps(y + i * ldy, a0[i]);
    _mm512_storeu_ps(y + i * ldy + 16, a1[i]);
  }
}

struct Kern512 {
  static constexpr int NR = 32, MR = 12;
  static void run(int mr, const float* xp, const float* pw, int kc, float* y, size_t ldy, bool first,
                  const float* bias) {
    switch (mr) {
      case 12: kernel_12x32<12>(xp, pw, kc, y, ldy, first, bias); break;
      case 11: kernel_12x32<11>(xp, pw, kc, y, ldy, first, bias); break;
      case 10: kernel_12x32<10>(xp, pw, kc, y, ldy, first, bias); break;
      case 9: kernel_12x32<9>(xp, pw, kc, y, ldy, first, bias); break;
      case 8: kernel_12x32<8>(xp, pw, kc, y, ldy, first, bias); break;
      case 7: kernel_12x32<7>(xp, pw, kc, y, ldy, first, bias); break;
      case 6: kernel_12x32<6>(xp, pw, kc, y, ldy, first, bias); break;
      case 5: kernel_12x32<5>(xp, pw, kc, y, ldy, first, bias); break;
      case 4: kernel_12x32<4>(xp, pw, kc, y, ldy, first, bias); break;
      case 3: kernel_12x32<3>(xp, pw, kc, y, ldy, first, bias); break;
      case 2: kernel_12x32<2>(xp, pw, kc, y, ldy, first, bias); break;
      default: kernel_12x32<1>(xp, pw, kc, y, ldy, first, bias); break;
    }
  }
};

}  // namespace

void linear_gemm_avx512(const float* x, int M, const LinearWeight& w, float* y) {
  gemm_driver<Kern512>(x, M, w, y, gemm_k_align(w));
}

}  // namespace strata
