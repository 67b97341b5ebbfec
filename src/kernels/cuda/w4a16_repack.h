// One-time repack of a compressed-tensors INT4 weight (quant/int4_format.h) into the CUDA kernels'
// device layout (kernels/cuda/w4a16_layout.h), and the device-resident weight it produces.
// Not a loader: callers bring the bytes; no CUDA types here (streams are void*, pointers plain).
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/weight.h"

namespace strata::cuda {

// A linear layer's INT4 weight on the device, in the kernels' layout.
struct W4A16Weight {
  int n_out = 0;               // N
  int n_in = 0;                // K
  uint32_t* packed = nullptr;  // device [N/16, K/64, 32, 4] uint32 (w4a16_layout.h)
  uint16_t* scales = nullptr;  // device bf16 [N/16, K/64, 8, 4]
  bool owned = false;          // buffers allocated by w4a16_upload (freed by w4a16_free)

  // Bytes a full pass reads (nibbles + scales), for bandwidth accounting; same as LinearWeight::bytes().
  size_t bytes() const { return size_t(n_out) * size_t(n_in) / 2 + size_t(n_out) * size_t(n_in) / 32 * 2; }
};

// Throws strata::Error unless N % 16 == 0, K % 64 == 0 and both are positive.
void w4a16_check_shape(int N, int K);

// Repack on the device, asynchronously on `stream` (a cudaStream_t; nullptr = default stream).
// ct_packed: device int32 [N, K/8], ct_scales: device bf16 [N, K/32] (compressed-tensors layout);
// out_packed: device [N*K/8] uint32, out_scales: device [N*K/32] bf16 (must not alias the inputs).
void w4a16_repack(const uint32_t* ct_packed, const uint16_t* ct_scales, int N, int K, uint32_t* out_packed,
                  uint16_t* out_scales, void* stream);

// Same, writing source row block b (16 rows) to output row block b * out_block_stride + out_block_offset of a
// larger device-layout weight with K columns (interleaving two weights, e.g. gate and up, block by block).
void w4a16_repack_blocks(const uint32_t* ct_packed, const uint16_t* ct_scales, int N, int K, uint32_t* out_packed,
                         uint16_t* out_scales, int out_block_stride, int out_block_offset, void* stream);

// Convenience for tools and tests: uploads a host LinearWeight of kind Int4 (packed/scales in host memory),
// repacks it and returns device buffers it owns (free with w4a16_free). Synchronous.
W4A16Weight w4a16_upload(const LinearWeight& host_weight);
void w4a16_free(W4A16Weight& w);

}  // namespace strata::cuda
