// CPU linear kernels: y[M, N] = x[M, K] . W[N, K]^T (+ bias), f32 activations, weights as stored
// (bf16 / f16 / f32 / packed INT4 dequantised inside the kernel). Scalar reference, AVX2, AVX-512.
// Not a BLAS: shapes are what LLM layers need; M is small for decode, up to a few thousand for prefill.
#pragma once
#include "core/weight.h"

namespace strata {

enum class CpuIsa { Scalar, Avx2, Avx512 };

const char* cpu_isa_name(CpuIsa isa);
// Best ISA this CPU and this build support.
CpuIsa cpu_isa_detect();
// The ISA the kernels use: cpu_isa_detect(), or STRATA_CPU_ISA=scalar|avx2|avx512 when set
// (capped at what the CPU supports), or what set_cpu_isa() chose last.
CpuIsa cpu_isa_active();
void set_cpu_isa(CpuIsa isa);

// Multi-threaded over N. x: [M, K] f32, y: [M, N] f32. Any kind of weight on every ISA (kinds
// without a SIMD decoder go through decode_weight_row's scalar decoding).
void linear_f32(const float* x, int M, const LinearWeight& w, float* y);
void linear_f32(const float* x, int M, const LinearWeight& w, float* y, CpuIsa isa);

// Rows of x from which linear_f32 takes the GEMM path (kernels/cpu/linear_gemm.h: a dequantised,
// packed W panel reused for every row; AVX2 / AVX-512 only) instead of the GEMV-shaped
// per-column kernels below, which decode keeps. Default 8; settable for tests and benchmarks.
int linear_gemm_min_rows();
void set_linear_gemm_min_rows(int m);

// The per-ISA bodies: columns [n_begin, n_end) of y for all M rows (single-threaded);
// at most 16 columns per call (linear_f32 splits the work so).
void linear_cols_scalar(const float* x, int M, const LinearWeight& w, int n_begin, int n_end, float* y);
void linear_cols_avx2(const float* x, int M, const LinearWeight& w, int n_begin, int n_end, float* y);
void linear_cols_avx512(const float* x, int M, const LinearWeight& w, int n_begin, int n_end, float* y);

}  // namespace strata
