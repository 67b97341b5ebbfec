#include "quant/gguf_blocks.h"

#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "io/gguf.h"

namespace strata {

namespace {

inline float h2f(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// Six-bit scale and min number j of a K-quant super-block (ggml get_scale_min_k4).
inline void scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

void deq_q4_0(const uint8_t* b, float* y) {
  float d = h2f(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; j++) {
    y[j] = float((qs[j] & 0xF) - 8) * d;
    y[j + 16] = float((qs[j] >> 4) - 8) * d;
  }
}
void deq_q4_1(const uint8_t* b, float* y) {
  float d = h2f(b), m = h2f(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; j++) {
    y[j] = float(qs[j] & 0xF) * d + m;
    y[j + 16] = float(qs[j] >> 4) * d + m;
  }
}
void deq_q5_0(const uint8_t* b, float* y) {
  float d = h2f(b);
  uint32_t qh;
  std::memcpy(&qh, b + 2, 4);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < 16; j++) {
    int x0 = ((qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10)) - 16;
    int x1 = ((qs[j] >> 4) | ((qh >> (j + 12)) & 0x10)) - 16;
    y[j] = float(x0) * d;
    y[j + 16] = float(x1) * d;
  }
}
void deq_q5_1(const uint8_t* b, float* y) {
  float d = h2f(b), m = h2f(b + 2);
  uint32_t qh;
  std::memcpy(&qh, b + 4, 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < 16; j++) {
    int x0 = (qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10);
    int x1 = (qs[j] >> 4) | ((qh >> (j + 12)) & 0x10);
    y[j] = float(x0) * d + m;
    y[j + 16] = float(x1) * d + m;
  }
}
void deq_q8_0(const uint8_t* b, float* y) {
  float d = h2f(b);
  const int8_t* qs = reinterpret_cast<const int8_t*>(b + 2);
  for (int j = 0; j < 32; j++) y[j] = float(qs[j]) * d;
}
void deq_q4_k(const uint8_t* b, float* y) {
  float d = h2f(b), dmin = h2f(b + 2);
  const uint8_t* sc = b + 4;
  const uint8_t* q = b + 16;
  int is = 0;
  for (int j = 0; j < 256; j += 64) {
    uint8_t s, m;
    scale_min_k4(is, sc, &s, &m);
    float d1 = d * s, m1 = dmin * m;
    scale_min_k4(is + 1, sc, &s, &m);
    float d2 = d * s, m2 = dmin * m;
    for (int l = 0; l < 32; l++) *y++ = d1 * float(q[l] & 0xF) - m1;
    for (int l = 0; l < 32; l++) *y++ = d2 * float(q[l] >> 4) - m2;
    q += 32;
    is += 2;
  }
}
void deq_q5_k(const uint8_t* b, float* y) {
  float d = h2f(b), dmin = h2f(b + 2);
  const uint8_t* sc = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* ql = b + 48;
  int is = 0;
  uint8_t u1 = 1, u2 = 2;
  for (int j = 0; j < 256; j += 64) {
    uint8_t s, m;
    scale_min_k4(is, sc, &s, &m);
    float d1 = d * s, m1 = dmin * m;
    scale_min_k4(is + 1, sc, &s, &m);
    float d2 = d * s, m2 = dmin * m;
    for (int l = 0; l < 32; l++) *y++ = d1 * float((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
    for (int l = 0; l < 32; l++) *y++ = d2 * float((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
    ql += 32;
    is += 2;
    u1 = uint8_t(u1 << 2);
    u2 = uint8_t(u2 << 2);
  }
}
void deq_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  float d = h2f(b + 208);
  for (int n = 0; n < 256; n += 128) {
    for (int l = 0; l < 32; l++) {
      int is = l / 16;
      int q1 = int((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      int q2 = int((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      int q3 = int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      int q4 = int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * float(sc[is]) * float(q1);
      y[l + 32] = d * float(sc[is + 2]) * float(q2);
      y[l + 64] = d * float(sc[is + 4]) * float(q3);
      y[l + 96] = d * float(sc[is + 6]) * float(q4);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

using BlockFn = void (*)(const uint8_t*, float*);
BlockFn block_fn(uint32_t type) {
  switch (GgmlType(type)) {
    case GgmlType::Q4_0: return deq_q4_0;
    case GgmlType::Q4_1: return deq_q4_1;
    case GgmlType::Q5_0: return deq_q5_0;
    case GgmlType::Q5_1: return deq_q5_1;
    case GgmlType::Q8_0: return deq_q8_0;
    case GgmlType::Q4_K: return deq_q4_k;
    case GgmlType::Q5_K: return deq_q5_k;
    case GgmlType::Q6_K: return deq_q6_k;
    default: return nullptr;
  }
}

}  // namespace

bool gguf_can_dequant(uint32_t type) {
  return type == uint32_t(GgmlType::F32) || type == uint32_t(GgmlType::F16) || type == uint32_t(GgmlType::BF16) ||
         block_fn(type) != nullptr;
}

size_t gguf_row_bytes(uint32_t type, int64_t n) {
  const GgmlTypeInfo* t = ggml_type_info(type);
  STRATA_CHECK(t, "unknown ggml type " + std::to_string(type));
  return size_t(n / t->block_elems * t->block_bytes);
}

void gguf_dequant_row(uint32_t type, const uint8_t* row, int64_t n, float* out) {
  switch (GgmlType(type)) {
    case GgmlType::F32: std::memcpy(out, row, size_t(n) * 4); return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; i++) out[i] = h2f(row + 2 * i);
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        std::memcpy(&h, row + 2 * i, 2);
        out[i] = bf16_to_f32(h);
      }
      return;
    default: break;
  }
  BlockFn fn = block_fn(type);
  const GgmlTypeInfo* t = ggml_type_info(type);
  STRATA_CHECK(fn && t, std::string("dequantization of ggml type ") + (t ? t->name : std::to_string(type).c_str()) +
                            " is not supported");
  for (int64_t b = 0; b < n / t->block_elems; b++) fn(row + b * t->block_bytes, out + b * t->block_elems);
}

}  // namespace strata
