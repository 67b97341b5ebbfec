// Fused MoE W4A16 layer on the device (cuda_moe.h): routing kernel (one CTA per token), permutation plan (one
// CTA), grouped skinny GEMMs over the active experts (w4a16_skinny.cuh), weighted combine. Every launch sizes
// its grid from T alone, so the layer needs no host synchronisation: CTAs of unused expert slots exit at once.
// The launches form a PDL chain: each waits (griddepcontrol.wait) before it touches what an earlier one wrote.
// Not a large-batch path yet: each expert's tokens run through the pipelined skinny kernel 16 at a time.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <mutex>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/cuda_moe.h"
#include "kernels/cuda/cuda_w4a16.h"
#include "kernels/cuda/w4a16_repack.h"
#include "kernels/cuda/w4a16_skinny.cuh"

namespace strata::cuda {

namespace {

using namespace dev;

constexpr int kRouteThreads = 128;
constexpr int kMaxExperts = 1024;
constexpr int kMaxTopK = 32;

// Larger (value, then lower index) of two candidates: the CPU router's order (choice desc, id asc).
__device__ __forceinline__ bool better(float v, int i, float v2, int i2) { return v > v2 || (v == v2 && i < i2); }

__device__ float block_max(float v, float* sh) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  float r = sh[0];
  for (int w = 1; w < nw; w++) r = fmaxf(r, sh[w]);
  return r;
}

__device__ double block_sum(double v, double* sh) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  __syncthreads();
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  double r = 0;
  for (int w = 0; w < nw; w++) r += sh[w];
  return r;
}

// One CTA per token: scores, choice = score + bias, group limiting, top-k, weights (HF semantics, as
// moe_route_f32 on the CPU). logits [T, E] -> ids/weights [T, k]. PDL: waits for the logits' kernel.
__global__ void __launch_bounds__(kRouteThreads) moe_route_kernel(const float* __restrict__ logits, MoeRouting p,
                                                                  int* __restrict__ ids, float* __restrict__ weights) {
  __shared__ float score[kMaxExperts], choice[kMaxExperts];
  __shared__ float shf[32];
  __shared__ double shd[32];
  __shared__ float gscore[64];
  __shared__ int keep[64];
  __shared__ float best_v[32];
  __shared__ int best_i[32];
  __shared__ int sel[kMaxTopK];
  pdl_wait();
  pdl_launch_dependents();
  const int E = p.n_experts, m = blockIdx.x, tid = threadIdx.x;
  const float* l = logits + size_t(m) * E;
  if (p.sigmoid) {
    for (int e = tid; e < E; e += blockDim.x) score[e] = 1.0f / (1.0f + expf(-l[e]));
  } else {
    float mx = -INFINITY;
    for (int e = tid; e < E; e += blockDim.x) mx = fmaxf(mx, l[e]);
    mx = block_max(mx, shf);
    double s = 0;
    for (int e = tid; e < E; e += blockDim.x) {
      score[e] = expf(l[e] - mx);
      s += score[e];
    }
    s = block_sum(s, shd);
    const float inv = float(1.0 / s);
    for (int e = tid; e < E; e += blockDim.x) score[e] *= inv;
  }
  for (int e = tid; e < E; e += blockDim.x) choice[e] = score[e] + (p.choice_bias ? p.choice_bias[e] : 0.f);
  __syncthreads();
  if (p.n_group > 1) {
    // Group score = sum of its two best choices; experts outside the best topk_group groups get choice 0.
    const int per = E / p.n_group;
    for (int gi = tid; gi < p.n_group; gi += blockDim.x) {
      float v0 = -INFINITY, v1 = -INFINITY;
      for (int e = gi * per; e < (gi + 1) * per; e++) {
        const float c = choice[e];
        if (c > v0) {
          v1 = v0;
          v0 = c;
        } else if (c > v1) {
          v1 = c;
        }
      }
      gscore[gi] = v0 + v1;
      keep[gi] = 0;
    }
    __syncthreads();
    if (tid == 0)
      for (int r = 0; r < p.topk_group; r++) {  // stable: ties keep the lower group
        int bi = -1;
        for (int gi = 0; gi < p.n_group; gi++)
          if (!keep[gi] && (bi < 0 || gscore[gi] > gscore[bi])) bi = gi;
        keep[bi] = 1;
      }
    __syncthreads();
    for (int e = tid; e < E; e += blockDim.x)
      if (!keep[e / per]) choice[e] = 0.f;
    __syncthreads();
  }
  const int lane = tid & 31, warp = tid >> 5, nw = blockDim.x >> 5;
  for (int r = 0; r < p.top_k; r++) {
    float bv = -INFINITY;
    int bi = INT_MAX;
    for (int e = tid; e < E; e += blockDim.x)
      if (better(choice[e], e, bv, bi)) {
        bv = choice[e];
        bi = e;
      }
    for (int o = 16; o > 0; o >>= 1) {
      const float v2 = __shfl_xor_sync(0xffffffffu, bv, o);
      const int i2 = __shfl_xor_sync(0xffffffffu, bi, o);
      if (better(v2, i2, bv, bi)) {
        bv = v2;
        bi = i2;
      }
    }
    if (lane == 0) {
      best_v[warp] = bv;
      best_i[warp] = bi;
    }
    __syncthreads();
    if (tid == 0) {
      for (int w = 1; w < nw; w++)
        if (better(best_v[w], best_i[w], bv, bi)) {
          bv = best_v[w];
          bi = best_i[w];
        }
      sel[r] = bi;
      choice[bi] = -INFINITY;  // taken
    }
    __syncthreads();
  }
  if (tid == 0) {
    float sum = 0.f;
    for (int r = 0; r < p.top_k; r++) sum += score[sel[r]];
    for (int r = 0; r < p.top_k; r++) {
      float w = score[sel[r]];
      if (p.renormalize) w /= (sum + p.renorm_eps);
      w *= p.scaling;
      ids[size_t(m) * p.top_k + r] = sel[r];
      weights[size_t(m) * p.top_k + r] = w;
    }
  }
}

// Outputs of the permutation plan (workspace, device).
struct PlanOut {
  int* rank;       // [T*k] rank of (token, j) among its expert's rows
  int* n_active;   // [1]
  int* active;     // [E+1]
  int* offset;     // [E+1]
  int* count;      // [E+1]
  int* slot_of;    // [T*k] permuted row of (token, j)
  int* row_token;  // [rows] token of each permuted row
};

// One CTA: counts per expert, exclusive offsets, the active list (ascending; shared expert E last), the
// permuted row of every (token, j) and the token of every permuted row. PDL: waits for the routing's kernel.
__global__ void __launch_bounds__(1024) moe_plan_kernel(const int* __restrict__ ids, int T, int k, int E, int shared,
                                                        PlanOut out) {
  __shared__ int cnt[kMaxExperts + 1], off[kMaxExperts + 1];
  pdl_wait();
  pdl_launch_dependents();
  const int tid = threadIdx.x, n = E + 1, na = T * k;
  for (int e = tid; e < n; e += blockDim.x) cnt[e] = 0;
  __syncthreads();
  for (int a = tid; a < na; a += blockDim.x) out.rank[a] = atomicAdd(&cnt[ids[a]], 1);
  __syncthreads();
  if (tid == 0) cnt[E] = shared ? T : 0;
  __syncthreads();
  if (tid < 32) {
    const int lane = tid, chunk = (n + 31) / 32, lo = min(n, lane * chunk), hi = min(n, lo + chunk);
    int s = 0, c = 0;
    for (int e = lo; e < hi; e++) {
      s += cnt[e];
      c += cnt[e] > 0;
    }
    int is = s, ic = c;  // inclusive warp scans
    for (int o = 1; o < 32; o <<= 1) {
      const int vs = __shfl_up_sync(0xffffffffu, is, o), vc = __shfl_up_sync(0xffffffffu, ic, o);
      if (lane >= o) {
        is += vs;
        ic += vc;
      }
    }
    int run = is - s, act = ic - c;
    for (int e = lo; e < hi; e++) {
      off[e] = run;
      out.offset[e] = run;
      out.count[e] = cnt[e];
      if (cnt[e] > 0) out.active[act++] = e;
      run += cnt[e];
    }
    if (lane == 31) *out.n_active = ic;
  }
  __syncthreads();
  for (int a = tid; a < na; a += blockDim.x) {
    const int slot = off[ids[a]] + out.rank[a];
    out.slot_of[a] = slot;
    out.row_token[slot] = a / k;
  }
  if (shared)
    for (int m = tid; m < T; m += blockDim.x) out.row_token[off[E] + m] = m;
}

// Router logits of T <= kGemvMaxT tokens (used up to kMoeRouterGemvMaxT): logits[t][e] = x[t] . router[e] (bf16
// products, f32 sums). A CTA takes kGemvRows expert rows; each thread issues all of its 16-byte router loads for them
// before any math (the router streams once: many bytes in flight), and reuses each x chunk across the rows. At one
// token it beats cuBLAS, which spends ~8 us on these 5.5 MB (Kimi-K2, H200); its x loads grow with T.
constexpr int kGemvMaxT = 8, kGemvRows = 4, kGemvThreads = 256, kGemvIters = 4;
__global__ void __launch_bounds__(kGemvThreads, 1) moe_router_gemv_kernel(const uint16_t* __restrict__ x, int T, int D,
                                                                       const uint16_t* __restrict__ router, int E,
                                                                       float* __restrict__ logits) {
  __shared__ float red[kGemvThreads / 32][kGemvRows * kGemvMaxT];
  pdl_wait();  // x: the previous kernel's output
  pdl_launch_dependents();
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, e0 = blockIdx.x * kGemvRows;
  const int chunks = D / 8;  // 16-byte chunks of a row
  float acc[kGemvRows][kGemvMaxT];
#pragma unroll
  for (int r = 0; r < kGemvRows; r++)
#pragma unroll
    for (int t = 0; t < kGemvMaxT; t++) acc[r][t] = 0.f;
  for (int base = 0; base < chunks; base += kGemvThreads * kGemvIters) {
    uint4 rv[kGemvIters][kGemvRows];
#pragma unroll
    for (int i = 0; i < kGemvIters; i++)
#pragma unroll
      for (int r = 0; r < kGemvRows; r++) {
        const int c = base + i * kGemvThreads + tid;
        const uint4* row = reinterpret_cast<const uint4*>(router + size_t(e0 + r) * D);
        rv[i][r] = c < chunks && e0 + r < E ? ldg_stream(row + c) : make_uint4(0u, 0u, 0u, 0u);
      }
#pragma unroll
    for (int i = 0; i < kGemvIters; i++) {
      const int c = base + i * kGemvThreads + tid;
      if (c >= chunks) break;
#pragma unroll
      for (int t = 0; t < kGemvMaxT; t++) {
        if (t >= T) break;
        const uint4 xv = __ldg(reinterpret_cast<const uint4*>(x + size_t(t) * D) + c);
        const uint32_t xw[4] = {xv.x, xv.y, xv.z, xv.w};
#pragma unroll
        for (int r = 0; r < kGemvRows; r++) {
          const uint32_t rw[4] = {rv[i][r].x, rv[i][r].y, rv[i][r].z, rv[i][r].w};
#pragma unroll
          for (int q = 0; q < 4; q++) {
            acc[r][t] = fmaf(__uint_as_float(rw[q] << 16), __uint_as_float(xw[q] << 16), acc[r][t]);
            acc[r][t] = fmaf(__uint_as_float(rw[q] & 0xFFFF0000u), __uint_as_float(xw[q] & 0xFFFF0000u), acc[r][t]);
          }
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kGemvRows; r++)
#pragma unroll
    for (int t = 0; t < kGemvMaxT; t++) {
      float v = acc[r][t];
      for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      if (lane == 0) red[warp][r * kGemvMaxT + t] = v;
    }
  __syncthreads();
  if (tid < kGemvRows * kGemvMaxT) {
    const int r = tid / kGemvMaxT, t = tid % kGemvMaxT;
    float v = 0.f;
    for (int w = 0; w < kGemvThreads / 32; w++) v += red[w][tid];
    if (t < T && e0 + r < E) logits[size_t(t) * E + e0 + r] = v;
  }
}

// y[m][d] (+)= sum_j w[m, j] * o[slot_of[m, j]][d] (+ o[shared row of m][d]); 4 consecutive d per thread.
__global__ void moe_combine_kernel(const float* __restrict__ o, int D, int k, const int* __restrict__ slot_of,
                                   const float* __restrict__ w, const int* __restrict__ shared_offset,
                                   float* __restrict__ y, int accumulate) {
  pdl_wait();  // o: the down GEMM's output
  const int m = blockIdx.y, d = (blockIdx.x * blockDim.x + threadIdx.x) * 4;
  if (d >= D) return;
  float4 s = make_float4(0.f, 0.f, 0.f, 0.f);
  for (int j = 0; j < k; j++) {
    const float wj = w[size_t(m) * k + j];
    const float4 v = *reinterpret_cast<const float4*>(o + size_t(slot_of[size_t(m) * k + j]) * D + d);
    s.x = fmaf(wj, v.x, s.x);
    s.y = fmaf(wj, v.y, s.y);
    s.z = fmaf(wj, v.z, s.z);
    s.w = fmaf(wj, v.w, s.w);
  }
  if (shared_offset) {
    const float4 v = *reinterpret_cast<const float4*>(o + size_t(*shared_offset + m) * D + d);
    s.x += v.x;
    s.y += v.y;
    s.z += v.z;
    s.w += v.w;
  }
  float4* yp = reinterpret_cast<float4*>(y + size_t(m) * D + d);
  if (accumulate) {
    const float4 p = *yp;
    s.x += p.x;
    s.y += p.y;
    s.z += p.z;
    s.w += p.w;
  }
  *yp = s;
}

// ------------------------------------------------------------------------------------------- host helpers

int cur_device() {
  int dev = 0;
  STRATA_CUDA_CHECK(cudaGetDevice(&dev));
  return dev;
}

cublasHandle_t blas_handle() {
  static std::mutex mu;
  static cublasHandle_t handles[64] = {};
  const int dev = cur_device() & 63;
  std::lock_guard<std::mutex> lock(mu);
  if (!handles[dev] && cublasCreate(&handles[dev]) != CUBLAS_STATUS_SUCCESS)
    throw Error("w4a16_moe: cublasCreate failed");
  return handles[dev];
}

// Launches `kernel` on s, as a programmatic dependent of the stream's previous kernel when pdl (the MoE kernels
// wait (griddepcontrol.wait) before touching what earlier launches wrote; without the attribute the wait is a no-op).
template <class... KArgs, class... Args>
void launch_k(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, bool pdl, Args... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  if (pdl) {
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
  }
  STRATA_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, args...));
}

// Records stage event i of opt.stage_events, if any (the per-stage breakdown of the benchmark).
void mark_stage(const MoeOptions& opt, int i, cudaStream_t s) {
  if (opt.stage_events) STRATA_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(opt.stage_events[i]), s));
}

template <int MT, int R, int OUT, int U = skinny_unroll(MT, R)>
void launch_grouped(const SkinnyArgs& a, int n_blocks, int slots, int warps, cudaStream_t s) {
  static std::atomic<uint64_t> done{0};
  const uint64_t bit = uint64_t(1) << (cur_device() & 63);
  if (!(done.load() & bit)) {
    STRATA_CUDA_CHECK(cudaFuncSetAttribute(w4a16_skinny_kernel<MT, R, U, OUT>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           int(skinny_smem_bytes(MT, R, 16))));
    done.fetch_or(bit);
  }
  w4a16_skinny_kernel<MT, R, U, OUT>
      <<<dim3(unsigned(n_blocks / R), unsigned(slots)), warps * 32, skinny_smem_bytes(MT, R, warps), s>>>(a);
  STRATA_CUDA_CHECK_LAUNCH();
}

// The pipelined kernel over the expert slots: S ring stages (2..8).
template <int MT, int R, int OUT, int S>
void launch_grouped_pipe_s(const SkinnyArgs& a, int n_blocks, int slots, int warps, cudaStream_t s) {
  static std::atomic<uint64_t> done{0};
  const uint64_t bit = uint64_t(1) << (cur_device() & 63);
  auto kernel = w4a16_skinny_pipe_kernel<MT, R, S, OUT>;
  if (!(done.load() & bit)) {
    STRATA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kSkinnyPipeSmemMax)));
    done.fetch_or(bit);
  }
  static_assert(OUT != kOutBf16, "grouped PDL is built into the f32 and SiLU*up instantiations only");
  launch_k(kernel, dim3(unsigned(n_blocks / R), unsigned(slots)), dim3(unsigned(warps * 32)),
           skinny_pipe_smem_bytes(MT, R, warps, S), s, a.pdl, a);
}

// Stages: `stages` when given, else as many as fit two CTAs per SM.
template <int MT, int R, int OUT>
void launch_grouped_pipe(const SkinnyArgs& a, int n_blocks, int slots, int warps, int stages, cudaStream_t s) {
  switch (skinny_pipe_stages(MT, R, warps, kSkinnyPipeSmemMax / 2, stages)) {
    case 8: return launch_grouped_pipe_s<MT, R, OUT, 8>(a, n_blocks, slots, warps, s);
    case 6: return launch_grouped_pipe_s<MT, R, OUT, 6>(a, n_blocks, slots, warps, s);
    case 4: return launch_grouped_pipe_s<MT, R, OUT, 4>(a, n_blocks, slots, warps, s);
    case 3: return launch_grouped_pipe_s<MT, R, OUT, 3>(a, n_blocks, slots, warps, s);
    default: return launch_grouped_pipe_s<MT, R, OUT, 2>(a, n_blocks, slots, warps, s);
  }
}

template <int MT, int R, int OUT>
void launch_grouped_any(const SkinnyArgs& a, int n_blocks, int slots, int warps, const MoeOptions& opt,
                        cudaStream_t s) {
  if (opt.pipe != 0)
    launch_grouped_pipe<MT, R, OUT>(a, n_blocks, slots, warps, opt.stages, s);
  else
    launch_grouped<MT, R, OUT>(a, n_blocks, slots, warps, s);
}

// R8 (pipelined kernel only, <= 8 warps: its f32-scale form takes more than 128 registers at MT 2): 2 or 4 stages.
template <int MT, int OUT>
void launch_grouped_r8(const SkinnyArgs& a, int n_blocks, int slots, int warps, const MoeOptions& opt, cudaStream_t s) {
  warps = std::min(warps, 8);
  if (skinny_pipe_stages(MT, 8, warps, kSkinnyPipeSmemMax / 2, opt.stages) >= 4)
    launch_grouped_pipe_s<MT, 8, OUT, 4>(a, n_blocks, slots, warps, s);
  else
    launch_grouped_pipe_s<MT, 8, OUT, 2>(a, n_blocks, slots, warps, s);
}

template <int MT>
void launch_gate_up(const SkinnyArgs& a, int n_blocks, int slots, int rows, int warps, const MoeOptions& opt,
                    cudaStream_t s) {
  if (rows == 8)
    launch_grouped_r8<MT, kOutSiluMul>(a, n_blocks, slots, warps, opt, s);
  else if (rows == 4)
    launch_grouped_any<MT, 4, kOutSiluMul>(a, n_blocks, slots, warps, opt, s);
  else
    launch_grouped_any<MT, 2, kOutSiluMul>(a, n_blocks, slots, warps, opt, s);
}

template <int MT>
void launch_down(const SkinnyArgs& a, int n_blocks, int slots, int rows, int warps, const MoeOptions& opt,
                 cudaStream_t s) {
  if (rows == 8)
    launch_grouped_r8<MT, kOutF32>(a, n_blocks, slots, warps, opt, s);
  else if (rows == 4)
    launch_grouped_any<MT, 4, kOutF32>(a, n_blocks, slots, warps, opt, s);
  else if (rows == 2)
    launch_grouped_any<MT, 2, kOutF32>(a, n_blocks, slots, warps, opt, s);
  else
    launch_grouped_any<MT, 1, kOutF32>(a, n_blocks, slots, warps, opt, s);
}

size_t align_up(size_t v) { return (v + 255) / 256 * 256; }

// Workspace carve-up (every piece 256-byte aligned).
struct MoeWs {
  float* logits;
  int* ids;
  float* weights;
  int* rank;
  int* slot_of;
  int* n_active;
  int* active;
  int* offset;
  int* count;
  int* row_token;
  uint16_t* h;  // [rows, F] bf16
  float* o;     // [rows, D] f32
  size_t bytes;
};

MoeWs carve(void* base, const W4A16MoeLayer& L, int k, int T) {
  const int E = L.n_experts, n = E + 1;
  const size_t rows = size_t(T) * k + (L.has_shared ? size_t(T) : 0);
  MoeWs w{};
  size_t off = 0;
  auto take = [&](size_t bytes) {
    void* p = base ? static_cast<char*>(base) + off : nullptr;
    off += align_up(bytes);
    return p;
  };
  w.logits = static_cast<float*>(take(size_t(T) * E * 4));
  w.ids = static_cast<int*>(take(size_t(T) * k * 4));
  w.weights = static_cast<float*>(take(size_t(T) * k * 4));
  w.rank = static_cast<int*>(take(size_t(T) * k * 4));
  w.slot_of = static_cast<int*>(take(size_t(T) * k * 4));
  w.n_active = static_cast<int*>(take(4));
  w.active = static_cast<int*>(take(size_t(n) * 4));
  w.offset = static_cast<int*>(take(size_t(n) * 4));
  w.count = static_cast<int*>(take(size_t(n) * 4));
  w.row_token = static_cast<int*>(take(rows * 4));
  w.h = static_cast<uint16_t*>(take(rows * L.d_ffn * 2));
  w.o = static_cast<float*>(take(rows * L.d_model * 4));
  w.bytes = off;
  return w;
}

}  // namespace

W4A16MoeLayer w4a16_moe_create(int n_experts, int d_model, int d_ffn, bool has_shared) {
  if (n_experts <= 0 || n_experts > kMaxExperts) throw Error("w4a16_moe: n_experts must be in 1..1024");
  w4a16_check_shape(2 * d_ffn, d_model);
  w4a16_check_shape(d_model, d_ffn);
  if (d_ffn % 32 != 0) throw Error("w4a16_moe: d_ffn must be a multiple of 32");
  W4A16MoeLayer L;
  L.n_experts = n_experts;
  L.d_model = d_model;
  L.d_ffn = d_ffn;
  L.has_shared = has_shared;
  const size_t n = size_t(L.n_total()), DF = size_t(d_model) * d_ffn;
  STRATA_CUDA_CHECK(cudaMalloc(&L.gu_packed, n * 2 * DF / 2));
  STRATA_CUDA_CHECK(cudaMalloc(&L.gu_scales, n * 2 * DF / 16));
  STRATA_CUDA_CHECK(cudaMalloc(&L.dn_packed, n * DF / 2));
  STRATA_CUDA_CHECK(cudaMalloc(&L.dn_scales, n * DF / 16));
  std::vector<const void*> host(4 * n);
  for (size_t e = 0; e < n; e++) {
    host[0 * n + e] = L.gu_packed + e * 2 * DF / 8;
    host[1 * n + e] = L.gu_scales + e * 2 * DF / 32;
    host[2 * n + e] = L.dn_packed + e * DF / 8;
    host[3 * n + e] = L.dn_scales + e * DF / 32;
  }
  void* ptrs = nullptr;
  STRATA_CUDA_CHECK(cudaMalloc(&ptrs, host.size() * sizeof(void*)));
  STRATA_CUDA_CHECK(cudaMemcpy(ptrs, host.data(), host.size() * sizeof(void*), cudaMemcpyHostToDevice));
  L.ptrs = static_cast<const void**>(ptrs);
  return L;
}

void w4a16_moe_free(W4A16MoeLayer& L) {
  cudaFree(L.gu_packed);
  cudaFree(L.gu_scales);
  cudaFree(L.dn_packed);
  cudaFree(L.dn_scales);
  cudaFree(const_cast<void**>(L.ptrs));
  L = W4A16MoeLayer{};
}

void w4a16_moe_set_expert(W4A16MoeLayer& L, int e, const uint32_t* gate_packed, const uint16_t* gate_scales,
                          const uint32_t* up_packed, const uint16_t* up_scales, const uint32_t* down_packed,
                          const uint16_t* down_scales, void* stream) {
  if (e < 0 || e >= L.n_total()) throw Error("w4a16_moe_set_expert: expert " + std::to_string(e) + " out of range");
  const int D = L.d_model, F = L.d_ffn;
  const size_t DF = size_t(D) * F;
  uint32_t* gq = L.gu_packed + size_t(e) * 2 * DF / 8;
  uint16_t* gs = L.gu_scales + size_t(e) * 2 * DF / 32;
  w4a16_repack_blocks(gate_packed, gate_scales, F, D, gq, gs, 2, 0, stream);
  w4a16_repack_blocks(up_packed, up_scales, F, D, gq, gs, 2, 1, stream);
  w4a16_repack_blocks(down_packed, down_scales, D, F, L.dn_packed + size_t(e) * DF / 8,
                      L.dn_scales + size_t(e) * DF / 32, 1, 0, stream);
}

void w4a16_moe_upload_expert(W4A16MoeLayer& L, int e, const LinearWeight& gate, const LinearWeight& up,
                             const LinearWeight& down) {
  const int D = L.d_model, F = L.d_ffn;
  for (const LinearWeight* w : {&gate, &up, &down})
    if (w->kind != WeightKind::Int4 || !w->packed || !w->scales)
      throw Error("w4a16_moe_upload_expert: " + w->name + " is not an INT4 weight");
  if (gate.n_out != F || gate.n_in != D || up.n_out != F || up.n_in != D || down.n_out != D || down.n_in != F)
    throw Error("w4a16_moe_upload_expert: expert " + std::to_string(e) + " shapes do not match the layer");
  const size_t DF = size_t(D) * F;
  char* tmp = nullptr;
  STRATA_CUDA_CHECK(cudaMalloc(&tmp, 3 * (DF / 2 + DF / 16)));
  const LinearWeight* ws[3] = {&gate, &up, &down};
  uint32_t* q[3];
  uint16_t* s[3];
  for (int i = 0; i < 3; i++) {
    q[i] = reinterpret_cast<uint32_t*>(tmp + i * (DF / 2 + DF / 16));
    s[i] = reinterpret_cast<uint16_t*>(tmp + i * (DF / 2 + DF / 16) + DF / 2);
    STRATA_CUDA_CHECK(cudaMemcpy(q[i], ws[i]->packed, DF / 2, cudaMemcpyHostToDevice));
    STRATA_CUDA_CHECK(cudaMemcpy(s[i], ws[i]->scales, DF / 16, cudaMemcpyHostToDevice));
  }
  w4a16_moe_set_expert(L, e, q[0], s[0], q[1], s[1], q[2], s[2], nullptr);
  STRATA_CUDA_CHECK(cudaDeviceSynchronize());
  STRATA_CUDA_CHECK(cudaFree(tmp));
}

size_t w4a16_moe_workspace_bytes(const W4A16MoeLayer& L, int top_k, int T) { return carve(nullptr, L, top_k, T).bytes; }

void check_routing(const MoeRouting& r, const char* who) {
  const int E = r.n_experts, k = r.top_k;
  if (E <= 0 || E > kMaxExperts) throw Error(std::string(who) + ": n_experts must be in 1..1024");
  if (k <= 0 || k > kMaxTopK || k > E) throw Error(std::string(who) + ": top_k must be in 1..min(32, E)");
  if (r.n_group > 1 && (E % r.n_group != 0 || r.n_group > 64 || r.topk_group < 1 || r.topk_group > r.n_group ||
                        E / r.n_group < 2))
    throw Error(std::string(who) + ": bad expert groups");
}

void w4a16_moe_route(const float* logits, int T, const MoeRouting& r, int* ids, float* weights, void* stream) {
  check_routing(r, "w4a16_moe_route");
  if (T <= 0) return;
  moe_route_kernel<<<T, kRouteThreads, 0, static_cast<cudaStream_t>(stream)>>>(logits, r, ids, weights);
  STRATA_CUDA_CHECK_LAUNCH();
}

void w4a16_moe_forward(const W4A16MoeLayer& L, const MoeRouting& r, const uint16_t* x, int T, const float* logits,
                       float* y, bool accumulate, void* workspace, size_t workspace_bytes, void* stream,
                       const MoeTrace* trace, const MoeOptions& opt) {
  const int E = L.n_experts, k = r.top_k, D = L.d_model;
  if (r.n_experts != E) throw Error("w4a16_moe_forward: routing has " + std::to_string(r.n_experts) +
                                    " experts, the layer " + std::to_string(E));
  check_routing(r, "w4a16_moe_forward");
  if (T <= 0) return;
  if (reinterpret_cast<uintptr_t>(x) % 16 != 0) throw Error("w4a16_moe_forward: x must be 16-byte aligned");
  const MoeWs w = carve(workspace, L, k, T);
  if (!workspace || workspace_bytes < w.bytes) throw Error("w4a16_moe_forward: workspace too small");
  const cudaStream_t s = static_cast<cudaStream_t>(stream);

  // The layer's launches are chained with programmatic dependent launch (each may start while the previous one
  // ends, and waits for it before touching its outputs), except the cuBLAS router GEMM.
  const bool pdl = opt.pdl != 0;
  static_assert(kMoeRouterGemvMaxT <= kGemvMaxT, "the GEMV holds kGemvMaxT tokens' sums");
  // 1. Router logits unless given: for a few tokens our GEMV, else cuBLAS (bf16 GEMM, f32 out).
  if (!logits && !L.router) throw Error("w4a16_moe_forward: no logits and no router weight");
  if (!logits && T <= kMoeRouterGemvMaxT && opt.router_gemv != 0) {
    launch_k(moe_router_gemv_kernel, dim3(unsigned((E + kGemvRows - 1) / kGemvRows)), dim3(kGemvThreads), 0, s, pdl,
             x, T, D, L.router, E, w.logits);
    logits = w.logits;
  }
  if (!logits) {
    cublasHandle_t h = blas_handle();
    if (cublasSetStream(h, s) != CUBLAS_STATUS_SUCCESS) throw Error("w4a16_moe: cublasSetStream failed");
    const float one = 1.f, zero = 0.f;
    const cublasStatus_t st = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, E, T, D, &one, L.router, CUDA_R_16BF, D, x,
                                           CUDA_R_16BF, D, &zero, w.logits, CUDA_R_32F, E, CUBLAS_COMPUTE_32F,
                                           CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS) throw Error("w4a16_moe: router cublasGemmEx failed: " + std::to_string(int(st)));
    logits = w.logits;
  }
  mark_stage(opt, 0, s);
  // 2. Routing; 3.-5. the experts.
  launch_k(moe_route_kernel, dim3(unsigned(T)), dim3(kRouteThreads), 0, s, pdl, logits, r, w.ids, w.weights);
  mark_stage(opt, 1, s);
  w4a16_moe_experts(L, x, T, w.ids, w.weights, k, y, accumulate, workspace, workspace_bytes, stream, opt);
  if (trace) {
    if (trace->logits)
      STRATA_CUDA_CHECK(cudaMemcpyAsync(trace->logits, logits, size_t(T) * E * 4, cudaMemcpyDeviceToDevice, s));
    if (trace->ids) STRATA_CUDA_CHECK(cudaMemcpyAsync(trace->ids, w.ids, size_t(T) * k * 4, cudaMemcpyDeviceToDevice, s));
    if (trace->weights)
      STRATA_CUDA_CHECK(cudaMemcpyAsync(trace->weights, w.weights, size_t(T) * k * 4, cudaMemcpyDeviceToDevice, s));
    if (trace->n_active) STRATA_CUDA_CHECK(cudaMemcpyAsync(trace->n_active, w.n_active, 4, cudaMemcpyDeviceToDevice, s));
    if (trace->active)
      STRATA_CUDA_CHECK(cudaMemcpyAsync(trace->active, w.active, size_t(E + 1) * 4, cudaMemcpyDeviceToDevice, s));
  }
}

void w4a16_moe_experts(const W4A16MoeLayer& L, const uint16_t* x, int T, const int* ids, const float* weights, int k,
                       float* y, bool accumulate, void* workspace, size_t workspace_bytes, void* stream,
                       const MoeOptions& opt) {
  const int E = L.n_experts, D = L.d_model, F = L.d_ffn;
  if (k <= 0 || k > kMaxTopK || k > E) throw Error("w4a16_moe_experts: top_k must be in 1..min(32, E)");
  if (T <= 0) return;
  if (reinterpret_cast<uintptr_t>(x) % 16 != 0) throw Error("w4a16_moe_experts: x must be 16-byte aligned");
  const MoeWs w = carve(workspace, L, k, T);
  if (!workspace || workspace_bytes < w.bytes) throw Error("w4a16_moe_experts: workspace too small");
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  const bool pdl = opt.pdl != 0;
  const PlanOut plan{w.rank, w.n_active, w.active, w.offset, w.count, w.slot_of, w.row_token};
  launch_k(moe_plan_kernel, dim3(1), dim3(1024), 0, s, pdl, ids, T, k, E, L.has_shared ? 1 : 0, plan);
  mark_stage(opt, 2, s);

  // 4. Grouped gate/up (+ SiLU * up) and down over the active experts: grid.y = the most experts that can be active.
  const int slots = std::min(E, T * k) + (L.has_shared ? 1 : 0);
  const int n = L.n_total();
  SkinnyArgs a;
  a.plan = MoePlanDev{w.n_active, w.active, w.offset, w.count};
  a.x = x;
  a.ldx = D;
  a.K = D;
  a.e_wq = reinterpret_cast<const uint4* const*>(L.ptrs);
  a.e_ws = reinterpret_cast<const uint2* const*>(L.ptrs + n);
  a.x_rows = w.row_token;
  a.y = w.h;
  a.ldy = F;
  // PDL on the pipelined kernel only: gate/up waits for the plan (the previous launch's output) before reading it;
  // down may read the plan at once (gate/up lets it in only after its own wait) and streams its first weights
  // before waiting for h. The register-staged kernel does not take part (plain launches).
  a.pdl = pdl && opt.pipe != 0;
  a.plan_ready = false;
  const int gu_blocks = 2 * F / kW4TileN;
  // Defaults from the H200 sweeps on the Kimi-K2 layer (bench/cuda/results), pipelined kernel: at <= 8 tokens gate/up
  // 4 row blocks x 8 warps and down 8 x 4; above, gate/up 8 x 4 and down 4 x 8 (same-run sweep, us at 1 / 8 / 64 /
  // 256 tokens, both 4 x 8: 90 / 445 / 2929 / 3950; down 8 x 4: 86 / 410 / 2696 / 4037; gate/up 8 x 4: 95 / 444 /
  // 2620 / 3847). Fewer, longer CTAs: down's K = 2048 gives a 4 x 8 CTA only 4 k tiles per warp. The register-staged
  // kernel (no R8) keeps its H100 defaults, gate/up 4 x 8 and down 4 x 4.
  const bool few = T <= 8, pipe = opt.pipe != 0;
  const int gu_want = opt.gu_rows == 2 || opt.gu_rows == 4 || opt.gu_rows == 8 ? opt.gu_rows : pipe && !few ? 8 : 4;
  const int gu_rows = gu_want == 8 && pipe && gu_blocks % 8 == 0 ? 8 : gu_want != 2 && gu_blocks % 4 == 0 ? 4 : 2;
  const int gu_warps = opt.gu_warps == 4 || opt.gu_warps == 8 || opt.gu_warps == 16 ? opt.gu_warps
                       : gu_rows == 8                                                ? 4
                                                                                     : 8;
  if (T <= 8)
    launch_gate_up<1>(a, gu_blocks, slots, gu_rows, gu_warps, opt, s);
  else
    launch_gate_up<2>(a, gu_blocks, slots, gu_rows, gu_warps, opt, s);
  mark_stage(opt, 3, s);

  SkinnyArgs b = a;
  b.x = w.h;
  b.ldx = F;
  b.K = F;
  b.e_wq = reinterpret_cast<const uint4* const*>(L.ptrs + 2 * n);
  b.e_ws = reinterpret_cast<const uint2* const*>(L.ptrs + 3 * n);
  b.x_rows = nullptr;
  b.y = w.o;
  b.ldy = D;
  b.plan_ready = true;
  const int dn_blocks = D / kW4TileN;
  int dn_rows = opt.dn_rows == 1 || opt.dn_rows == 2 || opt.dn_rows == 4 || (opt.dn_rows == 8 && pipe) ? opt.dn_rows
                : pipe && few                                                                          ? 8
                                                                                                       : 4;
  if (dn_blocks % dn_rows != 0) dn_rows = dn_blocks % 4 == 0 ? 4 : 1;
  const int dn_warps = opt.dn_warps == 4 || opt.dn_warps == 8 || opt.dn_warps == 16 ? opt.dn_warps
                       : !pipe || dn_rows == 8                                       ? 4
                                                                                     : 8;
  if (T <= 8)
    launch_down<1>(b, dn_blocks, slots, dn_rows, dn_warps, opt, s);
  else
    launch_down<2>(b, dn_blocks, slots, dn_rows, dn_warps, opt, s);
  mark_stage(opt, 4, s);

  // 5. Weighted combine (+ shared expert).
  const dim3 grid(unsigned((D / 4 + 255) / 256), unsigned(T));
  launch_k(moe_combine_kernel, grid, dim3(256), 0, s, pdl, static_cast<const float*>(w.o), D, k,
           static_cast<const int*>(w.slot_of), weights, static_cast<const int*>(L.has_shared ? w.offset + E : nullptr),
           y, accumulate ? 1 : 0);
  mark_stage(opt, 5, s);
}

}  // namespace strata::cuda
