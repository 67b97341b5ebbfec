// Benchmark of the CUDA W4A16 linear (skinny and tiled paths) against cuBLAS bf16 GEMM on LLM/MoE shapes:
// median CUDA-event time, weight GB/s vs measured device-to-device copy bandwidth, TFLOP/s; markdown table.
// Not a correctness check (tools/cuda/cuda_op_check.cu is); weights rotate over copies (> 3x L2) to come from DRAM.
// Usage: bench_w4a16_cuda [--reps N] [--quick]
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/cuda_w4a16.h"

using namespace strata;
using namespace strata::cuda;

#define CUBLAS_CHECK(expr)                                                                              \
  do {                                                                                                  \
    const cublasStatus_t st_ = (expr);                                                                  \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                                   \
      throw ::strata::Error(std::string(#expr) + " failed: cublas status " + std::to_string(int(st_))); \
  } while (0)

namespace {

__device__ __forceinline__ uint32_t hash32(uint64_t i, uint32_t seed) {
  uint64_t z = i * 0x9E3779B97F4A7C15ull + seed;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return uint32_t(z ^ (z >> 31));
}

__global__ void fill_u32(uint32_t* p, size_t n, uint32_t seed) {  // [n] random words (INT4 codes)
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = hash32(i, seed);
}

// [n] bf16, |v| in [lo, hi), random sign when signed_ (never zero).
__global__ void fill_bf16(uint16_t* p, size_t n, uint32_t seed, float lo, float hi, bool signed_) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const uint32_t h = hash32(i, seed);
    float v = lo + (hi - lo) * float(h >> 8) * (1.0f / 16777216.0f);
    if (signed_ && (h & 1)) v = -v;
    p[i] = __bfloat16_as_ushort(__float2bfloat16_rn(v));
  }
}

void launch_fill_u32(uint32_t* p, size_t n, uint32_t seed) {
  fill_u32<<<1024, 256>>>(p, n, seed);
  STRATA_CUDA_CHECK_LAUNCH();
}
void launch_fill_bf16(uint16_t* p, size_t n, uint32_t seed, float lo, float hi, bool signed_) {
  fill_bf16<<<1024, 256>>>(p, n, seed, lo, hi, signed_);
  STRATA_CUDA_CHECK_LAUNCH();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median microseconds per launch. One sample = one pass over all `copies` (launch(c) for each c), captured
// once into a CUDA graph and replayed, so host launch overhead does not hide short kernels; falls back to
// plain launches if capture fails.
template <class F>
double time_us(F&& launch, int copies, int reps, cudaStream_t s) {
  for (int w = 0; w < 2; w++)  // warm-up (also runs any one-time setup outside the capture)
    for (int c = 0; c < copies; c++) launch(c);
  STRATA_CUDA_CHECK(cudaStreamSynchronize(s));
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  if (cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed) == cudaSuccess) {
    bool captured = true;
    try {
      for (int c = 0; c < copies; c++) launch(c);
    } catch (const std::exception&) {
      captured = false;
    }
    if (cudaStreamEndCapture(s, &graph) != cudaSuccess || !captured ||
        cudaGraphInstantiate(&exec, graph, 0) != cudaSuccess)
      exec = nullptr;
  }
  (void)cudaGetLastError();  // a failed capture is not an error here: time plain launches instead
  cudaEvent_t e0, e1;
  STRATA_CUDA_CHECK(cudaEventCreate(&e0));
  STRATA_CUDA_CHECK(cudaEventCreate(&e1));
  std::vector<double> t;
  for (int r = 0; r < reps; r++) {
    STRATA_CUDA_CHECK(cudaEventRecord(e0, s));
    if (exec)
      STRATA_CUDA_CHECK(cudaGraphLaunch(exec, s));
    else
      for (int c = 0; c < copies; c++) launch(c);
    STRATA_CUDA_CHECK(cudaEventRecord(e1, s));
    STRATA_CUDA_CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    STRATA_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    t.push_back(double(ms) * 1e3 / copies);
  }
  STRATA_CUDA_CHECK(cudaEventDestroy(e0));
  STRATA_CUDA_CHECK(cudaEventDestroy(e1));
  if (exec) STRATA_CUDA_CHECK(cudaGraphExecDestroy(exec));
  if (graph) STRATA_CUDA_CHECK(cudaGraphDestroy(graph));
  return median(t);
}

// Device-to-device cudaMemcpy bandwidth, bytes read + bytes written, GB/s.
double copy_bandwidth_gbs(size_t bytes, int reps, cudaStream_t s) {
  void *a = nullptr, *b = nullptr;
  STRATA_CUDA_CHECK(cudaMalloc(&a, bytes));
  STRATA_CUDA_CHECK(cudaMalloc(&b, bytes));
  STRATA_CUDA_CHECK(cudaMemset(a, 1, bytes));
  const double us = time_us([&](int) { STRATA_CUDA_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, s)); },
                            1, reps, s);
  STRATA_CUDA_CHECK(cudaFree(a));
  STRATA_CUDA_CHECK(cudaFree(b));
  return 2.0 * double(bytes) / (us * 1e-6) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 30;
  bool quick = false;
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
    if (!std::strcmp(argv[i], "--quick")) quick = true;
  }
  try {
    int dev = 0, sms = 0, l2 = 0;
    cudaDeviceProp prop{};
    STRATA_CUDA_CHECK(cudaGetDevice(&dev));
    STRATA_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    STRATA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    STRATA_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
    cudaStream_t s;
    STRATA_CUDA_CHECK(cudaStreamCreate(&s));
    cublasHandle_t blas;
    CUBLAS_CHECK(cublasCreate(&blas));
    CUBLAS_CHECK(cublasSetStream(blas, s));

    const double copy_gbs = copy_bandwidth_gbs(size_t(1) << 30, 20, s);
    std::printf("bench_w4a16_cuda: %s, %d SMs, L2 %.0f MB, %d reps (median of per-launch averages)\n", prop.name, sms,
                l2 / 1e6, reps);
    std::printf("device-to-device cudaMemcpy bandwidth (read + write): %.0f GB/s  <- the ceiling for weight GB/s\n",
                copy_gbs);
    std::printf("weight GB/s = (INT4 nibbles + bf16 scales) / time of the auto path; speed-up = cuBLAS bf16 time / auto time\n\n");
    std::printf("| N x K | M | auto | skinny us | tiled us | weight GB/s | %% of copy BW | TFLOP/s | cuBLAS bf16 us | "
                "cuBLAS TFLOP/s | speed-up |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");

    std::vector<std::pair<int, int>> shapes = {{8192, 28672}, {28672, 8192}, {2048, 7168}, {7168, 2048}};
    std::vector<int> Ms = {1, 4, 16, 64, 256, 1024, 4096};
    if (quick) {
      shapes = {{2048, 7168}};
      Ms = {1, 16, 256};
    }
    const int max_m = *std::max_element(Ms.begin(), Ms.end());
    uint32_t seed = 12345;

    for (auto [N, K] : shapes) {
      const size_t nk = size_t(N) * size_t(K);
      const size_t w4_bytes = nk / 2 + nk / 16, bf_bytes = nk * 2;
      const int copies = int(std::clamp<size_t>((3 * size_t(l2) + w4_bytes - 1) / w4_bytes, 2, 64));
      const int bf_copies = int(std::clamp<size_t>((3 * size_t(l2) + bf_bytes - 1) / bf_bytes, 2, 16));

      // INT4 weights: one random checkpoint-format tensor, repacked into `copies` device buffers.
      uint32_t* ct_packed = nullptr;
      uint16_t* ct_scales = nullptr;
      STRATA_CUDA_CHECK(cudaMalloc(&ct_packed, nk / 2));
      STRATA_CUDA_CHECK(cudaMalloc(&ct_scales, nk / 16));
      launch_fill_u32(ct_packed, nk / 8, seed++);
      launch_fill_bf16(ct_scales, nk / 32, seed++, 0.002f, 0.02f, false);
      std::vector<W4A16Weight> w4(static_cast<size_t>(copies));
      for (auto& w : w4) {
        w.n_out = N;
        w.n_in = K;
        STRATA_CUDA_CHECK(cudaMalloc(&w.packed, nk / 2));
        STRATA_CUDA_CHECK(cudaMalloc(&w.scales, nk / 16));
        w4a16_repack(ct_packed, ct_scales, N, K, w.packed, w.scales, s);
      }
      STRATA_CUDA_CHECK(cudaStreamSynchronize(s));
      STRATA_CUDA_CHECK(cudaFree(ct_packed));
      STRATA_CUDA_CHECK(cudaFree(ct_scales));
      // bf16 weights for cuBLAS, [N, K] row-major.
      std::vector<uint16_t*> wbf(static_cast<size_t>(bf_copies));
      for (auto& p : wbf) {
        STRATA_CUDA_CHECK(cudaMalloc(&p, bf_bytes));
        launch_fill_bf16(p, nk, seed++, 0.005f, 0.05f, true);
      }
      uint16_t *x = nullptr, *y = nullptr;
      STRATA_CUDA_CHECK(cudaMalloc(&x, size_t(max_m) * K * 2));
      STRATA_CUDA_CHECK(cudaMalloc(&y, size_t(max_m) * N * 2));
      launch_fill_bf16(x, size_t(max_m) * K, seed++, 0.25f, 1.0f, true);
      size_t ws_bytes = 0;
      for (int M : Ms) ws_bytes = std::max(ws_bytes, w4a16_workspace_bytes(M, N, K, {W4A16Path::Tiled, 0}));
      void* ws = nullptr;
      if (ws_bytes) STRATA_CUDA_CHECK(cudaMalloc(&ws, ws_bytes));
      STRATA_CUDA_CHECK(cudaDeviceSynchronize());

      for (int M : Ms) {
        auto run_path = [&](W4A16Path p) {
          const W4A16Options opt{p, 0};
          return time_us([&](int c) { w4a16_linear(x, M, w4[size_t(c)], y, ws, ws_bytes, s, opt); }, copies, reps, s);
        };
        const double t_skinny = M <= 16 ? run_path(W4A16Path::Skinny) : NAN;
        const double t_tiled = run_path(W4A16Path::Tiled);
        const W4A16Path ap = w4a16_auto_path(M);
        const double t_auto = ap == W4A16Path::Skinny ? t_skinny : t_tiled;
        // cuBLAS (column-major): C[N x M] = W[K x N]^T . X[K x M], i.e. y[M, N] = x[M, K] . W[N, K]^T.
        const float alpha = 1.f, beta = 0.f;
        const double t_blas = time_us(
            [&](int c) {
              CUBLAS_CHECK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, wbf[size_t(c)], CUDA_R_16BF, K,
                                        x, CUDA_R_16BF, K, &beta, y, CUDA_R_16BF, N, CUBLAS_COMPUTE_32F,
                                        CUBLAS_GEMM_DEFAULT));
            },
            bf_copies, reps, s);
        const double flop = 2.0 * M * double(nk);
        const double gbs = double(w4_bytes) / (t_auto * 1e-6) / 1e9;
        char skinny_s[32];
        if (M <= 16)
          std::snprintf(skinny_s, sizeof skinny_s, "%.1f", t_skinny);
        else
          std::snprintf(skinny_s, sizeof skinny_s, "-");
        std::printf("| %d x %d | %d | %s | %s | %.1f | %.0f | %.0f%% | %.1f | %.1f | %.1f | %.2fx |\n", N, K, M,
                    w4a16_path_name(ap), skinny_s, t_tiled, gbs, 100.0 * gbs / copy_gbs, flop / (t_auto * 1e-6) / 1e12,
                    t_blas, flop / (t_blas * 1e-6) / 1e12, t_blas / t_auto);
        std::fflush(stdout);
      }

      for (auto& w : w4) {
        STRATA_CUDA_CHECK(cudaFree(w.packed));
        STRATA_CUDA_CHECK(cudaFree(w.scales));
      }
      for (auto* p : wbf) STRATA_CUDA_CHECK(cudaFree(p));
      STRATA_CUDA_CHECK(cudaFree(x));
      STRATA_CUDA_CHECK(cudaFree(y));
      if (ws) STRATA_CUDA_CHECK(cudaFree(ws));
    }
    CUBLAS_CHECK(cublasDestroy(blas));
    STRATA_CUDA_CHECK(cudaStreamDestroy(s));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_w4a16_cuda: error: %s\n", e.what());
    return 2;
  }
}
