// The INT4 weight formats Strata reads, documented once, here.
// Not kernels: those live in kernels/; this is layout, config and the element-level reference.
//
// compressed-tensors `pack-quantized` (Kimi-K2-Thinking; W4A16, symmetric, group 32 along K):
//   X.weight_packed  int32 [N, K/8]   element k = 8j+i of row n sits in bits 4i..4i+3 of word
//                                     [n, j], stored offset-binary as u = q + 8 (0..15). In bytes
//                                     (little endian) byte b holds element 2b (low nibble) and
//                                     2b+1 (high nibble).
//   X.weight_scale   bf16  [N, K/32]  one scale per group of 32 consecutive k
//   X.weight_shape   int64 [2] = [N, K]
//   w[n, k] = (u[n, k] - 8) * scale[n, k / 32]      (no zero point)
// Quantiser (compressed-tensors): s = bf16(amax / 7.5); q = round_half_even(clamp(w / s, -8, 7)).
#pragma once
#include <cstdint>
#include <memory>
#include <regex>
#include <string>
#include <vector>

namespace strata {

constexpr int kInt4GroupSize = 32;

enum class QuantMethod { None, CompressedTensorsInt4 };

struct QuantConfig {
  QuantMethod method = QuantMethod::None;
  int group_size = kInt4GroupSize;
  // `quantization_config.ignore`: module names, or "re:<regex>" matched at the start (re.match).
  std::vector<std::string> ignore;

  // True when module `name` (e.g. "model.layers.0.self_attn.q_proj") stays unquantized.
  bool is_ignored(const std::string& module_name) const;

 private:
  // Compiled "re:" patterns, built on first use (models have ~10^5 linears, few patterns).
  mutable std::shared_ptr<std::vector<std::regex>> compiled_;
};

// Element k of packed row `row_words` (K/8 words) as the signed code q in [-8, 7].
inline int int4_code(const uint32_t* row_words, int k) {
  return int((row_words[k >> 3] >> ((k & 7) * 4)) & 0xF) - 8;
}

}  // namespace strata
