// Dense Hugging Face checkpoints out of what Strata can load: a Llama GGUF (any ggml type Strata
// decodes, e.g. SmolLM2's Q4_1) or a compressed-tensors pack-quantized directory (any group size,
// symmetric or asymmetric), written as config.json + safetensors in bf16 or f32.
// Not lossless in general (bf16 rounds a Q4_1 value) and not a tokenizer converter: a GGUF's
// vocabulary stays in the .gguf (pass it as --tokenizer).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace strata {

// A Llama-architecture GGUF -> HF LlamaForCausalLM checkpoint. q/k rows are un-permuted back to
// Hugging Face's rotate-half order (convert_hf_to_gguf permutes them for ggml's pairwise rope).
void export_gguf_to_hf(const std::string& gguf_path, const std::string& out_dir, DType dtype);

// compressed-tensors pack-quantized -> the same checkpoint with every quantised module as a dense
// `X.weight` = (q - z) * s (computed in f32, then stored as `dtype`); quantization_config removed.
// With dtype F32 the weights are exactly the dequantised values (the product needs ~12 bits).
void dequantize_checkpoint(const std::string& ct_dir, const std::string& out_dir, DType dtype);

// One compressed-tensors module dequantised: packed [N, K/8], scales bf16 [N, K/gs], zeros packed
// along N [ceil(N/8), K/gs] or null (symmetric) -> out [N, K] f32.
void ct_dequantize(const uint32_t* packed, const uint16_t* scales, const uint32_t* zeros, int N, int K, int group_size,
                   float* out);

}  // namespace strata
