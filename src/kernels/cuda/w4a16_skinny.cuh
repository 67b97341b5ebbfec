// The skinny W4A16 kernels (few tokens per weight), the register-staged one and the pipelined one, each used by
// w4a16_gemm.cu (dense) and w4a16_moe.cu (grouped over the active experts, gather of x rows, fused SiLU*up); they
// share the reduction of the warps' (and cluster CTAs') K slices and the epilogue.
// Not a public header: CUDA only, included by the .cu files of this folder.
//
// Grid: x = row groups of R row blocks (16R weight rows), y = expert slot (grouped) or 1, z = K split (dense:
// the z CTAs of a row group form one thread-block cluster). Block: W warps that split K (warp w of split z takes
// k tiles zW + w, zW + w + zW, ...), each streaming its R row blocks' 512-byte tiles DRAM -> registers with U k
// tiles in flight, then one fixed-order reduction of the W partial sums in shared memory, and across the
// cluster's CTAs through distributed shared memory (rank 0 writes the output).
// Tokens run in chunks of 8*MT (mma n = 8 per chunk tile); a chunk re-streams the weights (grouped only).
// XS: the activation (B) fragments come through a per-warp shared-memory ring (16-byte cp.async of whole x rows,
// then ldmatrix) instead of 4-byte global loads: a 4-byte load of 8 token rows touches 8 cache lines, so at 16
// tokens the x loads were ~85% of the L1 wavefronts per k tile (the M=16 kernel was L1-bound); the ring cuts
// them ~4x. Per-warp (no CTA barrier): only __syncwarp and cp.async.wait_group order it.
// PDL (a.pdl): the kernel lets the next launch in the stream start early (griddepcontrol), and
// prefetches its first k tiles' weights into L2 before waiting for the previous kernel (x and y are touched only
// after the wait; the weights are constant), so a chain of decode GEMMs overlaps one's tail with the next's ramp.
// Grouped (the pipelined kernel only): a launch whose plan is the previous kernel's output (gate/up) waits before
// reading it and lets the next launch in only after that wait, so that the next one (down, a.plan_ready) may read
// the plan, and stream its experts' first weights, before its own wait.
#pragma once
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/cuda_w4a16.h"  // kSkinnyTraceStamps
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
  bool pdl = false;             // launched as a programmatic dependent (see the header)
  bool plan_ready = false;      // grouped + pdl: the plan was complete when this launch started (read before the wait)
#ifdef STRATA_CUDA_TRACE
  // Profiling (pipelined kernel): when set, thread 0 of each CTA writes kSkinnyTraceStamps %globaltimer stamps at
  // trace[kSkinnyTraceStamps * cta]: entry, past the PDL wait, first stage landed, k loop done, done. Only in builds
  // with STRATA_CUDA_TRACE (CMake option): compiled in, the stamps change ptxas's register allocation of the
  // pipelined kernels (MT1 R1 S8: 87 -> 60 registers), so the default build keeps the kernels that were measured.
  unsigned long long* trace = nullptr;
#endif
};

// SkinnyArgs::trace: stamp `i` of this CTA (thread 0 only); nothing in builds without STRATA_CUDA_TRACE.
__device__ __forceinline__ void trace_stamp([[maybe_unused]] const SkinnyArgs& a, [[maybe_unused]] int i) {
#ifdef STRATA_CUDA_TRACE
  if (a.trace && threadIdx.x == 0) {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    const size_t cta = size_t(blockIdx.z) * gridDim.y * gridDim.x + size_t(blockIdx.y) * gridDim.x + blockIdx.x;
    a.trace[kSkinnyTraceStamps * cta + i] = t;
  }
#endif
}

__device__ __forceinline__ void pdl_launch_dependents() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }
__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

// Sums the CTA's W warp partials (fixed order: deterministic) into res, then the cluster's CTAs (split K over
// gridDim.z) into rank 0's res through distributed shared memory. red: [W][R*MT*4][32]; res: [R*MT*4][32].
// Value v = (i * MT + j) * 4 + c of lane l is token 8j + 2(l%4) + (c&1) of the chunk, row (nb0 + i) * 16 + l/4 +
// 8(c>>1). The caller makes `red` free first. Returns false on the CTAs that do not write (cluster ranks > 0).
template <int R, int MT>
__device__ __forceinline__ bool skinny_reduce(const float (&acc)[R][MT][4], float* red, float* res) {
  constexpr int kVals = R * MT * 4;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5, n_split = gridDim.z;
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
  if (n_split > 1) {  // ranks in split order: deterministic
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
    return cluster.block_rank() == 0;
  }
  __syncthreads();
  return true;
}

// Writes the reduced chunk (res, layout above) to y: rows row0 + c0 + token (< n_tok), bf16 / f32 / SiLU(gate) * up.
template <int R, int MT, int OUT>
__device__ __forceinline__ void skinny_store(const SkinnyArgs& a, const float* res, int nb0, int c0, int n_tok, int row0) {
  using namespace dev;
  constexpr int kVals = R * MT * 4;
  if constexpr (OUT == kOutSiluMul) {
    constexpr int kHalf = kVals / 2;  // gate values (even row blocks) of the CTA
    for (int e = threadIdx.x; e < kHalf * 32; e += blockDim.x) {
      const int v = e >> 5, l = e & 31, ip = v / (MT * 4), rem = v % (MT * 4), j = rem >> 2, c = rem & 3;
      const float sg = res[((2 * ip) * MT * 4 + rem) * 32 + l], su = res[((2 * ip + 1) * MT * 4 + rem) * 32 + l];
      const int m = c0 + 8 * j + 2 * (l & 3) + (c & 1);
      const int f = ((nb0 + 2 * ip) >> 1) * 16 + (l >> 2) + 8 * (c >> 1);
      if (m < n_tok) static_cast<uint16_t*>(a.y)[size_t(row0 + m) * a.ldy + f] = f32_to_bf16_bits(silu(sg) * su);
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

// Expert of grouped slot blockIdx.y from the MoE plan: its weights, tokens and first permuted row; false when the
// slot is past the active experts.
// kL2: loads through L2 only (ld.cg), for a plan read before the PDL wait (a.plan_ready): never a stale L1 line.
template <bool kL2 = false>
__device__ __forceinline__ bool skinny_expert(const SkinnyArgs& a, const uint4** wq, const uint2** ws, int* n_tok,
                                              int* row0) {
  auto ld = [](const int* p) { return kL2 ? __ldcg(p) : *p; };
  const int slot = blockIdx.y;
  if (slot >= ld(a.plan.n_active)) return false;
  const int e = ld(a.plan.active + slot);
  *wq = a.e_wq[e];
  *ws = a.e_ws[e];
  *n_tok = ld(a.plan.count + e);
  *row0 = ld(a.plan.offset + e);
  return true;
}

// Bytes of one warp's x ring: U k tiles x 8*MT token rows x 128 bytes.
__host__ __device__ constexpr int skinny_xs_warp_bytes(int mt, int u) { return u * 8 * mt * 128; }

template <int MT, int R, int U, int OUT, bool XS = false>
__global__ void __launch_bounds__(512) w4a16_skinny_kernel(SkinnyArgs a) {
  extern __shared__ float red[];  // [W][R * MT * 4][32], then res [R * MT * 4][32], then (XS) the x rings
  using namespace dev;
  constexpr int kVals = R * MT * 4;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  const int n_split = gridDim.z, kw = blockIdx.z * n_warps + warp, kw_total = n_split * n_warps;
  float* res = red + size_t(n_warps) * kVals * 32;
  const uint32_t xring = smem_addr(res + kVals * 32) + uint32_t(warp * skinny_xs_warp_bytes(MT, U));
  const int g = lane >> 2, t = lane & 3;
  const uint4* wq = a.wq;
  const uint2* ws = a.ws;
  int n_tok = a.M, row0 = 0;
  const int nb0 = blockIdx.x * R;
  const int k_tiles = a.K / kW4TileK;
  if (a.pdl) {
    pdl_launch_dependents();
    // The first round of this warp's weight tiles (one 128-byte line per 8 lanes) and scales into L2 while the
    // previous kernel finishes; the loop below re-reads them from L2.
#pragma unroll
    for (int u = 0; u < U; u++) {
      const int kt = kw + u * kw_total;
      if (kt < k_tiles && (lane & 7) == 0)
#pragma unroll
        for (int i = 0; i < R; i++) {
          const size_t tile = size_t(nb0 + i) * size_t(k_tiles) + size_t(kt);
          prefetch_l2(wq + tile * 32 + lane);
          if (lane == 0) prefetch_l2(ws + tile * 8);
        }
    }
    pdl_wait();  // x (the previous kernel's output) and y (maybe still read by it) only from here on
  }
  if (a.plan.active && !skinny_expert(a, &wq, &ws, &n_tok, &row0)) return;

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
    // XS: lane l copies 16-byte chunk l%8 of token rows l/8 + 4i (i < 2MT) of each k tile; rows past the chunk's
    // tokens are zero-filled. Stored with the 128-byte swizzle so that ldmatrix reads are conflict-free.
    constexpr int kXsRows = XS ? 2 * MT : 1;
    const uint16_t* xsrc[kXsRows];
    if constexpr (XS) {
#pragma unroll
      for (int i = 0; i < kXsRows; i++) {
        const int m = c0 + (lane >> 3) + 4 * i;
        int src = row0 + (m < n_tok ? m : 0);
        if (a.x_rows) src = a.x_rows[src];
        xsrc[i] = m < n_tok ? a.x + size_t(src) * a.ldx + (lane & 7) * 8 : nullptr;
      }
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
      uint32_t xb[XS ? 1 : U][MT][8];
      if constexpr (XS) {
        __syncwarp();  // the previous round's ldmatrix reads of the ring are done
#pragma unroll
        for (int u = 0; u < U; u++) {
          const int kt = kt0 + u * kw_total;
          if (kt < k_tiles)  // warp-uniform
#pragma unroll
            for (int i = 0; i < kXsRows; i++) {
              const int r = (lane >> 3) + 4 * i;
              cp_async16_s(xring + u * (8 * MT * 128) + sw128(r, lane & 7),
                           xsrc[i] ? xsrc[i] + size_t(kt) * kW4TileK : a.x, xsrc[i] != nullptr);
            }
        }
        cp_async_commit();
      }
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
        if constexpr (!XS)
#pragma unroll
          for (int j = 0; j < MT; j++)
#pragma unroll
            for (int q = 0; q < 8; q++)  // q = 2 * step + half: x[m][64kt + 16 step + 8 half + 2t, +1]
              xb[u][j][q] = live && xv[j] ? ldg_u32(xp[j] + size_t(kt) * kW4TileK + 8 * q) : 0u;
      }
      if constexpr (XS) {
        cp_async_wait<0>();
        __syncwarp();  // every lane's chunks have landed
      }
#pragma unroll
      for (int u = 0; u < U; u++) {
        if (kt0 + u * kw_total >= k_tiles) break;  // warp-uniform: mma needs the whole warp
        const int ub = XS ? 0 : u;
        if constexpr (XS) {
          // ldmatrix x4 P of token tile j: matrices = 16-byte chunks 4P..4P+3 of rows 8j..8j+7 -> b0/b1 of steps
          // 2P and 2P+1 (the same registers the 4-byte loads fill: q = 2 * step + half).
#pragma unroll
          for (int j = 0; j < MT; j++)
#pragma unroll
            for (int P = 0; P < 2; P++)
              ldmatrix_x4(&xb[0][j][4 * P], xring + u * (8 * MT * 128) + sw128(8 * j + (lane & 7), 4 * P + (lane >> 3)));
        }
#pragma unroll
        for (int st = 0; st < 4; st++) {
#pragma unroll
          for (int i = 0; i < R; i++) {
            uint32_t lo2, hi2, av[4];
            scale_pairs(sv[u][i], st >> 1, &lo2, &hi2);
            dequant_scaled(word_of(wv[u][i], st), lo2, hi2, av);
#pragma unroll
            for (int j = 0; j < MT; j++) mma_16816(acc[i][j], av, xb[ub][j][2 * st], xb[ub][j][2 * st + 1]);
          }
        }
      }
    }

    if (c0 > 0) __syncthreads();  // the previous chunk's epilogue has read `red` and `res`
    if (!skinny_reduce(acc, red, res)) return;
    skinny_store<R, MT, OUT>(a, res, nb0, c0, n_tok, row0);
  }
}

// ---------------------------------------------------------------------------------------------
// Pipelined skinny kernel (dense, M <= 8*MT, bf16 out): the same warp/CTA/cluster split of K and the same
// reduction, but every warp streams its k tiles through a private S-stage cp.async ring in shared memory (R weight
// tiles + their scales + the 8*MT x rows per stage) and keeps S-1 stages in flight while it computes one, as Marlin
// does. The register-staged kernel above loads U tiles, waits, computes and only then loads again, so each warp's
// memory stream stops while it computes: on the H200 it tops out near 2.8 TB/s whatever the shape. A stage is
// read back with lds.128 (weights), lds.64 (scales) and ldmatrix (x, 128-byte swizzle: conflict-free).
// PDL: the weight copies of the first S-1 stages go out before griddepcontrol.wait, the x copies after it; each
// is its own commit group, so "stage i landed" is always cp.async.wait_group S-2 (groups: W0..W(S-2), X0..X(S-2),
// then one per later stage: stage i's last group has index S-1+i).
// ---------------------------------------------------------------------------------------------

template <int MT, int R>
struct PipeStage {
  static constexpr int kW = R * 512, kS = R * 64, kX = 8 * MT * 128;
  static constexpr int kBytes = kW + kS + kX;
};

__host__ __device__ constexpr size_t skinny_pipe_smem_bytes(int mt, int rows, int warps, int stages) {
  const size_t ring = size_t(warps) * stages * (rows * 576 + 8 * mt * 128);
  const size_t red = size_t(warps) * rows * mt * 4 * 32 * 4;
  return (ring > red ? ring : red) + size_t(rows) * mt * 4 * 32 * 4;
}

// Dynamic shared memory a pipelined skinny CTA may take (its kernels are set up for this much).
constexpr size_t kSkinnyPipeSmemMax = 220 * 1024;

// Ring stages of a pipelined launch: `requested` (2..8; 5 and 7 round down to the instantiated 4 and 6) when
// given, else the most of {2, 3, 4, 6, 8} that fit `budget` bytes; never more than kSkinnyPipeSmemMax allows.
inline int skinny_pipe_stages(int mt, int rows, int warps, size_t budget, int requested = 0) {
  int st = 2;
  for (int c : {3, 4, 6, 8})
    if (skinny_pipe_smem_bytes(mt, rows, warps, c) <= budget) st = c;
  if (requested >= 2 && requested <= 8) st = requested == 5 ? 4 : requested == 7 ? 6 : requested;
  while (st > 2 && skinny_pipe_smem_bytes(mt, rows, warps, st) > kSkinnyPipeSmemMax) st = st == 8 ? 6 : st == 6 ? 4 : st - 1;
  return st;
}

// Whether the pipelined kernel applies the group scales in f32 to exact biased codes (else bf16 dequant): at
// MT 1, and at MT 2 from R 7 up. At MT 2 the sum-of-x mmas (8 per stage, shared by the R row blocks) cost more
// than the dequant they save below R 7 (H200, M=16: R1 and R2 6-14% slower, R7 and R8 2-6% faster), and R4 would
// spill at 512 threads.
__host__ __device__ constexpr bool skinny_pipe_f32_scale(int mt, int rows) { return mt == 1 || rows >= 7; }

// One k tile of R row blocks against MT token tiles: acc[i][j] += W(row block i) . x(token tile j). st: the stage's
// R weight tiles (512 bytes each, lane records) then their R scale blocks (64 bytes each) in shared memory; xb: the
// x (B) fragments of the tile's four k16 steps (q = 2 * step + half); g = lane / 4.
template <int MT, int R, bool kF32Scale = skinny_pipe_f32_scale(MT, R)>
__device__ __forceinline__ void skinny_tile_mma(uint32_t st, const uint32_t (&xb)[MT][8], int lane, int g,
                                                float (&acc)[R][MT][4]) {
  using namespace dev;
  using St = PipeStage<MT, R>;
  if constexpr (kF32Scale) {
    // The tensor cores take the exact biased codes 128 + u; the bias and the group scale are applied in f32 per
    // 32-k group: sum_k (u - 8) s x = s (sum_k (128 + u) x - 136 sum_k x). nsx[G][j][h] = -136 * the sum of x
    // over group G for token 8j + 2t + h (an mma with an all-ones A), shared by the R row blocks, is the
    // starting value of the group's mma accumulators, so finishing a group is one f32 fma per value. Per tile
    // and token tile this is 16 lop3 + 4 fma instead of 16 lop3 + 32 bf16x2 fma/mul + 4 prmt, and the
    // products are exact.
    float nsx[2][MT][2];
    {
      const uint32_t ones[4] = {0x3F803F80u, 0x3F803F80u, 0x3F803F80u, 0x3F803F80u};
#pragma unroll
      for (int G = 0; G < 2; G++)
#pragma unroll
        for (int j = 0; j < MT; j++) {
          float d[4] = {0.f, 0.f, 0.f, 0.f};
          mma_16816(d, ones, xb[j][4 * G], xb[j][4 * G + 1]);
          mma_16816(d, ones, xb[j][4 * G + 2], xb[j][4 * G + 3]);
          nsx[G][j][0] = -136.f * d[0];
          nsx[G][j][1] = -136.f * d[1];
        }
    }
#pragma unroll
    for (int i = 0; i < R; i++) {
      const uint4 wv = lds128(st + i * 512 + lane * 16);
      const uint2 sv = lds64(st + St::kW + i * 64 + g * 8);
#pragma unroll
      for (int G = 0; G < 2; G++) {
        const uint32_t sq = G == 0 ? sv.x : sv.y;  // bf16 (s(row g), s(row g + 8)) of group G
        const float s_lo = __uint_as_float(sq << 16), s_hi = __uint_as_float(sq & 0xFFFF0000u);
        float tmp[MT][4];
#pragma unroll
        for (int j = 0; j < MT; j++)
#pragma unroll
          for (int c = 0; c < 4; c++) tmp[j][c] = nsx[G][j][c & 1];
#pragma unroll
        for (int stp = 2 * G; stp < 2 * G + 2; stp++) {
          uint32_t av[4];
          dequant_biased(word_of(wv, stp), av);
#pragma unroll
          for (int j = 0; j < MT; j++) mma_16816(tmp[j], av, xb[j][2 * stp], xb[j][2 * stp + 1]);
        }
#pragma unroll
        for (int j = 0; j < MT; j++)
#pragma unroll
          for (int c = 0; c < 4; c++) acc[i][j][c] = fmaf(c < 2 ? s_lo : s_hi, tmp[j][c], acc[i][j][c]);
      }
    }
  } else {
#pragma unroll
    for (int i = 0; i < R; i++) {
      const uint4 wv = lds128(st + i * 512 + lane * 16);
      const uint2 sv = lds64(st + St::kW + i * 64 + g * 8);
#pragma unroll
      for (int stp = 0; stp < 4; stp++) {
        uint32_t lo2, hi2, av[4];
        scale_pairs(sv, stp >> 1, &lo2, &hi2);
        dequant_scaled(word_of(wv, stp), lo2, hi2, av);
#pragma unroll
        for (int j = 0; j < MT; j++) mma_16816(acc[i][j], av, xb[j][2 * stp], xb[j][2 * stp + 1]);
      }
    }
  }
}

// R >= 7 needs more than 128 registers at MT 2: at most 8 warps. R = 7 and 14 exist for N = 28672 (1792 row
// blocks): 256 or 128 equal CTAs, where R4 leaves 448 CTAs on 132 SMs unevenly (some SMs run 4, some 3).
// Grouped (a.plan.active, the MoE): blockIdx.y = expert slot, x rows gathered through a.x_rows, tokens in chunks of
// 8*MT (each chunk re-streams the expert's weights), no PDL (the plan is the previous kernel's output).
// Launch bounds: 256 threads from R7 up (more than 128 registers at MT 2), else 512; and an explicit minimum of one
// CTA per SM, which frees ptxas to use up to 255 registers at 256 threads: without it, it held R14 S3 to 128
// registers and spilled (28672x8192 M <= 4 2% slower on the H200, A/B). MT 1 R 1 (2048x7168: one 16-warp CTA per
// SM) asks for two, i.e. <= 64 registers.
template <int MT, int R, int S, int OUT = kOutBf16>
__global__ void __launch_bounds__(R >= 7 ? 256 : 512, MT == 1 && R == 1 ? 2 : 1)
    w4a16_skinny_pipe_kernel(SkinnyArgs a) {
  extern __shared__ __align__(128) float smem_f[];  // rings (then, aliased, red [W][kVals][32]); res [kVals][32]
  using namespace dev;
  using St = PipeStage<MT, R>;
  constexpr int kVals = R * MT * 4;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  const int n_split = gridDim.z, kw = blockIdx.z * n_warps + warp, kw_total = n_split * n_warps;
  const size_t ring_bytes = size_t(n_warps) * S * St::kBytes, red_bytes = size_t(n_warps) * kVals * 32 * 4;
  float* red = smem_f;
  float* res = smem_f + (ring_bytes > red_bytes ? ring_bytes : red_bytes) / 4;
  const uint32_t ring = smem_addr(smem_f) + uint32_t(warp * S * St::kBytes);
  const int g = lane >> 2;
  const int nb0 = blockIdx.x * R, k_tiles = a.K / kW4TileK;
  const int n_it = kw < k_tiles ? (k_tiles - 1 - kw) / kw_total + 1 : 0;  // this warp's k tiles
  const uint4* wq = a.wq;
  const uint2* ws = a.ws;
  int n_tok = a.M, row0 = 0;
  trace_stamp(a, 0);
  // Grouped launches have f32 or SiLU*up outputs; the bf16 (dense) instantiations compile to the SASS measured
  // before grouped PDL existed (any edit moves ptxas's allocation of these kernels).
  constexpr bool kGroupedOut = OUT != kOutBf16;
  if constexpr (kGroupedOut)
    if (a.plan.active && a.pdl && !a.plan_ready) pdl_wait();  // the plan is the previous kernel's output (header)
  if (a.pdl) pdl_launch_dependents();
  if (a.plan.active && !skinny_expert<kGroupedOut>(a, &wq, &ws, &n_tok, &row0)) return;

  // Per-lane copy sources at k tile 0: weight chunk `lane` of each row block, scale chunk lane%4 of row blocks
  // lane/4 + 8p (< R), x chunk lane%8 of token rows lane/8 + 4j (j < 2MT; nullptr: past the chunk, zero-filled).
  const uint4* wsrc = wq + size_t(nb0) * k_tiles * 32 + lane;
  const uint4* ssrc = reinterpret_cast<const uint4*>(ws) + size_t(nb0 + (lane >> 2) % R) * k_tiles * 4 + (lane & 3);
  const uint32_t sdst = uint32_t(St::kW + ((lane >> 2) % R) * 64 + (lane & 3) * 16);
  constexpr size_t kScalePass = size_t(8) * 4;  // 16-byte scale chunks of the 8 row blocks one pass of lanes covers
  // Ring slots: it % S is a mask at S 4 and 8 but a multiply-shift at S 3 and 6, so there the loop carries a
  // running counter (H200: 28672x8192 M=1 S3 R14 and 8192x28672 M=16 S3 R4 ~1.5% faster; as a counter at S 4 and 8
  // too, 8192x28672 M=1 S4 R4 was 5% slower: another register allocation). it: the warp's tile index, slot: it % S
  // from the counter, used only where kSlotCounter; elsewhere the loaders keep computing it % S themselves, which
  // keeps the S 2/4/8 kernels' SASS as it was measured.
  constexpr bool kSlotCounter = (S & (S - 1)) != 0;
  auto load_w = [&](int it, int slot) {
    const int kt = kw + it * kw_total;
    const uint32_t st = ring + uint32_t((kSlotCounter ? slot : it % S) * St::kBytes);
    if (it < n_it) {
#pragma unroll
      for (int i = 0; i < R; i++) cp_async16_s(st + i * 512 + lane * 16, wsrc + (size_t(i) * k_tiles + kt) * 32, true);
#pragma unroll
      for (int p = 0; p < (4 * R + 31) / 32; p++)
        if (32 * p + lane < 4 * R)
          cp_async16_s(st + sdst + p * 512, ssrc + size_t(p) * kScalePass * k_tiles + size_t(kt) * 4, true);
    }
  };
  const uint16_t* xsrc[2 * MT];
  auto load_x = [&](int it, int slot) {
    const int kt = kw + it * kw_total;
    const uint32_t st = ring + uint32_t((kSlotCounter ? slot : it % S) * St::kBytes + St::kW + St::kS);
    if (it < n_it)
#pragma unroll
      for (int j = 0; j < 2 * MT; j++)
        cp_async16_s(st + sw128((lane >> 3) + 4 * j, lane & 7), xsrc[j] ? xsrc[j] + size_t(kt) * kW4TileK : a.x,
                     xsrc[j] != nullptr);
  };

  for (int c0 = 0; c0 < n_tok; c0 += 8 * MT) {
#pragma unroll
    for (int j = 0; j < 2 * MT; j++) {
      const int m = c0 + (lane >> 3) + 4 * j;
      int src = row0 + (m < n_tok ? m : 0);
      if (a.x_rows) src = a.x_rows[src];
      xsrc[j] = m < n_tok ? a.x + size_t(src) * a.ldx + (lane & 7) * 8 : nullptr;
    }
    if (c0 > 0) __syncthreads();  // the previous chunk's epilogue has read `res` (and `red`, which the rings alias)
#pragma unroll
    for (int s = 0; s < S - 1; s++) {
      load_w(s, s);
      cp_async_commit();
    }
    if (a.pdl && c0 == 0) pdl_wait();  // x (the previous kernel's output) and y only from here on
    if (c0 == 0) trace_stamp(a, 1);
#pragma unroll
    for (int s = 0; s < S - 1; s++) {
      load_x(s, s);
      cp_async_commit();
    }

    float acc[R][MT][4];
#pragma unroll
    for (int i = 0; i < R; i++)
#pragma unroll
      for (int j = 0; j < MT; j++)
#pragma unroll
        for (int c = 0; c < 4; c++) acc[i][j][c] = 0.f;

    int slot_c = 0;  // it % S where kSlotCounter
    for (int it = 0; it < n_it; it++) {
      cp_async_wait<S - 2>();
      __syncwarp();  // every lane's copies of stage it have landed; every lane is done reading stage it-1's slot
      if (it == 0 && c0 == 0) trace_stamp(a, 2);
      const int slot = kSlotCounter ? slot_c : it % S;
      const int load_slot = slot == 0 ? S - 1 : slot - 1;  // (it + S - 1) % S
      if constexpr (kSlotCounter) slot_c = slot == S - 1 ? 0 : slot + 1;
      load_w(it + S - 1, load_slot);
      load_x(it + S - 1, load_slot);
      cp_async_commit();
      const uint32_t st = ring + uint32_t(slot * St::kBytes);
      uint32_t xb[MT][8];
#pragma unroll
      for (int j = 0; j < MT; j++)
#pragma unroll
        for (int P = 0; P < 2; P++)
          ldmatrix_x4(&xb[j][4 * P], st + St::kW + St::kS + sw128(8 * j + (lane & 7), 4 * P + (lane >> 3)));
      skinny_tile_mma<MT, R>(st, xb, lane, g, acc);
    }
    cp_async_wait<0>();
    trace_stamp(a, 3);
    __syncthreads();  // red aliases the rings: every warp must be done with its ring first
    if (!skinny_reduce(acc, red, res)) return;
    skinny_store<R, MT, OUT>(a, res, nb0, c0, n_tok, row0);
  }
  trace_stamp(a, 4);
}

// ---------------------------------------------------------------------------------------------
// Flat skinny kernel (dense, small weights: every warp has exactly T k tiles, T <= 8). A decode GEMM whose weights
// fit the SMs' shared memory in one pass (2048x7168, 7168x2048: 62 KB per SM) has no stream to pipeline: what
// follows the PDL wait sets a chain's period (H200 traces of the ring kernel: x arrived ~1 us after the wait, then
// 7 tiles took ~2.5 us behind a per-tile wait_group + syncwarp, with 14 per-stage x copies of 8 rows). Here each
// warp copies its T weight tiles before the wait (one commit group), after it only the x rows that hold tokens
// (xr = M rows per tile: at M = 1 one 16-byte copy per 8 lanes and tile), waits once, and computes the T tiles
// unrolled with no barrier between them. Rows of an x tile past M are not copied: ldmatrix reads row min(r, M-1)
// for them, whose results land in token columns that are never stored.
// PDL: <= 64 registers (launch bounds 512 x 2) so that the next launch's CTAs fit beside this one's, and the next
// launch is let in (griddepcontrol.launch_dependents) only once this warp's x copies are issued: let in at entry,
// its weight copies queued this launch's x copies behind them (H200 trace, 2048x7168 M = 1: x landed 1-3 us after
// the wait, 6.1 us per launch; let in once x had landed: 4.9 us; once x is issued: 4.7 us, equal elsewhere).
// Dequant: bf16((u - 8) * scale) at every MT (the f32-scale form needs 64 registers and spills at T 7; it measured
// equal at M = 1 and 2-4% slower at M = 4-8).
// Shared memory: weights [W][T][R * 576] (R tiles of 512 bytes, then R scale blocks of 64), x [W][T][xr][128]
// (128-byte swizzle by row), then res [kVals][32]; red [W][kVals][32] aliases the start once every warp is done.
// ---------------------------------------------------------------------------------------------

__host__ __device__ constexpr size_t skinny_flat_smem_bytes(int mt, int rows, int warps, int tiles, int x_rows) {
  const size_t data = size_t(warps) * tiles * (rows * 576 + x_rows * 128);
  const size_t red = size_t(warps) * rows * mt * 4 * 32 * 4;
  return (data > red ? data : red) + size_t(rows) * mt * 4 * 32 * 4;
}

template <int MT, int R, int T>
__global__ void __launch_bounds__(512, 2) w4a16_skinny_flat_kernel(SkinnyArgs a) {
  extern __shared__ __align__(128) float smem_f[];
  using namespace dev;
  constexpr int kVals = R * MT * 4, kTileBytes = R * 576, kW = R * 512;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  const int kw = blockIdx.z * n_warps + warp, kw_total = gridDim.z * n_warps;  // tile u of the warp: kw + u*kw_total
  const int g = lane >> 2, nb0 = blockIdx.x * R, k_tiles = a.K / kW4TileK;
  const int xr = a.M;  // x rows per tile (dense: M <= 8 * MT)
  const size_t data_bytes = size_t(n_warps) * T * (kTileBytes + xr * 128), red_bytes = size_t(n_warps) * kVals * 128;
  float* red = smem_f;
  float* res = smem_f + (data_bytes > red_bytes ? data_bytes : red_bytes) / 4;
  const uint32_t wst = smem_addr(smem_f) + uint32_t(warp * T * kTileBytes);
  const uint32_t xst = smem_addr(smem_f) + uint32_t(n_warps * T * kTileBytes + warp * T * xr * 128);
  trace_stamp(a, 0);

  // Weights and scales of the warp's T tiles (the pipelined kernel's per-lane mapping: weight chunk `lane` of each
  // row block, scale chunk lane%4 of row block lane/4 for lanes < 4R).
  const uint4* wsrc = a.wq + size_t(nb0) * k_tiles * 32 + lane;
  const uint4* ssrc = reinterpret_cast<const uint4*>(a.ws) + size_t(nb0 + (lane >> 2) % R) * k_tiles * 4 + (lane & 3);
  const uint32_t sdst = uint32_t(kW + ((lane >> 2) % R) * 64 + (lane & 3) * 16);
#pragma unroll
  for (int u = 0; u < T; u++) {
    const int kt = kw + u * kw_total;
#pragma unroll
    for (int i = 0; i < R; i++)
      cp_async16_s(wst + u * kTileBytes + i * 512 + lane * 16, wsrc + (size_t(i) * k_tiles + kt) * 32, true);
    if (lane < 4 * R) cp_async16_s(wst + u * kTileBytes + sdst, ssrc + size_t(kt) * 4, true);
  }
  cp_async_commit();
  // x: lane copies 16-byte chunk lane%8 of token rows lane/8 + 4i (i < 2 MT, row < M) of each tile. Its addresses
  // are set up here, before the wait: the copies after it are on the chain's critical path (a runtime row loop
  // with its address arithmetic per tile compiled to ~40 instructions per tile there).
  constexpr int kRowPasses = 2 * MT;  // 8 MT rows at most, 4 per pass
  const int row0 = lane >> 3, passes = xr > row0 ? (xr - row0 + 3) >> 2 : 0;
  const uint16_t* xsrc = a.x + size_t(row0) * a.ldx + (lane & 7) * 8 + size_t(kw) * kW4TileK;
  const size_t xsrc_tile = size_t(kw_total) * kW4TileK, xsrc_pass = 4 * size_t(a.ldx);
  const uint32_t xdst_tile = uint32_t(xr * 128);
  uint32_t xdst[kRowPasses];
#pragma unroll
  for (int i = 0; i < kRowPasses; i++) xdst[i] = xst + sw128(row0 + 4 * i, lane & 7);
  if (a.pdl) pdl_wait();  // x (the previous kernel's output) and y only from here on
  trace_stamp(a, 1);
#pragma unroll
  for (int u = 0; u < T; u++) {
#pragma unroll
    for (int i = 0; i < kRowPasses; i++)
      if (i < passes) cp_async16_s(xdst[i] + u * xdst_tile, xsrc + i * xsrc_pass, true);
    xsrc += xsrc_tile;
  }
  cp_async_commit();
  if (a.pdl) pdl_launch_dependents();  // only now: x's copies are queued ahead of the next launch's (note above)
  cp_async_wait<0>();
  __syncwarp();  // every lane's copies have landed
  trace_stamp(a, 2);

  float acc[R][MT][4];
#pragma unroll
  for (int i = 0; i < R; i++)
#pragma unroll
    for (int j = 0; j < MT; j++)
#pragma unroll
      for (int c = 0; c < 4; c++) acc[i][j][c] = 0.f;
  // ldmatrix row of this lane in token tile j: 8j + lane%8, or the last row that holds a token.
  int xrow[MT];
#pragma unroll
  for (int j = 0; j < MT; j++) xrow[j] = min(8 * j + (lane & 7), xr - 1);
#pragma unroll
  for (int u = 0; u < T; u++) {
    uint32_t xb[MT][8];
#pragma unroll
    for (int j = 0; j < MT; j++)
#pragma unroll
      for (int P = 0; P < 2; P++)
        ldmatrix_x4(&xb[j][4 * P], xst + uint32_t(u * xr * 128) + sw128(xrow[j], 4 * P + (lane >> 3)));
    skinny_tile_mma<MT, R, false>(wst + u * kTileBytes, xb, lane, g, acc);
  }
  trace_stamp(a, 3);
  __syncthreads();  // red aliases the tiles: every warp must be done reading them
  if (!skinny_reduce(acc, red, res)) return;
  skinny_store<R, MT, kOutBf16>(a, res, nb0, 0, a.M, 0);
  trace_stamp(a, 4);
}

// k tiles in flight per warp: 4, or 2 where R row blocks x MT token tiles would spill registers at 4.
constexpr int skinny_unroll(int mt, int rows) { return rows * mt >= 4 ? 2 : 4; }

// Dynamic shared memory of one launch (xs: with the per-warp x rings of u k tiles).
constexpr size_t skinny_smem_bytes(int mt, int rows, int warps, bool xs = false, int u = 0) {
  return size_t(warps + 1) * rows * mt * 4 * 32 * 4 + (xs ? size_t(warps) * skinny_xs_warp_bytes(mt, u) : 0);
}

}  // namespace strata::cuda
