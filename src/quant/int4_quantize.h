// The INT4 quantisation grid Strata writes (compressed-tensors pack-quantized; layout in
// quant/int4_format.h): group parameters, round-to-nearest codes, packing. Not a checkpoint
// writer (quant/quantize.h) nor GPTQ (quant/gptq.h), which both use exactly this grid.
//
// Symmetric (what Kimi-K2's QAT trains against and the fixtures hold):
//   s = bf16(amax / 7.5),  q = round_half_even(clamp(w / s, -8, 7))            in fp32
// Asymmetric (compressed-tensors' minmax observer; zero point z is an integer in [-8, 7]):
//   lo = min(min w, 0), hi = max(max w, 0), s = bf16((hi - lo) / 15),
//   z = round_half_even(clamp(-8 - lo / s, -8, 7)),  q = round_half_even(clamp(w / s + z, -8, 7))
//   w ~= (q - z) * s. The zero point uses the stored bf16 s, so codes and dequantisation agree.
// A group whose scale would be 0 (all zeros) gets bf16's epsilon 2^-7 as compressed-tensors does.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace strata {

struct Int4Scheme {
  int group_size = 32;    // along K (the input axis); must divide K
  bool symmetric = true;  // false: per-group zero points (weight_zero_point)
};

// Scale (bf16 bits) and zero point of one group of `n` values (z = 0 when symmetric).
void int4_group_params(const float* w, int n, bool symmetric, uint16_t* scale, int* zero);

// The code q in [-8, 7] of value w under scale s (f32 of the bf16) and zero point z.
int int4_quantize_value(float w, float s, int z);

// One row: w [K] -> q [K], scales [K/gs] bf16 bits, zeros [K/gs] (all 0 when symmetric).
void rtn_quantize_row(const float* w, int K, const Int4Scheme& scheme, int8_t* q, uint16_t* scales, int8_t* zeros);

// q [K] in [-8, 7] -> packed [K/8]: element 8j+i in bits 4i..4i+3 of word j, as q + 8.
void pack_int4_row(const int8_t* q, int K, uint32_t* packed);

// Zero points z [N, G] -> [ceil(N/8), G] int32, packed along N (compressed-tensors'
// pack_to_int32(packed_dim=0)): z[8r+i, g] + 8 sits in bits 4i..4i+3 of word [r, g]; rows past N are 0.
std::vector<uint32_t> pack_int4_zeros(const int8_t* z, int N, int G);
// The inverse: element [n, g] of a [ceil(N/8), G] packing, as the signed z.
inline int int4_zero_at(const uint32_t* packed_z, int G, int n, int g) {
  return int((packed_z[size_t(n / 8) * G + g] >> ((n % 8) * 4)) & 0xF) - 8;
}

}  // namespace strata
