#include "quant/convert.h"

#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/file.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "quant/gguf_blocks.h"
#include "quant/int4_format.h"

namespace strata {

namespace {

// f32 -> fp16 when the value is exactly representable (normal or subnormal); false otherwise.
bool f16_exact(float f, uint16_t* out) {
  if (f == 0.0f) {
    *out = std::signbit(f) ? 0x8000 : 0;
    return true;
  }
  if (!std::isfinite(f)) return false;
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  const float a = std::fabs(f);
  int e;
  const float m = std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
  uint16_t h;
  if (e >= -13 && e <= 16) {  // normal fp16: a in [2^-14, 65504]
    const float mant = (m * 2.0f - 1.0f) * 1024.0f;  // 10 fraction bits
    if (mant != std::floor(mant)) return false;
    h = uint16_t(((e - 1 + 15) << 10) | uint16_t(mant));
  } else if (e < -13 && e >= -23) {  // subnormal: a = k * 2^-24
    const float k = std::ldexp(a, 24);
    if (k != std::floor(k)) return false;
    h = uint16_t(k);
  } else {
    return false;
  }
  *out = sign | h;
  return f16_to_f32(*out) == f;
}

bool bf16_exact(float f, uint16_t* out) {
  *out = f32_to_bf16(f);
  return bf16_to_f32(*out) == f || (std::isnan(f) && std::isnan(bf16_to_f32(*out)));
}

uint32_t ggml_type_of(DType t, const std::string& name) {
  switch (t) {
    case DType::F32: return uint32_t(GgmlType::F32);
    case DType::F16: return uint32_t(GgmlType::F16);
    case DType::BF16: return uint32_t(GgmlType::BF16);
    case DType::I8: return 24;
    case DType::I16: return 25;
    case DType::I32: return 26;
    case DType::I64: return 27;
    case DType::F64: return 28;
    default: throw Error("tensor " + name + ": dtype " + dtype_name(t) + " has no GGUF equivalent");
  }
}

DType dtype_of(uint32_t ggml, const std::string& name) {
  switch (ggml) {
    case 0: return DType::F32;
    case 1: return DType::F16;
    case 30: return DType::BF16;
    case 24: return DType::I8;
    case 25: return DType::I16;
    case 26: return DType::I32;
    case 27: return DType::I64;
    case 28: return DType::F64;
    default: throw Error("tensor " + name + ": ggml type " + ggml_type_info(ggml)->name + " has no safetensors equivalent");
  }
}

std::string read_file(const std::string& path) { return read_regular_file(path); }

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

}  // namespace

void ct_row_to_q4_0(const uint32_t* packed, const uint16_t* scales, int K, uint8_t* blocks, const std::string& what) {
  for (int g = 0; g < K / 32; g++) {
    uint8_t* b = blocks + size_t(g) * 18;
    uint16_t d;
    if (!f16_exact(bf16_to_f32(scales[g]), &d))
      throw Error(what + ": group " + std::to_string(g) + " scale " + std::to_string(bf16_to_f32(scales[g])) +
                  " has no exact fp16 value, so Q4_0 cannot hold it losslessly");
    std::memcpy(b, &d, 2);
    for (int j = 0; j < 16; j++) {
      const int lo = int4_code(packed, 32 * g + j) + 8, hi = int4_code(packed, 32 * g + j + 16) + 8;
      b[2 + j] = uint8_t(lo | (hi << 4));
    }
  }
}

void q4_0_row_to_ct(const uint8_t* blocks, int K, uint32_t* packed, uint16_t* scales, const std::string& what) {
  std::memset(packed, 0, size_t(K / 8) * 4);
  for (int g = 0; g < K / 32; g++) {
    const uint8_t* b = blocks + size_t(g) * 18;
    uint16_t d;
    std::memcpy(&d, b, 2);
    if (!bf16_exact(f16_to_f32(d), &scales[g]))
      throw Error(what + ": block " + std::to_string(g) + " scale " + std::to_string(f16_to_f32(d)) +
                  " has no exact bf16 value, so compressed-tensors cannot hold it losslessly");
    for (int j = 0; j < 32; j++) {
      const uint32_t u = j < 16 ? (b[2 + j] & 0xF) : (b[2 + j - 16] >> 4);
      const int k = 32 * g + j;
      packed[k >> 3] |= u << ((k & 7) * 4);
    }
  }
}

void convert_ct_to_gguf(const std::string& src_dir, const std::string& dst_gguf) {
  const std::string config = read_file(src_dir + "/config.json");
  TensorStore store = TensorStore::open(src_dir);
  std::vector<std::vector<uint8_t>> owned;  // Q4_0 data built here
  std::vector<GgufWriteTensor> out;
  for (const auto& [name, t] : store.tensors()) {
    if (ends_with(name, ".weight_scale") || ends_with(name, ".weight_shape")) continue;  // part of weight_packed
    if (ends_with(name, ".weight_packed")) {
      const std::string base = name.substr(0, name.size() - std::string(".weight_packed").size());
      const TensorView& sc = store.get(base + ".weight_scale");
      STRATA_CHECK(t.dtype == DType::I32 && t.shape.size() == 2 && sc.dtype == DType::BF16 && sc.shape.size() == 2,
                   src_dir + ": " + base + " is not compressed-tensors int4 (int32 weight_packed, bf16 weight_scale)");
      const int N = int(t.shape[0]), K = int(t.shape[1]) * 8;
      STRATA_CHECK(sc.shape[0] == N && sc.shape[1] * 32 == K,
                   src_dir + ": " + base + " scales are not one per 32 elements (only group 32 maps to Q4_0)");
      if (store.has(base + ".weight_shape")) {
        const TensorView& sh = store.get(base + ".weight_shape");
        int64_t dims[2] = {0, 0};
        STRATA_CHECK(sh.dtype == DType::I64 && sh.nbytes == 16, src_dir + ": " + base + ".weight_shape must be int64[2]");
        std::memcpy(dims, sh.data, 16);
        STRATA_CHECK(dims[0] == N && dims[1] == K, src_dir + ": " + base + ".weight_shape disagrees with weight_packed");
      }
      owned.emplace_back(size_t(N) * (K / 32) * 18);
      for (int n = 0; n < N; n++)
        ct_row_to_q4_0(reinterpret_cast<const uint32_t*>(t.data) + size_t(n) * (K / 8),
                       reinterpret_cast<const uint16_t*>(sc.data) + size_t(n) * (K / 32), K,
                       owned.back().data() + size_t(n) * (K / 32) * 18, base + " row " + std::to_string(n));
      out.push_back({base + ".weight", uint32_t(GgmlType::Q4_0), {K, N}, owned.back().data(), owned.back().size()});
      continue;
    }
    std::vector<int64_t> dims(t.shape.rbegin(), t.shape.rend());
    if (dims.empty()) dims = {1};
    out.push_back({name, ggml_type_of(t.dtype, name), dims, t.data, t.nbytes});
  }
  std::string arch = "strata";
  std::vector<std::pair<std::string, GgufWriteValue>> md = {
      {"general.architecture", {GgufType::STRING, arch, 0, 0}},
      {"general.name", {GgufType::STRING, src_dir.substr(src_dir.find_last_of('/') + 1), 0, 0}},
      {"strata.hf_config_json", {GgufType::STRING, config, 0, 0}},
  };
  write_gguf(dst_gguf, md, out);
}

void convert_gguf_to_ct(const std::string& src_gguf, const std::string& dst_dir) {
  GgufFile g = GgufFile::open(src_gguf);
  STRATA_CHECK(g.has("strata.hf_config_json"),
               src_gguf + ": no strata.hf_config_json metadata (only GGUF files written by strata convert carry the "
                          "Hugging Face config needed to rebuild a checkpoint)");
  const std::string config = g.get_string("strata.hf_config_json");
  std::vector<std::vector<uint8_t>> owned;
  std::vector<TensorToWrite> out;
  for (const GgufTensor& t : g.tensors()) {
    std::vector<int64_t> shape(t.dims.rbegin(), t.dims.rend());
    if (t.type == uint32_t(GgmlType::Q4_0)) {
      STRATA_CHECK(shape.size() == 2 && ends_with(t.name, ".weight"),
                   src_gguf + ": Q4_0 tensor " + t.name + " must be a 2-D .weight");
      const std::string base = t.name.substr(0, t.name.size() - 7);
      const int N = int(shape[0]), K = int(shape[1]);
      owned.emplace_back(size_t(N) * K / 2);
      uint8_t* packed = owned.back().data();
      owned.emplace_back(size_t(N) * (K / 32) * 2);
      uint8_t* scales = owned.back().data();
      for (int n = 0; n < N; n++)
        q4_0_row_to_ct(t.data + size_t(n) * (K / 32) * 18, K, reinterpret_cast<uint32_t*>(packed) + size_t(n) * (K / 8),
                       reinterpret_cast<uint16_t*>(scales) + size_t(n) * (K / 32), t.name + " row " + std::to_string(n));
      owned.emplace_back(16);
      int64_t dims[2] = {N, K};
      std::memcpy(owned.back().data(), dims, 16);
      out.push_back({base + ".weight_packed", DType::I32, {N, K / 8}, packed});
      out.push_back({base + ".weight_scale", DType::BF16, {N, K / 32}, scales});
      out.push_back({base + ".weight_shape", DType::I64, {2}, owned.back().data()});
      continue;
    }
    out.push_back({t.name, dtype_of(t.type, t.name), shape, t.data});
  }
  ::mkdir(dst_dir.c_str(), 0755);
  std::ofstream cf(dst_dir + "/config.json", std::ios::binary);
  STRATA_CHECK(cf, "cannot write " + dst_dir + "/config.json");
  cf << config;
  cf.close();
  STRATA_CHECK(cf, "write error on " + dst_dir + "/config.json");
  write_safetensors(dst_dir + "/model.safetensors", out);
}

}  // namespace strata
