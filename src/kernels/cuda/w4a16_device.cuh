// Device building blocks shared by the W4A16 GEMM and MoE kernels: streaming loads, the INT4 -> bf16
// dequant of one layout word (w4a16_layout.h) with its group scales, mma.sync / wgmma wrappers, cp.async.
// Not a kernel and not a public header: included by the .cu files of this folder only.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/w4a16_layout.h"

namespace strata::cuda::dev {

// 16-byte streaming load of weights: read once, so keep it out of L1.
__device__ __forceinline__ uint4 ldg_stream(const uint4* p) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(p));
  return r;
}

__device__ __forceinline__ uint32_t ldg_u32(const uint16_t* p) {
  return __ldg(reinterpret_cast<const unsigned int*>(p));
}

__device__ __forceinline__ uint32_t word_of(const uint4& v, int w) {
  return w == 0 ? v.x : w == 1 ? v.y : w == 2 ? v.z : v.w;
}

__device__ __forceinline__ float bf16_bits_to_f32(uint32_t h) { return __uint_as_float(h << 16); }
__device__ __forceinline__ uint16_t f32_to_bf16_bits(float v) { return __bfloat16_as_ushort(__float2bfloat16_rn(v)); }
__device__ __forceinline__ float silu(float v) { return v / (1.f + __expf(-v)); }

// Scale pairs of 32-wide group G for this thread's rows g (lo) and g+8 (hi), each broadcast to both bf16 halves.
// quad: the tile's [g][4] scales as two words, .x = (s(g,0), s(g+8,0)), .y = (s(g,1), s(g+8,1)).
__device__ __forceinline__ void scale_pairs(uint2 quad, int G, uint32_t* lo2, uint32_t* hi2) {
  const uint32_t u = G == 0 ? quad.x : quad.y;
  *lo2 = __byte_perm(u, 0, 0x1010);
  *hi2 = __byte_perm(u, 0, 0x3232);
}

// One layout word -> the four bf16x2 A-fragment registers of its k16 step as the exact biased codes bf16(128 + u)
// (one lop3 each, no float math): for kernels that take the bias (-136) and the group scale out of the mma in f32.
__device__ __forceinline__ void dequant_biased(uint32_t q, uint32_t a[4]) {
#pragma unroll
  for (int r = 0; r < 4; r++)
    asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(a[r]) : "r"(q >> (4 * r)), "r"(0x000F000Fu), "r"(0x43004300u));
}

// One layout word -> the four bf16x2 A-fragment registers of its k16 step, bf16((u - 8) * scale):
// lop3 to bf16 (128 + u), exact fma to (u - 8), one rounding in the multiply by the group scale.
// a0/a2 are row g (lo2), a1/a3 row g+8 (hi2).
__device__ __forceinline__ void dequant_scaled(uint32_t q, uint32_t lo2, uint32_t hi2, uint32_t a[4]) {
#pragma unroll
  for (int r = 0; r < 4; r++) {
    uint32_t v;  // w4_magic_pair(q, r) as one lop3: ((q >> 4r) & 0x000f000f) | 0x43004300
    asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(v) : "r"(q >> (4 * r)), "r"(0x000F000Fu), "r"(0x43004300u));
    uint32_t d;
    asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(v), "r"(0x3F803F80u), "r"(0xC308C308u));
    asm("mul.rn.bf16x2 %0, %1, %2;" : "=r"(a[r]) : "r"(d), "r"((r & 1) ? hi2 : lo2));
  }
}

// d += A(16x16, weights) . B(16x8, activations), bf16 in, f32 accumulate.
__device__ __forceinline__ void mma_16816(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void cp_async16(void* smem_dst, const void* gmem_src, bool valid) {
  const int src_bytes = valid ? 16 : 0;  // 0: zero-fill the 16 bytes
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem_dst)), "l"(gmem_src),
               "r"(src_bytes));
}
// Same with the destination as a shared-window address.
__device__ __forceinline__ void cp_async16_s(uint32_t smem_dst, const void* gmem_src, bool valid) {
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_dst), "l"(gmem_src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ uint4 lds128(uint32_t addr) {
  uint4 v;
  asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(addr));
  return v;
}
__device__ __forceinline__ uint2 lds64(uint32_t addr) {
  uint2 v;
  asm volatile("ld.shared.v2.u32 {%0, %1}, [%2];" : "=r"(v.x), "=r"(v.y) : "r"(addr));
  return v;
}

// Four 8x8 bf16 matrices from shared memory; lane i gives the row address of matrix i/8, row i%8.
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// Byte offset of 16-byte chunk c (0..7) of row r in a [rows][128 B] tile with the 128-byte swizzle that wgmma's
// SWIZZLE_128B K-major operand layout expects (chunk index XOR row % 8; the tile is 1024-byte aligned).
__device__ __forceinline__ uint32_t sw128(int r, int c) { return uint32_t(r) * 128u + uint32_t((c ^ (r & 7)) << 4); }

// Generic-proxy writes (cp.async) made visible to the async proxy (wgmma operand reads).
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// mbarrier + TMA (bulk async copies into shared memory that complete a transaction count on an mbarrier).
__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_init_fence() { asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory"); }
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
// One arrival (release: this thread's earlier shared-memory reads are ordered before it).
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n .reg .pred p;\n WAIT_%=:\n mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n @!p bra WAIT_%=;\n}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const void* tmap, int c0, int c1, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(
          dst),
      "l"(reinterpret_cast<uint64_t>(tmap)), "r"(c0), "r"(c1), "r"(bar)
      : "memory");
}
__device__ __forceinline__ void tma_load_3d(uint32_t dst, const void* tmap, int c0, int c1, int c2, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], "
      "[%5];" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(tmap)), "r"(c0), "r"(c1), "r"(c2), "r"(bar)
      : "memory");
}

}  // namespace strata::cuda::dev
