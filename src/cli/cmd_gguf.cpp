// `strata gguf-info` (metadata and tensor table of a GGUF file, as JSON) and `strata
// gguf-dequant` (one tensor decoded to f32 by quant/gguf_blocks.h, raw little-endian floats).
// Inspection tools and the hook the dequantization tests use against the `gguf` package.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <vector>

#include "cli/command.h"
#include "core/error.h"
#include "io/gguf.h"
#include "quant/gguf_blocks.h"

namespace strata::cli {
namespace {

int cmd_gguf_info(const Args& a) {
  GgufFile g = GgufFile::open(a.need("file"));
  nlohmann::json j;
  j["version"] = g.version();
  nlohmann::json& md = j["metadata"];
  for (const auto& [k, v] : g.metadata()) {
    if (v.type == GgufType::ARRAY) {
      md[k] = {{"array", gguf_type_name(v.elem)}, {"length", v.array_size()}};
    } else if (v.type == GgufType::STRING) {
      md[k] = v.s.size() > 200 ? v.s.substr(0, 200) + "..." : v.s;
    } else if (v.is_float()) {
      md[k] = v.f;
    } else if (v.type == GgufType::BOOL) {
      md[k] = v.i != 0;
    } else {
      md[k] = v.i;
    }
  }
  for (const GgufTensor& t : g.tensors()) {
    const GgmlTypeInfo* ti = ggml_type_info(t.type);
    j["tensors"].push_back({{"name", t.name}, {"type", ti->name}, {"dims", t.dims}, {"bytes", t.nbytes}});
  }
  // GGUF strings are not guaranteed UTF-8: show ill-formed bytes as U+FFFD rather than fail.
  std::printf("%s\n", j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  return 0;
}

int cmd_gguf_dequant(const Args& a) {
  GgufFile g = GgufFile::open(a.need("file"));
  const std::string name = a.need("tensor");
  const GgufTensor* t = g.find_tensor(name);
  STRATA_CHECK(t, a.need("file") + ": no tensor " + name);
  std::vector<float> out(size_t(t->numel()));
  const int64_t row = t->dims[0];
  const size_t row_bytes = gguf_row_bytes(t->type, row);
  for (int64_t r = 0; r < t->numel() / row; r++)
    gguf_dequant_row(t->type, t->data + size_t(r) * row_bytes, row, out.data() + size_t(r * row));
  std::FILE* f = std::fopen(a.need("output").c_str(), "wb");
  STRATA_CHECK(f, "cannot write " + a.need("output"));
  bool ok = std::fwrite(out.data(), 4, out.size(), f) == out.size();
  ok = std::fclose(f) == 0 && ok;
  STRATA_CHECK(ok, "short write to " + a.need("output"));
  return 0;
}

const CommandRegistration kInfo({"gguf-info", "  strata gguf-info    --file F.gguf\n      metadata and tensors as JSON", {},
                                 cmd_gguf_info});
const CommandRegistration kDequant({"gguf-dequant",
                                    "  strata gguf-dequant --file F.gguf --tensor NAME --output OUT.f32\n"
                                    "      the tensor decoded to raw little-endian f32 (rows in file order)",
                                    {},
                                    cmd_gguf_dequant});

}  // namespace
}  // namespace strata::cli
