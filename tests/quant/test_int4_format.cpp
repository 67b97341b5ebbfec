// The compressed-tensors INT4 layout and ignore-list matching.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io/model_config.h"
#include "quant/int4_format.h"
#include "test_util.h"

namespace strata {
namespace {

// Packs signed codes as compressed-tensors' pack_to_int32 does: u = q + 8, element i at bits 4i.
uint32_t pack8(const int* q) {
  uint32_t w = 0;
  for (int i = 0; i < 8; i++) w |= uint32_t(q[i] + 8) << (4 * i);
  return w;
}

TEST(Int4Format, CodesRoundTripThroughPacking) {
  for (int trial = 0; trial < 64; trial++) {
    int q[8];
    for (int i = 0; i < 8; i++) q[i] = ((trial * 7 + i * 5) % 16) - 8;
    const uint32_t w = pack8(q);
    for (int i = 0; i < 8; i++) EXPECT_EQ(int4_code(&w, i), q[i]);
  }
}

TEST(Int4Format, LowNibbleIsFirstElement) {
  // Byte b holds element 2b in its low nibble: word 0x...F0 has element 0 = 0 - 8 and element 1 = 15 - 8.
  const uint32_t w = 0x000000F0u;
  EXPECT_EQ(int4_code(&w, 0), -8);
  EXPECT_EQ(int4_code(&w, 1), 7);
  EXPECT_EQ(int4_code(&w, 2), -8);
}

TEST(Int4Format, FixtureIgnoreListsMatchTheirCheckpoints) {
  // Every module of an *_int4 fixture is packed exactly when the ignore list does not name it.
  int modules = 0;
  for (const auto& f : test::manifest()) {
    ModelConfig cfg = load_model_config(f.model_dir);
    if (cfg.quant.method == QuantMethod::None) continue;
    TensorStore store = TensorStore::open(f.model_dir);
    for (const auto& [name, t] : store.tensors()) {
      const std::string suffix = ".weight_packed";
      if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        EXPECT_FALSE(cfg.quant.is_ignored(name.substr(0, name.size() - suffix.size()))) << f.name << " " << name;
        modules++;
      }
    }
    EXPECT_TRUE(cfg.quant.is_ignored("lm_head")) << f.name;
  }
  EXPECT_GT(modules, 0);
}

TEST(Int4Format, RegexIgnoreAnchorsAtStart) {
  QuantConfig q;
  q.ignore = {"re:.*self_attn.*", "re:mlp\\.gate$", "lm_head"};
  EXPECT_TRUE(q.is_ignored("model.layers.0.self_attn.q_proj"));
  EXPECT_FALSE(q.is_ignored("model.layers.0.mlp.gate"));  // re.match anchors at the start
  EXPECT_TRUE(q.is_ignored("mlp.gate"));
  EXPECT_FALSE(q.is_ignored("mlp.gate_proj"));
  EXPECT_TRUE(q.is_ignored("lm_head"));
  EXPECT_FALSE(q.is_ignored("model.layers.0.mlp.experts.0.up_proj"));
}

}  // namespace
}  // namespace strata
