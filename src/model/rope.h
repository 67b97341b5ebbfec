// Rotary position embedding tables for the rope types of HF `rope_parameters`:
// default, linear, llama3, yarn (with DeepSeek's mscale rules). Numerics follow transformers.
// Not the rotation itself (kernels/cpu/ops.h rope_apply_f32).
#pragma once
#include <vector>

#include "io/model_config.h"

namespace strata {

struct RopeTable {
  int rot_dim = 0;              // rotated dims per head (head_dim * partial_rotary_factor)
  std::vector<float> inv_freq;  // [rot_dim / 2]
  float attention_scaling = 1.f;  // multiplies cos and sin (YaRN's attention factor)

  // cos/sin [M, rot_dim/2] for the given positions.
  void cos_sin(const int* pos, int M, float* cos, float* sin) const;
};

// `head_dim` is the dim the rope covers before partial_rotary_factor (qk_rope_head_dim for MLA).
RopeTable make_rope_table(const RopeConfig& rope, int head_dim, int max_position_embeddings);

// DeepSeek's yarn_get_mscale: 0.1 * mscale * ln(scale) + 1 for scale > 1, else 1.
double yarn_get_mscale(double scale, double mscale);

}  // namespace strata
