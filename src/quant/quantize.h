// `strata quantize` as a library: a bf16/f16/f32 Hugging Face checkpoint to a compressed-tensors
// pack-quantized INT4 checkpoint (layout: quant/int4_format.h, grid: quant/int4_quantize.h), RTN
// or GPTQ, streamed tensor by tensor into sharded safetensors. Not the calibration run (the CLI
// collects Hessians with quant/calibration.h) and not an evaluator (quant/perplexity.h).
#pragma once
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "quant/calibration.h"
#include "quant/gptq.h"
#include "quant/int4_quantize.h"

namespace strata {

struct QuantizeOptions {
  bool gptq = false;  // false: round to nearest
  Int4Scheme scheme;
  bool ignore_given = false;        // false: default_ignore_list()
  std::vector<std::string> ignore;  // compressed-tensors ignore entries (names or "re:" patterns)
  size_t max_shard_bytes = size_t(5) << 30;
  GptqOptions gptq_options;
  // GPTQ: input Hessians by module name; a quantised module without one falls back to RTN (an
  // expert no calibration token was routed to) and is flagged in the report.
  const std::map<std::string, InputHessian>* hessians = nullptr;
  bool progress = true;  // a progress bar on stderr
};

struct TensorQuantReport {
  std::string module;
  int n_out = 0, n_in = 0;
  double rel_err = 0;   // ||W - dequant(Q)||_F / ||W||_F
  bool gptq = false;    // false: RTN (asked for, or no Hessian)
  long long calib_rows = 0;
};

struct QuantizeSummary {
  std::vector<std::string> ignore;  // as written to quantization_config.ignore
  std::vector<TensorQuantReport> tensors;
  int n_copied = 0;  // tensors written unchanged
  int n_shards = 0;
  size_t bytes_out = 0;
  double seconds = 0;
};

// Modules that are nn.Linear in the Hugging Face model: every 2-D `X.weight` but embeddings
// (routers included), sorted.
std::vector<std::string> linear_modules(const TensorStore& store, const std::string& config_json);

// The default ignore list. Dense models: lm_head. MoE models, as Kimi-K2-Thinking ships:
// lm_head, attention, shared experts, dense MLPs and routers, each pattern listed only when it
// matches one of `linears`. Embeddings are never Linear modules, so never quantised.
// (The kimi_k2_int4 fixture differs by the router: it keeps Kimi's list, which has no router
// entry, and so quantizes mlp.gate; pass its list with --ignore to reproduce it.)
std::vector<std::string> default_ignore_list(const std::vector<std::string>& linears, const std::string& config_json);

// The modules the options quantise (linears minus the ignore list); throws Error naming a module
// whose in_features is not a multiple of the group size.
std::vector<std::string> modules_to_quantize(const TensorStore& store, const std::string& config_json,
                                             const QuantizeOptions& opt, std::vector<std::string>* ignore_out);

// `quantization_config` for the scheme and ignore list, and config.json text with it appended
// (the original text kept byte for byte, as the compressed-tensors fixtures were written).
std::string quantization_config_json(const Int4Scheme& scheme, const std::vector<std::string>& ignore);
std::string config_with_quantization(const std::string& config_text, const std::string& quantization_config);

QuantizeSummary quantize_checkpoint(const std::string& in_dir, const std::string& out_dir, const QuantizeOptions& opt);

// The summary and per-tensor report as one JSON object.
std::string quantize_summary_json(const QuantizeSummary& s);

}  // namespace strata
