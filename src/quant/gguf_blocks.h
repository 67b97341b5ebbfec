// GGUF / ggml block quantization formats, documented once, here (llama.cpp ggml-common.h), and
// their reference dequantization. Kernels that read these blocks directly must agree with it.
//
// All scales are IEEE fp16 (`d`, `m`/`dmin`). Elements of a row are consecutive blocks.
//   Q4_0  32 elems, 18 B: d, qs[16]      x[j] = ((qs[j] & 15) - 8) * d, x[j+16] = ((qs[j] >> 4) - 8) * d
//   Q4_1  32 elems, 20 B: d, m, qs[16]   x[j] = (qs[j] & 15) * d + m,  x[j+16] = (qs[j] >> 4) * d + m
//   Q5_0  32 elems, 22 B: d, qh(u32), qs[16]; 5th bit of element j is bit j of qh; value - 16, * d
//   Q5_1  32 elems, 24 B: d, m, qh(u32), qs[16]; as Q5_0 without the -16, then * d + m
//   Q8_0  32 elems, 34 B: d, qs[32] (int8)  x[j] = qs[j] * d
//   Q4_K 256 elems, 144 B: d, dmin, scales[12] (8 six-bit scale/min pairs), qs[128]
//        sub-block s of 32: x = d * sc[s] * q - dmin * mn[s]; 64 elems per 32 bytes of qs (low nibbles, then high)
//   Q5_K 256 elems, 176 B: d, dmin, scales[12], qh[32], qs[128]: Q4_K plus a 5th bit from qh
//   Q6_K 256 elems, 210 B: ql[128], qh[64], scales[16] (int8), d: x = d * scales[s16] * (q6 - 32)
// Symmetric Q4_0 is the GGUF twin of compressed-tensors INT4 group 32 (quant/int4_format.h):
// code q+8 in both, d (fp16) vs scale (bf16), nibble order differs (see convert).
#pragma once
#include <cstddef>
#include <cstdint>

namespace strata {

enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15, BF16 = 30,
};

// True when gguf_dequant_row can decode `type`.
bool gguf_can_dequant(uint32_t type);
// Decodes `n` elements (a multiple of the block size) starting at `row` into f32.
void gguf_dequant_row(uint32_t type, const uint8_t* row, int64_t n, float* out);
// Bytes of `n` elements of `type` (n a multiple of the block size).
size_t gguf_row_bytes(uint32_t type, int64_t n);

}  // namespace strata
