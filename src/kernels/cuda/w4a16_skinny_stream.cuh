// The stream-K skinny W4A16 kernel (dense, M <= 16): a persistent grid that gives every CTA the same number of
// weight bytes, whatever the shape. Not a public header: CUDA only, included by w4a16_gemm.cu.
//
// Why: the pipelined kernel (w4a16_skinny.cuh) gives each CTA whole row groups, so its grid is n_blocks / R CTAs on
// 132 SMs. On 28672x8192 that is 448 CTAs: some SMs run 4, others 3, and the SMs with 4 move 1.18x the average
// bytes; each SM streamed ~26.5 GB/s on both large shapes, so the busiest SMs set the time (76% of copy bandwidth
// there vs 87% on 8192x28672, whose 128 CTAs fill 128 SMs). Here the work is cut into units of one k tile of one row
// group and CTA c takes units [c*U/P, (c+1)*U/P): the imbalance is at most one unit.
//
// Layout of the work: a row group is W*R row blocks (warp w owns row blocks w*R .. w*R+R-1 of it), unit u = row
// group u / KC, k tiles T*(u % KC) .. +T-1 (KC = KT / T). A CTA walks its units in order through an S-stage cp.async
// ring shared by its warps; a stage holds the unit's x tiles (8*MT token rows x 64 k each, 128-byte swizzle, read by
// ldmatrix: loaded once per CTA and shared by all its warps, where the pipelined kernel's warps each load their own)
// and the group's W*R*T weight tiles and scale quads. One __syncthreads per stage.
//
// Where a CTA's range ends inside a row group, the group's K is split between CTAs (a segment each): a CTA whose
// segment covers the whole K writes y directly; otherwise it stores its f32 partial sums in its slot (2 per CTA:
// its first and its last segment), and the CTA that arrives last at the group's counter sums every segment's slot
// in CTA order (deterministic: the split depends only on the shape and the grid) and writes y, then resets the
// counter to zero. The counters live in the caller's workspace, zeroed once (w4a16_linear's contract).
// PDL as in the pipelined kernel: the first S-1 stages' weights are requested before griddepcontrol.wait, x, y,
// the counters and the slots are touched only after it.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/w4a16_device.cuh"
#include "kernels/cuda/w4a16_skinny.cuh"

namespace strata::cuda {

struct SkinnyStreamArgs {
  unsigned* counters = nullptr;  // [n_groups] segment arrivals of each row group; zero between calls
  float* partials = nullptr;     // [2 * gridDim.x][W * R * MT * 4 * 32] a CTA's first / last segment partials
  int n_groups = 0;              // row groups (n_blocks / (W * R))
};

// Bytes of one ring stage: x (T k tiles x 8*MT token rows x 128 B), then W*R*T weight tiles and their scales.
__host__ __device__ constexpr size_t skinny_stream_stage_bytes(int mt, int rows, int warps, int kt) {
  return size_t(kt) * 8 * mt * 128 + size_t(warps) * rows * kt * 576;
}
// Floats of one partial slot.
__host__ __device__ constexpr size_t skinny_stream_slot_floats(int mt, int rows, int warps) {
  return size_t(warps) * rows * mt * 4 * 32;
}

// First unit of CTA c of P over U units, and the CTA that holds unit u.
__device__ __forceinline__ long long stream_first_unit(long long c, long long U, long long P) { return c * U / P; }
__device__ __forceinline__ int stream_cta_of(long long u, long long U, long long P) {
  long long c = u * P / U;
  while (c + 1 < P && stream_first_unit(c + 1, U, P) <= u) c++;
  while (c > 0 && stream_first_unit(c, U, P) > u) c--;
  return int(c);
}

// MT token tiles (M <= 8 MT), R row blocks per warp, T k tiles per unit (a row block's T tiles are one contiguous
// T x 512-byte run: longer DRAM bursts than one tile), S ring stages.
template <int MT, int R, int T, int S>
__global__ void __launch_bounds__(512) w4a16_skinny_stream_kernel(SkinnyArgs a, SkinnyStreamArgs sk) {
  extern __shared__ __align__(128) uint8_t smem_stream[];
  __shared__ int last_arrival;
  using namespace dev;
  constexpr int kXk = 8 * MT * 128;  // x bytes of one k tile
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, n_warps = blockDim.x >> 5, n_threads = blockDim.x;
  const int g_lane = lane >> 2, t = lane & 3;
  const int gb = n_warps * R;      // row blocks per group
  const int KT = a.K / kW4TileK;   // k tiles of a row
  const int KC = KT / T;           // units per group
  const long long U = (long long)sk.n_groups * KC, P = gridDim.x;
  const long long u0 = stream_first_unit(blockIdx.x, U, P), u1 = stream_first_unit(blockIdx.x + 1, U, P);
  const int n_it = int(u1 - u0);
  const uint32_t w_off = T * kXk, s_off = uint32_t(T * kXk + gb * T * 512);
  const uint32_t stage_bytes = uint32_t(T * kXk + gb * T * 576);
  const uint32_t ring = smem_addr(smem_stream);
  const size_t slot_floats = skinny_stream_slot_floats(MT, R, n_warps);
  const uint4* ws4 = reinterpret_cast<const uint4*>(a.ws);

  // Weights: warp w copies its R row blocks' T-tile runs (lane + 32p, p < T, of each run); scales: the runs' 4T
  // 16-byte chunks; x: 8*MT rows x 8 chunks per k tile, spread over the CTA's threads (rows >= M zero-filled).
  auto load_w = [&](int it, int g, int c) {
    const uint32_t st = ring + uint32_t(it % S) * stage_bytes;
    const size_t rb = size_t(g) * gb + size_t(warp) * R, kt = size_t(c) * T;
#pragma unroll
    for (int i = 0; i < R; i++) {
      const uint4* src = a.wq + ((rb + i) * KT + kt) * 32 + lane;
      const uint32_t dst = st + w_off + uint32_t((warp * R + i) * T) * 512 + lane * 16;
#pragma unroll
      for (int p = 0; p < T; p++) cp_async16_s(dst + p * 512, src + p * 32, true);
    }
#pragma unroll
    for (int q0 = 0; q0 < 4 * R * T; q0 += 32) {
      const int q = q0 + lane, i = q / (4 * T), r = q % (4 * T);
      if (q < 4 * R * T)
        cp_async16_s(st + s_off + uint32_t((warp * R + i) * T) * 64 + r * 16, ws4 + ((rb + i) * KT + kt) * 4 + r, true);
    }
  };
  auto load_x = [&](int it, int c) {
    const uint32_t st = ring + uint32_t(it % S) * stage_bytes;
    for (int q = tid; q < T * 8 * MT * 8; q += n_threads) {
      const int kk = q / (8 * MT * 8), r = (q >> 3) % (8 * MT), ch = q & 7;
      const bool real = r < a.M;
      cp_async16_s(st + kk * kXk + sw128(r, ch),
                   real ? a.x + size_t(r) * a.ldx + (size_t(c) * T + kk) * kW4TileK + ch * 8 : a.x, real);
    }
  };

  // Prologue: S-1 stages of weights (before the PDL wait), then their x (after it); one commit group each.
  int lg = int(u0 / KC), lc = int(u0 % KC);  // the loader's next unit (group, k chunk)
  if (a.pdl) pdl_launch_dependents();
#pragma unroll
  for (int s = 0; s < S - 1; s++) {
    if (s < n_it) {
      load_w(s, lg, lc);
      if (++lc == KC) lc = 0, lg++;
    }
    cp_async_commit();
  }
  if (a.pdl) pdl_wait();
  {
    int xc = int(u0 % KC);
#pragma unroll
    for (int s = 0; s < S - 1; s++) {
      if (s < n_it) {
        load_x(s, xc);
        if (++xc == KC) xc = 0;
      }
      cp_async_commit();
    }
  }

  float acc[R][MT][4];
  auto zero_acc = [&] {
#pragma unroll
    for (int i = 0; i < R; i++)
#pragma unroll
      for (int j = 0; j < MT; j++)
#pragma unroll
        for (int c = 0; c < 4; c++) acc[i][j][c] = 0.f;
  };
  zero_acc();
  // Value (i, j, c) of this lane: token 8j + 2t + (c & 1), row (group * gb + warp * R + i) * 16 + g_lane + 8 (c >> 1);
  // in a slot at (((warp * R + i) * MT + j) * 4 + c) * 32 + lane.
  auto token = [&](int j, int c) { return 8 * j + 2 * t + (c & 1); };
  auto store_y = [&](int g, int i, int j, int c, float v) {
    const int row = (g * gb + warp * R + i) * 16 + g_lane + 8 * (c >> 1);
    static_cast<uint16_t*>(a.y)[size_t(token(j, c)) * a.ldy + row] = f32_to_bf16_bits(v);
  };
  const size_t lane_off = size_t(warp * R * MT * 4) * 32 + lane;
  const int g_first = int(u0 / KC);

  int cg = g_first, cc = int(u0 % KC), seg_c0 = cc;
  for (int it = 0; it < n_it; it++) {
    cp_async_wait<S - 2>();
    __syncthreads();  // stage it landed for every thread; every warp is done with stage it-1's slot
    if (it + S - 1 < n_it) {
      load_w(it + S - 1, lg, lc);
      load_x(it + S - 1, lc);
      if (++lc == KC) lc = 0, lg++;
    }
    cp_async_commit();

    const uint32_t st = ring + uint32_t(it % S) * stage_bytes;
#pragma unroll
    for (int kk = 0; kk < T; kk++) {
      uint32_t xb[MT][8];
#pragma unroll
      for (int j = 0; j < MT; j++)
#pragma unroll
        for (int P2 = 0; P2 < 2; P2++)
          ldmatrix_x4(&xb[j][4 * P2], st + kk * kXk + sw128(8 * j + (lane & 7), 4 * P2 + (lane >> 3)));
#pragma unroll
      for (int i = 0; i < R; i++) {
        const uint4 wv = lds128(st + w_off + uint32_t((warp * R + i) * T + kk) * 512 + lane * 16);
        const uint2 sv = lds64(st + s_off + uint32_t((warp * R + i) * T + kk) * 64 + g_lane * 8);
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

    if (cc == KC - 1 || it == n_it - 1) {  // end of a segment (CTA-uniform)
      if (seg_c0 == 0 && cc == KC - 1) {   // the whole K of the group: y directly
#pragma unroll
        for (int i = 0; i < R; i++)
#pragma unroll
          for (int j = 0; j < MT; j++)
#pragma unroll
            for (int c = 0; c < 4; c++)
              if (token(j, c) < a.M) store_y(cg, i, j, c, acc[i][j][c]);
      } else {
        float* slot = sk.partials + size_t(2 * blockIdx.x + (cg == g_first ? 0 : 1)) * slot_floats + lane_off;
#pragma unroll
        for (int i = 0; i < R; i++)
#pragma unroll
          for (int j = 0; j < MT; j++)
#pragma unroll
            for (int c = 0; c < 4; c++)
              if (token(j, c) < a.M) __stcg(slot + ((i * MT + j) * 4 + c) * 32, acc[i][j][c]);
        __threadfence();  // this CTA's partials are visible device-wide before its arrival is counted
        __syncthreads();
        const int c_first = stream_cta_of((long long)cg * KC, U, P);
        const int c_last = stream_cta_of((long long)(cg + 1) * KC - 1, U, P);
        if (tid == 0) last_arrival = atomicAdd(sk.counters + cg, 1u) == unsigned(c_last - c_first);
        __syncthreads();
        if (last_arrival) {  // every other segment of the group is in its slot: sum them in CTA order
          __threadfence();
          zero_acc();
          for (int b = c_first; b <= c_last; b++) {
            const bool first_seg = cg == int(stream_first_unit(b, U, P) / KC);
            const float* src = sk.partials + size_t(2 * b + (first_seg ? 0 : 1)) * slot_floats + lane_off;
            float v[R][MT][4];  // all of one slot's loads in flight together
#pragma unroll
            for (int i = 0; i < R; i++)
#pragma unroll
              for (int j = 0; j < MT; j++)
#pragma unroll
                for (int c = 0; c < 4; c++)
                  v[i][j][c] = token(j, c) < a.M ? __ldcg(src + ((i * MT + j) * 4 + c) * 32) : 0.f;
#pragma unroll
            for (int i = 0; i < R; i++)
#pragma unroll
              for (int j = 0; j < MT; j++)
#pragma unroll
                for (int c = 0; c < 4; c++) acc[i][j][c] += v[i][j][c];
          }
#pragma unroll
          for (int i = 0; i < R; i++)
#pragma unroll
            for (int j = 0; j < MT; j++)
#pragma unroll
              for (int c = 0; c < 4; c++)
                if (token(j, c) < a.M) store_y(cg, i, j, c, acc[i][j][c]);
          if (tid == 0) sk.counters[cg] = 0u;  // every segment has arrived: no one else touches it this call
        }
      }
      zero_acc();
    }
    if (++cc == KC) cc = 0, cg++, seg_c0 = 0;
  }
  cp_async_wait<0>();
}

}  // namespace strata::cuda
