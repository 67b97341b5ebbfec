// CUDA W4A16 linear for Hopper: y[M, N] bf16 = x[M, K] bf16 . W^T, W INT4 in the repacked layout
// (w4a16_layout.h); skinny (M <= 16), tiled (any M, split-K) and naive (checking) kernels; see cuda_w4a16.h.
// Not wgmma/TMA yet (mma.sync m16n8k16 + cp.async, sm_80-style code built for sm_90a); no bias.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/cuda_w4a16.h"
#include "kernels/cuda/w4a16_layout.h"

namespace strata::cuda {

namespace {

// ---------------------------------------------------------------------------------------------
// Device building blocks
// ---------------------------------------------------------------------------------------------

// 16-byte streaming load of weights: read once, so keep it out of L1.
__device__ __forceinline__ uint4 ldg_stream(const uint4* p) {
  uint4 r;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
      : "l"(p));
  return r;
}

__device__ __forceinline__ uint32_t word_of(const uint4& v, int w) {
  return w == 0 ? v.x : w == 1 ? v.y : w == 2 ? v.z : v.w;
}

// bf16x2 (128 + u) -> bf16x2 (u - 8), exact: fma(v, 1.0, -136).
__device__ __forceinline__ uint32_t bf16x2_minus_136(uint32_t v) {
  uint32_t r;
  asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(r) : "r"(v), "r"(0x3F803F80u), "r"(0xC308C308u));
  return r;
}

// One packed word -> the four bf16x2 A-fragment registers (exact codes u - 8) of one m16n8k16 step.
__device__ __forceinline__ void dequant_word(uint32_t q, uint32_t a[4]) {
#pragma unroll
  for (int s = 0; s < 4; s++) a[s] = bf16x2_minus_136(w4_magic_pair(q, s));
}

// d = A(16x16, weights) . B(16x8, activations) + c, bf16 in, f32 accumulate.
__device__ __forceinline__ void mma_bf16_16816(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1,
                                               const float c[4]) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %11, %12, %13};"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

// Scales of 32-wide group G for this thread's rows g and g+8, from the tile's [g][4] quad.
__device__ __forceinline__ void group_scales(uint2 quad, int G, float* s_lo, float* s_hi) {
  const uint32_t u = G == 0 ? quad.x : quad.y;
  *s_lo = __uint_as_float(u << 16);
  *s_hi = __uint_as_float(u & 0xFFFF0000u);
}

// One scale group of one (16-row block, 8-token tile): two mma steps into a zeroed temporary, then
// acc += scale * tmp in f32 (exact products inside the tensor core; scale applied once per group).
// a0/a1: A fragments of steps h = 0/1; xb: x[m][32G + 8t .. +7] (b regs of step 0 = .x,.y; step 1 = .z,.w).
__device__ __forceinline__ void group_mma(float acc[4], const uint32_t a0[4], const uint32_t a1[4], uint4 xb,
                                          float s_lo, float s_hi) {
  const float zero[4] = {0.f, 0.f, 0.f, 0.f};
  float tmp[4];
  mma_bf16_16816(tmp, a0, xb.x, xb.y, zero);
  mma_bf16_16816(tmp, a1, xb.z, xb.w, tmp);
  acc[0] = fmaf(s_lo, tmp[0], acc[0]);
  acc[1] = fmaf(s_lo, tmp[1], acc[1]);
  acc[2] = fmaf(s_hi, tmp[2], acc[2]);
  acc[3] = fmaf(s_hi, tmp[3], acc[3]);
}

__device__ __forceinline__ uint16_t f32_to_bf16_bits(float v) { return __bfloat16_as_ushort(__float2bfloat16_rn(v)); }

__device__ __forceinline__ void cp_async16(void* smem_dst, const void* gmem_src, bool valid) {
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem_dst));
  const int src_bytes = valid ? 16 : 0;  // 0: zero-fill the 16 bytes
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem_src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// ---------------------------------------------------------------------------------------------
// Skinny path (M <= 16): grid = N/16 row blocks; the CTA's warps split K; weights DRAM -> registers.
// ---------------------------------------------------------------------------------------------

constexpr int kSkinnyMaxWarps = 16;
constexpr int kSkinnyUnroll = 4;  // tiles (512 B per warp each) in flight per warp

// MT: 8-token tiles (1: M <= 8, 2: M <= 16).
template <int MT>
__global__ void __launch_bounds__(kSkinnyMaxWarps * 32, 1)
    w4a16_skinny_kernel(const uint16_t* __restrict__ x,  // [M, K] bf16
                        int M, int K,
                        const uint4* __restrict__ wq,  // [N/16, K/64, 32] 16-byte lane records
                        const uint2* __restrict__ ws,  // [N/16, K/64, 8] scale quads
                        int N,
                        uint16_t* __restrict__ y) {  // [M, N] bf16
  __shared__ float red[kSkinnyMaxWarps][MT * 4][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int nb = blockIdx.x;
  const int k_tiles = K / kW4TileK;
  const uint4* wrow = wq + size_t(nb) * k_tiles * 32 + lane;
  const uint2* srow = ws + size_t(nb) * k_tiles * 8 + g;
  const uint16_t* xrow[MT];  // this thread's token row (token 8j + g) at k offset 8t
  bool xvalid[MT];
#pragma unroll
  for (int j = 0; j < MT; j++) {
    const int m = 8 * j + g;
    xvalid[j] = m < M;
    xrow[j] = x + size_t(xvalid[j] ? m : 0) * K + 8 * t;
  }

  float acc[MT][4];
#pragma unroll
  for (int j = 0; j < MT; j++)
#pragma unroll
    for (int i = 0; i < 4; i++) acc[j][i] = 0.f;

  for (int kt0 = warp; kt0 < k_tiles; kt0 += n_warps * kSkinnyUnroll) {
    uint4 wv[kSkinnyUnroll];
    uint2 sv[kSkinnyUnroll];
    uint4 xv[kSkinnyUnroll][MT][2];
    // All loads of the batch first (kSkinnyUnroll x 512 B of weights in flight per warp).
#pragma unroll
    for (int u = 0; u < kSkinnyUnroll; u++) {
      const int kt = kt0 + u * n_warps;
      const bool live = kt < k_tiles;  // warp-uniform
      wv[u] = live ? ldg_stream(wrow + size_t(kt) * 32) : make_uint4(0, 0, 0, 0);
      sv[u] = live ? __ldg(srow + size_t(kt) * 8) : make_uint2(0, 0);
#pragma unroll
      for (int j = 0; j < MT; j++)
#pragma unroll
        for (int G = 0; G < 2; G++)
          xv[u][j][G] = live && xvalid[j]
                            ? __ldg(reinterpret_cast<const uint4*>(xrow[j] + size_t(kt) * kW4TileK + 32 * G))
                            : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kSkinnyUnroll; u++) {
      if (kt0 + u * n_warps >= k_tiles) break;  // warp-uniform: mma needs the whole warp
#pragma unroll
      for (int G = 0; G < 2; G++) {
        uint32_t a0[4], a1[4];
        dequant_word(word_of(wv[u], 2 * G), a0);
        dequant_word(word_of(wv[u], 2 * G + 1), a1);
        float s_lo, s_hi;
        group_scales(sv[u], G, &s_lo, &s_hi);
#pragma unroll
        for (int j = 0; j < MT; j++) group_mma(acc[j], a0, a1, xv[u][j][G], s_lo, s_hi);
      }
    }
  }

  // Reduce the warps' K slices; C fragment element i of lane (g, t) is token 8j + 2t + (i & 1), row g + 8 (i >> 1).
#pragma unroll
  for (int j = 0; j < MT; j++)
#pragma unroll
    for (int i = 0; i < 4; i++) red[warp][j * 4 + i][lane] = acc[j][i];
  __syncthreads();
  for (int e = threadIdx.x; e < MT * 4 * 32; e += blockDim.x) {
    const int ji = e >> 5, l = e & 31, j = ji >> 2, i = ji & 3;
    float s = 0.f;
    for (int w = 0; w < n_warps; w++) s += red[w][ji][l];
    const int m = 8 * j + 2 * (l & 3) + (i & 1), n = nb * 16 + (l >> 2) + 8 * (i >> 1);
    if (m < M) y[size_t(m) * N + n] = f32_to_bf16_bits(s);
  }
}

// ---------------------------------------------------------------------------------------------
// Tiled path: CTA tile BM tokens x BN rows, 64-k stages through a cp.async pipeline; warp tile 64 x 32.
// ---------------------------------------------------------------------------------------------

template <int WARPS_M, int WARPS_N>
struct TiledCfg {
  static constexpr int kWarps = WARPS_M * WARPS_N;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kWarpM = 64;                // tokens per warp: 8 mma n-tiles of 8
  static constexpr int kWarpN = 32;                // weight rows per warp: 2 row blocks of 16
  static constexpr int BM = kWarpM * WARPS_M;      // tokens per CTA
  static constexpr int BN = kWarpN * WARPS_N;      // weight rows per CTA
  static constexpr int kBlocks = BN / kW4TileN;    // row blocks per CTA
  static constexpr int kStages = 4;
  static constexpr int kXBytes = BM * kW4TileK * 2;   // x tile [BM][64] bf16, 16-byte chunks swizzled
  static constexpr int kWBytes = kBlocks * 512;       // packed tiles [kBlocks][32 lanes][16 B]
  static constexpr int kSBytes = kBlocks * 64;        // scale quads [kBlocks][8][8 B]
  static constexpr int kStageBytes = kXBytes + kWBytes + kSBytes;
  static constexpr int kSmemBytes = kStages * kStageBytes;
  static constexpr int kGroupM = 8;  // raster: CTAs walk 8 token tiles per weight column tile (L2 reuse)
};

// Chunk c (16 B = 8 tokens' k) of x-tile row r sits at chunk c ^ 4*(r & 1): the two rows of a quarter-warp's
// 16-byte loads (rows 2p, 2p+1, chunks 4G..4G+3) land in different 64-byte halves -> no bank conflicts.
__device__ __forceinline__ int x_chunk_swizzle(int r, int c) { return c ^ ((r & 1) << 2); }

template <int WARPS_M, int WARPS_N>
__global__ void __launch_bounds__(TiledCfg<WARPS_M, WARPS_N>::kThreads, 1)
    w4a16_tiled_kernel(const uint16_t* __restrict__ x,  // [M, K] bf16
                       int M, int K,
                       const uint4* __restrict__ wq,   // [N/16, K/64, 32] 16-byte lane records
                       const uint4* __restrict__ ws,   // [N/16, K/64, 4] 16-byte chunks of scale quads
                       int N,
                       uint16_t* __restrict__ y,       // [M, N] bf16 (when partial == nullptr)
                       float* __restrict__ partial,    // [splits, M, N] f32 split-K partials, or nullptr
                       int kt_per_split, int tiles_m, int tiles_n) {
  using C = TiledCfg<WARPS_M, WARPS_N>;
  extern __shared__ __align__(128) uint8_t smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / WARPS_N, wn = warp % WARPS_N;
  const int g = lane >> 2, t = lane & 3;

  // Grouped raster: consecutive CTAs take kGroupM token tiles of one weight column tile.
  const int group_size = C::kGroupM * tiles_n;
  const int group = blockIdx.x / group_size, first_m = group * C::kGroupM;
  const int gm = min(tiles_m - first_m, C::kGroupM);
  const int tm = first_m + (blockIdx.x % group_size) % gm, tn = (blockIdx.x % group_size) / gm;
  const int m0 = tm * C::BM, n0 = tn * C::BN, nb0 = n0 / kW4TileN;
  const int k_tiles = K / kW4TileK, n_blocks = N / kW4TileN;
  const int kt_begin = blockIdx.y * kt_per_split;
  const int nk = max(0, min(k_tiles, kt_begin + kt_per_split) - kt_begin);

  auto load_stage = [&](int slot, int kt) {
    uint8_t* st = smem + slot * C::kStageBytes;
    for (int c = tid; c < C::BM * 8; c += C::kThreads) {  // activations: BM rows x 8 chunks
      const int r = c >> 3, ch = c & 7, m = m0 + r;
      const bool ok = m < M;
      const uint16_t* src = ok ? x + size_t(m) * K + size_t(kt) * kW4TileK + ch * 8 : x;
      cp_async16(st + r * 128 + x_chunk_swizzle(r, ch) * 16, src, ok);
    }
    for (int c = tid; c < C::kBlocks * 32; c += C::kThreads) {  // packed weights: kBlocks x 512 B
      const int b = c >> 5, l = c & 31, nb = nb0 + b;
      const bool ok = nb < n_blocks;
      const uint4* src = ok ? wq + w4_tile_index(nb, kt, k_tiles) * 32 + l : wq;
      cp_async16(st + C::kXBytes + c * 16, src, ok);
    }
    for (int c = tid; c < C::kBlocks * 4; c += C::kThreads) {  // scales: kBlocks x 64 B
      const int b = c >> 2, part = c & 3, nb = nb0 + b;
      const bool ok = nb < n_blocks;
      const uint4* src = ok ? ws + w4_tile_index(nb, kt, k_tiles) * 4 + part : ws;
      cp_async16(st + C::kXBytes + C::kWBytes + c * 16, src, ok);
    }
  };

  float acc[8][2][4];  // [token tile j][row block i][C fragment element]
#pragma unroll
  for (int j = 0; j < 8; j++)
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
      for (int e = 0; e < 4; e++) acc[j][i][e] = 0.f;

  auto compute_stage = [&](int slot) {
    const uint8_t* st = smem + slot * C::kStageBytes;
    uint4 wv[2];
    uint2 sv[2];
#pragma unroll
    for (int i = 0; i < 2; i++) {
      const int b = wn * 2 + i;
      wv[i] = *reinterpret_cast<const uint4*>(st + C::kXBytes + b * 512 + lane * 16);
      sv[i] = *reinterpret_cast<const uint2*>(st + C::kXBytes + C::kWBytes + b * 64 + g * 8);
    }
#pragma unroll
    for (int G = 0; G < 2; G++) {
      uint32_t a0[2][4], a1[2][4];
      float s_lo[2], s_hi[2];
#pragma unroll
      for (int i = 0; i < 2; i++) {
        dequant_word(word_of(wv[i], 2 * G), a0[i]);
        dequant_word(word_of(wv[i], 2 * G + 1), a1[i]);
        group_scales(sv[i], G, &s_lo[i], &s_hi[i]);
      }
#pragma unroll
      for (int j = 0; j < 8; j++) {
        const int r = wm * C::kWarpM + j * 8 + g;
        const uint4 xb = *reinterpret_cast<const uint4*>(st + r * 128 + x_chunk_swizzle(r, 4 * G + t) * 16);
#pragma unroll
        for (int i = 0; i < 2; i++) group_mma(acc[j][i], a0[i], a1[i], xb, s_lo[i], s_hi[i]);
      }
    }
  };

  // Pipeline: stages 0..S-2 in flight, then per iteration: wait for stage it, refill the slot freed by it-1.
#pragma unroll
  for (int s = 0; s < C::kStages - 1; s++) {
    if (s < nk) load_stage(s, kt_begin + s);
    cp_async_commit();
  }
  for (int it = 0; it < nk; it++) {
    cp_async_wait<C::kStages - 2>();
    __syncthreads();
    const int nxt = it + C::kStages - 1;
    if (nxt < nk) load_stage(nxt % C::kStages, kt_begin + nxt);
    cp_async_commit();
    compute_stage(it % C::kStages);
  }
  cp_async_wait<0>();

  // Epilogue: element e of acc[j][i] is token 8j + 2t + (e & 1) of the warp, row 16i + g + 8(e >> 1).
#pragma unroll
  for (int j = 0; j < 8; j++)
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int m = m0 + wm * C::kWarpM + 8 * j + 2 * t + (e & 1);
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

__global__ void w4a16_naive_kernel(const uint16_t* __restrict__ x,  // [M, K] bf16
                                   int M, int K,
                                   const uint32_t* __restrict__ packed,  // device layout
                                   const uint16_t* __restrict__ scales,  // device layout
                                   int N,
                                   uint16_t* __restrict__ y) {  // [M, N] bf16
  const size_t total = size_t(M) * N;
  for (size_t idx = size_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += size_t(gridDim.x) * blockDim.x) {
    const int m = int(idx / size_t(N)), n = int(idx % size_t(N));
    float acc = 0.f;
    for (int k = 0; k < K; k++) {
      const float s = __uint_as_float(uint32_t(scales[w4_scale_index(n, k, K)]) << 16);
      const float w = float(w4_code(packed, n, k, K)) * s;
      const float xv = __uint_as_float(uint32_t(x[size_t(m) * K + k]) << 16);
      acc = fmaf(xv, w, acc);
    }
    y[idx] = f32_to_bf16_bits(acc);
  }
}

// ---------------------------------------------------------------------------------------------
// Host side: planning and launches
// ---------------------------------------------------------------------------------------------

int device_sm_count() {
  static std::atomic<int> cache[64];  // per device ordinal; 0 = not read yet
  int dev = 0;
  STRATA_CUDA_CHECK(cudaGetDevice(&dev));
  if (dev >= 0 && dev < 64 && cache[dev].load() > 0) return cache[dev].load();
  int sms = 0;
  STRATA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  if (dev >= 0 && dev < 64) cache[dev].store(sms);
  return sms;
}

// Raises the dynamic shared-memory limit of a tiled kernel instance once per device.
template <int WARPS_M, int WARPS_N>
void ensure_tiled_smem() {
  static std::atomic<uint64_t> done{0};
  int dev = 0;
  STRATA_CUDA_CHECK(cudaGetDevice(&dev));
  const uint64_t bit = uint64_t(1) << (dev & 63);
  if (done.load() & bit) return;
  STRATA_CUDA_CHECK(cudaFuncSetAttribute(w4a16_tiled_kernel<WARPS_M, WARPS_N>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         TiledCfg<WARPS_M, WARPS_N>::kSmemBytes));
  done.fetch_or(bit);
}

// Warps per CTA of the skinny kernel (they split K). Each warp does ceil(k_tiles / (warps * unroll)) load
// round trips; the grid runs in ceil(n_blocks / resident CTAs) waves; pick the fewest sequential round trips
// (waves x trips), ties to more warps (more bytes in flight). Occupancy is read once per device and size.
template <int MT>
int skinny_warps(int n_blocks, int k_tiles) {
  static std::atomic<int> resident[64][3];  // [device][16, 8, 4 warps] CTAs per SM, 0 = not read yet
  int dev = 0;
  STRATA_CUDA_CHECK(cudaGetDevice(&dev));
  const int sms = device_sm_count();
  int best = 4;
  long best_cost = -1;
  const int options[3] = {16, 8, 4};
  for (int o = 0; o < 3; o++) {
    const int w = options[o];
    int per_sm = dev < 64 ? resident[dev][o].load() : 0;
    if (per_sm <= 0) {
      STRATA_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, w4a16_skinny_kernel<MT>, w * 32, 0));
      per_sm = std::max(1, per_sm);
      if (dev < 64) resident[dev][o].store(per_sm);
    }
    const long waves = (n_blocks + long(per_sm) * sms - 1) / (long(per_sm) * sms);
    const long trips = (k_tiles + long(w) * kSkinnyUnroll - 1) / (long(w) * kSkinnyUnroll);
    const long cost = waves * trips;
    if (best_cost < 0 || cost < best_cost) {
      best_cost = cost;
      best = w;
    }
  }
  return std::max(1, std::min(best, k_tiles));
}

struct TiledPlan {
  bool large = false;  // BM 128 (2x4 warps) or BM 64 (1x4 warps)
  int tiles_m = 0, tiles_n = 0;
  int splits = 1, kt_per_split = 0;
};

// ws_avail: workspace bytes on hand (SIZE_MAX when planning the workspace size).
TiledPlan plan_tiled(int M, int N, int K, int split_opt, size_t ws_avail) {
  TiledPlan p;
  p.large = M > 64;
  const int BM = p.large ? TiledCfg<2, 4>::BM : TiledCfg<1, 4>::BM;
  const int BN = p.large ? TiledCfg<2, 4>::BN : TiledCfg<1, 4>::BN;
  p.tiles_m = (M + BM - 1) / BM;
  p.tiles_n = (N + BN - 1) / BN;
  const int k_tiles = K / kW4TileK, tiles = p.tiles_m * p.tiles_n;
  int splits = 1;
  if (split_opt > 0) {
    splits = split_opt;
  } else {
    // Split K only when the tile grid leaves SMs idle; aim for ~1 (large) or ~2 (small) CTAs per SM and
    // keep at least 4 k tiles (256 k) per split.
    const int target = device_sm_count() * (p.large ? 1 : 2);
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

W4A16Path resolve_path(W4A16Path p, int M) { return p == W4A16Path::Auto ? w4a16_auto_path(M) : p; }

template <int WARPS_M, int WARPS_N>
void launch_tiled(const uint16_t* x, int M, int K, const W4A16Weight& w, uint16_t* y, float* partial,
                  const TiledPlan& p, cudaStream_t s) {
  using C = TiledCfg<WARPS_M, WARPS_N>;
  ensure_tiled_smem<WARPS_M, WARPS_N>();
  const dim3 grid(unsigned(p.tiles_m * p.tiles_n), unsigned(p.splits));
  w4a16_tiled_kernel<WARPS_M, WARPS_N><<<grid, C::kThreads, C::kSmemBytes, s>>>(
      x, M, K, reinterpret_cast<const uint4*>(w.packed), reinterpret_cast<const uint4*>(w.scales), w.n_out, y,
      partial, p.kt_per_split, p.tiles_m, p.tiles_n);
  STRATA_CUDA_CHECK_LAUNCH();
}

}  // namespace

const char* w4a16_path_name(W4A16Path p) {
  switch (p) {
    case W4A16Path::Auto: return "auto";
    case W4A16Path::Skinny: return "skinny";
    case W4A16Path::Tiled: return "tiled";
    case W4A16Path::Naive: return "naive";
  }
  return "?";
}

W4A16Path w4a16_auto_path(int M) { return M <= 16 ? W4A16Path::Skinny : W4A16Path::Tiled; }

size_t w4a16_workspace_bytes(int M, int N, int K, const W4A16Options& opt) {
  if (M <= 0 || resolve_path(opt.path, M) != W4A16Path::Tiled) return 0;
  w4a16_check_shape(N, K);
  const TiledPlan p = plan_tiled(M, N, K, opt.split_k, SIZE_MAX);
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
      const int n_blocks = N / kW4TileN, k_tiles = K / kW4TileK;
      const int warps = M <= 8 ? skinny_warps<1>(n_blocks, k_tiles) : skinny_warps<2>(n_blocks, k_tiles);
      const auto* wq = reinterpret_cast<const uint4*>(w.packed);
      const auto* ws = reinterpret_cast<const uint2*>(w.scales);
      if (M <= 8)
        w4a16_skinny_kernel<1><<<n_blocks, warps * 32, 0, s>>>(x, M, K, wq, ws, N, y);
      else
        w4a16_skinny_kernel<2><<<n_blocks, warps * 32, 0, s>>>(x, M, K, wq, ws, N, y);
      STRATA_CUDA_CHECK_LAUNCH();
      return;
    }
    case W4A16Path::Tiled: {
      const TiledPlan p = plan_tiled(M, N, K, opt.split_k, workspace ? workspace_bytes : 0);
      float* partial = p.splits > 1 ? static_cast<float*>(workspace) : nullptr;
      if (partial && (reinterpret_cast<uintptr_t>(partial) % 16 != 0 || reinterpret_cast<uintptr_t>(y) % 8 != 0))
        throw Error("w4a16_linear: split-K needs a 16-byte aligned workspace and an 8-byte aligned y");
      if (p.large)
        launch_tiled<2, 4>(x, M, K, w, y, partial, p, s);
      else
        launch_tiled<1, 4>(x, M, K, w, y, partial, p, s);
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
