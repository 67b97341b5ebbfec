// `strata convert`: compressed-tensors INT4 checkpoint <-> GGUF Q4_0, losslessly (quant/convert.h).
// The direction follows the input: a directory becomes a .gguf, a .gguf becomes a directory.
#include <sys/stat.h>

#include <cstdio>

#include "cli/command.h"
#include "core/error.h"
#include "quant/convert.h"

namespace strata::cli {
namespace {

int cmd_convert(const Args& a) {
  const std::string in = a.need("input"), out = a.need("output");
  struct stat st;
  STRATA_CHECK(::stat(in.c_str(), &st) == 0, "cannot open " + in);
  if (S_ISDIR(st.st_mode)) {
    convert_ct_to_gguf(in, out);
  } else {
    convert_gguf_to_ct(in, out);
  }
  std::fprintf(stderr, "wrote %s\n", out.c_str());
  return 0;
}

const CommandRegistration kConvert({"convert",
                                    "  strata convert --input DIR|F.gguf --output F.gguf|DIR\n"
                                    "      compressed-tensors INT4 (group 32, symmetric) <-> GGUF Q4_0, lossless both ways;\n"
                                    "      other tensors keep their dtype; config.json travels in the GGUF metadata",
                                    {},
                                    cmd_convert});

}  // namespace
}  // namespace strata::cli
