// `strata export`: a dense Hugging Face checkpoint (config.json + safetensors) from a Llama GGUF
// or from a compressed-tensors INT4 directory (quant/export.h). Not a quantiser: `strata quantize`.
#include <sys/stat.h>

#include <cstdio>

#include "cli/command.h"
#include "core/error.h"
#include "quant/export.h"

namespace strata::cli {
namespace {

int cmd_export(const Args& a) {
  const std::string in = a.need("input"), out = a.need("output");
  const std::string dt = a.get("dtype", "bf16");
  STRATA_CHECK(dt == "bf16" || dt == "f32", "--dtype must be bf16 or f32");
  const DType dtype = dt == "bf16" ? DType::BF16 : DType::F32;
  struct stat st;
  STRATA_CHECK(::stat(in.c_str(), &st) == 0, "cannot open " + in);
  if (S_ISDIR(st.st_mode)) {
    dequantize_checkpoint(in, out, dtype);
  } else {
    export_gguf_to_hf(in, out, dtype);
  }
  std::fprintf(stderr, "wrote %s\n", out.c_str());
  return 0;
}

const CommandRegistration kExport({"export",
                                   "  strata export --input F.gguf|CT_DIR --output DIR [--dtype bf16|f32]\n"
                                   "      dense HF checkpoint: a Llama GGUF (q/k un-permuted, no tokenizer.json: pass the\n"
                                   "      .gguf as --tokenizer) or a compressed-tensors INT4 dir (any group, zero points)",
                                   {},
                                   cmd_export});

}  // namespace
}  // namespace strata::cli
