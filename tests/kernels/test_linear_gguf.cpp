// CPU linear on GGUF block weights (Q4_0, Q4_1, Q8_0 with SIMD kernels; K-quants through the
// scalar path): every ISA against a double-precision product of decode_weight_row, which is
// itself checked against the gguf package (tests/io/test_gguf_blocks.py). Random blocks.
// Decode-sized M runs the GEMV-shaped kernels, prefill-sized M (>= linear_gemm_min_rows()) the
// GEMM path, whose K slices must start on a block (256 elements for the K-quants).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "io/gguf.h"
#include "kernels/cpu/linear.h"
#include "quant/gguf_blocks.h"

namespace strata {
namespace {

// Random blocks with finite positive fp16 scales at the type's scale offsets.
std::vector<uint8_t> random_blocks(GgmlType t, int N, int K, std::mt19937& rng) {
  const GgmlTypeInfo* ti = ggml_type_info(uint32_t(t));
  const size_t nb = size_t(N) * (K / ti->block_elems);
  std::vector<uint8_t> b(nb * ti->block_bytes);
  for (auto& v : b) v = uint8_t(rng());
  std::vector<size_t> fp16_at;
  switch (t) {
    case GgmlType::Q4_0: case GgmlType::Q8_0: fp16_at = {0}; break;
    case GgmlType::Q4_1: case GgmlType::Q4_K: case GgmlType::Q5_K: fp16_at = {0, 2}; break;
    case GgmlType::Q6_K: fp16_at = {208}; break;
    default: break;
  }
  for (size_t i = 0; i < nb; i++)
    for (size_t off : fp16_at) {
      uint16_t h = uint16_t(0x1C00 + rng() % 0x1400);  // about 0.004 .. 0.5
      std::memcpy(&b[i * ti->block_bytes + off], &h, 2);
    }
  return b;
}

class GgufLinear : public ::testing::TestWithParam<GgmlType> {};

void check_every_isa(GgmlType t, int N, int K, std::initializer_list<int> Ms, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.f, 1.f);
  auto blocks = random_blocks(t, N, K, rng);
  LinearWeight w;
  w.kind = WeightKind::Gguf;
  w.ggml_type = uint32_t(t);
  w.n_out = N;
  w.n_in = K;
  w.blocks = blocks.data();
  w.row_bytes = gguf_row_bytes(uint32_t(t), K);
  std::vector<float> row(K);
  for (int M : Ms) {
    std::vector<float> x(size_t(M) * K);
    for (auto& v : x) v = nd(rng);
    std::vector<double> ref(size_t(M) * N);
    for (int n = 0; n < N; n++) {
      decode_weight_row(w, n, row.data());
      for (int m = 0; m < M; m++) {
        double acc = 0;
        for (int k = 0; k < K; k++) acc += double(x[size_t(m) * K + k]) * row[size_t(k)];
        ref[size_t(m) * N + n] = acc;
      }
    }
    for (CpuIsa isa : {CpuIsa::Scalar, CpuIsa::Avx2, CpuIsa::Avx512}) {
      if (isa > cpu_isa_detect()) continue;
      std::vector<float> y(size_t(M) * N, std::nanf(""));
      linear_f32(x.data(), M, w, y.data(), isa);
      double num = 0, den = 0;
      for (size_t i = 0; i < y.size(); i++) {
        num += (y[i] - ref[i]) * (y[i] - ref[i]);
        den += ref[i] * ref[i];
      }
      EXPECT_LT(std::sqrt(num / den), 1e-5) << ggml_type_info(uint32_t(t))->name << " " << cpu_isa_name(isa)
                                           << " M=" << M << " N=" << N << " K=" << K;
    }
  }
}

TEST_P(GgufLinear, EveryIsaMatchesTheReference) {
  std::mt19937 rng(std::random_device{}());
  check_every_isa(GetParam(), 37, 512, {1, 3, 4, 9}, rng);
}

// Prefill-sized M: N off the 32 / 16 column panels; K = 768 and 1792 are longer than one K slice
// (640), so the GEMM path slices K on block boundaries (512 + 256, 768 + 768 + 256).
TEST_P(GgufLinear, PrefillMatchesTheReference) {
  std::mt19937 rng(std::random_device{}());
  check_every_isa(GetParam(), 37, 512, {16, 33, 64, 200}, rng);
  check_every_isa(GetParam(), 70, 768, {16, 33}, rng);
  check_every_isa(GetParam(), 50, 1792, {64}, rng);
}

INSTANTIATE_TEST_SUITE_P(Types, GgufLinear,
                         ::testing::Values(GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q4_K,
                                           GgmlType::Q5_K, GgmlType::Q6_K),
                         [](const auto& info) { return std::string(ggml_type_info(uint32_t(info.param))->name); });

}  // namespace
}  // namespace strata
