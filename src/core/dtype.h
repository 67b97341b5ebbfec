// Element types of stored tensors and the scalar conversions between them.
// Not a tensor library: activations are plain f32 arrays; this only names what files hold.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

namespace strata {

enum class DType { F32, F16, BF16, F64, I8, U8, I16, I32, I64, BOOL };

// Bytes per element.
size_t dtype_size(DType t);
// "F32", "BF16", ... as safetensors spells them.
const char* dtype_name(DType t);
// Parses a safetensors dtype string; returns false for unknown names (F8_E4M3 etc.).
bool dtype_from_name(const std::string& s, DType* out);

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round-to-nearest-even, NaN kept quiet: the same rounding torch uses for .to(bfloat16).
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

float f16_to_f32(uint16_t h);

}  // namespace strata
