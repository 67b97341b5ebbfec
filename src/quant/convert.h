// Lossless conversion between compressed-tensors INT4 (pack-quantized, symmetric, group 32;
// quant/int4_format.h) and GGUF Q4_0 (quant/gguf_blocks.h): both store the code q+8 per element
// and one scale per 32, so only the nibble order and the scale type change. A bf16 scale becomes
// the fp16 `d` when exactly representable (and back), otherwise the conversion is an error.
// Tensor names stay the Hugging Face names; config.json travels as GGUF metadata
// `strata.hf_config_json`, so the round trip CT -> GGUF -> CT is bit-exact.
#pragma once
#include <cstdint>
#include <string>

namespace strata {

// One row: `packed` [K/8] words and bf16 `scales` [K/32] -> K/32 Q4_0 blocks of 18 bytes.
// Throws Error naming `what` when a scale has no exact fp16 value.
void ct_row_to_q4_0(const uint32_t* packed, const uint16_t* scales, int K, uint8_t* blocks, const std::string& what);
// The inverse; throws Error when an fp16 d has no exact bf16 value.
void q4_0_row_to_ct(const uint8_t* blocks, int K, uint32_t* packed, uint16_t* scales, const std::string& what);

// Whole checkpoints: a safetensors directory (config.json + model.safetensors or shards) to one
// .gguf file, and back to a directory (config.json + model.safetensors).
void convert_ct_to_gguf(const std::string& src_dir, const std::string& dst_gguf);
void convert_gguf_to_ct(const std::string& src_gguf, const std::string& dst_dir);

}  // namespace strata
