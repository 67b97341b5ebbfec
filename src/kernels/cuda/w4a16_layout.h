// The device layout of a W4A16 weight after the one-time repack, and the index/bit helpers that
// the repack, the kernels, the checks and the host simulation all share (host+device, no CUDA types).
// Not a kernel and not the checkpoint format: quant/int4_format.h documents what the files hold.
//
// The layout feeds the tensor cores with the WEIGHT as the A operand (rows = output features n, cols = k)
// and the activations as B (cols = tokens m), in the natural k order, so that one layout serves both
// mma.sync.m16n8k16 (B fragments loaded from registers) and wgmma m64nNk16 with A from registers (B = a
// K-major activation tile in shared memory, in plain k order as cp.async / TMA put it there):
//
//   packed  uint32 [N/16, K/64, 32 lanes, 4 words]   one "tile" = 16 rows x 64 k = 512 bytes
//   scales  bf16   [N/16, K/64, 8, 4]                64 bytes per tile
//
// Lane l = 4g + t (g = l/4 in 0..7, t = l%4) owns rows g and g+8 of the tile. Word s (0..3) of the lane is
// k16 step s (k = 64kt + 16s + c, c = 0..15) and holds the 8 codes of that step's A fragment:
//   nibble 0 / 4: row g,   c = 2t / 2t+1        (register a0)
//   nibble 1 / 5: row g+8, c = 2t / 2t+1        (a1)
//   nibble 2 / 6: row g,   c = 2t+8 / 2t+9      (a2)
//   nibble 3 / 7: row g+8, c = 2t+8 / 2t+9      (a3)
// so (q >> 4r) & 0x000f000f (r = 0..3) is register a_r once 0x4300 is OR'ed in (bf16 128+u) and 136
// subtracted (u-8, exact). The matching activation (B) registers of thread (g, t) for token column g are
// b0 = x[m][16s + 2t, +1] and b1 = x[m][16s + 2t + 8, +9].
// Scales of the tile: [g][0] = s(row g, G=0), [g][1] = s(row g+8, G=0), [g][2] = s(g, 1), [g][3] = s(g+8, 1)
// (G = 32-wide group of the tile: steps 0,1 are G=0, steps 2,3 are G=1).
//
// Constraints: N % 16 == 0, K % 64 == 0 (every Kimi/DeepSeek/Qwen/Mixtral expert shape satisfies both).
#pragma once
#include <cstddef>
#include <cstdint>

#if defined(__CUDACC__)
#define STRATA_HD __host__ __device__ __forceinline__
#else
#define STRATA_HD inline
#endif

namespace strata::cuda {

constexpr int kW4TileN = 16;          // rows of one tile
constexpr int kW4TileK = 64;          // k of one tile (two scale groups of 32)
constexpr int kW4TileWords = 128;     // uint32 words of one tile (32 lanes x 4)
constexpr int kW4TileScales = 32;     // bf16 scales of one tile (16 rows x 2 groups)

// Index of tile (nb, kt) among all tiles of a [N, K] weight (n-block major: a row block's K is contiguous).
STRATA_HD size_t w4_tile_index(int nb, int kt, int k_tiles) { return size_t(nb) * size_t(k_tiles) + size_t(kt); }

// Code u (0..15, offset binary) of element (row, k) of a compressed-tensors int32 [N, K/8] weight.
STRATA_HD uint32_t w4_src_nibble(const uint32_t* src, int K, int row, int k) {
  return (src[size_t(row) * (size_t(K) / 8) + size_t(k) / 8] >> (4 * (k & 7))) & 0xFu;
}

// Source (compressed-tensors) to device layout, one output word. src: int32 [N, K/8], row stride K/8 words.
// nb: row block, kt: k tile, lane: 0..31, s: word (k16 step) 0..3 of the lane.
STRATA_HD uint32_t w4_repack_word(const uint32_t* src, int K, int nb, int kt, int lane, int s) {
  const int g = lane >> 2, t = lane & 3;
  const int r0 = nb * 16 + g, r1 = r0 + 8, k = kt * 64 + s * 16 + 2 * t;
  return w4_src_nibble(src, K, r0, k) | w4_src_nibble(src, K, r1, k) << 4 | w4_src_nibble(src, K, r0, k + 8) << 8 |
         w4_src_nibble(src, K, r1, k + 8) << 12 | w4_src_nibble(src, K, r0, k + 1) << 16 |
         w4_src_nibble(src, K, r1, k + 1) << 20 | w4_src_nibble(src, K, r0, k + 9) << 24 |
         w4_src_nibble(src, K, r1, k + 9) << 28;
}

// Source scales bf16 [N, K/32] to the tile's [8][4] block, entry e = 4g + j.
STRATA_HD uint16_t w4_repack_scale(const uint16_t* src, int K, int nb, int kt, int e) {
  const int g = e >> 2, j = e & 3;
  const int row = nb * 16 + g + 8 * (j & 1), grp = kt * 2 + (j >> 1);
  return src[size_t(row) * (size_t(K) / 32) + size_t(grp)];
}

// Where element (n, k) lives in the device layout: word index into `packed` and nibble 0..7.
STRATA_HD void w4_locate(int n, int k, int K, size_t* word, int* nibble) {
  const int nb = n >> 4, r = n & 15, g = r & 7, hi = r >> 3;
  const int kt = k >> 6, s = (k >> 4) & 3, c = k & 15, half = c >> 3, t = (c & 7) >> 1, i = c & 1;
  *word = w4_tile_index(nb, kt, K / 64) * kW4TileWords + size_t(g * 4 + t) * 4 + size_t(s);
  *nibble = hi + 2 * half + 4 * i;
}

// Index into `scales` of the scale of element (n, k).
STRATA_HD size_t w4_scale_index(int n, int k, int K) {
  const int nb = n >> 4, r = n & 15, g = r & 7, hi = r >> 3, G = (k >> 5) & 1;
  return w4_tile_index(nb, k >> 6, K / 64) * kW4TileScales + size_t(g) * 4 + size_t(2 * G + hi);
}

// Signed code q in [-8, 7] of element (n, k) of a device-layout weight.
STRATA_HD int w4_code(const uint32_t* packed, int n, int k, int K) {
  size_t word;
  int nib;
  w4_locate(n, k, K, &word, &nib);
  return int((packed[word] >> (4 * nib)) & 0xFu) - 8;
}

// Step s (0..3) of the magic-number dequant: bf16x2 (128 + u_lo, 128 + u_hi) of A-fragment register s.
// Subtracting bf16x2 (136, 136) then gives the exact codes u - 8.
STRATA_HD uint32_t w4_magic_pair(uint32_t q, int s) { return ((q >> (4 * s)) & 0x000F000Fu) | 0x43004300u; }

}  // namespace strata::cuda
