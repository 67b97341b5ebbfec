// CUDA W4A16 linear for Hopper: y[M, N] bf16 = x[M, K] bf16 . W^T, W INT4 in the repacked layout
// (w4a16_layout.h); skinny (M <= 16), wgmma (M > 16), tiled mma.sync and naive kernels; see cuda_w4a16.h.
// Not TMA-fed (cp.async fills the wgmma operand tiles) and no bias.
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

constexpr int kGroupM = 8;  // raster: consecutive CTAs walk 8 token tiles of one weight column tile (L2 reuse)

// Grouped raster of a (tiles_m x tiles_n) grid flattened into blockIdx.x.
__device__ __forceinline__ void raster(int tiles_m, int tiles_n, int* tm, int* tn) {
  const int group_size = kGroupM * tiles_n;
  const int group = blockIdx.x / group_size, first_m = group * kGroupM;
  const int gm = min(tiles_m - first_m, kGroupM);
  *tm = first_m + (blockIdx.x % group_size) % gm;
  *tn = (blockIdx.x % group_size) / gm;
}

// Loads one 64-k stage: BT token rows of x (SWIZZLE_128B, rows past M zero-filled), then kBlocks packed tiles
// and their scale quads. Every thread of the CTA calls it.
template <int BT, int kBlocks, int kThreads>
__device__ __forceinline__ void load_stage(uint8_t* st, const uint16_t* __restrict__ x, int M, int K, int m0,
                                           const uint4* __restrict__ wq, const uint4* __restrict__ ws, int nb0,
                                           int n_blocks, int k_tiles, int kt) {
  const int tid = threadIdx.x;
  for (int c = tid; c < BT * 8; c += kThreads) {
    const int r = c >> 3, ch = c & 7, m = m0 + r;
    const bool ok = m < M;
    const uint16_t* src = ok ? x + size_t(m) * K + size_t(kt) * kW4TileK + ch * 8 : x;
    cp_async16(st + sw128(r, ch), src, ok);
  }
  uint8_t* wst = st + BT * 128;
  for (int c = tid; c < kBlocks * 32; c += kThreads) {
    const int b = c >> 5, l = c & 31, nb = nb0 + b;
    const bool ok = nb < n_blocks;
    cp_async16(wst + c * 16, ok ? wq + w4_tile_index(nb, kt, k_tiles) * 32 + l : wq, ok);
  }
  uint8_t* sst = wst + kBlocks * 512;
  for (int c = tid; c < kBlocks * 4; c += kThreads) {
    const int b = c >> 2, part = c & 3, nb = nb0 + b;
    const bool ok = nb < n_blocks;
    cp_async16(sst + c * 16, ok ? ws + w4_tile_index(nb, kt, k_tiles) * 4 + part : ws, ok);
  }
}

// ---------------------------------------------------------------------------------------------
// Wgmma path: CTA = 2 warpgroups; warp w owns row block w (16 rows) of the CTA's 128; tokens BT = wgmma N.
// ---------------------------------------------------------------------------------------------

template <int BT>
struct WgCfg {
  static constexpr int kThreads = 256;
  static constexpr int kRows = 128;
  static constexpr int kBlocks = kRows / kW4TileN;  // 8
  static constexpr int kStages = 4;
  static constexpr int kStageBytes = ((BT * 128 + kBlocks * 512 + kBlocks * 64) + 1023) / 1024 * 1024;
  static constexpr int kSmemBytes = kStages * kStageBytes + 1024;  // + slack to align the base to 1024
};

template <int BT>
__global__ void __launch_bounds__(256, 1)
    w4a16_wgmma_kernel(const uint16_t* __restrict__ x,  // [M, K] bf16
                       int M, int K,
                       const uint4* __restrict__ wq,  // [N/16, K/64, 32] lane records
                       const uint4* __restrict__ ws,  // [N/16, K/64, 4] 16-byte chunks of scale quads
                       int N,
                       uint16_t* __restrict__ y,     // [M, N] bf16 (when partial == nullptr)
                       float* __restrict__ partial,  // [splits, M, N] f32 split-K partials, or nullptr
                       int kt_per_split, int tiles_m, int tiles_n) {
  using C = WgCfg<BT>;
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

  float acc[BT / 2];
#pragma unroll
  for (int i = 0; i < BT / 2; i++) acc[i] = 0.f;

#pragma unroll
  for (int s = 0; s < C::kStages - 1; s++) {
    if (s < nk)
      load_stage<BT, C::kBlocks, C::kThreads>(smem + s * C::kStageBytes, x, M, K, m0, wq, ws, nb0, n_blocks, k_tiles,
                                              kt_begin + s);
    cp_async_commit();
  }
  for (int it = 0; it < nk; it++) {
    cp_async_wait<C::kStages - 2>();
    fence_proxy_async();
    __syncthreads();  // stage `it` landed for every thread; every warpgroup finished reading stage it-1
    const int nxt = it + C::kStages - 1;
    if (nxt < nk)
      load_stage<BT, C::kBlocks, C::kThreads>(smem + (nxt % C::kStages) * C::kStageBytes, x, M, K, m0, wq, ws, nb0,
                                              n_blocks, k_tiles, kt_begin + nxt);
    cp_async_commit();

    const uint8_t* st = smem + (it % C::kStages) * C::kStageBytes;
    const uint4 wv = *reinterpret_cast<const uint4*>(st + BT * 128 + warp * 512 + lane * 16);
    const uint2 sv = *reinterpret_cast<const uint2*>(st + BT * 128 + C::kBlocks * 512 + warp * 64 + g * 8);
    uint32_t a[4][4];
#pragma unroll
    for (int s = 0; s < 4; s++) {
      uint32_t lo2, hi2;
      scale_pairs(sv, s >> 1, &lo2, &hi2);
      dequant_scaled(word_of(wv, s), lo2, hi2, a[s]);
    }
    const uint32_t xs = smem_addr(st);
    wgmma_fence();
#pragma unroll
    for (int s = 0; s < 4; s++) wgmma_rs<BT>(acc, a[s], wgmma_desc_sw128(xs + 32 * s));
    wgmma_commit();
    wgmma_wait<0>();
#pragma unroll
    for (int s = 0; s < 4; s++)
#pragma unroll
      for (int r = 0; r < 4; r++) fence_operand(a[s][r]);
#pragma unroll
    for (int i = 0; i < BT / 2; i++) fence_operand(acc[i]);
  }
  cp_async_wait<0>();

  // acc[4j + e]: weight row 16*warp + g + 8(e >> 1), token 8j + 2t + (e & 1).
  const int n_lo = n0 + warp * kW4TileN + g;
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

  float acc[8][2][4];  // [token tile j][row block i][C fragment element]
#pragma unroll
  for (int j = 0; j < 8; j++)
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
      for (int e = 0; e < 4; e++) acc[j][i][e] = 0.f;

#pragma unroll
  for (int s = 0; s < C::kStages - 1; s++) {
    if (s < nk)
      load_stage<C::BM, C::kBlocks, C::kThreads>(smem + s * C::kStageBytes, x, M, K, m0, wq, ws, nb0, n_blocks,
                                                 k_tiles, kt_begin + s);
    cp_async_commit();
  }
  for (int it = 0; it < nk; it++) {
    cp_async_wait<C::kStages - 2>();
    __syncthreads();
    const int nxt = it + C::kStages - 1;
    if (nxt < nk)
      load_stage<C::BM, C::kBlocks, C::kThreads>(smem + (nxt % C::kStages) * C::kStageBytes, x, M, K, m0, wq, ws, nb0,
                                                 n_blocks, k_tiles, kt_begin + nxt);
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

W4A16Path resolve_path(W4A16Path p, int M) { return p == W4A16Path::Auto ? w4a16_auto_path(M) : p; }

SplitPlan plan_for(W4A16Path path, int M, int N, int K, const W4A16Options& opt, size_t ws_avail) {
  if (path == W4A16Path::Wgmma) return plan_split(M, N, K, wgmma_tokens(M, opt), 128, opt.split_k, ws_avail);
  return plan_split(M, N, K, TiledCfg::BM, TiledCfg::BN, opt.split_k, ws_avail);
}

template <int BT>
void launch_wgmma(const uint16_t* x, int M, int K, const W4A16Weight& w, uint16_t* y, float* partial,
                  const SplitPlan& p, cudaStream_t s) {
  static std::atomic<uint64_t> done{0};
  ensure_smem(reinterpret_cast<const void*>(w4a16_wgmma_kernel<BT>), WgCfg<BT>::kSmemBytes, done);
  const dim3 grid(unsigned(p.tiles_m * p.tiles_n), unsigned(p.splits));
  w4a16_wgmma_kernel<BT><<<grid, WgCfg<BT>::kThreads, WgCfg<BT>::kSmemBytes, s>>>(
      x, M, K, reinterpret_cast<const uint4*>(w.packed), reinterpret_cast<const uint4*>(w.scales), w.n_out, y,
      partial, p.kt_per_split, p.tiles_m, p.tiles_n);
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

template <int MT, int R, int U = skinny_unroll(MT, R)>
void launch_skinny_dense(const SkinnyArgs& a, int n_blocks, int warps, cudaStream_t s) {
  static std::atomic<uint64_t> done{0};
  const size_t smem = skinny_smem_bytes(MT, R, warps);
  ensure_smem(reinterpret_cast<const void*>(w4a16_skinny_kernel<MT, R, U, kOutBf16>), int(skinny_smem_bytes(MT, R, 16)),
              done);
  w4a16_skinny_kernel<MT, R, U, kOutBf16><<<dim3(unsigned(n_blocks / R)), warps * 32, smem, s>>>(a);
  STRATA_CUDA_CHECK_LAUNCH();
}

template <int MT>
void launch_skinny_mt(const SkinnyArgs& a, int n_blocks, const SkinnyConfig& c, cudaStream_t s) {
  if (c.rows == 4)
    launch_skinny_dense<MT, 4>(a, n_blocks, c.warps, s);
  else if (c.rows == 2)
    launch_skinny_dense<MT, 2>(a, n_blocks, c.warps, s);
  else
    launch_skinny_dense<MT, 1>(a, n_blocks, c.warps, s);
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
  // Rows per warp: x fragments are reused across them (x traffic from L2 shrinks by R), but the grid must keep
  // >= 2 CTAs per SM for the tail. R = 4 runs 2 k tiles in flight per warp, R <= 2 runs 4 (<= 8 tiles of registers).
  c.rows = 1;
  for (int r : {4, 2})
    if (n_blocks % r == 0 && n_blocks / r >= 2 * sms) {
      c.rows = r;
      break;
    }
  if (opt.skinny_rows == 1 || ((opt.skinny_rows == 2 || opt.skinny_rows == 4) && n_blocks % opt.skinny_rows == 0))
    c.rows = opt.skinny_rows;
  c.unroll = skinny_unroll(M <= 8 ? 1 : 2, c.rows);
  // Warps split K: enough for every warp to have work in one trip where possible, at most 16.
  c.warps = 16;
  while (c.warps > 4 && k_tiles < c.warps) c.warps /= 2;
  if (opt.skinny_warps == 4 || opt.skinny_warps == 8 || opt.skinny_warps == 16) c.warps = opt.skinny_warps;
  return c;
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
        if (bt == 256)
          launch_wgmma<256>(x, M, K, w, y, partial, p, s);
        else if (bt == 128)
          launch_wgmma<128>(x, M, K, w, y, partial, p, s);
        else
          launch_wgmma<64>(x, M, K, w, y, partial, p, s);
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
