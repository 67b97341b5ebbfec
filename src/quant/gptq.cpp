// GPTQ on the Strata INT4 grid (quant/gptq.h). Dense linear algebra written out here (no LAPACK
// in the build): one Cholesky and one triangular inverse per layer, in double.
#include "quant/gptq.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"

namespace strata {

std::vector<double> gptq_inverse_cholesky(const std::vector<float>& H, int K, double damp) {
  STRATA_CHECK(H.size() == size_t(K) * K, "gptq: Hessian is not [K, K]");
  // A = P (H + lambda I) P with P the index reversal. If A = L L^T (L lower), then
  // (H + lambda I)^-1 = P L^-T L^-1 P = U^T U with U = P L^-1 P upper triangular: the upper
  // Cholesky factor of the inverse from one factorisation and one triangular inverse.
  double mean_diag = 0;
  for (int i = 0; i < K; i++) mean_diag += H[size_t(i) * K + i];
  mean_diag /= K;
  const double lambda = damp * (mean_diag > 0 ? mean_diag : 1.0);
  std::vector<double> A(size_t(K) * K);
  for (int i = 0; i < K; i++) {
    const int ri = K - 1 - i;
    for (int j = 0; j < K; j++) A[size_t(i) * K + j] = H[size_t(ri) * K + (K - 1 - j)];
    if (H[size_t(ri) * K + ri] == 0.f) {  // a dead input: GPTQ sets its diagonal to 1
      for (int j = 0; j < K; j++) A[size_t(i) * K + j] = A[size_t(j) * K + i] = 0;
      A[size_t(i) * K + i] = 1;
    }
    A[size_t(i) * K + i] += lambda;
  }
  // In-place lower Cholesky, row by row: L[i, j] = (A[i, j] - L[i, :j] . L[j, :j]) / L[j, j].
  // Every dot runs along two contiguous rows; serial, since one region per column costs more in
  // OpenMP barriers than the K^3/6 flops on the shared machines this runs on.
  for (int i = 0; i < K; i++) {
    double* ri = &A[size_t(i) * K];
    for (int j = 0; j <= i; j++) {
      const double* rj = &A[size_t(j) * K];
      double s = ri[j];
#pragma omp simd reduction(- : s)
      for (int k = 0; k < j; k++) s -= ri[k] * rj[k];
      if (j < i) {
        ri[j] = s / rj[j];
      } else {
        STRATA_CHECK(s > 0, "gptq: Hessian is not positive definite after damping (raise the damping)");
        ri[i] = std::sqrt(s);
      }
    }
  }
  // Columns of L^-1 are independent solves L x = e_c (x_i = 0 for i < c), each a forward
  // substitution of contiguous dots, so they run in parallel. U = P L^-1 P puts x_i = L^-1[i, c]
  // at U[K-1-i, K-1-c] (K^2/2 strided stores against K^3/6 contiguous flops).
  std::vector<double> U(size_t(K) * K, 0.0);
#pragma omp parallel
  {
    std::vector<double> x(size_t(K), 0.0);
#pragma omp for schedule(dynamic, 16)
    for (int c = 0; c < K; c++) {
      for (int i = c; i < K; i++) {
        const double* li = &A[size_t(i) * K];
        double s = i == c ? 1.0 : 0.0;
#pragma omp simd reduction(- : s)
        for (int k = c; k < i; k++) s -= li[k] * x[size_t(k)];
        x[size_t(i)] = s / li[i];
      }
      for (int i = c; i < K; i++) U[size_t(K - 1 - i) * K + (K - 1 - c)] = x[size_t(i)];
    }
  }
  return U;
}

void gptq_quantize(const float* W, int N, int K, const std::vector<float>& H, const Int4Scheme& scheme,
                   const GptqOptions& opt, int8_t* q, uint16_t* scales, int8_t* zeros) {
  const int gs = scheme.group_size, G = K / gs;
  STRATA_CHECK(K % gs == 0, "gptq: K is not a multiple of the group size");
  const std::vector<double> U = gptq_inverse_cholesky(H, K, opt.damp);
  std::vector<float> Hinv(U.begin(), U.end());  // f32 copy for the updates
  // Rows are independent given U: each thread walks its rows through all columns. This is the
  // paper's sequential update; the blocked "lazy batch" form is the same arithmetic regrouped for
  // GPU GEMMs, while on a CPU a row at a time keeps the working set to one row of W.
#pragma omp parallel
  {
    std::vector<float> w(K);
#pragma omp for schedule(dynamic, 4)
    for (int n = 0; n < N; n++) {
      std::memcpy(w.data(), W + size_t(n) * K, sizeof(float) * K);
      int8_t* qn = q + size_t(n) * K;
      float s = 1.f;
      int z = 0;
      for (int k = 0; k < K; k++) {
        if (k % gs == 0) {
          const int g = k / gs;
          int4_group_params(w.data() + k, gs, scheme.symmetric, &scales[size_t(n) * G + g], &z);
          zeros[size_t(n) * G + g] = int8_t(z);
          s = bf16_to_f32(scales[size_t(n) * G + g]);
        }
        const int qi = int4_quantize_value(w[k], s, z);
        qn[k] = int8_t(qi);
        const float deq = float(qi - z) * s;
        const float* hk = &Hinv[size_t(k) * K];
        const float err = (w[k] - deq) / hk[k];
        for (int j = k + 1; j < K; j++) w[j] -= err * hk[j];
      }
    }
  }
}

}  // namespace strata
