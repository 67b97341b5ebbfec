// CPU ops with hand-built inputs whose answers follow from the definitions: the four router kinds,
// RoPE pair conventions, causal attention's visibility; the AVX2 paged attention against the scalar reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cpu/attention_paged.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/ops.h"

namespace strata {
namespace {

float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }

TEST(MoeRoute, SoftmaxTopKWithAndWithoutRenorm) {
  const float logits[4] = {0.f, 1.f, 3.f, 2.f};
  double z = 0;
  for (float l : logits) z += std::exp(l);
  RouterParams p;
  p.n_experts = 4;
  p.top_k = 2;
  int ids[2];
  float w[2];
  moe_route_f32(logits, 1, p, ids, w);
  EXPECT_EQ(ids[0], 2);
  EXPECT_EQ(ids[1], 3);
  EXPECT_NEAR(w[0], std::exp(3.0) / z, 1e-6);
  EXPECT_NEAR(w[1], std::exp(2.0) / z, 1e-6);
  p.renormalize = true;
  moe_route_f32(logits, 1, p, ids, w);
  EXPECT_NEAR(w[0] + w[1], 1.0, 1e-6);
  EXPECT_NEAR(w[0] / w[1], std::exp(1.0), 1e-5);
}

TEST(MoeRoute, SigmoidBiasSelectsButDoesNotWeight) {
  const float logits[4] = {2.f, 1.f, 0.f, -1.f};
  const float bias[4] = {0.f, 0.f, 5.f, 0.f};  // pushes expert 2 into the top-2
  RouterParams p;
  p.n_experts = 4;
  p.top_k = 2;
  p.sigmoid = true;
  p.renormalize = true;
  p.scaling = 2.5f;
  p.choice_bias = bias;
  int ids[2];
  float w[2];
  moe_route_f32(logits, 1, p, ids, w);
  EXPECT_EQ(ids[0], 2);
  EXPECT_EQ(ids[1], 0);
  const float s2 = sigmoid(0.f), s0 = sigmoid(2.f);
  EXPECT_NEAR(w[0], 2.5f * s2 / (s2 + s0), 1e-6);
  EXPECT_NEAR(w[1], 2.5f * s0 / (s2 + s0), 1e-6);
}

TEST(MoeRoute, GroupLimitedExcludesExpertsOutsideBestGroups) {
  // 4 groups of 2. Expert 6 has the best single score but its group (6, 7) has the worst pair sum.
  const float logits[8] = {1.0f, 0.9f, 0.8f, 0.8f, -3.f, -3.f, 2.0f, -5.f};
  RouterParams p;
  p.n_experts = 8;
  p.top_k = 2;
  p.sigmoid = true;
  p.n_group = 4;
  p.topk_group = 2;
  int ids[2];
  float w[2];
  moe_route_f32(logits, 1, p, ids, w);
  EXPECT_EQ(ids[0], 0);
  EXPECT_EQ(ids[1], 1);
  EXPECT_NEAR(w[0], sigmoid(1.0f), 1e-6);  // no renorm, scaling 1
  p.n_group = 1;
  p.topk_group = 1;
  moe_route_f32(logits, 1, p, ids, w);
  EXPECT_EQ(ids[0], 6);  // without groups the best single expert wins
}

TEST(Rope, HalfAndInterleavedPairsRotateTheSameAngles) {
  // One head of 4 dims, angles a0 (pair 0) and a1 (pair 1).
  const float a0 = 0.3f, a1 = 1.1f;
  const float cs[2] = {std::cos(a0), std::cos(a1)}, sn[2] = {std::sin(a0), std::sin(a1)};
  float half[4] = {1.f, 2.f, 3.f, 4.f};   // pairs (0,2), (1,3)
  float inter[4] = {1.f, 3.f, 2.f, 4.f};  // same pairs laid out as (0,1), (2,3)
  rope_apply_f32(half, 1, 1, 4, 4, cs, sn, false);
  rope_apply_f32(inter, 1, 1, 4, 4, cs, sn, true);
  EXPECT_NEAR(half[0], inter[0], 1e-6);
  EXPECT_NEAR(half[2], inter[1], 1e-6);
  EXPECT_NEAR(half[1], inter[2], 1e-6);
  EXPECT_NEAR(half[3], inter[3], 1e-6);
  EXPECT_NEAR(half[0], 1.f * std::cos(a0) - 3.f * std::sin(a0), 1e-6);
}

TEST(Attention, CausalQueryIgnoresLaterKeys) {
  // 1 head, hd 2, 3 cached tokens; query at position 0 must return v[0] exactly.
  const float k[6] = {1, 0, 0, 1, 5, 5};
  const float v[6] = {1, 2, 30, 40, 500, 600};
  const float q[2] = {3, 3};
  float out[2] = {0, 0};
  attention_causal_f32(q, 1, 1, 1, 2, 2, k, v, 0, 1.f, out);
  EXPECT_FLOAT_EQ(out[0], 1.f);
  EXPECT_FLOAT_EQ(out[1], 2.f);
  // At position 1 it averages v[0] and v[1] with equal scores (q.k = 3 for both).
  attention_causal_f32(q, 1, 1, 1, 2, 2, k, v, 1, 1.f, out);
  EXPECT_NEAR(out[0], 15.5f, 1e-5);
  EXPECT_NEAR(out[1], 21.f, 1e-5);
}

// ||got - want|| / ||want||; infinite when got has a non-finite value (the outputs start poisoned with NaN).
double rel_l2(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); i++) {
    if (!std::isfinite(got[i])) return INFINITY;
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  return std::sqrt(num / den);
}

// Random q, k, v (fresh seed each run), keys in shuffled blocks of a pool, GQA groups of 1, 3 and 4, prompts
// (M > 1) and decodes (M = 1) after earlier positions: the AVX2 kernel must match the scalar reference.
TEST(Attention, PagedAvx2MatchesScalarReference) {
  if (cpu_isa_detect() < CpuIsa::Avx2) GTEST_SKIP() << "no AVX2";
  std::mt19937 rng(std::random_device{}());
  std::normal_distribution<float> nd(0.f, 1.f);
  struct Shape {
    int M, H, Hkv, hd, hdv, pos0, block_size;
  };
  const Shape shapes[] = {{1, 9, 3, 64, 64, 37, 16}, {5, 4, 4, 16, 8, 3, 4}, {7, 8, 2, 24, 24, 0, 4},
                          {1, 32, 8, 128, 128, 300, 16}, {33, 6, 2, 64, 64, 20, 8}};
  for (const Shape& sh : shapes) {
    const int n_ctx = sh.pos0 + sh.M, n_blocks = (n_ctx + sh.block_size - 1) / sh.block_size + 3;
    std::vector<int> table(static_cast<size_t>(n_blocks));
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), rng);
    std::vector<float> q(size_t(sh.M) * sh.H * sh.hd), k(size_t(n_blocks) * sh.block_size * sh.Hkv * sh.hd),
        v(size_t(n_blocks) * sh.block_size * sh.Hkv * sh.hdv);
    for (auto* vec : {&q, &k, &v})
      for (float& x : *vec) x = nd(rng);
    const float scale = 1.f / std::sqrt(float(sh.hd));
    std::vector<float> want(size_t(sh.M) * sh.H * sh.hdv), got(want.size(), std::nanf(""));
    attention_paged_f32_scalar(q.data(), sh.M, sh.H, sh.Hkv, sh.hd, sh.hdv, k.data(), v.data(), table.data(),
                               sh.block_size, sh.pos0, scale, want.data());
    attention_paged_f32_avx2(q.data(), sh.M, sh.H, sh.Hkv, sh.hd, sh.hdv, k.data(), v.data(), table.data(),
                             sh.block_size, sh.pos0, scale, got.data());
    EXPECT_LE(rel_l2(got, want), 1e-5) << "M" << sh.M << " H" << sh.H << " Hkv" << sh.Hkv << " hd" << sh.hd;
  }
}

// The same for absorbed MLA: latent R and rope P widths of the fixtures' and DeepSeek-V3's kind.
TEST(Attention, PagedMlaAvx2MatchesScalarReference) {
  if (cpu_isa_detect() < CpuIsa::Avx2) GTEST_SKIP() << "no AVX2";
  std::mt19937 rng(std::random_device{}());
  std::normal_distribution<float> nd(0.f, 1.f);
  struct Shape {
    int M, H, R, P, pos0, block_size;
  };
  const Shape shapes[] = {{1, 4, 32, 16, 21, 4}, {6, 2, 64, 8, 5, 4}, {1, 16, 512, 64, 90, 16}, {9, 3, 16, 8, 0, 8}};
  for (const Shape& sh : shapes) {
    const int n_ctx = sh.pos0 + sh.M, n_blocks = (n_ctx + sh.block_size - 1) / sh.block_size + 2;
    std::vector<int> table(static_cast<size_t>(n_blocks));
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), rng);
    std::vector<float> ql(size_t(sh.M) * sh.H * sh.R), qp(size_t(sh.M) * sh.H * sh.P),
        lat(size_t(n_blocks) * sh.block_size * sh.R), kpe(size_t(n_blocks) * sh.block_size * sh.P);
    for (auto* vec : {&ql, &qp, &lat, &kpe})
      for (float& x : *vec) x = nd(rng) * 0.3f;
    const float scale = 1.f / std::sqrt(float(sh.R + sh.P));
    std::vector<float> want(size_t(sh.M) * sh.H * sh.R), got(want.size(), std::nanf(""));
    mla_attention_paged_f32_scalar(ql.data(), qp.data(), sh.M, sh.H, sh.R, sh.P, lat.data(), kpe.data(), table.data(),
                                   sh.block_size, sh.pos0, scale, want.data());
    mla_attention_paged_f32_avx2(ql.data(), qp.data(), sh.M, sh.H, sh.R, sh.P, lat.data(), kpe.data(), table.data(),
                                 sh.block_size, sh.pos0, scale, got.data());
    EXPECT_LE(rel_l2(got, want), 1e-5) << "M" << sh.M << " H" << sh.H << " R" << sh.R << " P" << sh.P;
  }
}

}  // namespace
}  // namespace strata
