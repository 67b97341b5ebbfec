// Benchmark (not a test): CPU linear y[M, N] = x[M, K] . W[N, K]^T as prefill (large M) and decode
// (M = 1) run it, for bf16, compressed-tensors INT4 and GGUF Q4_1 / Q8_0 weights, on SmolLM2-135M
// layer shapes and a square one (--shapes 49152x576 is its tied lm_head). Prints GFLOPS
// (2 M N K / time), wall-clock median and best of the reps, and GFLOPS per core by process CPU
// time, which the time slicing of a shared machine does not inflate.
// With --compare, M that takes the GEMM path also runs with it off (the GEMV-shaped kernels),
// so one run shows both. Weights stay cache-warm (one copy): this measures compute, not DRAM.
// Usage: bench_linear_gemm [--isa scalar|avx2|avx512] [--min-time S] [--compare] [--m 1,64,512]
//                          [--kinds bf16,int4,q4_0,q4_1,q8_0] [--shapes 1536x576,576x1536,2048x2048]
//                          [--gemm-min M (rows from which the GEMM path runs)]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/linear.h"
#include "quant/gguf_blocks.h"
#include "quant/int4_format.h"

using namespace strata;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Weight {
  std::string kind;
  std::vector<uint16_t> dense;
  std::vector<uint32_t> packed;
  std::vector<uint16_t> scales;
  std::vector<uint8_t> blocks;
  LinearWeight w;
};

Weight make(const std::string& kind, int N, int K, std::mt19937& rng) {
  Weight r;
  r.kind = kind;
  r.w.n_out = N;
  r.w.n_in = K;
  std::uniform_real_distribution<float> u(-0.1f, 0.1f);
  if (kind == "bf16") {
    r.w.kind = WeightKind::BF16;
    r.dense.resize(size_t(N) * K);
    for (auto& v : r.dense) v = f32_to_bf16(u(rng));
    r.w.dense = r.dense.data();
  } else if (kind == "int4") {
    r.w.kind = WeightKind::Int4;
    r.packed.resize(size_t(N) * K / 8);
    for (auto& v : r.packed) v = uint32_t(rng());
    r.scales.resize(size_t(N) * K / kInt4GroupSize);
    for (auto& v : r.scales) v = f32_to_bf16(0.01f + float(rng() % 100) * 1e-4f);
    r.w.packed = r.packed.data();
    r.w.scales = r.scales.data();
  } else {
    const GgmlType t = kind == "q4_1" ? GgmlType::Q4_1 : kind == "q4_0" ? GgmlType::Q4_0 : GgmlType::Q8_0;
    r.w.kind = WeightKind::Gguf;
    r.w.ggml_type = uint32_t(t);
    r.w.row_bytes = gguf_row_bytes(uint32_t(t), K);
    r.blocks.resize(r.w.row_bytes * size_t(N));
    for (auto& v : r.blocks) v = uint8_t(rng());
    const size_t bb = gguf_row_bytes(uint32_t(t), 32);
    for (size_t b = 0; b < r.blocks.size(); b += bb) {  // finite fp16 scale (and min for Q4_1)
      const uint16_t h = 0x211F;  // fp16 0.01
      std::memcpy(&r.blocks[b], &h, 2);
      if (t == GgmlType::Q4_1) std::memcpy(&r.blocks[b + 2], &h, 2);
    }
    r.w.blocks = r.blocks.data();
  }
  return r;
}

struct Timing {
  double median, best, cpu;  // wall seconds per call (median, best); process CPU seconds per call (median)
};

double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

Timing time_it(const float* x, int M, const LinearWeight& w, float* y, CpuIsa isa, double min_time) {
  linear_f32(x, M, w, y, isa);  // warm
  std::vector<double> t, c;
  auto start = Clock::now();
  while (t.size() < 3 || (seconds_since(start) < min_time && t.size() < 1000)) {
    const double c0 = cpu_seconds();
    auto t0 = Clock::now();
    linear_f32(x, M, w, y, isa);
    t.push_back(seconds_since(t0));
    c.push_back(cpu_seconds() - c0);
  }
  std::sort(t.begin(), t.end());
  std::sort(c.begin(), c.end());
  return {t[t.size() / 2], t[0], c[c.size() / 2]};
}

}  // namespace

int main(int argc, char** argv) {
  CpuIsa isa = cpu_isa_detect();
  double min_time = 1.0;
  bool compare = false;
  std::vector<int> Ms = {1, 64, 512};
  std::string kinds = "bf16,int4,q4_1,q8_0";
  std::vector<std::pair<int, int>> shapes = {{1536, 576}, {576, 1536}, {2048, 2048}};  // N x K
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--isa") && i + 1 < argc) {
      const std::string s = argv[++i];
      isa = s == "scalar" ? CpuIsa::Scalar : s == "avx2" ? CpuIsa::Avx2 : CpuIsa::Avx512;
    } else if (!std::strcmp(argv[i], "--min-time") && i + 1 < argc) {
      min_time = std::atof(argv[++i]);
    } else if (!std::strcmp(argv[i], "--gemm-min") && i + 1 < argc) {
      set_linear_gemm_min_rows(std::atoi(argv[++i]));
    } else if (!std::strcmp(argv[i], "--shapes") && i + 1 < argc) {
      shapes.clear();
      for (const char* p = argv[++i]; *p;) {
        const int n = std::atoi(p);
        while (*p && *p != 'x') p++;
        if (*p) p++;
        shapes.push_back({n, std::atoi(p)});
        while (*p && *p != ',') p++;
        if (*p) p++;
      }
    } else if (!std::strcmp(argv[i], "--kinds") && i + 1 < argc) {
      kinds = argv[++i];
    } else if (!std::strcmp(argv[i], "--compare")) {
      compare = true;
    } else if (!std::strcmp(argv[i], "--m") && i + 1 < argc) {
      Ms.clear();
      for (const char* p = argv[++i]; *p;) {
        Ms.push_back(std::atoi(p));
        while (*p && *p != ',') p++;
        if (*p) p++;
      }
    }
  }
  std::printf("threads %d, ISA %s, min time %.1f s per case, GEMM path from M = %d\n\n", omp_get_max_threads(),
              cpu_isa_name(isa), min_time, linear_gemm_min_rows());
  // GFLOPS/core: by process CPU time (all threads, spin-waits included), which a shared machine's
  // time slicing does not inflate: the kernels' efficiency per core.
  std::printf("| weights | N x K | M | path | ms/call (median) | GFLOPS (median) | GFLOPS (best) | GFLOPS/core (CPU time) |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  std::mt19937 rng(1);
  for (const char* kind : {"bf16", "int4", "q4_0", "q4_1", "q8_0"})
    for (auto [N, K] : shapes) {
      if (("," + kinds + ",").find(std::string(",") + kind + ",") == std::string::npos) continue;
      Weight w = make(kind, N, K, rng);
      for (int M : Ms) {
        std::vector<float> x(size_t(M) * K), y(size_t(M) * N);
        for (auto& v : x) v = float(int(rng() % 200) - 100) * 1e-2f;
        const bool gemm = isa != CpuIsa::Scalar && M >= linear_gemm_min_rows();
        for (int pass = 0; pass < (compare && gemm ? 2 : 1); pass++) {
          const int saved = linear_gemm_min_rows();
          if (pass == 1) set_linear_gemm_min_rows(1 << 30);  // GEMM path off
          const Timing t = time_it(x.data(), M, w.w, y.data(), isa, min_time);
          set_linear_gemm_min_rows(saved);
          const double flop = 2.0 * M * N * K;
          const char* path = pass == 1 || !gemm ? "gemv" : "gemm";
          std::printf("| %s | %d x %d | %d | %s | %.3f | %.1f | %.1f | %.1f |\n", kind, N, K, M, path, t.median * 1e3,
                      flop / t.median / 1e9, flop / t.best / 1e9, flop / t.cpu / 1e9);
          std::fflush(stdout);
        }
      }
    }
  return 0;
}
