// The INT4 grid (quant/int4_quantize.h): fp32 arithmetic, bf16 scales, ties to even.
#include "quant/int4_quantize.h"

#include <algorithm>
#include <cmath>

#include "core/dtype.h"

namespace strata {

namespace {
// torch.finfo(torch.bfloat16).eps: compressed-tensors' replacement for a zero scale.
constexpr float kBf16Eps = 0.0078125f;
}  // namespace

void int4_group_params(const float* w, int n, bool symmetric, uint16_t* scale, int* zero) {
  float lo = 0.f, hi = 0.f;  // 0 is always representable (compressed-tensors clamps min<=0<=max)
  for (int i = 0; i < n; i++) {
    lo = std::min(lo, w[i]);
    hi = std::max(hi, w[i]);
  }
  if (symmetric) {
    const float amax = std::max(-lo, hi);
    *scale = f32_to_bf16(amax / 7.5f);  // (qmax - qmin) / 2 = 15 / 2
    if (bf16_to_f32(*scale) == 0.f) *scale = f32_to_bf16(kBf16Eps);
    *zero = 0;
    return;
  }
  *scale = f32_to_bf16((hi - lo) / 15.f);
  if (bf16_to_f32(*scale) == 0.f) *scale = f32_to_bf16(kBf16Eps);
  const float s = bf16_to_f32(*scale);
  *zero = int(std::nearbyint(std::clamp(-8.f - lo / s, -8.f, 7.f)));
}

int int4_quantize_value(float w, float s, int z) {
  // nearbyint under the default FE_TONEAREST mode is round-half-to-even, as torch.round.
  return int(std::nearbyint(std::clamp(w / s + float(z), -8.f, 7.f)));
}

void rtn_quantize_row(const float* w, int K, const Int4Scheme& scheme, int8_t* q, uint16_t* scales, int8_t* zeros) {
  const int gs = scheme.group_size;
  for (int g = 0; g < K / gs; g++) {
    int z = 0;
    int4_group_params(w + size_t(g) * gs, gs, scheme.symmetric, &scales[g], &z);
    zeros[g] = int8_t(z);
    const float s = bf16_to_f32(scales[g]);
    for (int i = 0; i < gs; i++) q[size_t(g) * gs + i] = int8_t(int4_quantize_value(w[size_t(g) * gs + i], s, z));
  }
}

void pack_int4_row(const int8_t* q, int K, uint32_t* packed) {
  for (int j = 0; j < K / 8; j++) {
    uint32_t word = 0;
    for (int i = 0; i < 8; i++) word |= uint32_t(q[8 * j + i] + 8) << (4 * i);
    packed[j] = word;
  }
}

std::vector<uint32_t> pack_int4_zeros(const int8_t* z, int N, int G) {
  const int R = (N + 7) / 8;
  std::vector<uint32_t> out(size_t(R) * G, 0);
  // compressed-tensors pads with 0 before adding the offset only for real rows: padding stays 0.
  for (int n = 0; n < N; n++)
    for (int g = 0; g < G; g++) out[size_t(n / 8) * G + g] |= uint32_t(z[size_t(n) * G + g] + 8) << (4 * (n % 8));
  return out;
}

}  // namespace strata
