// The GEMM path of the CPU linear kernels, for prefill-sized M (linear_gemm_min_rows() and up).
// Instead of dequantising every weight row once per few rows of x (the GEMV-shaped kernels), a
// panel of NR output columns x a K slice of W is dequantised ONCE into an f32 buffer laid out
// [k][NR] and reused by a register-blocked micro-kernel for all M rows: each k step loads NR
// weights (NR/16 or NR/8 vectors), broadcasts MR rows of x and does MR x NR/lanes FMAs into
// accumulators that stay in registers for the whole K slice. x is packed once per call (per row
// chunk) into m-tiles laid out [k][mr] so the broadcasts read one contiguous stream.
//
// Blocking: tiles of <= MR rows (M split evenly so no tile is tiny), K slices of <= kGemmKcMax
// (aligned to the weight's block size so quantised slices start on a block) so the packed
// panel (NR x KC f32) stays in L2 while every m-tile of x streams past it; threads split the
// N panels (OpenMP, dynamic), small layers (< 4 MFLOP) stay on one thread.
//
// Numerics: the dequantised panel holds exactly the values the per-column kernels and
// decode_weight_row produce; only the summation order (k sequential per output, bias first)
// differs from the scalar reference, i.e. results agree to f32 rounding.
//
// Header-only driver: each ISA's translation unit includes it (anonymous namespace, so every TU
// keeps its own copy compiled with its own flags) and supplies its micro-kernel.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "core/weight.h"

namespace strata {

// W[n, k0:k1) as f32, the values decode_weight_row gives (scalar; any kind; for GGUF k0 must be a
// multiple of the type's block size). Defined in linear.cpp.
void decode_weight_slice(const LinearWeight& w, int n, int k0, int k1, float* out);
// Same, SIMD for bf16 / f32 / INT4 / GGUF Q4_0 Q4_1 Q8_0 (else decode_weight_slice). linear_avx2.cpp.
void dequant_slice_avx2(const LinearWeight& w, int n, int k0, int k1, float* out);
// Packs columns [n0, n0 + ncols) (ncols <= nr, nr a multiple of 8) of W over [k0, k1) as f32
// [k1 - k0][nr], columns ncols..nr zero. tmp: 8 * round_up(k1 - k0, 8) floats. linear_avx2.cpp.
void gemm_pack_panel_avx2(const LinearWeight& w, int n0, int ncols, int nr, int k0, int k1, float* tmp, float* out);

// What a K slice must start on: 32 (INT4 groups, GGUF 32-blocks), the GGUF block size when
// larger (K-quants: 256). linear.cpp.
int gemm_k_align(const LinearWeight& w);

// Whole-matrix GEMM entry points (threads inside): y[M, N] = x . W^T + bias.
void linear_gemm_avx2(const float* x, int M, const LinearWeight& w, float* y);
void linear_gemm_avx512(const float* x, int M, const LinearWeight& w, float* y);

// Largest K slice of one packed panel: 32 columns x 640 f32 = 80 KiB, an L2-resident panel; K up
// to 640 (SmolLM2's 576) is one slice, longer K splits evenly.
constexpr int kGemmKcMax = 640;
// Most f32 of packed x at once (8 MiB): M x K beyond it runs in row chunks.
constexpr size_t kGemmXChunkFloats = size_t(2) << 20;

namespace {

// 64-byte aligned scratch that grows and is reused (one per thread). A plain pointer, no library
// template: every out-of-line function here stays local to its ISA's translation unit.
struct GemmScratch {
  float* p = nullptr;
  size_t cap = 0;
  GemmScratch() = default;
  GemmScratch(const GemmScratch&) = delete;
  GemmScratch& operator=(const GemmScratch&) = delete;
  ~GemmScratch() { std::free(p); }
  float* get(size_t n) {
    if (n > cap) {
      std::free(p);
      p = static_cast<float*>(std::aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64));
      if (!p) throw std::bad_alloc();
      cap = n;
    }
    return p;
  }
};

// Kern: static constexpr int NR, MR; static void run(int mr, const float* xp, const float* pw,
// int kc, float* y, size_t ldy, bool first, const float* bias): y[mr][NR] = (first ? bias : y) +
// xp[kc][mr] . pw[kc][NR].
// One chunk of rows: x [M, K] -> y [M, N], the packed x in xp (M * K floats).
template <class Kern>
void gemm_chunk(const float* x, int M, const LinearWeight& w, float* y, int kc, float* xp) {
  constexpr int NR = Kern::NR, MR = Kern::MR;
  const int K = w.n_in, N = w.n_out;
  // m-tiles: ceil(M / MR) tiles, sizes differing by at most one.
  const int n_tiles = (M + MR - 1) / MR, base = M / n_tiles, rem = M % n_tiles;
  auto tile_m0 = [&](int t) { return t * base + std::min(t, rem); };
  const int n_panels = (N + NR - 1) / NR;
  // Small layers on one thread: fork/join costs more than they do.
  const double flops = 2.0 * M * N * K;
  const int n_threads = flops < 4e6 || n_panels == 1 ? 1 : std::min(omp_get_max_threads(), n_panels);
#pragma omp parallel num_threads(n_threads) if (n_threads > 1)
  {
    // x per m-tile: tile t at xp + m0 * K, element (k, i) at k * mr + i.
#pragma omp for schedule(static)
    for (int t = 0; t < n_tiles; t++) {
      const int m0 = tile_m0(t), mr = tile_m0(t + 1) - m0;
      float* dst = xp + size_t(m0) * K;
      const float* src = x + size_t(m0) * K;
      for (int k = 0; k < K; k++)
        for (int i = 0; i < mr; i++) dst[size_t(k) * mr + i] = src[size_t(i) * K + k];
    }
    static thread_local GemmScratch panel_scratch;
    const int kc_pad = (kc + 7) / 8 * 8;
    float* tmp = panel_scratch.get(size_t(8 + NR) * kc_pad + 2 * NR + size_t(MR) * NR);
    float* pw = tmp + size_t(8) * kc_pad;    // [kc][NR] the packed panel (64-byte aligned)
    float* bias = pw + size_t(NR) * kc_pad;  // [NR] this panel's bias, zero padded
    float* ctile = bias + 2 * NR;             // [MR][NR] output tile of a partial panel
    // dynamic: on a shared machine one thread may be descheduled for a while; the other takes over.
#pragma omp for schedule(dynamic)
    for (int p = 0; p < n_panels; p++) {
      const int n0 = p * NR, ncols = std::min(NR, N - n0);
      for (int c = 0; c < NR; c++) bias[c] = c < ncols && !w.bias.empty() ? w.bias[size_t(n0 + c)] : 0.f;
      for (int k0 = 0; k0 < K; k0 += kc) {
        const int k1 = std::min(K, k0 + kc);
        gemm_pack_panel_avx2(w, n0, ncols, NR, k0, k1, tmp, pw);
        const bool first = k0 == 0;
        for (int t = 0; t < n_tiles; t++) {
          const int m0 = tile_m0(t), mr = tile_m0(t + 1) - m0;
          const float* xt = xp + size_t(m0) * K + size_t(k0) * mr;
          float* yt = y + size_t(m0) * N + n0;
          if (ncols == NR) {
            Kern::run(mr, xt, pw, k1 - k0, yt, size_t(N), first, bias);
          } else {  // partial panel: through a full-width tile
            if (!first)
              for (int i = 0; i < mr; i++) std::memcpy(ctile + i * NR, yt + size_t(i) * N, sizeof(float) * ncols);
            Kern::run(mr, xt, pw, k1 - k0, ctile, NR, first, bias);
            for (int i = 0; i < mr; i++) std::memcpy(yt + size_t(i) * N, ctile + i * NR, sizeof(float) * ncols);
          }
        }
      }
    }
  }
}

template <class Kern>
void gemm_driver(const float* x, int M, const LinearWeight& w, float* y, int kc_align) {
  const int K = w.n_in, N = w.n_out;
  // K slices: as few as kGemmKcMax allows, even, aligned to kc_align (the last one shorter).
  const int n_kb = (K + kGemmKcMax - 1) / kGemmKcMax;
  int kc = (K + n_kb - 1) / n_kb;
  kc = std::min(K, (kc + kc_align - 1) / kc_align * kc_align);
  // Rows in chunks of packed x <= kGemmXChunkFloats (every row when K is small): bounds the
  // scratch and keeps a chunk in L3 while each panel streams it; W is re-packed per chunk.
  int mc = M;
  if (size_t(M) * K > kGemmXChunkFloats)
    mc = std::max(4 * Kern::MR, int(kGemmXChunkFloats / size_t(K)) / Kern::MR * Kern::MR);
  static thread_local GemmScratch x_scratch;
  float* xp = x_scratch.get(size_t(std::min(mc, M)) * K);
  for (int m0 = 0; m0 < M; m0 += mc)
    gemm_chunk<Kern>(x + size_t(m0) * K, std::min(mc, M - m0), w, y + size_t(m0) * N, kc, xp);
}

}  // namespace
}  // namespace strata
