// ISA dispatch (GEMV-shaped kernels for decode-sized M, the GEMM path of linear_gemm.h for
// prefill), threading and the scalar reference for the CPU linear kernels.
#include "kernels/cpu/linear.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "io/gguf.h"
#include "kernels/cpu/linear_gemm.h"
#include "quant/gguf_blocks.h"
#include "quant/int4_format.h"

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
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("f16c"))
    return CpuIsa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
    return CpuIsa::Avx2;
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

namespace {
std::atomic<int> g_gemm_min_rows{8};  // bench_linear_gemm: the crossover is M ~ 4-12 by kind
}
int linear_gemm_min_rows() { return g_gemm_min_rows.load(); }
void set_linear_gemm_min_rows(int m) { g_gemm_min_rows.store(m); }

void decode_weight_slice(const LinearWeight& w, int n, int k0, int k1, float* out) {
  const size_t K = size_t(w.n_in);
  switch (w.kind) {
    case WeightKind::F32: {
      const float* r = static_cast<const float*>(w.dense) + n * K;
      for (int k = k0; k < k1; k++) out[k - k0] = r[k];
      break;
    }
    case WeightKind::F16: {
      const uint16_t* r = static_cast<const uint16_t*>(w.dense) + n * K;
      for (int k = k0; k < k1; k++) out[k - k0] = f16_to_f32(r[k]);
      break;
    }
    case WeightKind::BF16: {
      const uint16_t* r = static_cast<const uint16_t*>(w.dense) + n * K;
      for (int k = k0; k < k1; k++) out[k - k0] = bf16_to_f32(r[k]);
      break;
    }
    case WeightKind::Int4: {
      const uint32_t* words = w.packed + n * (K / 8);
      const uint16_t* s = w.scales + n * (K / kInt4GroupSize);
      for (int k = k0; k < k1; k++) out[k - k0] = float(int4_code(words, k)) * bf16_to_f32(s[k / kInt4GroupSize]);
      break;
    }
    case WeightKind::Gguf:  // k0 on a block boundary
      gguf_dequant_row(w.ggml_type, w.blocks + size_t(n) * w.row_bytes + gguf_row_bytes(w.ggml_type, k0), k1 - k0, out);
      break;
  }
}

int gemm_k_align(const LinearWeight& w) {
  if (w.kind != WeightKind::Gguf) return 32;
  const GgmlTypeInfo* t = ggml_type_info(w.ggml_type);
  return t && t->block_elems > 32 ? int(t->block_elems) : 32;
}

void linear_f32(const float* x, int M, const LinearWeight& w, float* y) { linear_f32(x, M, w, y, cpu_isa_active()); }

void linear_f32(const float* x, int M, const LinearWeight& w, float* y, CpuIsa isa) {
  const int N = w.n_out;
  // Prefill-sized M: the GEMM path (kernels/cpu/linear_gemm.h), threads inside.
  if (isa != CpuIsa::Scalar && M >= linear_gemm_min_rows()) {
    (isa == CpuIsa::Avx512 ? linear_gemm_avx512 : linear_gemm_avx2)(x, M, w, y);
    return;
  }
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
