// CPU linear kernels: every ISA path against a double-precision product of decode_weight_row
// (the numerics reference), for bf16 / f16 / f32 and INT4 weights, odd shapes and bias; random
// inputs. Decode-sized M runs the GEMV-shaped kernels, prefill-sized M the GEMM path
// (kernels/cpu/linear_gemm.h); both are checked, also with the GEMM path forced for small M.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/dtype.h"
#include "kernels/cpu/linear.h"
#include "quant/int4_format.h"

namespace strata {
namespace {

struct RandomWeight {
  std::vector<uint16_t> dense;   // bf16 / f16 [N, K]
  std::vector<float> dense32;    // f32 [N, K]
  std::vector<uint32_t> packed;  // [N, K/8]
  std::vector<uint16_t> scales;  // bf16 [N, K/32]
  LinearWeight w;
};

RandomWeight make_weight(WeightKind kind, int N, int K, bool bias, std::mt19937& rng) {
  RandomWeight r;
  std::normal_distribution<float> nd(0.f, 1.f);
  r.w.kind = kind;
  r.w.n_out = N;
  r.w.n_in = K;
  if (kind == WeightKind::BF16) {
    r.dense.resize(size_t(N) * K);
    for (auto& v : r.dense) v = f32_to_bf16(nd(rng));
    r.w.dense = r.dense.data();
  } else if (kind == WeightKind::F16) {  // random sign and mantissa, exponent 2^-5 .. 2^3
    r.dense.resize(size_t(N) * K);
    for (auto& v : r.dense) v = uint16_t((rng() & 0x8000) | ((10 + rng() % 9) << 10) | (rng() & 0x3ff));
    r.w.dense = r.dense.data();
  } else if (kind == WeightKind::F32) {
    r.dense32.resize(size_t(N) * K);
    for (auto& v : r.dense32) v = nd(rng);
    r.w.dense = r.dense32.data();
  } else {
    r.packed.resize(size_t(N) * K / 8);
    for (auto& v : r.packed) v = uint32_t(rng());
    r.scales.resize(size_t(N) * K / kInt4GroupSize);
    for (auto& v : r.scales) v = f32_to_bf16(0.01f + std::abs(nd(rng)) * 0.1f);
    r.w.packed = r.packed.data();
    r.w.scales = r.scales.data();
  }
  if (bias) {
    r.w.bias.resize(size_t(N));
    for (auto& b : r.w.bias) b = nd(rng);
  }
  return r;
}

// y = x . W^T + bias in f64; with magnitude, sum_k |x[m][k] w[n][k]| + |bias[n]| instead: the scale of the f32
// rounding error of a dot product, which does not shrink when the terms cancel (a single output near zero would
// make a plain relative error flaky).
std::vector<double> reference(const std::vector<float>& x, int M, const LinearWeight& w, bool magnitude = false) {
  std::vector<double> y(size_t(M) * w.n_out);
  std::vector<float> row(static_cast<size_t>(w.n_in));
  auto term = [&](double v) { return magnitude ? std::abs(v) : v; };
  for (int n = 0; n < w.n_out; n++) {
    decode_weight_row(w, n, row.data());
    for (int m = 0; m < M; m++) {
      double acc = w.bias.empty() ? 0.0 : term(w.bias[n]);
      for (int k = 0; k < w.n_in; k++) acc += term(double(x[size_t(m) * w.n_in + k]) * row[k]);
      y[size_t(m) * w.n_out + n] = acc;
    }
  }
  return y;
}

TEST(CpuLinear, EveryIsaMatchesReference) {
  std::mt19937 rng(std::random_device{}());
  std::normal_distribution<float> nd(0.f, 1.f);
  struct Shape {
    int M, N, K;
  };
  const Shape shapes[] = {{1, 1, 32}, {1, 37, 64}, {3, 16, 96}, {8, 33, 128}, {9, 64, 256}, {17, 50, 512}, {64, 96, 1024}};
  int checked = 0;
  for (WeightKind kind : {WeightKind::BF16, WeightKind::Int4})
    for (const Shape& s : shapes)
      for (bool bias : {false, true}) {
        RandomWeight rw = make_weight(kind, s.N, s.K, bias, rng);
        std::vector<float> x(size_t(s.M) * s.K);
        for (auto& v : x) v = nd(rng);
        const std::vector<double> want = reference(x, s.M, rw.w), mag = reference(x, s.M, rw.w, true);
        for (CpuIsa isa : {CpuIsa::Scalar, CpuIsa::Avx2, CpuIsa::Avx512}) {
          if (isa > cpu_isa_detect()) continue;
          std::vector<float> y(size_t(s.M) * s.N, std::nanf(""));  // poisoned
          linear_f32(x.data(), s.M, rw.w, y.data(), isa);
          double num = 0, den = 0;  // error relative to the magnitude of the terms summed
          for (size_t i = 0; i < y.size(); i++) {
            num += (y[i] - want[i]) * (y[i] - want[i]);
            den += mag[i] * mag[i];
          }
          EXPECT_LE(std::sqrt(num / den), 1e-5) << cpu_isa_name(isa) << " kind " << int(kind) << " M" << s.M
                                                << " N" << s.N << " K" << s.K << " bias " << bias;
          checked++;
        }
      }
  EXPECT_GE(checked, 28);  // at least the scalar path for every case
}

TEST(CpuLinear, BF16OddKUsesTail) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  RandomWeight rw = make_weight(WeightKind::BF16, 5, 37, false, rng);
  std::vector<float> x(2 * 37);
  for (auto& v : x) v = nd(rng);
  const auto want = reference(x, 2, rw.w);
  for (CpuIsa isa : {CpuIsa::Scalar, CpuIsa::Avx2, CpuIsa::Avx512}) {
    if (isa > cpu_isa_detect()) continue;
    std::vector<float> y(10, std::nanf(""));
    linear_f32(x.data(), 2, rw.w, y.data(), isa);
    for (int i = 0; i < 10; i++) EXPECT_NEAR(y[i], want[i], 1e-4 * (1 + std::abs(want[i]))) << cpu_isa_name(isa);
  }
}


double rel_err(const std::vector<float>& y, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < y.size(); i++) {
    num += (y[i] - want[i]) * (y[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num / den);
}

// Restores the GEMM threshold when a test that changed it ends.
struct GemmMinRows {
  int saved = linear_gemm_min_rows();
  explicit GemmMinRows(int m) { set_linear_gemm_min_rows(m); }
  ~GemmMinRows() { set_linear_gemm_min_rows(saved); }
};

// Prefill-sized M (the GEMM path): every kind, N and K off the panel (32 / 16 columns) and K-slice
// sizes (K > kGemmKcMax = 640 splits into slices, the last one shorter), bias or not.
TEST(CpuLinear, PrefillGemmMatchesReference) {
  std::mt19937 rng(std::random_device{}());
  std::normal_distribution<float> nd(0.f, 1.f);
  struct Shape {
    int N, K;
  };
  const Shape shapes[] = {{37, 96}, {70, 1312}, {100, 640}, {33, 2048}};
  int checked = 0;
  for (WeightKind kind : {WeightKind::BF16, WeightKind::Int4, WeightKind::F16, WeightKind::F32})
    for (const Shape& s : shapes)
      for (int M : {16, 33, 64, 200}) {
        const bool bias = (M + s.N) % 2 == 1;
        RandomWeight rw = make_weight(kind, s.N, s.K, bias, rng);
        std::vector<float> x(size_t(M) * s.K);
        for (auto& v : x) v = nd(rng);
        const std::vector<double> want = reference(x, M, rw.w);
        for (CpuIsa isa : {CpuIsa::Scalar, CpuIsa::Avx2, CpuIsa::Avx512}) {
          if (isa > cpu_isa_detect()) continue;
          std::vector<float> y(size_t(M) * s.N, std::nanf(""));
          linear_f32(x.data(), M, rw.w, y.data(), isa);
          EXPECT_LE(rel_err(y, want), 1e-5) << cpu_isa_name(isa) << " kind " << int(kind) << " M" << M << " N" << s.N
                                            << " K" << s.K << " bias " << bias;
          checked++;
        }
      }
  EXPECT_GE(checked, 64);
}

// bf16 K not a multiple of 8 or 32 (the dequantiser's scalar tail, a K slice of odd length).
TEST(CpuLinear, PrefillGemmOddK) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (int K : {1, 7, 37, 645, 1001}) {
    const int M = 21, N = 19;
    RandomWeight rw = make_weight(WeightKind::BF16, N, K, true, rng);
    std::vector<float> x(size_t(M) * K);
    for (auto& v : x) v = nd(rng);
    const auto want = reference(x, M, rw.w);
    for (CpuIsa isa : {CpuIsa::Avx2, CpuIsa::Avx512}) {
      if (isa > cpu_isa_detect()) continue;
      std::vector<float> y(size_t(M) * N, std::nanf(""));
      linear_f32(x.data(), M, rw.w, y.data(), isa);
      EXPECT_LE(rel_err(y, want), 1e-5) << cpu_isa_name(isa) << " K" << K;
    }
  }
}

// The GEMM path forced for every M from 1 (every m-tile height 1..12 and the tile split), and the
// GEMV kernels forced for the prefill sizes: both agree with the reference on the same inputs.
TEST(CpuLinear, GemmAndGemvPathsForEveryM) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.f, 1.f);
  const int N = 45, K = 160;
  for (WeightKind kind : {WeightKind::BF16, WeightKind::Int4}) {
    RandomWeight rw = make_weight(kind, N, K, true, rng);
    for (int M = 1; M <= 40; M++) {
      std::vector<float> x(size_t(M) * K);
      for (auto& v : x) v = nd(rng);
      const auto want = reference(x, M, rw.w);
      for (int min_rows : {1, 1 << 30}) {
        GemmMinRows force(min_rows);
        for (CpuIsa isa : {CpuIsa::Avx2, CpuIsa::Avx512}) {
          if (isa > cpu_isa_detect()) continue;
          std::vector<float> y(size_t(M) * N, std::nanf(""));
          linear_f32(x.data(), M, rw.w, y.data(), isa);
          EXPECT_LE(rel_err(y, want), 1e-5) << cpu_isa_name(isa) << " kind " << int(kind) << " M" << M
                                            << (min_rows == 1 ? " gemm" : " gemv");
        }
      }
    }
  }
}

// Packed x beyond kGemmXChunkFloats (2^21 f32): rows run in chunks (here 516 + 84).
TEST(CpuLinear, PrefillGemmRowChunks) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.f, 1.f);
  const int M = 600, N = 40, K = 4000;
  RandomWeight rw = make_weight(WeightKind::BF16, N, K, false, rng);
  std::vector<float> x(size_t(M) * K);
  for (auto& v : x) v = nd(rng);
  const auto want = reference(x, M, rw.w);
  for (CpuIsa isa : {CpuIsa::Avx2, CpuIsa::Avx512}) {
    if (isa > cpu_isa_detect()) continue;
    std::vector<float> y(size_t(M) * N, std::nanf(""));
    linear_f32(x.data(), M, rw.w, y.data(), isa);
    EXPECT_LE(rel_err(y, want), 1e-5) << cpu_isa_name(isa);
  }
}

}  // namespace
}  // namespace strata
