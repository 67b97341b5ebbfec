// WeightLoader: looks up a module's tensors in the store, checks dtype and shape against what the
// architecture expects, and returns LinearWeight views (INT4 kept packed). One place for the
// compressed-tensors naming rules (weight_packed / weight_scale / weight_shape, ignore list).
#pragma once
#include <string>
#include <vector>

#include "core/weight.h"
#include "io/model_config.h"
#include "io/safetensors.h"

namespace strata {

class WeightLoader {
 public:
  WeightLoader(const TensorStore& store, const ModelConfig& cfg) : store_(store), cfg_(cfg) {}

  // Module `module` (e.g. "model.layers.0.mlp.down_proj") as a linear [n_out, n_in], INT4 when the
  // checkpoint packs it. `bias`: also load `module.bias`.
  LinearWeight linear(const std::string& module, int n_out, int n_in, bool bias = false) const;
  // A 1-D tensor of `n` elements, converted to f32 (norm weights, biases, routing biases).
  std::vector<float> vector(const std::string& name, int n) const;
  bool has(const std::string& name) const { return store_.has(name); }

 private:
  const TensorView& expect(const std::string& name, std::vector<int64_t> shape) const;
  const TensorStore& store_;
  const ModelConfig& cfg_;
};

}  // namespace strata
