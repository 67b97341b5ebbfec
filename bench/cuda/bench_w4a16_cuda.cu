// Benchmark of the CUDA W4A16 ops on the issue's shapes: the linear against cuBLAS bf16 GEMM, and the fused
// MoE layer of Kimi-K2. Median of many CUDA-event timings of graph replays; weights rotate over copies (> 3x
// L2) so they come from DRAM; the ceiling is the measured device-to-device copy bandwidth (read + write).
// Not a correctness check (tools/cuda/cuda_op_check.cu is). Prints markdown tables.
// Usage: bench_w4a16_cuda [--reps N] [--quick] [--no-gemm] [--no-moe] [--no-sweep] [--no-moe-sweep] [--shapes NxK,NxK..]
//                        [--ms M,M..]
// Skinny timings chain the launches of one graph with programmatic dependent launch (as a decode step chains its
// GEMMs; each waits for the previous one before reading x / writing y); the sweep also prints them without ("noPDL").
// cuBLAS runs as a plain chain of launches (it is a library call; its kernels are not PDL-aware here).
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/cuda_moe.h"
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

__global__ void copy_kernel(const uint4* __restrict__ a, uint4* __restrict__ b, size_t n) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) b[i] = a[i];
}

// Reads two arrays once (INT4 codes, then scales: the weight stream of a W4A16 GEMV without the math); the
// first blocks take a, the rest b, by byte share; one word per block out.
// kPdl: shaped like the skinny GEMMs as a programmatic dependent launch: it lets the next launch start at once,
// issues its loads, and waits for the previous kernel (griddepcontrol.wait) only before its one store. The floor
// of a chain of dependent decode GEMMs that prefetch their weights before the dependency resolves.
template <bool kPdl>
__global__ void read2_kernel(const uint4* __restrict__ a, size_t na, const uint4* __restrict__ b, size_t nb,
                             uint32_t* __restrict__ sink) {
  if constexpr (kPdl) asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  const unsigned ga = unsigned(double(gridDim.x) * double(na) / double(na + nb));
  const bool first = blockIdx.x < ga;
  const uint4* p = first ? a : b;
  const size_t n = first ? na : nb;
  const unsigned blk = first ? blockIdx.x : blockIdx.x - ga, nblk = first ? ga : gridDim.x - ga;
  uint32_t v = 0;
  for (size_t i = size_t(blk) * blockDim.x + threadIdx.x; i < n; i += size_t(nblk) * blockDim.x) {
    const uint4 q = __ldcs(p + i);
    v ^= q.x ^ q.y ^ q.z ^ q.w;
  }
  if constexpr (kPdl) asm volatile("griddepcontrol.wait;" ::: "memory");
  if (v == 0x9E3779B9u) sink[blockIdx.x] = v;  // practically never; keeps the loads
}

void launch_fill_u32(uint32_t* p, size_t n, uint32_t seed, cudaStream_t s = nullptr) {
  fill_u32<<<1024, 256, 0, s>>>(p, n, seed);
  STRATA_CUDA_CHECK_LAUNCH();
}
void launch_fill_bf16(uint16_t* p, size_t n, uint32_t seed, float lo, float hi, bool signed_, cudaStream_t s = nullptr) {
  fill_bf16<<<1024, 256, 0, s>>>(p, n, seed, lo, hi, signed_);
  STRATA_CUDA_CHECK_LAUNCH();
}

// `copies` repacked copies of one random N x K INT4 weight (codes uniform, scales in [0.002, 0.02)), on stream s.
std::vector<W4A16Weight> random_w4_copies(int N, int K, int copies, uint32_t seed, cudaStream_t s) {
  const size_t nk = size_t(N) * size_t(K);
  uint32_t* ct_packed = nullptr;
  uint16_t* ct_scales = nullptr;
  STRATA_CUDA_CHECK(cudaMalloc(&ct_packed, nk / 2));
  STRATA_CUDA_CHECK(cudaMalloc(&ct_scales, nk / 16));
  launch_fill_u32(ct_packed, nk / 8, seed, s);
  launch_fill_bf16(ct_scales, nk / 32, seed + 1, 0.002f, 0.02f, false, s);
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
  return w4;
}
void free_w4(std::vector<W4A16Weight>& w4) {
  for (auto& w : w4) {
    STRATA_CUDA_CHECK(cudaFree(w.packed));
    STRATA_CUDA_CHECK(cudaFree(w.scales));
  }
  w4.clear();
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

// Device-to-device copy bandwidth, bytes read + bytes written, GB/s: cudaMemcpyAsync and a 16-byte copy kernel.
void copy_bandwidth_gbs(size_t bytes, int reps, cudaStream_t s, double* memcpy_gbs, double* kernel_gbs) {
  void *a = nullptr, *b = nullptr;
  STRATA_CUDA_CHECK(cudaMalloc(&a, bytes));
  STRATA_CUDA_CHECK(cudaMalloc(&b, bytes));
  STRATA_CUDA_CHECK(cudaMemset(a, 1, bytes));
  const double us = time_us([&](int) { STRATA_CUDA_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, s)); },
                            1, reps, s);
  int sms = 0;
  STRATA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  const double us_k = time_us(
      [&](int) {
        copy_kernel<<<sms * 8, 512, 0, s>>>(static_cast<const uint4*>(a), static_cast<uint4*>(b), bytes / 16);
        STRATA_CUDA_CHECK_LAUNCH();
      },
      1, reps, s);
  STRATA_CUDA_CHECK(cudaFree(a));
  STRATA_CUDA_CHECK(cudaFree(b));
  *memcpy_gbs = 2.0 * double(bytes) / (us * 1e-6) / 1e9;
  *kernel_gbs = 2.0 * double(bytes) / (us_k * 1e-6) / 1e9;
}

struct Env {
  cudaStream_t s;
  cublasHandle_t blas;
  int l2 = 0, reps = 50;
  double ceiling = 0;
  bool quick = false, sweep = true, moe_sweep = true;
  std::vector<std::pair<int, int>> shapes;  // empty: the issue's four
  std::vector<int> ms;                      // empty: the issue's seven
  std::vector<std::array<int, 4>> traces;   // --trace N K M S (repeatable; S: ring stages, 0 = auto): only these
};

// "8192x28672,2048x7168" -> pairs; "1,4,16" -> ints.
std::vector<std::pair<int, int>> parse_shapes(const char* s) {
  std::vector<std::pair<int, int>> v;
  int n = 0, k = 0, used = 0;
  while (std::sscanf(s, "%dx%d%n", &n, &k, &used) == 2) {
    v.push_back({n, k});
    s += used;
    if (*s != ',') break;
    s++;
  }
  return v;
}
std::vector<int> parse_ints(const char* s) {
  std::vector<int> v;
  int m = 0, used = 0;
  while (std::sscanf(s, "%d%n", &m, &used) == 1) {
    v.push_back(m);
    s += used;
    if (*s != ',') break;
    s++;
  }
  return v;
}

// ------------------------------------------------------------------------------------------------ GEMM

void bench_gemm(Env& env) {
  std::vector<std::pair<int, int>> shapes = {{8192, 28672}, {28672, 8192}, {2048, 7168}, {7168, 2048}};
  std::vector<int> Ms = {1, 4, 16, 64, 256, 1024, 4096};
  if (env.quick) {
    shapes = {{2048, 7168}};
    Ms = {1, 16, 256};
  }
  if (!env.shapes.empty()) shapes = env.shapes;
  if (!env.ms.empty()) Ms = env.ms;
  const int max_m = *std::max_element(Ms.begin(), Ms.end());
  uint32_t seed = 12345;
  std::vector<std::string> main_rows, sweep_rows, read_rows;
  const cudaStream_t s = env.s;

  for (auto [N, K] : shapes) {
    const size_t nk = size_t(N) * size_t(K);
    const size_t w4_bytes = nk / 2 + nk / 16, bf_bytes = nk * 2;
    const int copies = int(std::clamp<size_t>((3 * size_t(env.l2) + w4_bytes - 1) / w4_bytes, 2, 64));
    const int bf_copies = int(std::clamp<size_t>((3 * size_t(env.l2) + bf_bytes - 1) / bf_bytes, 2, 16));

    std::vector<W4A16Weight> w4 = random_w4_copies(N, K, copies, seed, s);
    seed += 2;
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
    for (int M : Ms)
      for (int bt : {64, 128, 256}) {
        W4A16Options o;
        o.path = W4A16Path::Wgmma;
        o.wgmma_tokens = bt;
        ws_bytes = std::max(ws_bytes, w4a16_workspace_bytes(M, N, K, o));
        o.path = W4A16Path::Tiled;
        ws_bytes = std::max(ws_bytes, w4a16_workspace_bytes(M, N, K, o));
      }
    void* ws = nullptr;
    if (ws_bytes) STRATA_CUDA_CHECK(cudaMalloc(&ws, ws_bytes));
    STRATA_CUDA_CHECK(cudaDeviceSynchronize());

    {  // the floor of a skinny launch: read the same packed bytes, nothing else, same rotation and graph chain
      uint32_t* sink = nullptr;
      STRATA_CUDA_CHECK(cudaMalloc(&sink, 4096 * 4));
      int sms = 0;
      STRATA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
      // Codes and scales are two allocations: one kernel reads both (blocks split in proportion to the bytes).
      const double t_read = time_us(
          [&](int c) {
            read2_kernel<false><<<sms * 4, 512, 0, s>>>(static_cast<const uint4*>(static_cast<const void*>(w4[size_t(c)].packed)),
                                                 nk / 32, static_cast<const uint4*>(static_cast<const void*>(w4[size_t(c)].scales)),
                                                 nk / 256, sink);
            STRATA_CUDA_CHECK_LAUNCH();
          },
          copies, env.reps, s);
      // The same reads as a PDL chain (blocks of 256 threads, 8 per SM: the next launch's blocks fit beside the
      // running ones).
      const double t_read_pdl = time_us(
          [&](int c) {
            cudaLaunchConfig_t cfg = {};
            cfg.gridDim = dim3(unsigned(sms * 4));
            cfg.blockDim = dim3(256);
            cfg.stream = s;
            cudaLaunchAttribute attr[1];
            attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
            attr[0].val.programmaticStreamSerializationAllowed = 1;
            cfg.attrs = attr;
            cfg.numAttrs = 1;
            STRATA_CUDA_CHECK(cudaLaunchKernelEx(
                &cfg, read2_kernel<true>, static_cast<const uint4*>(static_cast<const void*>(w4[size_t(c)].packed)),
                nk / 32, static_cast<const uint4*>(static_cast<const void*>(w4[size_t(c)].scales)), nk / 256, sink));
          },
          copies, env.reps, s);
      char line[320];
      std::snprintf(line, sizeof line,
                    "| %d x %d | %.2f MB (codes + scales) | %.1f us | %.0f GB/s | %.0f%% | %.1f us | %.0f%% |", N, K,
                    w4_bytes / 1e6, t_read, w4_bytes / (t_read * 1e-6) / 1e9,
                    100.0 * w4_bytes / (t_read * 1e-6) / 1e9 / env.ceiling, t_read_pdl,
                    100.0 * w4_bytes / (t_read_pdl * 1e-6) / 1e9 / env.ceiling);
      read_rows.push_back(line);
      std::printf("%s\n", line);
      STRATA_CUDA_CHECK(cudaFree(sink));
    }
    for (int M : Ms) {
      // Let the clocks recover after the previous (compute-heavy, ~700 W) rows: without this the first skinny rows
      // of a shape measured up to 15% slower than the same configuration later in its sweep.
      std::this_thread::sleep_for(std::chrono::milliseconds(400));
      auto run = [&](const W4A16Options& opt) {
        return time_us([&](int c) { w4a16_linear(x, M, w4[size_t(c)], y, ws, ws_bytes, s, opt); }, copies, env.reps,
                       s);
      };
      const double t_auto = run(W4A16Options{});
      const float alpha = 1.f, beta = 0.f;
      // cuBLAS (column-major): C[N x M] = W[K x N]^T . X[K x M], i.e. y[M, N] = x[M, K] . W[N, K]^T.
      const double t_blas = time_us(
          [&](int c) {
            CUBLAS_CHECK(cublasGemmEx(env.blas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, wbf[size_t(c)], CUDA_R_16BF,
                                      K, x, CUDA_R_16BF, K, &beta, y, CUDA_R_16BF, N, CUBLAS_COMPUTE_32F,
                                      CUBLAS_GEMM_DEFAULT));
          },
          bf_copies, env.reps, s);
      const W4A16Path ap = w4a16_auto_path(M);
      std::string cfg = w4a16_path_name(ap);
      if (ap == W4A16Path::Skinny) {
        const SkinnyConfig sc = w4a16_skinny_config(M, N, K);
        cfg += ' ';
        cfg += w4a16_skinny_name(sc);
      } else {
        const WgmmaConfig wc = w4a16_wgmma_config(M, N, K);
        cfg += std::string(wc.ws ? " ws" : " cp.async") + " BT" + std::to_string(wc.tokens) + " split" +
               std::to_string(wc.splits);
      }
      const double flop = 2.0 * M * double(nk);
      const double gbs = double(w4_bytes) / (t_auto * 1e-6) / 1e9;
      char line[512];
      std::snprintf(line, sizeof line, "| %d x %d | %d | %s | %.1f | %.0f | %.0f%% | %.1f | %.1f | %.1f | %.2fx |", N, K,
                    M, cfg.c_str(), t_auto, gbs, 100.0 * gbs / env.ceiling, flop / (t_auto * 1e-6) / 1e12, t_blas,
                    flop / (t_blas * 1e-6) / 1e12, t_blas / t_auto);
      main_rows.push_back(line);
      std::printf("%s\n", line);
      std::fflush(stdout);

      if (env.sweep) {  // the alternatives the heuristics chose between
        std::string row = "| " + std::to_string(N) + " x " + std::to_string(K) + " | " + std::to_string(M) + " |";
        if (M <= 16) {
          {
            W4A16Options o;
            o.pdl = false;
            char b[64];
            std::snprintf(b, sizeof b, " auto noPDL %.1f |", run(o));
            row += b;
          }
          for (int pipe : {0, 1})
            for (int r : {1, 2, 4, 7, 8, 14})
              for (int wp : {4, 8, 16})
                for (int cl : {1, 2}) {
                  if (!pipe && (wp == 4 || r >= 7)) continue;
                  if ((N / 16) % r != 0 || (r == 8 && M <= 8) || (r == 14 && M > 8) || (r >= 7 && (wp > 8 || cl > 1)))
                    continue;
                  W4A16Options o;
                  o.path = W4A16Path::Skinny;
                  o.skinny_rows = r;
                  o.skinny_warps = wp;
                  o.skinny_split = cl;
                  o.skinny_pipe = pipe;
                  o.skinny_flat = 0;  // the ring (the flat kernel has its own entries below)
                  const SkinnyConfig sc = w4a16_skinny_config(M, N, K, o);
                  char b[80];
                  std::snprintf(b, sizeof b, " %sR%dW%dC%d %.1f |",
                                pipe ? ("pS" + std::to_string(sc.stages)).c_str() : sc.xs ? "xs" : "", r, sc.warps,
                                sc.split, run(o));
                  row += b;
                }
          // At M > 8 the f32-scale form (R >= 7: exact codes, group scale in f32) runs ~25% fewer instructions per
          // weight than R4's bf16 dequant (SASS: 77 vs 104 per k tile and row block); with K split over a cluster
          // its few row groups still fill the SMs (8192x28672: 64 R8 groups x 2).
          if (M > 8)
            for (int r : {7, 8})
              for (int wp : {4, 8})
                for (int cl : {2, 4}) {
                  if ((N / 16) % r != 0) continue;
                  W4A16Options o;
                  o.path = W4A16Path::Skinny;
                  o.skinny_rows = r;
                  o.skinny_warps = wp;
                  o.skinny_split = cl;
                  o.skinny_pipe = 1;
                  o.skinny_flat = 0;
                  const SkinnyConfig sc = w4a16_skinny_config(M, N, K, o);
                  if (sc.rows != r || sc.warps != wp || sc.split != cl) continue;
                  char b[80];
                  std::snprintf(b, sizeof b, " pS%dR%dW%dC%d %.1f |", sc.stages, r, wp, cl, run(o));
                  row += b;
                }
          // The flat kernel wherever it applies (every warp exactly 2, 4, 7 or 8 k tiles), and the ring in its place.
          for (int flat : {1, 0})
            for (int r : {1, 2})
              for (int wp : {4, 8, 16})
                for (int cl : {1, 2}) {
                  W4A16Options o;
                  o.path = W4A16Path::Skinny;
                  o.skinny_pipe = 1;
                  o.skinny_flat = 1;
                  o.skinny_rows = r;
                  o.skinny_warps = wp;
                  o.skinny_split = cl;
                  const SkinnyConfig fc = w4a16_skinny_config(M, N, K, o);
                  if (!fc.flat || fc.rows != r || fc.warps != wp || fc.split != cl) continue;
                  o.skinny_flat = flat;
                  char b[80];
                  std::snprintf(b, sizeof b, " %sR%dW%dC%d %.1f |", flat ? ("flatT" + std::to_string(fc.tiles)).c_str() : "ring",
                                r, wp, cl, run(o));
                  row += b;
                }
          // Shallow rings of a few shapes: small enough that the next launch's CTAs fit beside this one's (PDL).
          for (auto [r, wp, st] : {std::array<int, 3>{14, 4, 3}, {14, 4, 4}, {7, 4, 3}, {7, 4, 4}, {7, 8, 2}, {4, 8, 2},
                                   {4, 16, 2}, {2, 8, 3}, {2, 16, 2}, {1, 16, 3}, {1, 8, 4}}) {
            if ((N / 16) % r != 0 || (r == 14 && M > 8) || (r == 8 && M <= 8)) continue;
            W4A16Options o;
            o.path = W4A16Path::Skinny;
            o.skinny_pipe = 1;
            o.skinny_flat = 0;
            o.skinny_rows = r;
            o.skinny_warps = wp;
            o.skinny_stages = st;
            const SkinnyConfig sc = w4a16_skinny_config(M, N, K, o);
            if (sc.rows != r || sc.warps != wp || sc.stages != st) continue;
            char b[80];
            std::snprintf(b, sizeof b, " shallow S%dR%dW%d %.1f |", st, r, wp, run(o));
            row += b;
          }
          // The wgmma kernels at 64 tokens per CTA tile (the smallest they take), for the M <= 16 rows where the
          // skinny kernel is compute-bound: the same dequant per weight, but wgmma and (ws) a producer warpgroup.
          for (int ws : {0, 1}) {
            W4A16Options o;
            o.path = W4A16Path::Wgmma;
            o.wgmma_tokens = 64;
            o.wgmma_ws = ws;
            char b[64];
            std::snprintf(b, sizeof b, " wgmma %s BT64 %.1f |", ws ? "ws" : "cp.async", run(o));
            row += b;
          }
          {  // the auto configuration at every other ring depth
            const SkinnyConfig ac = w4a16_skinny_config(M, N, K);
            for (int st : {2, 3, 4, 6, 8}) {
              W4A16Options o;
              o.path = W4A16Path::Skinny;
              o.skinny_rows = ac.rows;
              o.skinny_warps = ac.warps;
              o.skinny_stages = st;
              o.skinny_flat = 0;
              const SkinnyConfig sc = w4a16_skinny_config(M, N, K, o);
              if (!ac.pipe || st == ac.stages || sc.stages != st || sc.warps != ac.warps) continue;
              char b[80];
              std::snprintf(b, sizeof b, " auto at S%d %.1f |", st, run(o));
              row += b;
            }
          }
        } else {
          for (int ws : {0, 1})  // the cp.async kernel, the warp-specialised one
            for (int bt : {64, 128, 256}) {
              W4A16Options o;
              o.path = W4A16Path::Wgmma;
              o.wgmma_tokens = bt;
              o.wgmma_ws = ws;
              char b[64];
              std::snprintf(b, sizeof b, " wgmma %s BT%d %.1f |", ws ? "ws" : "cp.async", bt, run(o));
              row += b;
            }
          W4A16Options o;
          o.path = W4A16Path::Tiled;
          char b[64];
          std::snprintf(b, sizeof b, " tiled %.1f |", run(o));
          row += b;
          W4A16Options d;
          d.wgmma_smem_epilogue = false;
          std::snprintf(b, sizeof b, " auto direct-store epilogue %.1f |", run(d));
          row += b;
        }
        sweep_rows.push_back(row);
        std::printf("%s\n", row.c_str());
      }
    }
    free_w4(w4);
    for (auto* p : wbf) STRATA_CUDA_CHECK(cudaFree(p));
    STRATA_CUDA_CHECK(cudaFree(x));
    STRATA_CUDA_CHECK(cudaFree(y));
    if (ws) STRATA_CUDA_CHECK(cudaFree(ws));
  }
  std::printf("\n## W4A16 linear vs cuBLAS bf16 (auto path)\n\n");
  std::printf("weight GB/s = (INT4 nibbles + bf16 scales) / time; %% of copy BW = that / %.0f GB/s; speed-up = cuBLAS "
              "bf16 time / W4A16 time\n\n",
              env.ceiling);
  std::printf("| N x K | M | path | us | weight GB/s | %% of copy BW | TFLOP/s | cuBLAS bf16 us | cuBLAS TFLOP/s | "
              "speed-up |\n|---|---|---|---|---|---|---|---|---|---|\n");
  for (auto& r : main_rows) std::printf("%s\n", r.c_str());
  std::printf("\n## Streaming floor: a kernel that only reads the weight bytes, launched like the GEMMs (same "
              "rotation, same graph chain; no PDL, then as a PDL chain)\n\n| N x K | bytes | us | GB/s | %% of copy BW | "
              "PDL us | PDL %% of copy BW |\n|---|---|---|---|---|---|---|\n");
  for (auto& r : read_rows) std::printf("%s\n", r.c_str());
  if (env.sweep) {
    std::printf("\n## Variants (us; skinny: R row blocks per warp, W warps per CTA, C CTAs per cluster splitting K; "
                "wgmma: BT tokens per CTA)\n\n");
    for (auto& r : sweep_rows) std::printf("%s\n", r.c_str());
  }
  std::fflush(stdout);
}

// ------------------------------------------------------------------------------------------------ MoE

// Holds the stream for `cycles` clocks: launches queued behind it start back to back, not as the host issues them.
__global__ void spin_kernel(long long cycles) {
  const long long t0 = clock64();
  while (clock64() - t0 < cycles) {
  }
}

void bench_moe(Env& env) {
  const int E = 384, D = 7168, F = 2048, top_k = 8;
  const cudaStream_t s = env.s;
  W4A16MoeLayer L = w4a16_moe_create(E, D, F, true);
  {  // random checkpoint-format experts, repacked on the device
    const size_t DF = size_t(D) * F;
    uint32_t* q = nullptr;
    uint16_t* sc = nullptr;
    STRATA_CUDA_CHECK(cudaMalloc(&q, 3 * DF / 2));
    STRATA_CUDA_CHECK(cudaMalloc(&sc, 3 * DF / 16));
    for (int e = 0; e <= E; e++) {
      launch_fill_u32(q, 3 * DF / 8, 1000u + uint32_t(e), s);
      launch_fill_bf16(sc, 3 * DF / 32, 5000u + uint32_t(e), 0.01f, 0.04f, false, s);
      w4a16_moe_set_expert(L, e, q, sc, q + DF / 8, sc + DF / 32, q + 2 * DF / 8, sc + 2 * DF / 32, s);
    }
    STRATA_CUDA_CHECK(cudaStreamSynchronize(s));
    STRATA_CUDA_CHECK(cudaFree(q));
    STRATA_CUDA_CHECK(cudaFree(sc));
  }
  uint16_t* router = nullptr;
  float* bias = nullptr;
  STRATA_CUDA_CHECK(cudaMalloc(&router, size_t(E) * D * 2));
  STRATA_CUDA_CHECK(cudaMalloc(&bias, size_t(E) * 4));
  launch_fill_bf16(router, size_t(E) * D, 777u, 0.001f, 0.06f, true, s);
  STRATA_CUDA_CHECK(cudaMemset(bias, 0, size_t(E) * 4));
  L.router = router;
  MoeRouting r;  // Kimi-K2: sigmoid, e_score_correction_bias, renormalized top-8, scaling 2.827
  r.n_experts = E;
  r.top_k = top_k;
  r.sigmoid = true;
  r.renormalize = true;
  r.renorm_eps = 1e-20f;
  r.scaling = 2.827f;
  r.choice_bias = bias;

  std::vector<std::string> rows, sweep, stage_rows, chain_rows;
  const int copies = 8;  // different token batches -> different experts per replay
  for (int T : {1, 8, 64, 256}) {
    std::vector<uint16_t*> xs(copies);
    for (int c = 0; c < copies; c++) {
      STRATA_CUDA_CHECK(cudaMalloc(&xs[size_t(c)], size_t(T) * D * 2));
      launch_fill_bf16(xs[size_t(c)], size_t(T) * D, 9000u + uint32_t(T * 64 + c), 0.25f, 1.f, true, s);
    }
    float* y = nullptr;
    STRATA_CUDA_CHECK(cudaMalloc(&y, size_t(T) * D * 4));
    const size_t wsb = w4a16_moe_workspace_bytes(L, top_k, T);
    void* ws = nullptr;
    STRATA_CUDA_CHECK(cudaMalloc(&ws, wsb));
    int* na = nullptr;
    STRATA_CUDA_CHECK(cudaMalloc(&na, 4));
    double active = 0;
    for (int c = 0; c < copies; c++) {
      MoeTrace tr;
      tr.n_active = na;
      w4a16_moe_forward(L, r, xs[size_t(c)], T, nullptr, y, false, ws, wsb, s, &tr);
      int h = 0;
      STRATA_CUDA_CHECK(cudaMemcpyAsync(&h, na, 4, cudaMemcpyDeviceToHost, s));
      STRATA_CUDA_CHECK(cudaStreamSynchronize(s));
      active += h;
    }
    active /= copies;
    // One layer per replay over the token batches, with options o.
    auto time_moe = [&](const MoeOptions& o, int reps) {
      auto layer = [&](int c) { w4a16_moe_forward(L, r, xs[size_t(c)], T, nullptr, y, false, ws, wsb, s, nullptr, o); };
      return time_us(layer, copies, reps, s);
    };
    const int sweep_reps = std::max(5, env.reps / 5);
    const double us = time_moe(MoeOptions{}, env.reps);
    if (env.sweep && env.moe_sweep) {
      std::string row = "| " + std::to_string(T) + " |";
      // The register-staged kernel at its defaults, then the pipelined one (the default) over the tile shapes: R2/R4
      // gate/up and R1/R2/R4 down at 4, 8, 16 warps each, and R8 (fewer, longer CTAs: down's K = 2048 gives an R4 x W8
      // CTA 4 k tiles per warp); then the default at other ring depths.
      {
        MoeOptions o;
        o.pipe = 0;
        char b[64];
        std::snprintf(b, sizeof b, " regs default %.0f |", time_moe(o, sweep_reps));
        row += b;
      }
      std::vector<std::array<int, 4>> tiles;  // gate/up rows, warps, down rows, warps
      for (int gr : {2, 4})
        for (int gw : {4, 8, 16})
          for (int dr : {1, 2, 4})
            for (int dw : {4, 8, 16}) tiles.push_back({gr, gw, dr, dw});
      for (auto t : {std::array<int, 4>{4, 8, 8, 4}, {4, 8, 8, 8}, {8, 4, 4, 8}, {8, 8, 4, 8}, {8, 4, 8, 4}})
        tiles.push_back(t);
      for (auto [gr, gw, dr, dw] : tiles) {
        MoeOptions o;
        o.gu_rows = gr;
        o.gu_warps = gw;
        o.dn_rows = dr;
        o.dn_warps = dw;
        char b[64];
        std::snprintf(b, sizeof b, " g%dx%d d%dx%d %.0f |", gr, gw, dr, dw, time_moe(o, sweep_reps));
        row += b;
      }
      for (int st : {2, 3, 6, 8}) {
        MoeOptions o;
        o.stages = st;
        char b[64];
        std::snprintf(b, sizeof b, " default S%d %.0f |", st, time_moe(o, sweep_reps));
        row += b;
      }
      sweep.push_back(row);
      std::printf("%s\n", row.c_str());
    }
    {  // the launch chain: PDL and the router GEMV (T <= kMoeRouterGemvMaxT, else cuBLAS) on and off
      MoeOptions v[4];  // no PDL | cuBLAS router | neither | the tiles before R8
      v[0].pdl = 0;
      v[1].router_gemv = 0;
      v[2].pdl = v[2].router_gemv = 0;
      v[3].gu_rows = v[3].dn_rows = 4;
      v[3].gu_warps = v[3].dn_warps = 8;
      double t[4];
      for (int i = 0; i < 4; i++) t[i] = time_moe(v[i], env.reps);
      char b[160];
      std::snprintf(b, sizeof b, "| %d | %.1f | %.1f | %.1f | %.1f | %.1f |", T, us, t[0], t[1], t[2], t[3]);
      chain_rows.push_back(b);
    }
    {  // where the layer's time goes: stream-ordered events after each launch (no graph), behind a spin kernel so
       // that the host has queued the whole layer before it runs; medians over copies x reps
      cudaEvent_t ev[7];
      for (auto& e : ev) STRATA_CUDA_CHECK(cudaEventCreate(&e));
      void* marks[6];
      for (int i = 0; i < 6; i++) marks[i] = ev[i + 1];
      MoeOptions o;
      o.stage_events = marks;
      std::vector<double> st[7];
      for (int rep = 0; rep < std::max(3, env.reps / 5); rep++)
        for (int c = 0; c < copies; c++) {
          spin_kernel<<<1, 1, 0, s>>>(2000000);
          STRATA_CUDA_CHECK(cudaEventRecord(ev[0], s));
          w4a16_moe_forward(L, r, xs[size_t(c)], T, nullptr, y, false, ws, wsb, s, nullptr, o);
          STRATA_CUDA_CHECK(cudaStreamSynchronize(s));
          for (int i = 0; i < 6; i++) {
            float ms = 0.f;
            STRATA_CUDA_CHECK(cudaEventElapsedTime(&ms, ev[i], ev[i + 1]));
            st[i].push_back(1e3 * ms);
          }
          float ms = 0.f;
          STRATA_CUDA_CHECK(cudaEventElapsedTime(&ms, ev[0], ev[6]));
          st[6].push_back(1e3 * ms);
        }
      char b[256];
      std::snprintf(b, sizeof b, "| %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |", T, median(st[0]),
                    median(st[1]), median(st[2]), median(st[3]), median(st[4]), median(st[5]), median(st[6]));
      stage_rows.push_back(b);
      for (auto& e : ev) STRATA_CUDA_CHECK(cudaEventDestroy(e));
    }
    const double bytes = active * double(L.expert_bytes()) + double(E) * D * 2;
    const double gbs = bytes / (us * 1e-6) / 1e9;
    char line[256];
    std::snprintf(line, sizeof line, "| %d | %.1f | %.1f | %.1f | %.0f | %.0f%% | %.1f |", T, active, bytes / 1e6, us,
                  gbs, 100.0 * gbs / env.ceiling, bytes / (env.ceiling * 1e9) * 1e6);
    rows.push_back(line);
    std::printf("%s\n", line);
    std::fflush(stdout);
    for (auto* p : xs) STRATA_CUDA_CHECK(cudaFree(p));
    STRATA_CUDA_CHECK(cudaFree(y));
    STRATA_CUDA_CHECK(cudaFree(ws));
    STRATA_CUDA_CHECK(cudaFree(na));
  }
  std::printf("\n## Fused MoE W4A16, Kimi-K2 layer (hidden 7168, 384 experts x 2048, top-8, 1 shared expert INT4)\n\n");
  std::printf("bytes = experts touched (routed + shared, %.2f MB each) + bf16 router; floor = bytes / copy BW; "
              "mean over %d different token batches\n\n",
              double(L.expert_bytes()) / 1e6, copies);
  std::printf("| tokens | experts run | MB touched | us | GB/s | %% of copy BW | floor us |\n|---|---|---|---|---|---|---|\n");
  for (auto& row : rows) std::printf("%s\n", row.c_str());
  std::printf("\n## MoE launch chain (us, same run): default (PDL chain; T <= 2: our router GEMV) | no PDL | cuBLAS "
              "router | neither | R4 x W8 for both GEMMs\n\n| tokens | default | no PDL | cuBLAS router | neither | R4 x W8 "
              "|\n|---|---|---|---|---|---|\n");
  for (auto& row : chain_rows) std::printf("%s\n", row.c_str());
  std::printf("\n## MoE stages (us between CUDA events recorded after each launch; plain stream launches, no graph, "
              "so launch gaps are included)\n\n| tokens | router GEMM | routing | plan | gate/up | down | combine | "
              "layer |\n|---|---|---|---|---|---|---|---|\n");
  for (auto& row : stage_rows) std::printf("%s\n", row.c_str());
  if (env.sweep && env.moe_sweep) {
    std::printf("\n## MoE variants (us; gRxW: gate/up rows per warp x warps, dRxW: down)\n\n");
    for (auto& row : sweep) std::printf("%s\n", row.c_str());
  }
  STRATA_CUDA_CHECK(cudaFree(router));
  STRATA_CUDA_CHECK(cudaFree(bias));
  w4a16_moe_free(L);
}

// --one N K M BT: five launches of one linear (wgmma with BT tokens per CTA, or auto when BT is 0), for profilers.
void run_one(int N, int K, int M, int bt) {
  std::vector<W4A16Weight> w4 = random_w4_copies(N, K, 1, 1, nullptr);
  const W4A16Weight& w = w4[0];
  uint16_t *x = nullptr, *y = nullptr;
  STRATA_CUDA_CHECK(cudaMalloc(&x, size_t(M) * K * 2));
  STRATA_CUDA_CHECK(cudaMalloc(&y, size_t(M) * N * 2));
  launch_fill_bf16(x, size_t(M) * K, 3, 0.25f, 1.f, true);
  W4A16Options o;
  if (bt) {
    o.path = W4A16Path::Wgmma;
    o.wgmma_tokens = bt;
  }
  const size_t wsb = w4a16_workspace_bytes(M, N, K, o);
  void* ws = nullptr;
  if (wsb) STRATA_CUDA_CHECK(cudaMalloc(&ws, wsb));
  for (int i = 0; i < 5; i++) w4a16_linear(x, M, w, y, ws, wsb, nullptr, o);
  STRATA_CUDA_CHECK(cudaDeviceSynchronize());
  std::printf("ran %d x %d, M %d, BT %d five times\n", N, K, M, bt);
}

// --trace N K M S: one CUDA-graph replay of the auto skinny launch (S ring stages unless 0) over the rotating
// weight copies, with the kernel's per-CTA %globaltimer stamps (W4A16Options::skinny_trace; needs a build with
// STRATA_CUDA_TRACE=ON, w4a16_linear throws otherwise), printed per launch relative to the first launch's earliest
// entry: when its CTAs entered, got past the PDL wait, had their first stage, finished the k loop and finished;
// shows how far consecutive launches of a PDL chain overlap and where the time goes.
void run_trace(const Env& env, int N, int K, int M, int stages) {
  const size_t nk = size_t(N) * size_t(K), w4_bytes = nk / 2 + nk / 16;
  const int copies = int(std::clamp<size_t>((3 * size_t(env.l2) + w4_bytes - 1) / w4_bytes, 4, 64));
  const cudaStream_t s = env.s;
  std::vector<W4A16Weight> w4 = random_w4_copies(N, K, copies, 7, s);
  uint16_t *x = nullptr, *y = nullptr;
  STRATA_CUDA_CHECK(cudaMalloc(&x, size_t(M) * K * 2));
  STRATA_CUDA_CHECK(cudaMalloc(&y, size_t(M) * N * 2));
  launch_fill_bf16(x, size_t(M) * K, 9, 0.25f, 1.f, true, s);
  W4A16Options base;
  base.skinny_stages = stages;
  const SkinnyConfig c = w4a16_skinny_config(M, N, K, base);
  const int ctas = (N / 16 / c.rows) * c.split;  // 16 weight rows per row block
  unsigned long long* trace = nullptr;
  constexpr int kStamps = kSkinnyTraceStamps;
  const size_t per = size_t(ctas) * kStamps;
  STRATA_CUDA_CHECK(cudaMalloc(&trace, per * copies * sizeof(unsigned long long)));
  for (const bool pdl : {true, false}) {
    auto launch = [&](int i) {
      W4A16Options o = base;
      o.pdl = pdl;
      o.skinny_trace = trace + per * size_t(i);
      w4a16_linear(x, M, w4[size_t(i)], y, nullptr, 0, s, o);
    };
    const double t = time_us(launch, copies, 5, s);  // warm-up, capture, replays: the trace is the last replay's
    std::vector<unsigned long long> h(per * copies);
    STRATA_CUDA_CHECK(cudaMemcpy(h.data(), trace, h.size() * sizeof(h[0]), cudaMemcpyDeviceToHost));
    std::printf("\ntrace %d x %d, M %d, %s: %s, %d CTAs per launch, %d launches, %.2f us per launch (graph median)\n",
                N, K, M, pdl ? "PDL" : "no PDL", w4a16_skinny_name(c).c_str(), ctas, copies, t);
    std::printf("us from the first launch's first CTA entry; min..max over the launch's CTAs\n\n"
                "| launch | entry | past PDL wait | first stage landed | k loop done | done | done - past wait (max) |\n"
                "|---|---|---|---|---|---|---|\n");
    unsigned long long t0 = ~0ull;
    for (size_t k = 0; k < per; k += kStamps) t0 = std::min(t0, h[k]);
    for (int i = 0; i < copies; i++) {
      double mn[kStamps], mx[kStamps];
      for (int j = 0; j < kStamps; j++) {
        mn[j] = 1e30;
        mx[j] = -1e30;
        for (int q = 0; q < ctas; q++) {
          const double v = (double(h[per * size_t(i) + size_t(q) * kStamps + size_t(j)]) - double(t0)) * 1e-3;
          mn[j] = std::min(mn[j], v);
          mx[j] = std::max(mx[j], v);
        }
      }
      std::printf("| %d | %.2f..%.2f | %.2f..%.2f | %.2f..%.2f | %.2f..%.2f | %.2f..%.2f | %.2f |\n", i, mn[0], mx[0],
                  mn[1], mx[1], mn[2], mx[2], mn[3], mx[3], mn[4], mx[4], mx[4] - mn[1]);
    }
  }
  free_w4(w4);
  STRATA_CUDA_CHECK(cudaFree(x));
  STRATA_CUDA_CHECK(cudaFree(y));
  STRATA_CUDA_CHECK(cudaFree(trace));
}

}  // namespace

int main(int argc, char** argv) {
  Env env;
  bool gemm = true, moe = true;
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--one") && i + 4 < argc) {
      try {
        run_one(std::atoi(argv[i + 1]), std::atoi(argv[i + 2]), std::atoi(argv[i + 3]), std::atoi(argv[i + 4]));
        return 0;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_w4a16_cuda: error: %s\n", e.what());
        return 2;
      }
    }
    if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) env.reps = std::max(1, std::atoi(argv[++i]));
    if (!std::strcmp(argv[i], "--quick")) env.quick = true;
    if (!std::strcmp(argv[i], "--no-gemm")) gemm = false;
    if (!std::strcmp(argv[i], "--no-moe")) moe = false;
    if (!std::strcmp(argv[i], "--no-sweep")) env.sweep = false;
    if (!std::strcmp(argv[i], "--no-moe-sweep")) env.moe_sweep = false;
    if (!std::strcmp(argv[i], "--shapes") && i + 1 < argc) env.shapes = parse_shapes(argv[++i]);
    if (!std::strcmp(argv[i], "--ms") && i + 1 < argc) env.ms = parse_ints(argv[++i]);
    if (!std::strcmp(argv[i], "--trace") && i + 4 < argc) {
      env.traces.push_back({std::atoi(argv[i + 1]), std::atoi(argv[i + 2]), std::atoi(argv[i + 3]), std::atoi(argv[i + 4])});
      i += 4;
    }
  }
  try {
    int dev = 0, sms = 0;
    cudaDeviceProp prop{};
    STRATA_CUDA_CHECK(cudaGetDevice(&dev));
    STRATA_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    STRATA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    STRATA_CUDA_CHECK(cudaDeviceGetAttribute(&env.l2, cudaDevAttrL2CacheSize, dev));
    STRATA_CUDA_CHECK(cudaStreamCreate(&env.s));
    CUBLAS_CHECK(cublasCreate(&env.blas));
    CUBLAS_CHECK(cublasSetStream(env.blas, env.s));
    double bw_memcpy = 0, bw_kernel = 0;
    copy_bandwidth_gbs(size_t(1) << 30, 30, env.s, &bw_memcpy, &bw_kernel);
    env.ceiling = std::max(bw_memcpy, bw_kernel);
    std::printf("bench_w4a16_cuda: %s, %d SMs, L2 %.0f MB, %d reps per timing (median; each rep one CUDA-graph replay "
                "over rotating weight copies, timed with CUDA events)\n",
                prop.name, sms, env.l2 / 1e6, env.reps);
    std::printf("device-to-device copy bandwidth (read + write, 1 GiB): cudaMemcpy %.0f GB/s, copy kernel %.0f GB/s "
                "-> ceiling %.0f GB/s\n\n",
                bw_memcpy, bw_kernel, env.ceiling);
    if (!env.traces.empty()) {
      for (auto& t : env.traces) run_trace(env, t[0], t[1], t[2], t[3]);
      gemm = moe = false;
    }
    if (gemm) bench_gemm(env);
    if (moe) bench_moe(env);
    CUBLAS_CHECK(cublasDestroy(env.blas));
    STRATA_CUDA_CHECK(cudaStreamDestroy(env.s));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_w4a16_cuda: error: %s\n", e.what());
    return 2;
  }
}
