// The skinny W4A16 kernel (few tokens per weight: decode GEMV and the MoE's per-expert GEMMs), shared by
// w4a16_gemm.cu (dense) and w4a16_moe.cu (grouped over the active experts, gather of x rows, fused SiLU*up).
// Not a public header: CUDA only, included by the .cu files of this folder.
//
// Grid: x = row groups of R row blocks (16R weight rows), y = expert slot (grouped) or 1, z = K split (dense:
// the z CTAs of a row group form one thread-block cluster). Block: W warps that split K (warp w of split z takes
// k tiles zW + w, zW + w + zW, ...), each streaming its R row blocks' 512-byte tiles DRAM -> registers with U k
// tiles in flight, then one fixed-order reduction of the W partial sums in shared memory, and across the
// cluster's CTAs through distributed shared memory (rank 0 writes the output).
// Tokens run in chunks of 8*MT (mma n = 8 per chunk tile); a chunk re-streams the weights (grouped only).
#pragma once
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/w4a16_device.cuh"

namespace strata::cuda {

// Per-call MoE plan on the device (built by the routing kernels; no host sync needed to launch on it).
struct MoePlanDev {
  const int* n_active = nullptr;  // [1] number of experts with tokens (routed + shared)
  const int* active = nullptr;    // [E+1] their ids, ascending (the shared expert, id E, last)
  const int* offset = nullptr;    // [E+1] first permuted row of expert e
  const int* count = nullptr;     // [E+1] rows (tokens) of expert e
};

enum SkinnyOut : int {
  kOutBf16 = 0,     // y bf16 [rows, ldy]: y[row][n]
  kOutF32 = 1,      // y f32 [rows, ldy]
  kOutSiluMul = 2,  // y bf16 [rows, ldy]: y[row][f] = silu(gate f) * up f, row blocks interleaved gate/up (R even)
};

struct SkinnyArgs {
  const uint16_t* x = nullptr;  // bf16 activation rows, row stride ldx
  int ldx = 0;
  int K = 0;                    // K % 64 == 0
  int M = 0;                    // dense: tokens (x rows 0..M-1, y rows 0..M-1)
  const uint4* wq = nullptr;    // dense: [N/16, K/64, 32] lane records
  const uint2* ws = nullptr;    // dense: [N/16, K/64, 8] scale quads
  MoePlanDev plan;              // grouped when plan.active != nullptr (blockIdx.y = expert slot)
  const uint4* const* e_wq = nullptr;  // grouped: [E+1] per-expert packed
  const uint2* const* e_ws = nullptr;  // grouped: [E+1] per-expert scales
  const int* x_rows = nullptr;  // grouped: [rows] x row of each permuted row (nullptr: the permuted row itself)
  void* y = nullptr;            // output rows (dense: token m; grouped: permuted row), row stride ldy
  int ldy = 0;
};

template <int MT, int R, int U, int OUT>
__global__ void __launch_bounds__(512) w4a16_skinny_kernel(SkinnyArgs a) {
  extern __shared__ float red[];  // [W][R * MT * 4][32], then res [R * MT * 4][32]
  using namespace dev;
  constexpr int kVals = R * MT * 4;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  const int n_split = gridDim.z, kw = blockIdx.z * n_warps + warp, kw_total = n_split * n_warps;
  float* res = red + size_t(n_warps) * kVals * 32;
  const int g = lane >> 2, t = lane & 3;
  const uint4* wq = a.wq;
  const uint2* ws = a.ws;
  int n_tok = a.M, row0 = 0;
  if (a.plan.active) {
    const int slot = blockIdx.y;
    if (slot >= *a.plan.n_active) return;
    const int e = a.plan.active[slot];
    wq = a.e_wq[e];
    ws = a.e_ws[e];
    n_tok = a.plan.count[e];
    row0 = a.plan.offset[e];
  }
  const int nb0 = blockIdx.x * R;
  const int k_tiles = a.K / kW4TileK;

  for (int c0 = 0; c0 < n_tok; c0 += 8 * MT) {
    const uint16_t* xp[MT];
    bool xv[MT];
#pragma unroll
    for (int j = 0; j < MT; j++) {
      const int m = c0 + 8 * j + g;
      xv[j] = m < n_tok;
      int src = row0 + (xv[j] ? m : 0);
      if (a.x_rows) src = a.x_rows[src];
      xp[j] = a.x + size_t(src) * a.ldx + 2 * t;
    }
    float acc[R][MT][4];
#pragma unroll
    for (int i = 0; i < R; i++)
#pragma unroll
      for (int j = 0; j < MT; j++)
#pragma unroll
        for (int c = 0; c < 4; c++) acc[i][j][c] = 0.f;

    for (int kt0 = kw; kt0 < k_tiles; kt0 += kw_total * U) {
      uint4 wv[U][R];
      uint2 sv[U][R];
      uint32_t xb[U][MT][8];
#pragma unroll
      for (int u = 0; u < U; u++) {
        const int kt = kt0 + u * kw_total;
        const bool live = kt < k_tiles;  // warp-uniform
#pragma unroll
        for (int i = 0; i < R; i++) {
          const size_t tile = size_t(nb0 + i) * size_t(k_tiles) + size_t(live ? kt : 0);
          wv[u][i] = live ? ldg_stream(wq + tile * 32 + lane) : make_uint4(0, 0, 0, 0);
          sv[u][i] = live ? __ldg(ws + tile * 8 + g) : make_uint2(0, 0);
        }
#pragma unroll
        for (int j = 0; j < MT; j++)
#pragma unroll
          for (int q = 0; q < 8; q++)  // q = 2 * step + half: x[m][64kt + 16 step + 8 half + 2t, +1]
            xb[u][j][q] = live && xv[j] ? ldg_u32(xp[j] + size_t(kt) * kW4TileK + 8 * q) : 0u;
      }
#pragma unroll
      for (int u = 0; u < U; u++) {
        if (kt0 + u * kw_total >= k_tiles) break;  // warp-uniform: mma needs the whole warp
#pragma unroll
        for (int st = 0; st < 4; st++) {
#pragma unroll
          for (int i = 0; i < R; i++) {
            uint32_t lo2, hi2, av[4];
            scale_pairs(sv[u][i], st >> 1, &lo2, &hi2);
            dequant_scaled(word_of(wv[u][i], st), lo2, hi2, av);
#pragma unroll
            for (int j = 0; j < MT; j++) mma_16816(acc[i][j], av, xb[u][j][2 * st], xb[u][j][2 * st + 1]);
          }
        }
      }
    }

    // Reduce the warps' K slices. Value v = (i * MT + j) * 4 + c of lane l is token c0 + 8j + 2(l%4) + (c&1),
    // row (nb0 + i) * 16 + l/4 + 8(c>>1).
    if (c0 > 0) __syncthreads();  // the previous chunk's epilogue has read `red`
#pragma unroll
    for (int i = 0; i < R; i++)
#pragma unroll
      for (int j = 0; j < MT; j++)
#pragma unroll
        for (int c = 0; c < 4; c++) red[(size_t(warp) * kVals + (i * MT + j) * 4 + c) * 32 + lane] = acc[i][j][c];
    __syncthreads();
    for (int e = threadIdx.x; e < kVals * 32; e += blockDim.x) {
      float v = 0.f;
      for (int w = 0; w < n_warps; w++) v += red[size_t(w) * kVals * 32 + e];
      res[e] = v;
    }
    if (n_split > 1) {  // sum the cluster's CTAs into rank 0 (ranks in split order: deterministic)
      namespace cg = cooperative_groups;
      cg::cluster_group cluster = cg::this_cluster();
      cluster.sync();
      if (cluster.block_rank() == 0)
        for (int e = threadIdx.x; e < kVals * 32; e += blockDim.x) {
          float v = res[e];
          for (int r = 1; r < n_split; r++) v += cluster.map_shared_rank(res, r)[e];
          res[e] = v;
        }
      cluster.sync();  // the other ranks' shared memory stays alive until rank 0 has read it
      if (cluster.block_rank() != 0) return;
    } else {
      __syncthreads();
    }
    if constexpr (OUT == kOutSiluMul) {
      constexpr int kHalf = kVals / 2;  // gate values (even row blocks) of the CTA
      for (int e = threadIdx.x; e < kHalf * 32; e += blockDim.x) {
        const int v = e >> 5, l = e & 31, ip = v / (MT * 4), rem = v % (MT * 4), j = rem >> 2, c = rem & 3;
        const float sg = res[((2 * ip) * MT * 4 + rem) * 32 + l], su = res[((2 * ip + 1) * MT * 4 + rem) * 32 + l];
        const int m = c0 + 8 * j + 2 * (l & 3) + (c & 1);
        const int f = ((nb0 + 2 * ip) >> 1) * 16 + (l >> 2) + 8 * (c >> 1);
        if (m < n_tok)
          static_cast<uint16_t*>(a.y)[size_t(row0 + m) * a.ldy + f] = f32_to_bf16_bits(silu(sg) * su);
      }
    } else {
      for (int e = threadIdx.x; e < kVals * 32; e += blockDim.x) {
        const int v = e >> 5, l = e & 31, i = v / (MT * 4), j = (v >> 2) % MT, c = v & 3;
        const float s = res[e];
        const int m = c0 + 8 * j + 2 * (l & 3) + (c & 1);
        const int n = (nb0 + i) * 16 + (l >> 2) + 8 * (c >> 1);
        if (m < n_tok) {
          const size_t o = size_t(row0 + m) * a.ldy + n;
          if constexpr (OUT == kOutF32)
            static_cast<float*>(a.y)[o] = s;
          else
            static_cast<uint16_t*>(a.y)[o] = f32_to_bf16_bits(s);
        }
      }
    }
  }
}

// k tiles in flight per warp: 4, or 2 where R row blocks x MT token tiles would spill registers at 4.
constexpr int skinny_unroll(int mt, int rows) { return rows * mt >= 4 ? 2 : 4; }

// Dynamic shared memory of one launch.
constexpr size_t skinny_smem_bytes(int mt, int rows, int warps) { return size_t(warps + 1) * rows * mt * 4 * 32 * 4; }

}  // namespace strata::cuda
