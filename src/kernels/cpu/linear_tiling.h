// The cache blocking shared by the SIMD linear kernels: m-tiles of up to MT rows, K slices of
// KBLOCK so an m-tile's x slice stays in L1 while the call's (<= 16) columns stream their weight
// slices. Header-only so each ISA's translation unit inlines it with its own tile kernel.
// Not a kernel: `tile(mt, k0, k1, n, m0, out)` adds the MT x 1 partial dot products to out[0..mt).
#pragma once
#include <cstddef>

#include "core/weight.h"

namespace strata {

template <int MT, int KBLOCK, typename Tile>
inline void linear_cols_tiled(int M, const LinearWeight& w, int n_begin, int n_end, float* y, Tile tile) {
  const int K = w.n_in, N = w.n_out, n_cols = n_end - n_begin;
  float acc[MT][16];  // [rows of the m-tile][columns of this call]
  for (int m0 = 0; m0 < M; m0 += MT) {
    const int mt = M - m0 < MT ? M - m0 : MT;
    for (int i = 0; i < mt; i++)
      for (int c = 0; c < n_cols; c++) acc[i][c] = 0.f;
    for (int k0 = 0; k0 < K; k0 += KBLOCK) {
      const int k1 = K - k0 < KBLOCK ? K : k0 + KBLOCK;
      for (int n = n_begin; n < n_end; n++) {
        float out[MT] = {};
        tile(mt, k0, k1, n, m0, out);
        for (int i = 0; i < mt; i++) acc[i][n - n_begin] += out[i];
      }
    }
    for (int i = 0; i < mt; i++)
      for (int n = n_begin; n < n_end; n++)
        y[size_t(m0 + i) * N + n] = acc[i][n - n_begin] + (w.bias.empty() ? 0.f : w.bias[n]);
  }
}

}  // namespace strata
