// Correctness check of the CUDA W4A16 linear (every path) against the CPU reference strata::linear_f32,
// on random INT4 weights/scales and random non-zero bf16 activations, fresh seed each run; exit 1 on any failure.
// Not a benchmark (see bench/cuda/bench_w4a16_cuda.cu) and not a unit-test framework.
// Usage: cuda_op_check [--seed S] [--quick]   (--quick: smallest shape, M in {1, 16, 64}; for compute-sanitizer)
#include <cuda_runtime.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/linear.h"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/cuda_w4a16.h"
#include "kernels/cuda/w4a16_layout.h"
#include "quant/int4_format.h"

using namespace strata;
using namespace strata::cuda;

namespace {

constexpr double kTolRel = 1e-2;  // bf16 output rounding alone is ~1e-3

struct Case {
  W4A16Options opt;
  const char* label;
};

struct Stats {
  double rel = 0, max_abs = 0, max_ref = 0;
  size_t non_finite = 0;
};

Stats compare(const std::vector<uint16_t>& got_bf16, const std::vector<float>& ref) {
  Stats s;
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); i++) {
    const double a = bf16_to_f32(got_bf16[i]), b = ref[i];
    if (!std::isfinite(a)) {
      s.non_finite++;
      continue;
    }
    num += (a - b) * (a - b);
    den += b * b;
    s.max_abs = std::max(s.max_abs, std::fabs(a - b));
    s.max_ref = std::max(s.max_ref, std::fabs(b));
  }
  s.rel = den > 0 ? std::sqrt(num / den) : INFINITY;
  return s;
}

// Device-layout round trip: every code and scale of the repacked weight equals the checkpoint's.
size_t repack_mismatches(const LinearWeight& hw, const W4A16Weight& dw) {
  const int N = hw.n_out, K = hw.n_in;
  std::vector<uint32_t> packed(size_t(N) * K / 8);
  std::vector<uint16_t> scales(size_t(N) * K / 32);
  STRATA_CUDA_CHECK(cudaMemcpy(packed.data(), dw.packed, packed.size() * 4, cudaMemcpyDeviceToHost));
  STRATA_CUDA_CHECK(cudaMemcpy(scales.data(), dw.scales, scales.size() * 2, cudaMemcpyDeviceToHost));
  size_t bad = 0;
  for (int n = 0; n < N; n++) {
    const uint32_t* row = hw.packed + size_t(n) * (K / 8);
    for (int k = 0; k < K; k++) {
      if (w4_code(packed.data(), n, k, K) != int4_code(row, k)) bad++;
      if (scales[w4_scale_index(n, k, K)] != hw.scales[size_t(n) * (K / 32) + k / 32]) bad++;
    }
  }
  return bad;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t seed = uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()) ^ std::random_device{}();
  bool quick = false;
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--seed") && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    if (!std::strcmp(argv[i], "--quick")) quick = true;
  }
  try {
    cudaDeviceProp prop{};
    int dev = 0;
    STRATA_CUDA_CHECK(cudaGetDevice(&dev));
    STRATA_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    std::printf("cuda_op_check: %s (sm_%d%d, %d SMs), seed %llu (rerun: --seed %llu), CPU ref ISA %s\n", prop.name,
                prop.major, prop.minor, prop.multiProcessorCount, (unsigned long long)seed, (unsigned long long)seed,
                cpu_isa_name(cpu_isa_active()));
    std::printf("tolerance: rel err ||gpu - cpu|| / ||cpu|| <= %.0e, every output finite (outputs poisoned to NaN first)\n\n",
                kTolRel);

    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> mag(0.25f, 1.0f), sc(0.002f, 0.02f);

    std::vector<std::pair<int, int>> shapes = {{256, 512}, {2048, 7168}, {7168, 2048}};
    std::vector<int> Ms = {1, 4, 16, 64, 256};
    if (quick) {
      shapes = {{256, 512}};
      Ms = {1, 16, 64};
    }
    const Case cases[] = {
        {{W4A16Path::Naive, 0}, "naive"},         {{W4A16Path::Skinny, 0}, "skinny"},
        {{W4A16Path::Tiled, 0}, "tiled"},         {{W4A16Path::Tiled, 1}, "tiled/split1"},
        {{W4A16Path::Tiled, 3}, "tiled/split3"},  {{W4A16Path::Auto, 0}, "auto"},
    };

    int failures = 0, rows = 0;
    std::printf("| N | K | M | path | K splits | rel err | max abs err | max abs ref | status |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|\n");
    for (auto [N, K] : shapes) {
      // Random checkpoint-format weight: every nibble uniform in 0..15, scales positive bf16.
      std::vector<uint32_t> packed(size_t(N) * K / 8);
      for (auto& v : packed) v = uint32_t(rng());
      std::vector<uint16_t> scales(size_t(N) * K / kInt4GroupSize);
      for (auto& v : scales) v = f32_to_bf16(sc(rng));
      LinearWeight hw;
      hw.name = "check";
      hw.kind = WeightKind::Int4;
      hw.n_out = N;
      hw.n_in = K;
      hw.packed = packed.data();
      hw.scales = scales.data();

      W4A16Weight dw = w4a16_upload(hw);
      const size_t bad = repack_mismatches(hw, dw);
      std::printf("| %d | %d | - | repack round trip | - | - | - | - | %s |\n", N, K,
                  bad ? ("FAIL (" + std::to_string(bad) + " mismatches)").c_str() : "ok");
      if (bad) failures++;

      for (int M : Ms) {
        // Activations: random sign x [0.25, 1), rounded to bf16, never zero.
        std::vector<uint16_t> xb(size_t(M) * K);
        std::vector<float> xf(xb.size());
        for (size_t i = 0; i < xb.size(); i++) {
          xb[i] = f32_to_bf16((rng() & 1 ? 1.f : -1.f) * mag(rng));
          xf[i] = bf16_to_f32(xb[i]);
        }
        std::vector<float> ref(size_t(M) * N);
        linear_f32(xf.data(), M, hw, ref.data());

        void *dx = nullptr, *dy = nullptr;
        STRATA_CUDA_CHECK(cudaMalloc(&dx, xb.size() * 2));
        STRATA_CUDA_CHECK(cudaMalloc(&dy, ref.size() * 2));
        STRATA_CUDA_CHECK(cudaMemcpy(dx, xb.data(), xb.size() * 2, cudaMemcpyHostToDevice));
        std::vector<uint16_t> got(ref.size());
        for (const Case& c : cases) {
          if (c.opt.path == W4A16Path::Skinny && M > 16) continue;
          const size_t ws_bytes = w4a16_workspace_bytes(M, N, K, c.opt);
          void* ws = nullptr;
          if (ws_bytes) STRATA_CUDA_CHECK(cudaMalloc(&ws, ws_bytes));
          STRATA_CUDA_CHECK(cudaMemset(dy, 0xFF, ref.size() * 2));  // bf16 0xFFFF = NaN
          w4a16_linear(dx, M, dw, dy, ws, ws_bytes, nullptr, c.opt);
          STRATA_CUDA_CHECK(cudaDeviceSynchronize());
          STRATA_CUDA_CHECK(cudaMemcpy(got.data(), dy, got.size() * 2, cudaMemcpyDeviceToHost));
          if (ws) STRATA_CUDA_CHECK(cudaFree(ws));
          const Stats s = compare(got, ref);
          const bool ok = s.non_finite == 0 && s.rel <= kTolRel;
          if (!ok) failures++;
          rows++;
          const W4A16Path taken = c.opt.path == W4A16Path::Auto ? w4a16_auto_path(M) : c.opt.path;
          const bool tiled = taken == W4A16Path::Tiled;
          const std::string splits = tiled ? std::to_string(ws_bytes ? ws_bytes / (size_t(M) * N * 4) : 1) : "-";
          std::string status = ok ? "ok" : "FAIL";
          if (s.non_finite) status += " (" + std::to_string(s.non_finite) + " non-finite)";
          std::printf("| %d | %d | %d | %s | %s | %.2e | %.3e | %.3e | %s |\n", N, K, M,
                      c.opt.path == W4A16Path::Auto ? (std::string("auto=") + w4a16_path_name(taken)).c_str()
                                                    : c.label,
                      splits.c_str(), s.rel, s.max_abs, s.max_ref, status.c_str());
          std::fflush(stdout);
        }
        STRATA_CUDA_CHECK(cudaFree(dx));
        STRATA_CUDA_CHECK(cudaFree(dy));
      }
      w4a16_free(dw);
    }
    std::printf("\n%s: %d of %d checks failed (seed %llu)\n", failures ? "FAILED" : "PASSED", failures, rows,
                (unsigned long long)seed);
    return failures ? 1 : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cuda_op_check: error: %s\n", e.what());
    return 2;
  }
}
