// strata convert: the INT4 fixtures (real compressed-tensors checkpoints) round trip through GGUF
// Q4_0 bit-exactly, the Q4_0 blocks decode to the same weights as the compressed-tensors rows,
// and scales without an exact twin in the other format are errors, not silent rounding.
#include <gtest/gtest.h>

#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "core/weight.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "quant/convert.h"
#include "quant/gguf_blocks.h"
#include "test_util.h"

namespace strata {
namespace {

class ConvertRoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(ConvertRoundTrip, CtToGgufToCtIsBitExact) {
  const std::string src = test::fixtures_dir() + "/models/" + GetParam();
  test::TempDir d;
  const std::string gguf = d.path + "/m.gguf", back = d.path + "/back";
  convert_ct_to_gguf(src, gguf);
  convert_gguf_to_ct(gguf, back);
  EXPECT_EQ(test::read_text(back + "/config.json"), test::read_text(src + "/config.json"));
  test::expect_same_tensors(back, src);
  TensorStore a = TensorStore::open(src);
  int packed = 0;
  for (const auto& [name, ta] : a.tensors()) packed += name.find(".weight_packed") != std::string::npos;
  EXPECT_GT(packed, 0) << "fixture has no INT4 tensors";

  // The GGUF Q4_0 tensors decode to exactly the compressed-tensors weights.
  GgufFile g = GgufFile::open(gguf);
  int checked = 0;
  for (const GgufTensor& t : g.tensors()) {
    if (t.type != uint32_t(GgmlType::Q4_0)) continue;
    const std::string base = t.name.substr(0, t.name.size() - 7);
    const TensorView& p = a.get(base + ".weight_packed");
    const TensorView& s = a.get(base + ".weight_scale");
    LinearWeight ct, q;
    ct.kind = WeightKind::Int4;
    ct.n_out = q.n_out = int(p.shape[0]);
    ct.n_in = q.n_in = int(p.shape[1]) * 8;
    ct.packed = reinterpret_cast<const uint32_t*>(p.data);
    ct.scales = reinterpret_cast<const uint16_t*>(s.data);
    q.kind = WeightKind::Gguf;
    q.ggml_type = t.type;
    q.blocks = t.data;
    q.row_bytes = gguf_row_bytes(t.type, q.n_in);
    std::vector<float> r1(size_t(ct.n_in)), r2(size_t(ct.n_in));
    for (int n = 0; n < ct.n_out; n++) {
      decode_weight_row(ct, n, r1.data());
      decode_weight_row(q, n, r2.data());
      ASSERT_EQ(std::memcmp(r1.data(), r2.data(), r1.size() * 4), 0) << t.name << " row " << n;
    }
    checked++;
  }
  EXPECT_EQ(checked, packed);
}

INSTANTIATE_TEST_SUITE_P(Int4Fixtures, ConvertRoundTrip, ::testing::Values("llama_int4", "qwen3_moe_int4", "kimi_k2_int4"));

TEST(Convert, ScalesWithoutAnExactTwinAreErrors) {
  std::vector<uint32_t> packed(4, 0x89ABCDEFu);  // K = 32
  std::vector<uint8_t> blocks(18);
  uint16_t scale = f32_to_bf16(1e-9f);  // below fp16's smallest subnormal
  EXPECT_THROW(ct_row_to_q4_0(packed.data(), &scale, 32, blocks.data(), "t"), Error);
  scale = f32_to_bf16(1e6f);  // above fp16's max
  EXPECT_THROW(ct_row_to_q4_0(packed.data(), &scale, 32, blocks.data(), "t"), Error);
  scale = f32_to_bf16(0.0078125f);
  ct_row_to_q4_0(packed.data(), &scale, 32, blocks.data(), "t");
  std::vector<uint32_t> back(4);
  uint16_t s2 = 0;
  q4_0_row_to_ct(blocks.data(), 32, back.data(), &s2, "t");
  EXPECT_EQ(back, packed);
  EXPECT_EQ(s2, scale);
  uint16_t d = 0x3C01;  // 1 + 2^-10: needs 10 mantissa bits, bf16 has 7
  std::memcpy(blocks.data(), &d, 2);
  EXPECT_THROW(q4_0_row_to_ct(blocks.data(), 32, back.data(), &s2, "t"), Error);
}

TEST(Convert, GgufWithoutStrataConfigIsAnError) {
  EXPECT_THROW(convert_gguf_to_ct(test::fixtures_dir() + "/tokenizers/golden/ggml-vocab-qwen2.gguf", "/nonexistent"), Error);
}

}  // namespace
}  // namespace strata
