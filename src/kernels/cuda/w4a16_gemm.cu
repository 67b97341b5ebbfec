// CUDA W4A16 linear for Hopper: y[M, N] bf16 = x[M, K] bf16 . W^T, W INT4 in the repacked layout
// (w4a16_layout.h); skinny (M <= 16), wgmma (M > 16), tiled mma.sync and naive kernels; see cuda_w4a16.h.
// No bias. Two wgmma kernels: cp.async-fed (every thread copies) and warp-specialised TMA-fed (the default above 64
// tokens).
#include <cuda.h>  // CUtensorMap (types only: the encoder comes from the runtime's driver entry point)
#include <cudaTypedefs.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/cuda_w4a16.h"
#include "kernels/cuda/w4a16_device.cuh"
#include "kernels/cuda/w4a16_layout.h"
#include "kernels/cuda/w4a16_skinny.cuh"
#include "kernels/cuda/w4a16_wgmma.cuh"

namespace strata::cuda {

namespace {

using namespace dev;

constexpr int kGroupM = 8;
// Wgmma: the warp-specialised kernel above this many tokens (H200: 1.2-1.4x the cp.async kernel at M >= 256; equal
// on the large shapes and 1.1x slower on the small ones at M = 64).
constexpr int kWgmmaWsMinM = 64;

// Grouped raster of a (tiles_m x tiles_n) grid flattened into blockIdx.x.
__device__ __forceinline__ void raster(int tiles_m, int tiles_n, int* tm, int* tn) {
  const int b = int(blockIdx.x);
  const int group_size = kGroupM * tiles_n;
  const int group = b / group_size, first_m = group * kGroupM;
  const int gm = min(tiles_m - first_m, kGroupM);
  *tm = first_m + (b % group_size) % gm;
  *tn = (b % group_size) / gm;
}

// Loads 64-k stages: BT token rows of x (SWIZZLE_128B, rows past M zero-filled), then the 8 row blocks' packed
// tiles and scale quads. Every thread of the CTA takes fixed chunks, so the addresses are computed once here and
// a stage costs each thread a few cp.async (x: BT/32 chunks, weights: 1, scales: 1 for threads < 32).
template <int BT, int kThreads>
struct StageLoader {
  static constexpr int kBlocks = 8;
  static constexpr int kXPer = BT * 8 / kThreads;  // x chunks per thread
  static_assert(kBlocks * 32 == kThreads && kXPer >= 1, "loader assumes 256 threads and 8 row blocks");
  const uint16_t* xsrc;  // chunk j = 0 of this thread at k = 0 (row m0 + tid/8, k offset 8 * (tid % 8))
  const uint16_t* xany;  // a valid address for zero-filled copies
  size_t xstride;        // elements between the thread's chunks: 32 rows
  int xn;                // chunks of this thread whose row is < M (a prefix of j)
  uint32_t xdst;         // its byte offset in the stage (chunk j adds 32 rows x 128 B)
  const uint4* wsrc;     // lane record of row block tid/32 at k tile 0 (clamped when out of range)
  const uint4* ssrc;     // scale chunk tid%4 of row block tid/4 at k tile 0 (threads < 32)
  bool wok, sok;

  __device__ __forceinline__ StageLoader(const uint16_t* x, int M, int K, int m0, const uint4* wq, const uint4* ws,
                                         int nb0, int n_blocks, int k_tiles) {
    const int tid = threadIdx.x, r0 = tid >> 3, ch = tid & 7;
    const int rows_left = M - m0 - r0;  // rows r0, r0 + 32, ... below M
    xn = rows_left <= 0 ? 0 : min(kXPer, (rows_left + kThreads / 8 - 1) / (kThreads / 8));
    xsrc = x + size_t(m0 + r0) * K + ch * 8;
    xany = x;
    xstride = size_t(kThreads / 8) * K;
    xdst = dev::sw128(r0, ch);
    const int nbw = nb0 + (tid >> 5);
    wok = nbw < n_blocks;
    wsrc = wq + (size_t(wok ? nbw : 0) * k_tiles) * 32 + (tid & 31);
    const int nbs = nb0 + (tid >> 2);
    sok = tid < kBlocks * 4 && nbs < n_blocks;
    ssrc = ws + (size_t(sok ? nbs : 0) * k_tiles) * 4 + (tid & 3);
  }

  __device__ __forceinline__ void load(uint8_t* st, int kt) const {
    const uint32_t base = dev::smem_addr(st);
    const uint16_t* p = xsrc + size_t(kt) * kW4TileK;
    if (xn == kXPer) {  // every row of this thread's chunks exists (all but the last token tile): no selects
#pragma unroll
      for (int j = 0; j < kXPer; j++) {
        dev::cp_async16_s(base + xdst + j * (kThreads / 8) * 128, p, true);
        p += xstride;
      }
    } else {
#pragma unroll
      for (int j = 0; j < kXPer; j++) {
        const bool ok = j < xn;
        dev::cp_async16_s(base + xdst + j * (kThreads / 8) * 128, ok ? p : xany, ok);
        p += xstride;
      }
    }
    dev::cp_async16_s(base + BT * 128 + threadIdx.x * 16, wsrc + size_t(kt) * 32, wok);
    if (threadIdx.x < kBlocks * 4)
      dev::cp_async16_s(base + BT * 128 + kBlocks * 512 + threadIdx.x * 16, ssrc + size_t(kt) * 4, sok);
  }
};

// ---------------------------------------------------------------------------------------------
// Wgmma path: CTA = 2 warpgroups; warp w owns row block w (16 rows) of the CTA's 128; tokens BT = wgmma N.
// ---------------------------------------------------------------------------------------------

template <int BT>
struct WgCfg {
  static constexpr int kThreads = 256;
  static constexpr int kRows = 128;
  static constexpr int kBlocks = kRows / kW4TileN;  // 8
  static constexpr int kStageBytes = ((BT * 128 + kBlocks * 512 + kBlocks * 64) + 1023) / 1024 * 1024;
  // As many stages as fit in 200 KB (5 at BT 256, 8 at BT 64/128); prefetch distance kStages - 2.
  static constexpr int kStages = std::min(8, (200 * 1024) / kStageBytes);
  static constexpr int kSmemBytes = kStages * kStageBytes + 1024;  // + slack to align the base to 1024
};

// Dequantized A fragments (weights) of one k tile for this warp's row block: [k16 step][register].
__device__ __forceinline__ void load_a(const uint8_t* st_w, const uint8_t* st_s, int warp, int lane,
                                       uint32_t a[4][4]) {
  const uint4 wv = lds128(smem_addr(st_w) + warp * 512 + lane * 16);
  const uint2 sv = lds64(smem_addr(st_s) + warp * 64 + (lane >> 2) * 8);
#pragma unroll
  for (int s = 0; s < 4; s++) {
    uint32_t lo2, hi2;
    scale_pairs(sv, s >> 1, &lo2, &hi2);
    dequant_scaled(word_of(wv, s), lo2, hi2, a[s]);
  }
}

// Epilogue of the wgmma kernels: the CTA's [BT tokens x ROWS rows] accumulators to y (bf16) or to this split's
// f32 partials. acc[4j + e] of warp w: weight row 16w + g + 8(e >> 1), token 8j + 2t + (e & 1). With smem_epilogue
// (and no partials) the tile goes through shared memory ([BT][ROWS + 8] bf16, the 16-byte pad keeping the 2-byte
// writes conflict-free; free once every copy landed and every wgmma retired, which `sync` - a barrier over the
// kThreads consumer threads - makes true for all warps) and out in whole 16-byte row chunks: direct 2-byte stores
// leave y in partial sectors (8 rows x 16 bytes per warp store), and on the short-K shapes (K = 2048: 32 k tiles
// per CTA) the store tail of each CTA shows.
template <int BT, int ROWS, int kThreads>
__device__ __forceinline__ void wgmma_store_tile(const float* acc, uint8_t* smem, int M, int N, int m0, int n0,
                                                 uint16_t* y, float* partial, bool smem_epilogue, int tid, int warp,
                                                 int g, int t) {
  // Named barrier 1 over the kThreads consumer threads (threads 0..kThreads-1; the whole CTA when it has no others).
  auto sync = [] { asm volatile("bar.sync 1, %0;" ::"n"(kThreads) : "memory"); };
  const int n_lo = n0 + warp * kW4TileN + g;
  if (!partial && smem_epilogue) {
    constexpr int kLd = ROWS + 8;
    uint16_t* tile = reinterpret_cast<uint16_t*>(smem);
    sync();
#pragma unroll
    for (int j = 0; j < BT / 8; j++)
#pragma unroll
      for (int e = 0; e < 4; e++)
        tile[(8 * j + 2 * t + (e & 1)) * kLd + warp * kW4TileN + g + 8 * (e >> 1)] = f32_to_bf16_bits(acc[4 * j + e]);
    sync();
    const int n_chunks = min(ROWS, N - n0) / 8;  // N % 16 == 0: chunks are whole
    for (int c = tid; c < BT * (ROWS / 8); c += kThreads) {
      const int r = c / (ROWS / 8), ch = c % (ROWS / 8), m = m0 + r;
      if (m < M && ch < n_chunks)
        *reinterpret_cast<uint4*>(y + size_t(m) * N + n0 + ch * 8) = *reinterpret_cast<const uint4*>(tile + r * kLd + ch * 8);
    }
    return;
  }
#pragma unroll
  for (int j = 0; j < BT / 8; j++)
#pragma unroll
    for (int e = 0; e < 4; e++) {
      const int m = m0 + 8 * j + 2 * t + (e & 1), n = n_lo + 8 * (e >> 1);
      if (m < M && n < N) {
        if (partial)
          partial[(size_t(blockIdx.y) * M + m) * N + n] = acc[4 * j + e];
        else
          y[size_t(m) * N + n] = f32_to_bf16_bits(acc[4 * j + e]);
      }
    }
}

// The consumer side of both wgmma kernels: a warpgroup's dequant + wgmma pipeline over nk k tiles of the stage
// ring (stage i at stage(i)), up to two wgmma groups in flight. Iteration i issues group i (A from register set
// i & 1), then - while groups i-1 and i run - calls ready(i) (stage i+1 must be readable when it returns; called
// on every iteration so that a hook with a CTA barrier stays uniform), dequantizes stage i+1 into temporaries,
// waits for group i-1, calls retired(i-1) (that group's stage may be refilled) and only then moves the
// temporaries into the register set group i-1 used. first() makes stage 0 readable. acc [BT/2] f32: see
// wgmma_store_tile.
template <int BT, int kBlocks, class Stage, class First, class Ready, class Retired>
__device__ __forceinline__ void wgmma_mainloop(float (&acc)[BT / 2], int nk, int warp, int lane, Stage stage,
                                               First first, Ready ready, Retired retired) {
#pragma unroll
  for (int i = 0; i < BT / 2; i++) acc[i] = 0.f;
  uint32_t a[2][4][4];
  if (nk > 0) {
    first();
    load_a(stage(0) + BT * 128, stage(0) + BT * 128 + kBlocks * 512, warp, lane, a[0]);
  }
  auto step = [&](int i, uint32_t (&cur)[4][4], uint32_t (&nxt)[4][4]) {
    const uint32_t xs = smem_addr(stage(i));
    wgmma_fence();
#pragma unroll
    for (int s = 0; s < 4; s++) wgmma_rs<BT>(acc, cur[s], wgmma_desc_sw128(xs + 32 * s));
    wgmma_commit();
    ready(i);
    uint32_t tmp[4][4];
    if (i + 1 < nk) load_a(stage(i + 1) + BT * 128, stage(i + 1) + BT * 128 + kBlocks * 512, warp, lane, tmp);
    wgmma_wait<1>();  // group i-1 done: its A registers (nxt) may be rewritten
    if (i >= 1) retired(i - 1);
#pragma unroll
    for (int s = 0; s < 4; s++)
#pragma unroll
      for (int r = 0; r < 4; r++) {
        fence_operand(nxt[s][r]);
        if (i + 1 < nk) nxt[s][r] = tmp[s][r];
      }
  };
  for (int i = 0; i < nk; i += 2) {
    step(i, a[0], a[1]);
    if (i + 1 < nk) step(i + 1, a[1], a[0]);
  }
  wgmma_wait<0>();
#pragma unroll
  for (int s = 0; s < 4; s++)
#pragma unroll
    for (int r = 0; r < 4; r++) {
      fence_operand(a[0][s][r]);
      fence_operand(a[1][s][r]);
    }
#pragma unroll
  for (int i = 0; i < BT / 2; i++) fence_operand(acc[i]);
}

template <int BT>
__global__ void __launch_bounds__(256, 1)
    w4a16_wgmma_kernel(const uint16_t* __restrict__ x,  // [M, K] bf16
                       int M, int K,
                       const uint4* __restrict__ wq,  // [N/16, K/64, 32] lane records
                       const uint4* __restrict__ ws,  // [N/16, K/64, 4] 16-byte chunks of scale quads
                       int N,
                       uint16_t* __restrict__ y,     // [M, N] bf16 (when partial == nullptr)
                       float* __restrict__ partial,  // [splits, M, N] f32 split-K partials, or nullptr
                       int kt_per_split, int tiles_m, int tiles_n,
                       bool smem_epilogue) {  // y through shared memory in 16-byte chunks (needs 16-byte aligned y)
  using C = WgCfg<BT>;
  constexpr int S = C::kStages, D = S - 2;  // D stages in flight ahead; 2 slots for the two groups in flight
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  int tm, tn;
  raster(tiles_m, tiles_n, &tm, &tn);
  const int m0 = tm * BT, n0 = tn * C::kRows, nb0 = n0 / kW4TileN;
  const int k_tiles = K / kW4TileK, n_blocks = N / kW4TileN;
  const int kt_begin = blockIdx.y * kt_per_split;
  const int nk = max(0, min(k_tiles, kt_begin + kt_per_split) - kt_begin);
  auto stage = [&](int i) { return smem + (i % S) * C::kStageBytes; };
  const StageLoader<BT, C::kThreads> loader(x, M, K, m0, wq, ws, nb0, n_blocks, k_tiles);

  // D stages in flight ahead of the one being read; the slot refilled in iteration i is that of stage i-2, free
  // because every warpgroup waited for group i-2 before this iteration's barrier.
#pragma unroll
  for (int s = 0; s < D; s++) {
    if (s < nk) loader.load(stage(s), kt_begin + s);
    cp_async_commit();
  }
  float acc[BT / 2];
  wgmma_mainloop<BT, C::kBlocks>(
      acc, nk, warp, lane, stage,
      [&] {
        cp_async_wait<D - 1>();
        fence_proxy_async();
        __syncthreads();
      },
      [&](int i) {
        cp_async_wait<D - 2>();  // stage i+1 landed (this thread's copies)
        fence_proxy_async();
        __syncthreads();  // ... every thread's; every warpgroup is past its wait for group i-2
        if (i + D < nk) loader.load(stage(i + D), kt_begin + i + D);
        cp_async_commit();
      },
      [](int) {});
  cp_async_wait<0>();

  wgmma_store_tile<BT, C::kRows, C::kThreads>(acc, smem, M, N, m0, n0, y, partial, smem_epilogue, tid, warp, g, t);
}

// The same tile, warp-specialised and fed by TMA. Warps 0-7 are the two consumer warpgroups (the dequant and
// wgmma pipeline above, unchanged); warps 8-11 the producer warpgroup, of which one lane issues each stage's three
// copies (the x box through a SWIZZLE_128B tensor map; the 8 row blocks' tiles and scales through 3-D tensor
// maps) onto the stage's `full` mbarrier as soon as the consumers have released the slot on its `empty` mbarrier
// (one arrival per consumer warp, after the wgmma group that read it has retired). The main loop has no CTA-wide
// barrier and no consumer issues copies, so the warpgroups run at their own pace. The producer is a whole
// warpgroup so that setmaxnreg can move its registers to the consumers: 40 + 2 x 232 per SM sub-partition (the
// BT 256 consumer needs ~210). Loading the weights and scales by two 3-D tensor-map copies instead of 16 bulk
// copies made this kernel 1.2-1.4x faster than the cp.async one at M >= 256 (H200); with one bulk copy per row
// block the single producer lane could not keep up below BT 256.
// Tried and dropped: 2-CTA clusters that multicast each x tile to both CTAs (x read from L2 once per pair, the
// slot freed by both CTAs' consumers through cluster-scope arrivals): 1.4-2.6x slower than without.
template <int BT>
struct WsCfg {
  static constexpr int kConsumers = 256, kThreads = kConsumers + 128;
  static constexpr int kProducerRegs = 40, kConsumerRegs = 232;
  static constexpr int kRows = 128, kBlocks = kRows / kW4TileN;
  static constexpr int kStageBytes = WgCfg<BT>::kStageBytes;
  // As many stages as fit in 224 KB (6 at BT 256, 8 at BT 64/128).
  static constexpr int kStages = std::min(8, (224 * 1024) / kStageBytes);
  static constexpr int kSmemBytes = kStages * kStageBytes + 1024;  // + slack to align the base to 1024
};

template <int BT>
__global__ void __launch_bounds__(WsCfg<BT>::kThreads, 1)
    w4a16_wgmma_ws_kernel(const __grid_constant__ CUtensorMap xmap,  // x bf16 [M, K], box {64, BT}, SWIZZLE_128B
                          const __grid_constant__ CUtensorMap wmap,  // tiles u32 [N/16][K/64][128], box {128, 1, 8}
                          const __grid_constant__ CUtensorMap smap,  // scales u32 [N/16][K/64][16], box {16, 1, 8}
                          int M, int K, int N, uint16_t* __restrict__ y, float* __restrict__ partial,
                          int kt_per_split, int tiles_m, int tiles_n, bool smem_epilogue) {
  using C = WsCfg<BT>;
  constexpr int S = C::kStages;
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  __shared__ __align__(8) uint64_t full[S], empty[S];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  int tm, tn;
  raster(tiles_m, tiles_n, &tm, &tn);
  const int m0 = tm * BT, n0 = tn * C::kRows, nb0 = n0 / kW4TileN;
  const int k_tiles = K / kW4TileK;
  const int kt_begin = blockIdx.y * kt_per_split;
  const int nk = max(0, min(k_tiles, kt_begin + kt_per_split) - kt_begin);
  auto stage = [&](int i) { return smem + (i % S) * C::kStageBytes; };
  if (tid == 0) {
    for (int s = 0; s < S; s++) {
      mbar_init(smem_addr(&full[s]), 1);
      mbar_init(smem_addr(&empty[s]), C::kConsumers / 32);
    }
    mbar_init_fence();
  }
  __syncthreads();

  if (warp >= C::kConsumers / 32) {  // producer warpgroup
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(C::kProducerRegs));
    if (warp == C::kConsumers / 32 && lane == 0) {
      for (int i = 0; i < nk; i++) {
        if (i >= S) mbar_wait(smem_addr(&empty[i % S]), uint32_t((i / S - 1) & 1));  // use i - S released
        const uint32_t st = smem_addr(stage(i)), b = smem_addr(&full[i % S]);
        const int kt = kt_begin + i;
        // Out-of-range token rows and row blocks are zero-filled and count like the others.
        mbar_expect_tx(b, uint32_t(BT * 128 + C::kBlocks * (512 + 64)));
        tma_load_2d(st, &xmap, kt * kW4TileK, m0, b);
        tma_load_3d(st + BT * 128, &wmap, 0, kt, nb0, b);
        tma_load_3d(st + BT * 128 + C::kBlocks * 512, &smap, 0, kt, nb0, b);
      }
    }
  } else {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(C::kConsumerRegs));
    // Stage i-1 is released once group i-1 has retired: its x was read by that group, its weights by the
    // ld.shared of iteration i-2.
    float acc[BT / 2];
    wgmma_mainloop<BT, C::kBlocks>(
        acc, nk, warp, lane, stage, [&] { mbar_wait(smem_addr(&full[0]), 0); },
        [&](int i) {
          if (i + 1 < nk) mbar_wait(smem_addr(&full[(i + 1) % S]), uint32_t(((i + 1) / S) & 1));
        },
        [&](int i) {
          if (lane == 0) mbar_arrive(smem_addr(&empty[i % S]));
        });
    wgmma_store_tile<BT, C::kRows, C::kConsumers>(acc, smem, M, N, m0, n0, y, partial, smem_epilogue, tid, warp, g, t);
  }
}

// ---------------------------------------------------------------------------------------------
// Tiled mma.sync path: CTA tile 128 tokens x 128 rows (8 warps of 64 tokens x 32 rows), same stage layout.
// ---------------------------------------------------------------------------------------------

struct TiledCfg {
  static constexpr int kThreads = 256;
  static constexpr int BM = 128, BN = 128;
  static constexpr int kBlocks = BN / kW4TileN;
  static constexpr int kStages = 4;
  static constexpr int kStageBytes = BM * 128 + kBlocks * 512 + kBlocks * 64;  // multiple of 1024
  static constexpr int kSmemBytes = kStages * kStageBytes + 1024;
};

__global__ void __launch_bounds__(256, 1)
    w4a16_tiled_kernel(const uint16_t* __restrict__ x, int M, int K, const uint4* __restrict__ wq,
                       const uint4* __restrict__ ws, int N, uint16_t* __restrict__ y, float* __restrict__ partial,
                       int kt_per_split, int tiles_m, int tiles_n) {
  using C = TiledCfg;
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / 4, wn = warp % 4;  // 2 x 4 warps
  const int g = lane >> 2, t = lane & 3;
  int tm, tn;
  raster(tiles_m, tiles_n, &tm, &tn);
  const int m0 = tm * C::BM, n0 = tn * C::BN, nb0 = n0 / kW4TileN;
  const int k_tiles = K / kW4TileK, n_blocks = N / kW4TileN;
  const int kt_begin = blockIdx.y * kt_per_split;
  const int nk = max(0, min(k_tiles, kt_begin + kt_per_split) - kt_begin);
  const StageLoader<C::BM, C::kThreads> loader(x, M, K, m0, wq, ws, nb0, n_blocks, k_tiles);

  float acc[8][2][4];  // [token tile j][row block i][C fragment element]
#pragma unroll
  for (int j = 0; j < 8; j++)
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
      for (int e = 0; e < 4; e++) acc[j][i][e] = 0.f;

#pragma unroll
  for (int s = 0; s < C::kStages - 1; s++) {
    if (s < nk) loader.load(smem + s * C::kStageBytes, kt_begin + s);
    cp_async_commit();
  }
  for (int it = 0; it < nk; it++) {
    cp_async_wait<C::kStages - 2>();
    __syncthreads();
    const int nxt = it + C::kStages - 1;
    if (nxt < nk) loader.load(smem + (nxt % C::kStages) * C::kStageBytes, kt_begin + nxt);
    cp_async_commit();

    const uint8_t* st = smem + (it % C::kStages) * C::kStageBytes;
    uint32_t a[2][4][4];  // [row block i][step][reg]
#pragma unroll
    for (int i = 0; i < 2; i++) {
      const int b = wn * 2 + i;
      const uint4 wv = *reinterpret_cast<const uint4*>(st + C::BM * 128 + b * 512 + lane * 16);
      const uint2 sv = *reinterpret_cast<const uint2*>(st + C::BM * 128 + C::kBlocks * 512 + b * 64 + g * 8);
#pragma unroll
      for (int s = 0; s < 4; s++) {
        uint32_t lo2, hi2;
        scale_pairs(sv, s >> 1, &lo2, &hi2);
        dequant_scaled(word_of(wv, s), lo2, hi2, a[i][s]);
      }
    }
    const uint32_t xs = smem_addr(st);
#pragma unroll
    for (int j = 0; j < 8; j++) {
      // ldmatrix: matrix q of pair P = chunk 4P + q of token rows 8j..8j+7 -> b0/b1 of steps 2P, 2P+1.
      const int r = wm * 64 + j * 8 + (lane & 7);
      uint32_t b[2][4];
#pragma unroll
      for (int P = 0; P < 2; P++) ldmatrix_x4(b[P], xs + sw128(r, 4 * P + (lane >> 3)));
#pragma unroll
      for (int s = 0; s < 4; s++)
#pragma unroll
        for (int i = 0; i < 2; i++) mma_16816(acc[j][i], a[i][s], b[s >> 1][2 * (s & 1)], b[s >> 1][2 * (s & 1) + 1]);
    }
  }
  cp_async_wait<0>();

#pragma unroll
  for (int j = 0; j < 8; j++)
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int m = m0 + wm * 64 + 8 * j + 2 * t + (e & 1);
        const int n = n0 + (wn * 2 + i) * kW4TileN + g + 8 * (e >> 1);
        if (m < M && n < N) {
          if (partial)
            partial[(size_t(blockIdx.y) * M + m) * N + n] = acc[j][i][e];
          else
            y[size_t(m) * N + n] = f32_to_bf16_bits(acc[j][i][e]);
        }
      }
}

// y[i] = bf16(sum over splits of partial[s][i]); 4 elements per thread (M*N is a multiple of 16).
__global__ void splitk_reduce_kernel(const float4* __restrict__ partial,  // [splits, M*N/4]
                                     int splits, size_t n4,
                                     uint2* __restrict__ y) {  // [M*N/4] groups of 4 bf16
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n4; i += size_t(gridDim.x) * blockDim.x) {
    float4 s = partial[i];
    for (int z = 1; z < splits; z++) {
      const float4 p = partial[size_t(z) * n4 + i];
      s.x += p.x;
      s.y += p.y;
      s.z += p.z;
      s.w += p.w;
    }
    y[i] = make_uint2(uint32_t(f32_to_bf16_bits(s.x)) | uint32_t(f32_to_bf16_bits(s.y)) << 16,
                      uint32_t(f32_to_bf16_bits(s.z)) | uint32_t(f32_to_bf16_bits(s.w)) << 16);
  }
}

// ---------------------------------------------------------------------------------------------
// Naive path: one thread per output, element-wise decode through w4_code (checks the layout, not fast).
// ---------------------------------------------------------------------------------------------

__global__ void w4a16_naive_kernel(const uint16_t* __restrict__ x, int M, int K, const uint32_t* __restrict__ packed,
                                   const uint16_t* __restrict__ scales, int N, uint16_t* __restrict__ y) {
  const size_t total = size_t(M) * N;
  for (size_t idx = size_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += size_t(gridDim.x) * blockDim.x) {
    const int m = int(idx / size_t(N)), n = int(idx % size_t(N));
    float acc = 0.f;
    for (int k = 0; k < K; k++) {
      const float s = bf16_bits_to_f32(scales[w4_scale_index(n, k, K)]);
      const float w = float(w4_code(packed, n, k, K)) * s;
      acc = fmaf(bf16_bits_to_f32(x[size_t(m) * K + k]), w, acc);
    }
    y[idx] = f32_to_bf16_bits(acc);
  }
}

// ---------------------------------------------------------------------------------------------
// Host side: planning and launches
// ---------------------------------------------------------------------------------------------

int current_device() {
  int dev = 0;
  STRATA_CUDA_CHECK(cudaGetDevice(&dev));
  return dev;
}

// Raises a kernel's dynamic shared-memory limit once per device (flag: a static per kernel instance).
void ensure_smem(const void* kernel, int bytes, std::atomic<uint64_t>& done) {
  const uint64_t bit = uint64_t(1) << (current_device() & 63);
  if (done.load() & bit) return;
  STRATA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  done.fetch_or(bit);
}

struct SplitPlan {
  int tiles_m = 0, tiles_n = 0;
  int splits = 1, kt_per_split = 0;
};

// ws_avail: workspace bytes on hand (SIZE_MAX when planning the workspace size).
SplitPlan plan_split(int M, int N, int K, int BM, int BN, int split_opt, size_t ws_avail) {
  SplitPlan p;
  p.tiles_m = (M + BM - 1) / BM;
  p.tiles_n = (N + BN - 1) / BN;
  const int k_tiles = K / kW4TileK, tiles = p.tiles_m * p.tiles_n;
  int splits = 1;
  if (split_opt > 0) {
    splits = split_opt;
  } else {
    // Split K only when the tile grid leaves SMs idle (one CTA per SM); keep >= 4 k tiles (256 k) per split.
    const int target = device_sm_count();
    if (tiles < target) splits = std::min({(target + tiles - 1) / tiles, std::max(1, k_tiles / 4), 32});
  }
  splits = std::max(1, std::min(splits, k_tiles));
  const size_t per_split_bytes = size_t(M) * size_t(N) * sizeof(float);
  if (splits > 1 && ws_avail / per_split_bytes < size_t(splits))
    splits = int(std::max<size_t>(1, ws_avail / per_split_bytes));
  if (splits < 2) splits = 1;
  p.kt_per_split = (k_tiles + splits - 1) / splits;
  p.splits = (k_tiles + p.kt_per_split - 1) / p.kt_per_split;  // no empty splits
  return p;
}

int wgmma_tokens(int M, const W4A16Options& opt) {
  if (opt.wgmma_tokens == 64 || opt.wgmma_tokens == 128 || opt.wgmma_tokens == 256) return opt.wgmma_tokens;
  return M > 128 ? 256 : M > 64 ? 128 : 64;
}

bool wgmma_ws(int M, const W4A16Options& opt) { return opt.wgmma_ws == 1 || (opt.wgmma_ws < 0 && M > kWgmmaWsMinM); }

W4A16Path resolve_path(W4A16Path p, int M) { return p == W4A16Path::Auto ? w4a16_auto_path(M) : p; }

SplitPlan plan_for(W4A16Path path, int M, int N, int K, const W4A16Options& opt, size_t ws_avail) {
  if (path == W4A16Path::Wgmma) return plan_split(M, N, K, wgmma_tokens(M, opt), 128, opt.split_k, ws_avail);
  return plan_split(M, N, K, TiledCfg::BM, TiledCfg::BN, opt.split_k, ws_avail);
}

// cuTensorMapEncodeTiled through the runtime (no -lcuda); nullptr when the driver does not offer it.
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
      p = nullptr;
    (void)cudaGetLastError();
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(p);
  }();
  return fn;
}

// A failed encode is a bug in the maps below (the driver has the encoder): an error, not a silent fallback.
void check_encode(CUresult r, const char* what) {
  if (r != CUDA_SUCCESS)
    throw Error(std::string("w4a16_linear: cuTensorMapEncodeTiled failed for ") + what + " (CUresult " +
                std::to_string(int(r)) + ")");
}

// x bf16 [M, K] as a 2-D tensor map with a {64, BT} box and the 128-byte swizzle wgmma reads; false when the driver
// offers no encoder.
bool make_x_map(CUtensorMap* map, const uint16_t* x, int M, int K, int BT) {
  auto encode = tensor_map_encoder();
  if (!encode) return false;
  const cuuint64_t dims[2] = {cuuint64_t(K), cuuint64_t(M)};
  const cuuint64_t strides[1] = {cuuint64_t(K) * 2};
  const cuuint32_t box[2] = {64, cuuint32_t(BT)};
  const cuuint32_t elem[2] = {1, 1};
  check_encode(encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<uint16_t*>(x), dims, strides, box, elem,
                      CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                      CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE),
               "x");
  return true;
}

// The packed tiles [N/16][K/64][512 B] and the scale tiles [N/16][K/64][64 B] as 3-D u32 tensors, boxes of one k
// tile of 8 row blocks (the stage layout).
bool make_w_maps(CUtensorMap* wmap, CUtensorMap* smap, const W4A16Weight& w) {
  auto encode = tensor_map_encoder();
  if (!encode) return false;
  const cuuint64_t kt = cuuint64_t(w.n_in / kW4TileK), nb = cuuint64_t(w.n_out / kW4TileN);
  auto one = [&](CUtensorMap* map, void* base, cuuint32_t words) {
    const cuuint64_t dims[3] = {words, kt, nb};
    const cuuint64_t strides[2] = {cuuint64_t(words) * 4, kt * words * 4};
    const cuuint32_t box[3] = {words, 1, 8};
    const cuuint32_t elem[3] = {1, 1, 1};
    check_encode(encode(map, CU_TENSOR_MAP_DATA_TYPE_UINT32, 3, base, dims, strides, box, elem,
                        CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                        CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE),
                 words == 128 ? "weight tiles" : "scale tiles");
  };
  one(wmap, w.packed, 128);
  one(smap, w.scales, 16);
  return true;
}

// The wgmma tile: the warp-specialised TMA kernel (W4A16Options::wgmma_ws) when the driver can encode tensor
// maps, else the cp.async kernel.
template <int BT>
void launch_wgmma(const uint16_t* x, int M, int K, const W4A16Weight& w, uint16_t* y, float* partial,
                  const SplitPlan& p, cudaStream_t s, bool ws, bool smem_epilogue) {
  const dim3 grid(unsigned(p.tiles_m * p.tiles_n), unsigned(p.splits));
  const bool smem_epi = smem_epilogue && reinterpret_cast<uintptr_t>(y) % 16 == 0;
  CUtensorMap xmap, wmap, smap;
  if (ws && make_x_map(&xmap, x, M, K, BT) && make_w_maps(&wmap, &smap, w)) {
    using C = WsCfg<BT>;
    static std::atomic<uint64_t> done_ws{0};
    ensure_smem(reinterpret_cast<const void*>(w4a16_wgmma_ws_kernel<BT>), C::kSmemBytes, done_ws);
    w4a16_wgmma_ws_kernel<BT><<<grid, C::kThreads, C::kSmemBytes, s>>>(xmap, wmap, smap, M, K, w.n_out, y, partial,
                                                                        p.kt_per_split, p.tiles_m, p.tiles_n, smem_epi);
    STRATA_CUDA_CHECK_LAUNCH();
    return;
  }
  static std::atomic<uint64_t> done{0};
  ensure_smem(reinterpret_cast<const void*>(w4a16_wgmma_kernel<BT>), WgCfg<BT>::kSmemBytes, done);
  w4a16_wgmma_kernel<BT><<<grid, WgCfg<BT>::kThreads, WgCfg<BT>::kSmemBytes, s>>>(
      x, M, K, reinterpret_cast<const uint4*>(w.packed), reinterpret_cast<const uint4*>(w.scales), w.n_out, y,
      partial, p.kt_per_split, p.tiles_m, p.tiles_n, smem_epi);
  STRATA_CUDA_CHECK_LAUNCH();
}

void launch_tiled(const uint16_t* x, int M, int K, const W4A16Weight& w, uint16_t* y, float* partial,
                  const SplitPlan& p, cudaStream_t s) {
  static std::atomic<uint64_t> done{0};
  ensure_smem(reinterpret_cast<const void*>(w4a16_tiled_kernel), TiledCfg::kSmemBytes, done);
  const dim3 grid(unsigned(p.tiles_m * p.tiles_n), unsigned(p.splits));
  w4a16_tiled_kernel<<<grid, TiledCfg::kThreads, TiledCfg::kSmemBytes, s>>>(
      x, M, K, reinterpret_cast<const uint4*>(w.packed), reinterpret_cast<const uint4*>(w.scales), w.n_out, y,
      partial, p.kt_per_split, p.tiles_m, p.tiles_n);
  STRATA_CUDA_CHECK_LAUNCH();
}

// Launches a dense skinny kernel: grid (row groups, 1, K split), the K split's CTAs as one cluster, and as a
// programmatic dependent (PDL) of the previous kernel when a.pdl (it may start before that kernel ends; the
// kernels wait before touching x / y).
template <class Kernel>
void launch_skinny_ex(Kernel kernel, const SkinnyArgs& a, unsigned row_groups, const SkinnyConfig& c, size_t smem,
                      cudaStream_t s) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(row_groups, 1, unsigned(c.split));
  cfg.blockDim = dim3(unsigned(c.warps * 32));
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[2];
  int n = 0;
  if (c.split > 1) {
    attr[n].id = cudaLaunchAttributeClusterDimension;
    attr[n].val.clusterDim.x = 1;
    attr[n].val.clusterDim.y = 1;
    attr[n].val.clusterDim.z = unsigned(c.split);
    n++;
  }
  if (a.pdl) {
    attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n].val.programmaticStreamSerializationAllowed = 1;
    n++;
  }
  cfg.attrs = attr;
  cfg.numAttrs = unsigned(n);
  STRATA_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, a));
}

template <int MT, int R, bool XS, int U = skinny_unroll(MT, R)>
void launch_skinny_dense(const SkinnyArgs& a, int n_blocks, const SkinnyConfig& c, cudaStream_t s) {
  static std::atomic<uint64_t> done{0};
  auto kernel = w4a16_skinny_kernel<MT, R, U, kOutBf16, XS>;
  ensure_smem(reinterpret_cast<const void*>(kernel), int(skinny_smem_bytes(MT, R, 16, XS, U)), done);
  launch_skinny_ex(kernel, a, unsigned(n_blocks / R), c, skinny_smem_bytes(MT, R, c.warps, XS, U), s);
}

template <int MT, bool XS>
void launch_skinny_rows(const SkinnyArgs& a, int n_blocks, const SkinnyConfig& c, cudaStream_t s) {
  if (c.rows == 4)
    launch_skinny_dense<MT, 4, XS>(a, n_blocks, c, s);
  else if (c.rows == 2)
    launch_skinny_dense<MT, 2, XS>(a, n_blocks, c, s);
  else
    launch_skinny_dense<MT, 1, XS>(a, n_blocks, c, s);
}

template <int MT, int R, int S>
void launch_skinny_pipe(const SkinnyArgs& a, int n_blocks, const SkinnyConfig& c, cudaStream_t s) {
  static std::atomic<uint64_t> done{0};
  auto kernel = w4a16_skinny_pipe_kernel<MT, R, S>;
  ensure_smem(reinterpret_cast<const void*>(kernel), int(kSkinnyPipeSmemMax), done);
  launch_skinny_ex(kernel, a, unsigned(n_blocks / R), c, skinny_pipe_smem_bytes(MT, R, c.warps, S), s);
}

template <int MT, int R>
void launch_skinny_pipe_s(const SkinnyArgs& a, int n_blocks, const SkinnyConfig& c, cudaStream_t s) {
  switch (c.stages) {
    case 8: return launch_skinny_pipe<MT, R, 8>(a, n_blocks, c, s);
    case 6: return launch_skinny_pipe<MT, R, 6>(a, n_blocks, c, s);
    case 4: return launch_skinny_pipe<MT, R, 4>(a, n_blocks, c, s);
    case 3: return launch_skinny_pipe<MT, R, 3>(a, n_blocks, c, s);
    default: return launch_skinny_pipe<MT, R, 2>(a, n_blocks, c, s);
  }
}

template <int MT, int R, int T>
void launch_skinny_flat(const SkinnyArgs& a, int n_blocks, const SkinnyConfig& c, cudaStream_t s) {
  static std::atomic<uint64_t> done{0};
  auto kernel = w4a16_skinny_flat_kernel<MT, R, T>;
  ensure_smem(reinterpret_cast<const void*>(kernel), int(kSkinnyPipeSmemMax), done);
  launch_skinny_ex(kernel, a, unsigned(n_blocks / R), c, skinny_flat_smem_bytes(MT, R, c.warps, T, a.M), s);
}

template <int MT, int R>
void launch_skinny_flat_t(const SkinnyArgs& a, int n_blocks, const SkinnyConfig& c, cudaStream_t s) {
  switch (c.tiles) {
    case 2: return launch_skinny_flat<MT, R, 2>(a, n_blocks, c, s);
    case 4: return launch_skinny_flat<MT, R, 4>(a, n_blocks, c, s);
    case 7: return launch_skinny_flat<MT, R, 7>(a, n_blocks, c, s);
    case 8: return launch_skinny_flat<MT, R, 8>(a, n_blocks, c, s);
    default: throw Error("w4a16_linear: no flat skinny kernel for " + std::to_string(c.tiles) + " k tiles per warp");
  }
}

template <int MT>
void launch_skinny_mt(const SkinnyArgs& a, int n_blocks, const SkinnyConfig& c, cudaStream_t s) {
  if (c.flat) {
    if (c.rows == 2) return launch_skinny_flat_t<MT, 2>(a, n_blocks, c, s);
    return launch_skinny_flat_t<MT, 1>(a, n_blocks, c, s);
  }
  if (c.pipe) {
    if constexpr (MT == 2)
      if (c.rows == 8) return launch_skinny_pipe_s<MT, 8>(a, n_blocks, c, s);
    if constexpr (MT == 1)
      if (c.rows == 14) return launch_skinny_pipe_s<MT, 14>(a, n_blocks, c, s);
    if (c.rows == 7) return launch_skinny_pipe_s<MT, 7>(a, n_blocks, c, s);
    if (c.rows == 4)
      launch_skinny_pipe_s<MT, 4>(a, n_blocks, c, s);
    else if (c.rows == 2)
      launch_skinny_pipe_s<MT, 2>(a, n_blocks, c, s);
    else
      launch_skinny_pipe_s<MT, 1>(a, n_blocks, c, s);
  } else if (c.xs)
    launch_skinny_rows<MT, true>(a, n_blocks, c, s);
  else
    launch_skinny_rows<MT, false>(a, n_blocks, c, s);
}

}  // namespace

int device_sm_count() {
  static std::atomic<int> cache[64];  // per device ordinal; 0 = not read yet
  const int dev = current_device();
  if (dev >= 0 && dev < 64 && cache[dev].load() > 0) return cache[dev].load();
  int sms = 0;
  STRATA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  if (dev >= 0 && dev < 64) cache[dev].store(sms);
  return sms;
}

SkinnyConfig w4a16_skinny_config(int M, int N, int K, const W4A16Options& opt) {
  const int n_blocks = N / kW4TileN, k_tiles = K / kW4TileK, sms = device_sm_count();
  SkinnyConfig c;
  c.pipe = opt.skinny_pipe != 0;
  auto fits = [&](int r, int num, int den) { return n_blocks % r == 0 && (n_blocks / r) * den >= sms * num; };
  c.rows = 1;
  c.split = 1;
  bool r8_pairs = false;
  if (c.pipe) {
    // Pipelined kernel, rules read off the H200 sweep (bench results; the same for M = 1..16):
    //   R4 while that leaves >= 0.8 CTAs per SM and K has >= 64 k tiles (8192x28672, 28672x8192), else R2 while
    //   >= 0.8 (7168x2048: short K wants more CTAs), else R1 (2048x7168); no cluster split (it lost everywhere but
    //   R8 at M > 8, below);
    //   R8 at M > 8 when it still leaves >= 0.8 CTAs per SM and K is long (x is re-read from L2 once per R row
    //   blocks: at R4 and 16 tokens the x bytes per stage almost equal the weight bytes).
    c.rows = fits(4, 4, 5) && k_tiles >= 64 ? 4 : fits(2, 4, 5) ? 2 : 1;
    if (M > 8 && fits(8, 4, 5) && k_tiles >= 64) c.rows = 8;
    // ... or R8 with K split over a cluster pair where R4 leaves at most one CTA per SM and the pairs fill >= 90% of
    // them: the f32-scale form runs 77 SASS instructions per k tile and row block against R4's 104 (bf16 dequant).
    // 8192x28672 (64 R8 row groups x 2): M = 12 / 16 44.1 / 44.7 us vs R4 W16 45.4 / 45.7 (H200 sweep).
    r8_pairs = M > 8 && c.rows == 4 && k_tiles >= 64 && n_blocks % 8 == 0 && n_blocks / 4 <= sms &&
               2 * (n_blocks / 8) <= sms && 10 * 2 * (n_blocks / 8) >= 9 * sms;
    if (r8_pairs) c.rows = 8;  // the pair: below, unless the caller fixed the rows
    // ... or R7 where its grid fills the two 4-warp CTA slots per SM better: 28672x8192 gives 256 R7 CTAs for 264
    // slots (97%) against 224 R8 CTAs (85%); M=16 44.8 vs 51.1 us on the H200.
    if (c.rows == 8 && n_blocks % 7 == 0) {
      auto fill = [&](int r) {
        const int ctas = n_blocks / r, slots = 2 * sms, waves = (ctas + slots - 1) / slots;
        return double(ctas) / double(waves * slots);
      };
      if (fill(7) > fill(8)) c.rows = 7;
    }
    // M <= 8, long K: R14 (8 warps, 3 stages, one CTA per SM) when its grid fills >= 90% of the SMs in one wave
    // and R4's last wave does not. 28672x8192: R4 puts 448 CTAs on 132 SMs (some SMs run 4, some 3: the busiest
    // move 1.18x the mean bytes); R14 gives 128 equal CTAs: 44.8 -> 38.1 us on the H200.
    if (M <= 8 && c.rows == 4 && n_blocks % 14 == 0 && n_blocks / 14 <= sms && 10 * (n_blocks / 14) >= 9 * sms) {
      const int ctas4 = n_blocks / 4, slots4 = (2 * ctas4 >= 3 * sms ? 2 : 1) * sms;
      const int waves4 = (ctas4 + slots4 - 1) / slots4;
      if (10 * ctas4 < 9 * waves4 * slots4) c.rows = 14;
    }
  } else {
    // Register-staged kernel. Rows per warp R (x fragments are reused across them: x traffic from L2 shrinks by
    // R), warps per CTA W (they split K) and CTAs per cluster C (they split K further). Rules read off the H100
    // sweep: M <= 8: R2 while that leaves >= 1.5 CTAs per SM, else R4 while >= 0.8, else R1; M > 8: R4 while
    // >= 0.8 CTAs per SM, else R2 with C = SMs / CTAs clusters; W = 8 when the grid has >= 1.5 CTAs per SM.
    if (M <= 8) {
      c.rows = fits(2, 3, 2) ? 2 : fits(4, 4, 5) ? 4 : 1;
    } else if (fits(4, 4, 5)) {
      c.rows = 4;
    } else if (n_blocks % 2 == 0) {
      c.rows = 2;
      c.split = std::max(1, std::min(4, sms / std::max(1, n_blocks / 2)));
    }
  }
  if (opt.skinny_rows == 1 || ((opt.skinny_rows == 2 || opt.skinny_rows == 4) && n_blocks % opt.skinny_rows == 0) ||
      (opt.skinny_rows == 8 && c.pipe && M > 8 && n_blocks % 8 == 0) ||
      (opt.skinny_rows == 7 && c.pipe && n_blocks % 7 == 0) ||
      (opt.skinny_rows == 14 && c.pipe && M <= 8 && n_blocks % 14 == 0))
    c.rows = opt.skinny_rows;
  if (r8_pairs && c.rows == 8) c.split = 2;
  c.unroll = skinny_unroll(M <= 8 ? 1 : 2, std::min(c.rows, 4));
  const int ctas = n_blocks / c.rows;
  c.warps = 2 * ctas >= 3 * sms ? 8 : 16;
  while (c.warps > 4 && k_tiles < c.warps) c.warps /= 2;
  // R8 (and R7 at M > 8) with >= 1.5 CTAs per SM: 4 warps measured best (28672x8192 M = 16 on the H200: R8 W4
  // 50.4 us, W8 52.4 us; R7 W4 44.8 us, W8 52.5 us).
  if (c.rows == 8 || (c.rows == 7 && M > 8)) c.warps = 2 * ctas >= 3 * sms ? 4 : 8;
  if (opt.skinny_warps == 4 || opt.skinny_warps == 8 || opt.skinny_warps == 16) c.warps = opt.skinny_warps;
  if (c.rows >= 7) c.warps = std::min(c.warps, 8);  // R >= 7 kernels are built for <= 256 threads
  if (opt.skinny_split == 1 || opt.skinny_split == 2 || opt.skinny_split == 4) c.split = opt.skinny_split;
  c.split = std::max(1, std::min(c.split, k_tiles / c.warps));
  c.xs = M > 4;
  if (opt.skinny_xs == 0 || opt.skinny_xs == 1) c.xs = opt.skinny_xs == 1;
  if (c.pipe) {
    // Stages: as many as fit the CTA's share of shared memory (two CTAs per SM at W <= 8, one at W = 16 or when
    // the grid has at most one CTA per SM).
    const int mt = M <= 8 ? 1 : 2;
    // (The grid has ctas x split CTAs: a K split over a cluster multiplies them.)
    const size_t budget = c.warps >= 16 || ctas * c.split <= sms ? kSkinnyPipeSmemMax : kSkinnyPipeSmemMax / 2;
    c.stages = skinny_pipe_stages(mt, c.rows, c.warps, budget, opt.skinny_stages);
    while (c.warps > 4 && skinny_pipe_smem_bytes(mt, c.rows, c.warps, c.stages) > kSkinnyPipeSmemMax) c.warps /= 2;
    c.split = std::max(1, std::min(c.split, k_tiles / c.warps));
    // The flat kernel where every warp gets the same instantiated number of k tiles and its tiles fit; by default
    // only at M <= 8 and there at M <= 4 or with at most one CTA per SM (H200, same-run A/B against the ring:
    // 2048x7168 (T7 R1 W16, 128 CTAs) M = 1 / 4 / 8: 4.9 / 5.1 / 5.5 vs 5.7 / 5.7 / 6.1 us; 7168x2048 (T4 R2 W8,
    // 224 CTAs) M = 1 / 4: 4.3 / 4.4 vs 4.6 / 4.8, but M = 8 / 16: 5.2 / 6.0 vs 4.8 / 5.6).
    const int kw_total = c.warps * c.split, per = k_tiles / kw_total;
    const bool flat_auto = mt == 1 && (M <= 4 || ctas * c.split <= sms);
    if ((opt.skinny_flat == 1 || (opt.skinny_flat == -1 && flat_auto)) && c.rows <= 2 && k_tiles % kw_total == 0 &&
        (per == 2 || per == 4 || per == 7 || per == 8) &&
        skinny_flat_smem_bytes(mt, c.rows, c.warps, per, M) <= kSkinnyPipeSmemMax) {
      c.flat = true;
      c.tiles = per;
      // A flat R1 CTA too big for two per SM (x of M >= 4 tokens beside its weights: 2048x7168 at M = 4) leaves no
      // room for the next launch's CTA, whose weights then wait for this one to leave. Row pairs with K split over
      // a cluster pair, at half the warps, keep the CTA count and the tiles per warp and copy half of x each (H200
      // sweeps, 2048x7168 M = 4: flat T7 R2 W8 C2 4.8 us vs R1 W16 C1 5.0 / 5.1).
      const bool auto_shape = opt.skinny_rows == 0 && opt.skinny_warps == 0 && opt.skinny_split == 0;
      const size_t half = kSkinnyPipeSmemMax / 2;
      if (auto_shape && opt.skinny_flat == -1 && c.rows == 1 && c.split == 1 && c.warps >= 8 && n_blocks % 2 == 0 &&
          skinny_flat_smem_bytes(mt, 1, c.warps, per, M) > half &&
          skinny_flat_smem_bytes(mt, 2, c.warps / 2, per, M) <= half) {
        c.rows = 2;
        c.warps /= 2;
        c.split = 2;
      }
    }
  }
  return c;
}

std::string w4a16_skinny_name(const SkinnyConfig& c) {
  const std::string form = c.flat   ? "flat T" + std::to_string(c.tiles) + " "
                           : c.pipe ? "pipe S" + std::to_string(c.stages) + " "
                           : c.xs   ? "xs "
                                    : "";
  return form + "R" + std::to_string(c.rows) + " W" + std::to_string(c.warps) + " C" + std::to_string(c.split);
}

const char* w4a16_path_name(W4A16Path p) {
  switch (p) {
    case W4A16Path::Auto: return "auto";
    case W4A16Path::Skinny: return "skinny";
    case W4A16Path::Wgmma: return "wgmma";
    case W4A16Path::Tiled: return "tiled";
    case W4A16Path::Naive: return "naive";
  }
  return "?";
}

WgmmaConfig w4a16_wgmma_config(int M, int N, int K, const W4A16Options& opt) {
  w4a16_check_shape(N, K);
  WgmmaConfig c;
  c.tokens = wgmma_tokens(M, opt);
  c.ws = wgmma_ws(M, opt);
  c.splits = plan_for(W4A16Path::Wgmma, std::max(M, 1), N, K, opt, SIZE_MAX).splits;
  return c;
}

W4A16Path w4a16_auto_path(int M) { return M <= 16 ? W4A16Path::Skinny : W4A16Path::Wgmma; }

size_t w4a16_workspace_bytes(int M, int N, int K, const W4A16Options& opt) {
  const W4A16Path path = resolve_path(opt.path, M);
  if (M <= 0 || (path != W4A16Path::Tiled && path != W4A16Path::Wgmma)) return 0;
  w4a16_check_shape(N, K);
  const SplitPlan p = plan_for(path, M, N, K, opt, SIZE_MAX);
  return p.splits > 1 ? size_t(p.splits) * size_t(M) * size_t(N) * sizeof(float) : 0;
}

void w4a16_linear(const void* x_, int M, const W4A16Weight& w, void* y_, void* workspace, size_t workspace_bytes,
                  void* stream, const W4A16Options& opt) {
  const int N = w.n_out, K = w.n_in;
  w4a16_check_shape(N, K);
  if (M < 0) throw Error("w4a16_linear: negative M");
  if (M == 0) return;
  if (!x_ || !y_ || !w.packed || !w.scales) throw Error("w4a16_linear: null pointer");
  if (reinterpret_cast<uintptr_t>(x_) % 16 != 0) throw Error("w4a16_linear: x must be 16-byte aligned");
  const auto* x = static_cast<const uint16_t*>(x_);
  auto* y = static_cast<uint16_t*>(y_);
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  const W4A16Path path = resolve_path(opt.path, M);

  switch (path) {
    case W4A16Path::Skinny: {
      if (M > 16) throw Error("w4a16_linear: the skinny path takes M <= 16, got " + std::to_string(M));
      const SkinnyConfig c = w4a16_skinny_config(M, N, K, opt);
      SkinnyArgs a;
      a.x = x;
      a.ldx = K;
      a.K = K;
      a.M = M;
      a.wq = reinterpret_cast<const uint4*>(w.packed);
      a.ws = reinterpret_cast<const uint2*>(w.scales);
      a.y = y;
      a.ldy = N;
      a.pdl = opt.pdl;
#ifdef STRATA_CUDA_TRACE
      a.trace = opt.skinny_trace;
#else
      if (opt.skinny_trace) throw Error("w4a16_linear: skinny_trace needs a build with STRATA_CUDA_TRACE=ON");
#endif
      if (M <= 8)
        launch_skinny_mt<1>(a, N / kW4TileN, c, s);
      else
        launch_skinny_mt<2>(a, N / kW4TileN, c, s);
      return;
    }
    case W4A16Path::Wgmma:
    case W4A16Path::Tiled: {
      const SplitPlan p = plan_for(path, M, N, K, opt, workspace ? workspace_bytes : 0);
      float* partial = p.splits > 1 ? static_cast<float*>(workspace) : nullptr;
      if (partial && (reinterpret_cast<uintptr_t>(partial) % 16 != 0 || reinterpret_cast<uintptr_t>(y) % 8 != 0))
        throw Error("w4a16_linear: split-K needs a 16-byte aligned workspace and an 8-byte aligned y");
      if (path == W4A16Path::Tiled) {
        launch_tiled(x, M, K, w, y, partial, p, s);
      } else {
        const int bt = wgmma_tokens(M, opt);
        const bool ws = wgmma_ws(M, opt), epi = opt.wgmma_smem_epilogue;
        if (bt == 256)
          launch_wgmma<256>(x, M, K, w, y, partial, p, s, ws, epi);
        else if (bt == 128)
          launch_wgmma<128>(x, M, K, w, y, partial, p, s, ws, epi);
        else
          launch_wgmma<64>(x, M, K, w, y, partial, p, s, ws, epi);
      }
      if (partial) {
        const size_t n4 = size_t(M) * size_t(N) / 4;
        const int threads = 256;
        const int blocks = int(std::min<size_t>((n4 + threads - 1) / threads, size_t(device_sm_count()) * 8));
        splitk_reduce_kernel<<<blocks, threads, 0, s>>>(reinterpret_cast<const float4*>(partial), p.splits, n4,
                                                        reinterpret_cast<uint2*>(y));
        STRATA_CUDA_CHECK_LAUNCH();
      }
      return;
    }
    case W4A16Path::Naive: {
      const size_t total = size_t(M) * size_t(N);
      const int threads = 256;
      const int blocks = int(std::min<size_t>((total + threads - 1) / threads, size_t(1) << 20));
      w4a16_naive_kernel<<<blocks, threads, 0, s>>>(x, M, K, w.packed, w.scales, N, y);
      STRATA_CUDA_CHECK_LAUNCH();
      return;
    }
    case W4A16Path::Auto: break;
  }
  throw Error("w4a16_linear: unresolved path");
}

}  // namespace strata::cuda
