// The device layout of a W4A16 weight after the one-time repack, and the index/bit helpers that
// the repack, the kernels, the checks and the host simulation all share (host+device, no CUDA types).
// Not a kernel and not the checkpoint format: quant/int4_format.h documents what the files hold.
//
// The layout feeds mma.sync.m16n8k16 (bf16, f32 accumulate) with the WEIGHT as the A operand
// (mma rows = output features n, mma cols = k) and the activations as B (mma cols = tokens m):
//
//   packed  uint32 [N/16, K/64, 32 lanes, 4 words]   one "tile" = 16 rows x 64 k = 512 bytes
//   scales  bf16   [N/16, K/64, 8, 4]                64 bytes per tile
//
// Lane l = 4g + t (g = l/4 in 0..7, t = l%4) owns rows g and g+8 of the tile. Word w = 2G + h of
// the lane (G = group 0/1 of the tile's two 32-wide scale groups, h = half 0/1) holds the 8 codes
//   row g   at k = 64kt + 32G + 8t + 4h + {0,1,2,3}   in nibbles 0,4,2,6
//   row g+8 at the same k                               in nibbles 1,5,3,7
// so (q >> 4s) & 0x000f000f (s = 0..3) yields the four bf16x2 registers a0..a3 of the A fragment
// of one m16n8k16 step, once 0x4300 is OR'ed in (bf16 128+u) and 136 subtracted (u-8, exact).
// This is a permutation of k inside each 32-wide group (both operands use it; the sum over k is
// unchanged and scale groups stay whole): mma column c = 2t' + 8j + i of step (G, h) is
// k = 32G + 8t' + 4h + 2j + i, so thread (g, t) needs x[m][32G + 8t .. 32G + 8t + 7]: ONE 16-byte
// load per token row and group gives its B fragments for both steps of the group.
// Scales of the tile: [g][0] = s(row g, G=0), [g][1] = s(row g+8, G=0), [g][2] = s(g, 1), [g][3] = s(g+8, 1).
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

// Source (compressed-tensors) to device layout, one output word. src: int32 [N, K/8], row stride K/8 words.
// nb: row block, kt: k tile, lane: 0..31, w: word 0..3 of the lane.
STRATA_HD uint32_t w4_repack_word(const uint32_t* src, int K, int nb, int kt, int lane, int w) {
  const int g = lane >> 2, t = lane & 3, G = w >> 1, h = w & 1;
  const size_t row_words = size_t(K) / 8;
  const size_t col = size_t(kt) * 8 + size_t(4 * G + t);  // source word holding k = 64kt + 32G + 8t + 0..7
  const uint32_t a = (src[(size_t(nb) * 16 + g) * row_words + col] >> (16 * h)) & 0xFFFFu;      // row g: 4 codes
  const uint32_t b = (src[(size_t(nb) * 16 + g + 8) * row_words + col] >> (16 * h)) & 0xFFFFu;  // row g+8
  auto nib = [](uint32_t v, int i) { return (v >> (4 * i)) & 0xFu; };
  return nib(a, 0) | nib(b, 0) << 4 | nib(a, 2) << 8 | nib(b, 2) << 12 | nib(a, 1) << 16 | nib(b, 1) << 20 |
         nib(a, 3) << 24 | nib(b, 3) << 28;
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
  const int kt = k >> 6, kk = k & 63, G = kk >> 5, o = kk & 31, t = o >> 3, h = (o >> 2) & 1, q = o & 3;
  *word = w4_tile_index(nb, kt, K / 64) * kW4TileWords + size_t(g * 4 + t) * 4 + size_t(2 * G + h);
  *nibble = (q & 1) * 4 + (q >> 1) * 2 + hi;
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

// First k (within the 64-k tile) of the 8 consecutive activations thread (g, t) loads for group G.
STRATA_HD int w4_x_offset(int G, int t) { return 32 * G + 8 * t; }

}  // namespace strata::cuda
