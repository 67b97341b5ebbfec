// Tensor lookup + validation for model loading; compressed-tensors INT4 modules stay packed.
#include "model/weight_loader.h"

#include <cstring>

#include "core/error.h"
#include "quant/int4_format.h"

namespace strata {

namespace {
std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); i++) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}
}  // namespace

const TensorView& WeightLoader::expect(const std::string& name, std::vector<int64_t> shape) const {
  const TensorView& t = store_.get(name);
  STRATA_CHECK(t.shape == shape, t.file + ": tensor '" + name + "' has shape " + t.shape_str() + ", expected " +
                                     shape_str(shape) + " from config.json");
  return t;
}

LinearWeight WeightLoader::linear(const std::string& module, int n_out, int n_in, bool bias) const {
  LinearWeight w;
  w.name = module;
  w.n_out = n_out;
  w.n_in = n_in;
  const bool packed = store_.has(module + ".weight_packed");
  if (packed) {
    STRATA_CHECK(cfg_.quant.method == QuantMethod::CompressedTensorsInt4,
                 store_.source() + ": '" + module + ".weight_packed' present but config.json has no "
                 "compressed-tensors quantization_config");
    STRATA_CHECK(!cfg_.quant.is_ignored(module),
                 store_.source() + ": '" + module + "' is in quantization_config.ignore but is stored packed");
    STRATA_CHECK(n_in % kInt4GroupSize == 0, store_.source() + ": '" + module + "' has in_features " +
                                                 std::to_string(n_in) + ", not a multiple of the group size 32");
    const TensorView& p = expect(module + ".weight_packed", {n_out, n_in / 8});
    const TensorView& s = expect(module + ".weight_scale", {n_out, n_in / kInt4GroupSize});
    STRATA_CHECK(p.dtype == DType::I32, p.file + ": '" + p.name + "' must be I32, is " + dtype_name(p.dtype));
    STRATA_CHECK(s.dtype == DType::BF16, s.file + ": '" + s.name + "' must be BF16, is " + dtype_name(s.dtype));
    if (store_.has(module + ".weight_shape")) {
      const TensorView& ws = expect(module + ".weight_shape", {2});
      int64_t dims[2] = {0, 0};
      if (ws.dtype == DType::I64) {
        std::memcpy(dims, ws.data, 16);
      } else if (ws.dtype == DType::I32) {
        int32_t d32[2];
        std::memcpy(d32, ws.data, 8);
        dims[0] = d32[0];
        dims[1] = d32[1];
      } else {
        throw Error(ws.file + ": '" + ws.name + "' must be I64 or I32, is " + dtype_name(ws.dtype));
      }
      STRATA_CHECK(dims[0] == n_out && dims[1] == n_in,
                   ws.file + ": '" + ws.name + "' says [" + std::to_string(dims[0]) + ", " + std::to_string(dims[1]) +
                       "], expected [" + std::to_string(n_out) + ", " + std::to_string(n_in) + "]");
    }
    w.kind = WeightKind::Int4;
    w.packed = reinterpret_cast<const uint32_t*>(p.data);
    w.scales = reinterpret_cast<const uint16_t*>(s.data);
  } else {
    const TensorView& t = expect(module + ".weight", {n_out, n_in});
    switch (t.dtype) {
      case DType::BF16: w.kind = WeightKind::BF16; break;
      case DType::F16: w.kind = WeightKind::F16; break;
      case DType::F32: w.kind = WeightKind::F32; break;
      default: throw Error(t.file + ": '" + t.name + "' has dtype " + dtype_name(t.dtype) + " (expected BF16/F16/F32)");
    }
    w.dense = t.data;
  }
  if (bias) w.bias = vector(module + ".bias", n_out);
  return w;
}

std::vector<float> WeightLoader::vector(const std::string& name, int n) const {
  const TensorView& t = expect(name, {n});
  std::vector<float> out(static_cast<size_t>(n));
  for (int i = 0; i < n; i++) {
    switch (t.dtype) {
      case DType::F32: std::memcpy(&out[i], t.data + 4 * size_t(i), 4); break;
      case DType::BF16:
      case DType::F16: {
        uint16_t h;
        std::memcpy(&h, t.data + 2 * size_t(i), 2);
        out[i] = t.dtype == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
        break;
      }
      default: throw Error(t.file + ": '" + name + "' has dtype " + dtype_name(t.dtype) + " (expected a float type)");
    }
  }
  return out;
}

}  // namespace strata
