// AVX2 GEMM path (kernels/cpu/linear_gemm.h): micro-kernel of up to 6 rows x 16 columns, 12 ymm
// accumulators; per k two weight vectors and 6 broadcasts of x. Compiled with -mavx2 -mfma.
#include <immintrin.h>

#include "kernels/cpu/linear.h"
#include "kernels/cpu/linear_gemm.h"

namespace strata {

namespace {

template <int MR>
inline void kernel_6x16(const float* xp, const float* pw, int kc, float* y, size_t ldy, bool first,
                        const float* bias) {
  __m256 a0[MR], a1[MR];
  if (first) {
    const __m256 b0 = _mm256_loadu_ps(bias), b1 = _mm256_loadu_ps(bias + 8);
    #pragma GCC unroll 16
    for (int i = 0; i < MR; i++) a0[i] = b0, a1[i] = b1;
  } else {
    #pragma GCC unroll 16
    for (int i = 0; i < MR; i++) a0[i] = _mm256_loadu_ps(y + i * ldy), a1[i] = _mm256_loadu_ps(y + i * ldy + 8);
  }
  for (int k = 0; k < kc; k++) {
    const __m256 w0 = _mm256_load_ps(pw + 16 * k), w1 = _mm256_load_ps(pw + 16 * k + 8);
    #pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      const __m256 xv = _mm256_broadcast_ss(xp + k * MR + i);
      a0[i] = _mm256_fmadd_ps(xv, w0, a0[i]);
      a1[i] = _mm256_fmadd_ps(xv, w1, a1[i]);
    }
  }
  #pragma GCC unroll 16
  for (int i = 0; i < MR; i++) {
    _mm256_storeu_ps(y + i * ldy, a0[i]);
    _mm256_storeu_ps(y + i * ldy + 8, a1[i]);
  }
}

struct Kern256 {
  static constexpr int NR = 16, MR = 6;
  static void run(int mr, const float* xp, const float* pw, int kc, float* y, size_t ldy, bool first,
                  const float* bias) {
    switch (mr) {
      case 6: kernel_6x16<6>(xp, pw, kc, y, ldy, first, bias); break;
      case 5: kernel_6x16<5>(xp, pw, kc, y, ldy, first, bias); break;
      case 4: kernel_6x16<4>(xp, pw, kc, y, ldy, first, bias); break;
      case 3: kernel_6x16<3>(xp, pw, kc, y, ldy, first, bias); break;
      case 2: kernel_6x16<2>(xp, pw, kc, y, ldy, first, bias); break;
      default: kernel_6x16<1>(xp, pw, kc, y, ldy, first, bias); break;
    }
  }
};

}  // namespace

void linear_gemm_avx2(const float* x, int M, const LinearWeight& w, float* y) {
  gemm_driver<Kern256>(x, M, w, y, gemm_k_align(w));
}

}  // namespace strata
