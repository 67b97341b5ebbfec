// LinearWeight byte accounting and the scalar row decoder (the numerics reference).
#include "core/weight.h"

#include "core/dtype.h"
#include "quant/gguf_blocks.h"
#include "quant/int4_format.h"

namespace strata {

size_t LinearWeight::bytes() const {
  const size_t nk = size_t(n_out) * size_t(n_in);
  switch (kind) {
    case WeightKind::F32: return nk * 4;
    case WeightKind::F16:
    case WeightKind::BF16: return nk * 2;
    case WeightKind::Int4: return nk / 2 + nk / kInt4GroupSize * 2;
    case WeightKind::Gguf: return size_t(n_out) * row_bytes;
  }
  return 0;
}

void decode_weight_row(const LinearWeight& w, int n, float* out) {
  const size_t K = size_t(w.n_in);
  switch (w.kind) {
    case WeightKind::F32: {
      const float* r = static_cast<const float*>(w.dense) + n * K;
      for (size_t k = 0; k < K; k++) out[k] = r[k];
      break;
    }
    case WeightKind::F16: {
      const uint16_t* r = static_cast<const uint16_t*>(w.dense) + n * K;
      for (size_t k = 0; k < K; k++) out[k] = f16_to_f32(r[k]);
      break;
    }
    case WeightKind::BF16: {
      const uint16_t* r = static_cast<const uint16_t*>(w.dense) + n * K;
      for (size_t k = 0; k < K; k++) out[k] = bf16_to_f32(r[k]);
      break;
    }
    case WeightKind::Int4: {
      const uint32_t* words = w.packed + n * (K / 8);
      const uint16_t* s = w.scales + n * (K / kInt4GroupSize);
      for (size_t k = 0; k < K; k++) out[k] = float(int4_code(words, int(k))) * bf16_to_f32(s[k / kInt4GroupSize]);
      break;
    }
    case WeightKind::Gguf: gguf_dequant_row(w.ggml_type, w.blocks + size_t(n) * w.row_bytes, int64_t(K), out); break;
  }
}

}  // namespace strata

namespace strata {
LinearWeight weight_rows(const LinearWeight& w, int row0, int n_rows) {
  LinearWeight r = w;
  r.n_out = n_rows;
  const size_t K = size_t(w.n_in);
  switch (w.kind) {
    case WeightKind::F32: r.dense = static_cast<const float*>(w.dense) + row0 * K; break;
    case WeightKind::F16:
    case WeightKind::BF16: r.dense = static_cast<const uint16_t*>(w.dense) + row0 * K; break;
    case WeightKind::Int4:
      r.packed = w.packed + row0 * (K / 8);
      r.scales = w.scales + row0 * (K / kInt4GroupSize);
      break;
    case WeightKind::Gguf: r.blocks = w.blocks + size_t(row0) * w.row_bytes; break;
  }
  if (!w.bias.empty()) r.bias.assign(w.bias.begin() + row0, w.bias.begin() + row0 + n_rows);
  return r;
}
}  // namespace strata
