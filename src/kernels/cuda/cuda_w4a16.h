// Public CUDA W4A16 linear: y[M, N] (bf16) = x[M, K] (bf16) . W^T with W an INT4 weight repacked once
// (w4a16_repack.h); f32 accumulation, group-32 bf16 scales applied in f32. Hopper (sm_90a) build.
// Not a general GEMM: no bias, no transposes, no fp16; and no CUDA types here (streams are void*).
//
// Paths:
//   Skinny (M <= 16, decode): one warp per 16 weight rows streams its K slice straight from DRAM into
//     registers (16-byte loads, 4 tiles in flight), dequantizes with the lop3/0x4300 trick and runs
//     mma.m16n8k16 with the tokens as the 8/16-wide operand; the warps of a CTA split K and reduce in smem.
//   Tiled (any M, prefill): CTA tile 64|128 tokens x 128 rows x 64 k, 4-stage cp.async pipeline of
//     activations and packed weights in shared memory, 64x32 warp tiles dequantizing in registers,
//     split-K over CTAs (f32 partials in a workspace) when the tile grid would not fill the GPU.
//   Naive: one thread per output, reads the layout element by element (checks only; slow).
#pragma once
#include <cstddef>

#include "kernels/cuda/w4a16_repack.h"

namespace strata::cuda {

enum class W4A16Path { Auto, Skinny, Tiled, Naive };

const char* w4a16_path_name(W4A16Path p);

struct W4A16Options {
  W4A16Path path = W4A16Path::Auto;
  int split_k = 0;  // Tiled only: 0 = chosen from the shape and the GPU; n > 0 forces (at most) n K slices
};

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
