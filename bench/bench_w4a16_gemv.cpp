// Benchmark (not a test): CPU W4A16 GEMV/GEMM on Kimi-K2 expert shapes. Reports achieved GB/s of
// weight bytes (packed nibbles + bf16 scales) and its ratio to memcpy bandwidth measured in the
// same run. Weights rotate over many expert copies (> 8x L3) so they stream from DRAM, as in decode.
// Usage: bench_w4a16_gemv [--reps N] [--copies N]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/linear.h"
#include "quant/int4_format.h"

using namespace strata;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// memcpy bandwidth over `bytes`-sized buffers, counted as bytes read + bytes written, multi-threaded.
double copy_bandwidth_gbs(size_t bytes, int reps) {
  std::vector<char> a(bytes, 1), b(bytes, 2);
  std::vector<double> t;
  for (int r = 0; r < reps; r++) {
    auto t0 = Clock::now();
#pragma omp parallel
    {
      const int nt = omp_get_num_threads(), id = omp_get_thread_num();
      const size_t chunk = bytes / nt;
      std::memcpy(b.data() + id * chunk, a.data() + id * chunk, id == nt - 1 ? bytes - id * chunk : chunk);
    }
    t.push_back(seconds_since(t0));
  }
  return 2.0 * bytes / median(t) / 1e9;
}

struct Expert {
  std::vector<uint32_t> packed;  // [N, K/8]
  std::vector<uint16_t> scales;  // bf16 [N, K/32]
  std::vector<uint16_t> dense;   // bf16 [N, K] (only for the bf16 comparison)
  LinearWeight w;
};

}  // namespace

int main(int argc, char** argv) {
  int reps = 200, copies = 40;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--copies")) copies = std::atoi(argv[i + 1]);
  }
  std::printf("threads %d, best ISA %s, %d expert copies rotated, %d reps (median)\n", omp_get_max_threads(),
              cpu_isa_name(cpu_isa_detect()), copies, reps);
  const double copy_gbs = copy_bandwidth_gbs(size_t(256) << 20, 20);
  std::printf("memcpy bandwidth (read + write): %.2f GB/s\n\n", copy_gbs);
  std::printf("| N x K | M | weights | ISA | us/call | GB/s | fraction of memcpy |\n|---|---|---|---|---|---|---|\n");

  std::mt19937 rng(1);
  const std::pair<int, int> shapes[] = {{2048, 7168}, {7168, 2048}};
  for (auto [N, K] : shapes) {
    std::vector<Expert> ex(static_cast<size_t>(copies));
    for (auto& e : ex) {
      e.packed.resize(size_t(N) * K / 8);
      for (auto& v : e.packed) v = uint32_t(rng());
      e.scales.resize(size_t(N) * K / kInt4GroupSize);
      for (auto& v : e.scales) v = f32_to_bf16(0.01f + float(rng() % 100) * 1e-4f);
      e.w.kind = WeightKind::Int4;
      e.w.n_out = N;
      e.w.n_in = K;
      e.w.packed = e.packed.data();
      e.w.scales = e.scales.data();
    }
    // bf16 copies of the same shape, fewer (4x the bytes each), for the bf16-vs-int4 comparison.
    std::vector<Expert> bf(size_t(std::max(2, copies / 4)));
    for (auto& e : bf) {
      e.dense.resize(size_t(N) * K);
      for (auto& v : e.dense) v = f32_to_bf16(float(int(rng() % 200) - 100) * 1e-3f);
      e.w.kind = WeightKind::BF16;
      e.w.n_out = N;
      e.w.n_in = K;
      e.w.dense = e.dense.data();
    }
    for (int M : {1, 4, 16}) {
      std::vector<float> x(size_t(M) * K), y(size_t(M) * N);
      for (auto& v : x) v = float(int(rng() % 200) - 100) * 1e-2f;
      for (CpuIsa isa : {CpuIsa::Scalar, CpuIsa::Avx2, CpuIsa::Avx512}) {
        if (isa > cpu_isa_detect() || (isa == CpuIsa::Scalar && M > 1)) continue;
        for (int kind = 0; kind < 2; kind++) {
          if (kind == 1 && isa != cpu_isa_detect()) continue;  // bf16 only on the best ISA
          auto& set = kind == 0 ? ex : bf;
          const int r_here = isa == CpuIsa::Scalar ? std::max(5, reps / 20) : reps;
          std::vector<double> t;
          for (int r = 0; r < r_here + 3; r++) {
            const LinearWeight& w = set[size_t(r) % set.size()].w;
            auto t0 = Clock::now();
            linear_f32(x.data(), M, w, y.data(), isa);
            if (r >= 3) t.push_back(seconds_since(t0));
          }
          const double s = median(t);
          const double gbs = double(set[0].w.bytes()) / s / 1e9;
          std::printf("| %d x %d | %d | %s | %s | %.1f | %.2f | %.2f |\n", N, K, M, kind == 0 ? "int4" : "bf16",
                      cpu_isa_name(isa), s * 1e6, gbs, gbs / copy_gbs);
        }
      }
    }
  }
  return 0;
}
