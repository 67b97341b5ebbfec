// ISA dispatch, threading and the scalar reference for the CPU linear kernels.
#include "kernels/cpu/linear.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace strata {

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Scalar: return "scalar";
    case CpuIsa::Avx2: return "avx2";
    case CpuIsa::Avx512: return "avx512";
  }
  return "?";
}

CpuIsa cpu_isa_detect() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
    return CpuIsa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CpuIsa::Avx2;
#endif
  return CpuIsa::Scalar;
}

namespace {
std::atomic<int> g_isa{-1};

CpuIsa isa_from_env() {
  CpuIsa best = cpu_isa_detect();
  const char* e = std::getenv("STRATA_CPU_ISA");
  if (!e) return best;
  CpuIsa want = best;
  if (!std::strcmp(e, "scalar")) want = CpuIsa::Scalar;
  if (!std::strcmp(e, "avx2")) want = CpuIsa::Avx2;
  if (!std::strcmp(e, "avx512")) want = CpuIsa::Avx512;
  return std::min(want, best);
}
}  // namespace

CpuIsa cpu_isa_active() {
  int v = g_isa.load();
  if (v < 0) {
    v = int(isa_from_env());
    g_isa.store(v);
  }
  return CpuIsa(v);
}

void set_cpu_isa(CpuIsa isa) { g_isa.store(int(std::min(isa, cpu_isa_detect()))); }

void linear_cols_scalar(const float* x, int M, const LinearWeight& w, int n_begin, int n_end, float* y) {
  const int K = w.n_in, N = w.n_out;
  std::vector<float> row(static_cast<size_t>(K));  // [K] f32: W[n, :]
  for (int n = n_begin; n < n_end; n++) {
    decode_weight_row(w, n, row.data());
    const float b = w.bias.empty() ? 0.f : w.bias[n];
    for (int m = 0; m < M; m++) {
      const float* xm = x + size_t(m) * K;
      float acc = 0.f;
      for (int k = 0; k < K; k++) acc += xm[k] * row[k];
      y[size_t(m) * N + n] = acc + b;
    }
  }
}

void linear_f32(const float* x, int M, const LinearWeight& w, float* y) { linear_f32(x, M, w, y, cpu_isa_active()); }

void linear_f32(const float* x, int M, const LinearWeight& w, float* y, CpuIsa isa) {
  const int N = w.n_out;
  auto body = isa == CpuIsa::Avx512 ? linear_cols_avx512 : isa == CpuIsa::Avx2 ? linear_cols_avx2 : linear_cols_scalar;
  // Work is split over output columns in blocks of 16 so each thread streams its own weight
  // rows once; small layers stay on one thread (fork/join costs more than they do).
  const size_t work = size_t(M) * w.bytes();
  const int n_blocks = (N + 15) / 16;
  if (work < (64u << 10) || n_blocks == 1) {
    for (int b = 0; b < n_blocks; b++) body(x, M, w, b * 16, std::min(N, b * 16 + 16), y);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int b = 0; b < n_blocks; b++) body(x, M, w, b * 16, std::min(N, b * 16 + 16), y);
}

}  // namespace strata
