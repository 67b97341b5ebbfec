// Public CUDA W4A16 linear: y[M, N] (bf16) = x[M, K] (bf16) . W^T with W an INT4 weight repacked once
// (w4a16_repack.h); f32 accumulation; each weight enters the tensor cores as bf16((code - 8) * scale), one
// rounding (Marlin's bf16 path, and the bf16 weight that quantization-aware training computes; the CPU reference
// keeps code * scale exact in f32), except in the pipelined skinny kernel's ring form at M <= 8 (and at M <= 16
// with R >= 7), which feeds the exact codes and applies bias and scale per 32-k group in f32. Hopper (sm_90a).
// Not a general GEMM: no bias, no transposes, no fp16; and no CUDA types here (streams are void*).
//
// Paths:
//   Skinny (M <= 16, decode): each warp streams R row blocks (16 rows each) of its K slice, dequantizes with the
//     lop3/0x4300 trick and the group scale, and runs mma.m16n8k16 with the tokens as the 8/16-wide operand; the
//     CTA's warps split K and reduce in shared memory (fixed order: deterministic); small grids can also split K
//     over the CTAs of a cluster (DSMEM reduction). Dense default: the pipelined kernel (each warp keeps S-1
//     stages of weights + scales + x in flight through a private cp.async ring, x read back with ldmatrix),
//     launched as a programmatic dependent (PDL) of the previous kernel. The same kernel runs the MoE's grouped expert
//     GEMMs (cuda_moe.h). The register-staged kernel (U k tiles loaded to registers, then computed) stays
//     selectable in both. Small dense weights at M <= 8 (every warp's k tiles fit its shared memory at once:
//     2048x7168, 7168x2048) take the pipelined kernel's flat form: all tiles copied before the PDL wait, one
//     wait, the tiles computed unrolled.
//   Wgmma (M > 16, prefill): CTA = 2 warpgroups x 64 weight rows, BT tokens (64/128/256) as wgmma's N;
//     activations and packed weights cp.async'ed into a 5..8-stage pipeline (x tile SWIZZLE_128B = B from shared
//     memory), weights dequantized into registers (A from registers, double-buffered: two wgmma groups in flight),
//     m64nBTk16 with f32 accumulation; split-K over CTAs (f32 partials in a workspace) when the tile grid would not
//     fill the GPU. Above 64 tokens the warp-specialised kernel runs the same tile: a producer warpgroup loads
//     each stage with three TMA copies (x; weights and scales as 3-D tensor maps) through full/empty mbarriers,
//     and the consumer warpgroups (setmaxnreg 232) only dequantize and issue wgmma.
//   Tiled (any M): the sm_80-style mma.sync version of the same tiling (64x32 warp tiles, ldmatrix); kept as a
//     cross-check of the wgmma path.
//   Naive: one thread per output, reads the layout element by element (checks only; slow).
#pragma once
#include <cstddef>
#include <string>

#include "kernels/cuda/w4a16_repack.h"

namespace strata::cuda {

enum class W4A16Path { Auto, Skinny, Wgmma, Tiled, Naive };

// Stamps per CTA of W4A16Options::skinny_trace.
constexpr int kSkinnyTraceStamps = 5;

const char* w4a16_path_name(W4A16Path p);

struct W4A16Options {
  W4A16Path path = W4A16Path::Auto;
  int split_k = 0;  // Wgmma/Tiled: 0 = chosen from the shape and the GPU; n > 0 forces (at most) n K slices
  // Tuning overrides (0 = chosen from the shape): skinny row blocks per warp (1, 2, 4), warps per CTA (4, 8, 16)
  // and K split over the CTAs of a cluster (1, 2, 4); wgmma tokens per CTA (64, 128, 256).
  int skinny_rows = 0, skinny_warps = 0, skinny_split = 0;
  int wgmma_tokens = 0;
  // Wgmma: the warp-specialised kernel (a producer warpgroup feeds the stages by TMA through mbarriers; the two
  // consumer warpgroups only dequantize and issue wgmma) (1) or cp.async from every thread with a CTA barrier per
  // k tile (0); -1 = chosen from M (warp-specialised above 64 tokens).
  int wgmma_ws = -1;
  // Wgmma without split-K: write y through shared memory in 16-byte row chunks (else 2-byte stores from the
  // accumulator registers).
  bool wgmma_smem_epilogue = true;
  // Skinny: activations through a per-warp shared-memory ring + ldmatrix (1) or 4-byte global loads (0);
  // -1 = chosen from M (the ring from M > 4, where 4-byte loads of many token rows make the kernel L1-bound).
  int skinny_xs = -1;
  // Skinny: launch as a programmatic dependent of the previous kernel in the stream (it starts early, prefetches
  // its first weights into L2, and waits for that kernel before reading x or writing y).
  bool pdl = true;
  // Skinny: the pipelined kernel (per-warp cp.async rings, S-1 stages in flight; 1, the default when -1) or the
  // register-staged one (0); stages of the ring (2..8; 0 = as many as fit).
  int skinny_pipe = -1, skinny_stages = 0;
  // Skinny, pipelined configurations with R <= 2 whose warps all get exactly T = 2, 4, 7 or 8 k tiles: the flat
  // kernel (all T tiles' weights copied before the PDL wait, x rows of the M tokens only, the T tiles computed
  // unrolled without per-tile waits, the next launch let in only once x is issued) (1) or the ring (0);
  // -1 = chosen from the shape (flat at M <= 8 where it measured faster: see w4a16_skinny_config).
  int skinny_flat = -1;
  // Profiling only: a device buffer of kSkinnyTraceStamps x (CTAs of the launch) u64 that the pipelined skinny
  // kernel fills with %globaltimer stamps per CTA (entry, past the PDL wait, first stage landed, k loop done, done);
  // null = off.
  // Needs a build with the CMake option STRATA_CUDA_TRACE=ON (w4a16_linear throws otherwise).
  unsigned long long* skinny_trace = nullptr;
};

// The skinny configuration w4a16_linear would use (after overrides), for reports.
struct SkinnyConfig {
  int rows = 1, unroll = 4, warps = 16;  // row blocks per warp, k tiles in flight per warp, warps per CTA
  int split = 1;                         // CTAs (one cluster) sharing a row group's K
  bool xs = false;                       // x through the shared-memory ring (W4A16Options::skinny_xs)
  bool pipe = false;                     // the pipelined kernel (W4A16Options::skinny_pipe)
  int stages = 0;                        // its ring stages
  bool flat = false;                     // the flat kernel instead of the ring (W4A16Options::skinny_flat)
  int tiles = 0;                         // its k tiles per warp
};
SkinnyConfig w4a16_skinny_config(int M, int N, int K, const W4A16Options& opt = {});
// Its name in reports: "pipe S4 R4 W16 C1", "flat T7 R1 W16 C1", "xs R2 W8 C1", or "R2 W8 C1" (the
// register-staged kernel with 4-byte x loads).
std::string w4a16_skinny_name(const SkinnyConfig& c);

// The wgmma configuration w4a16_linear would use (after overrides), for reports.
struct WgmmaConfig {
  int tokens = 64;  // tokens per CTA tile (the tile is 128 weight rows)
  bool ws = false;  // the warp-specialised TMA-fed kernel (else cp.async)
  int splits = 1;   // K slices (split-K)
};
WgmmaConfig w4a16_wgmma_config(int M, int N, int K, const W4A16Options& opt = {});

// Streaming multiprocessors of the current device (cached).
int device_sm_count();

// The path Auto takes for M tokens.
W4A16Path w4a16_auto_path(int M);

// Workspace bytes w4a16_linear needs for this call (0 when it needs none).
size_t w4a16_workspace_bytes(int M, int N, int K, const W4A16Options& opt = {});

// y[M, N] = x[M, K] . W^T, asynchronously on `stream` (cudaStream_t; nullptr = default stream).
// x: device bf16 [M, K] row-major, 16-byte aligned; y: device bf16 [M, N] row-major.
// workspace: device scratch of at least w4a16_workspace_bytes(M, N, K, opt) bytes (may be null when that is 0;
// when it is smaller than needed the call uses fewer K slices). Skinny requires M <= 16.
// Throws strata::Error on bad shapes or a failed launch.
void w4a16_linear(const void* x, int M, const W4A16Weight& w, void* y, void* workspace, size_t workspace_bytes,
                  void* stream, const W4A16Options& opt = {});

}  // namespace strata::cuda
