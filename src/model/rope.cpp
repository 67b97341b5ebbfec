// RoPE inverse frequencies and attention scaling, as transformers' modeling_rope_utils computes them.
#include "model/rope.h"

#include <algorithm>
#include <cmath>

namespace strata {

double yarn_get_mscale(double scale, double mscale) {
  if (scale <= 1) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

RopeTable make_rope_table(const RopeConfig& rc, int head_dim, int max_pos) {
  RopeTable t;
  t.rot_dim = int(head_dim * rc.partial_rotary_factor);
  t.rot_dim -= t.rot_dim % 2;
  const int dim = t.rot_dim, half = dim / 2;
  const double base = rc.theta;
  // torch: 1 / base ** (arange(0, dim, 2).float() / dim), in f32.
  std::vector<double> inv(static_cast<size_t>(half));
  for (int i = 0; i < half; i++) inv[i] = double(1.0f / float(std::pow(base, float(2 * i) / float(dim))));
  double attention_factor = 1.0;

  switch (rc.type) {
    case RopeType::Default: break;
    case RopeType::Linear:
      for (auto& f : inv) f /= rc.factor;
      break;
    case RopeType::Llama3: {
      const double old_ctx = rc.original_max_position_embeddings;
      const double low_wl = old_ctx / rc.low_freq_factor, high_wl = old_ctx / rc.high_freq_factor;
      for (auto& f : inv) {
        const double wl = 2 * M_PI / f;
        const double scaled = wl > low_wl ? f / rc.factor : f;
        if (wl < high_wl || wl > low_wl) {
          f = scaled;
        } else {
          const double smooth = (old_ctx / wl - rc.low_freq_factor) / (rc.high_freq_factor - rc.low_freq_factor);
          f = (1 - smooth) * scaled / rc.factor + smooth * scaled;
        }
      }
      break;
    }
    case RopeType::Yarn: {
      // transformers 5.x: `factor` is rope_parameters.factor (max_position_embeddings /
      // original_max_position_embeddings only when factor is absent, which the parser rejects);
      // original_max_position_embeddings defaults to max_position_embeddings.
      const double factor = rc.factor;
      const double orig = rc.original_max_position_embeddings > 0 ? rc.original_max_position_embeddings : max_pos;
      if (rc.attention_factor > 0) {
        attention_factor = rc.attention_factor;
      } else if (rc.mscale > 0 && rc.mscale_all_dim > 0) {
        attention_factor = yarn_get_mscale(factor, rc.mscale) / yarn_get_mscale(factor, rc.mscale_all_dim);
      } else {
        attention_factor = yarn_get_mscale(factor, 1.0);
      }
      auto correction_dim = [&](double n_rot) {
        return (dim * std::log(orig / (n_rot * 2 * M_PI))) / (2 * std::log(base));
      };
      double low = correction_dim(rc.beta_fast), high = correction_dim(rc.beta_slow);
      if (rc.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, double(dim - 1));
      if (low == high) high += 0.001;
      for (int i = 0; i < half; i++) {
        const double pos_freq = 1.0 / inv[i];  // base ** (2i/dim)
        const double extrap = 1.0 / pos_freq, interp = 1.0 / (factor * pos_freq);
        const double ramp = std::clamp((double(float(i)) - low) / (high - low), 0.0, 1.0);
        const double extrap_factor = 1.0 - ramp;
        inv[i] = interp * (1 - extrap_factor) + extrap * extrap_factor;
      }
      break;
    }
  }
  if (!rc.freq_factors.empty())
    for (int i = 0; i < half && i < int(rc.freq_factors.size()); i++) inv[i] /= rc.freq_factors[size_t(i)];
  t.inv_freq.resize(static_cast<size_t>(half));
  for (int i = 0; i < half; i++) t.inv_freq[i] = float(inv[i]);
  t.attention_scaling = float(attention_factor);
  return t;
}

void RopeTable::cos_sin(const int* pos, int M, float* cos, float* sin) const {
  const int half = rot_dim / 2;
  for (int m = 0; m < M; m++)
    for (int i = 0; i < half; i++) {
      const float f = float(pos[m]) * inv_freq[i];  // f32 product, as torch computes freqs
      cos[size_t(m) * half + i] = float(std::cos(double(f))) * attention_scaling;
      sin[size_t(m) * half + i] = float(std::sin(double(f))) * attention_scaling;
    }
}

}  // namespace strata
