// LinearWeight: a view of one linear layer's weight as stored (bf16/f16/f32 dense or packed INT4).
// Not an owner of the bytes: they live in the mmapped checkpoint (or a buffer the model owns).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace strata {

// Int4: compressed-tensors pack-quantized (quant/int4_format.h). Gguf: rows of ggml blocks
// (quant/gguf_blocks.h: Q4_0, Q4_1, Q8_0, K-quants...), read in place from the mapped file.
enum class WeightKind { F32, F16, BF16, Int4, Gguf };

struct LinearWeight {
  std::string name;  // module name, for errors and stats
  WeightKind kind = WeightKind::BF16;
  int n_out = 0;  // N
  int n_in = 0;   // K
  const void* dense = nullptr;      // F32/F16/BF16: [N, K] row-major
  const uint32_t* packed = nullptr;  // Int4: [N, K/8] (layout: quant/int4_format.h)
  const uint16_t* scales = nullptr;  // Int4: bf16 [N, K/32]
  uint32_t ggml_type = 0;            // Gguf: the block type (quant/gguf_blocks.h GgmlType)
  const uint8_t* blocks = nullptr;   // Gguf: N rows of row_bytes
  size_t row_bytes = 0;              // Gguf: bytes of one row of K elements
  std::vector<float> bias;           // [N] f32, or empty

  bool valid() const { return n_out > 0; }
  // Bytes one full pass over the weight reads (payload + scales), for bandwidth accounting.
  size_t bytes() const;
};

// Row n of W as f32 [K]: the reference dequantisation every kernel must agree with.
void decode_weight_row(const LinearWeight& w, int n, float* out);

}  // namespace strata

namespace strata {
// Rows [row0, row0 + n_rows) of w as a weight of its own (no copy): per-head slices of kv_b.
LinearWeight weight_rows(const LinearWeight& w, int row0, int n_rows);
}  // namespace strata
