// Correctness check of the CUDA W4A16 ops against the CPU backend, on random INT4 weights/scales and random
// non-zero bf16 activations, fresh seed each run, outputs poisoned (NaN) first; exit 1 on any failure.
//   1. w4a16_linear, every path and forced configuration, vs strata::linear_f32.
//   2. MoE routing, the four router kinds, on the same f32 logits: ids exact, weights within 1e-5, vs moe_route_f32.
//   3. The fused MoE layer (router GEMM or given logits, routing, permutation, grouped experts, combine, shared
//      expert, y = / += ) vs the CPU backend's moe_experts + ffn on the GPU's ids.
// Not a benchmark (bench/cuda/bench_w4a16_cuda.cu is) and not a unit-test framework.
// Usage: cuda_op_check [--seed S] [--quick]   (--quick: small shapes only; for compute-sanitizer)
#include <cuda_runtime.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/ops.h"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/cuda_moe.h"
#include "kernels/cuda/cuda_w4a16.h"
#include "kernels/cuda/w4a16_layout.h"
#include "quant/int4_format.h"

using namespace strata;
using namespace strata::cuda;

namespace {

constexpr double kTolLinear = 1e-2;   // bf16 weights (code * scale rounded once) and bf16 output: ~2e-3 seen
constexpr double kTolMoe = 1e-2;      // + bf16 SiLU*up activations between the expert GEMMs
constexpr double kTolLogits = 1e-4;   // cuBLAS bf16 GEMM, f32 accumulation in another order
constexpr double kTolWeights = 1e-5;  // routing weights, relative (expf vs std::exp, sum order)

int g_failures = 0, g_rows = 0;

struct Stats {
  double rel = 0, max_abs = 0, max_ref = 0;
  size_t non_finite = 0;
};

template <class Get>
Stats compare(size_t n, Get got, const float* ref) {
  Stats s;
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    const double a = got(i), b = ref[i];
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

void report(const std::string& what, const Stats& s, double tol) {
  const bool ok = s.non_finite == 0 && s.rel <= tol;
  if (!ok) g_failures++;
  g_rows++;
  std::string status = ok ? "ok" : "FAIL";
  if (s.non_finite) status += " (" + std::to_string(s.non_finite) + " non-finite)";
  std::printf("| %s | %.2e | %.0e | %.3e | %.3e | %s |\n", what.c_str(), s.rel, tol, s.max_abs, s.max_ref,
              status.c_str());
  std::fflush(stdout);
}

void report_exact(const std::string& what, size_t mismatches, size_t total) {
  if (mismatches) g_failures++;
  g_rows++;
  std::printf("| %s | %zu of %zu differ | exact | - | - | %s |\n", what.c_str(), mismatches, total,
              mismatches ? "FAIL" : "ok");
  std::fflush(stdout);
}

struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float uniform(float lo, float hi) { return lo + (hi - lo) * float(next() >> 40) * (1.0f / 16777216.0f); }
  float sym(float lo, float hi) { return (next() & 1 ? 1.f : -1.f) * uniform(lo, hi); }
};

// A random checkpoint-format INT4 weight that owns its host bytes.
struct HostInt4 {
  std::vector<uint32_t> packed;
  std::vector<uint16_t> scales;
  LinearWeight w;
  HostInt4(int N, int K, Rng& rng, const char* name, float s_lo = 0.002f, float s_hi = 0.02f) {
    packed.resize(size_t(N) * K / 8);
    for (auto& v : packed) v = uint32_t(rng.next());
    scales.resize(size_t(N) * K / kInt4GroupSize);
    for (auto& v : scales) v = f32_to_bf16(rng.uniform(s_lo, s_hi));
    w.name = name;
    w.kind = WeightKind::Int4;
    w.n_out = N;
    w.n_in = K;
    w.packed = packed.data();
    w.scales = scales.data();
  }
  HostInt4(const HostInt4&) = delete;
};

// bf16 activations (random sign x [0.25, 1), never zero) and their f32 values.
void random_x(Rng& rng, size_t n, std::vector<uint16_t>* xb, std::vector<float>* xf) {
  xb->resize(n);
  xf->resize(n);
  for (size_t i = 0; i < n; i++) {
    (*xb)[i] = f32_to_bf16(rng.sym(0.25f, 1.0f));
    (*xf)[i] = bf16_to_f32((*xb)[i]);
  }
}

template <class T>
T* to_device(const std::vector<T>& v) {
  T* d = nullptr;
  STRATA_CUDA_CHECK(cudaMalloc(&d, std::max<size_t>(1, v.size()) * sizeof(T)));
  STRATA_CUDA_CHECK(cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

template <class T>
std::vector<T> to_host(const T* d, size_t n) {
  std::vector<T> v(n);
  STRATA_CUDA_CHECK(cudaMemcpy(v.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  return v;
}

// Device-layout round trip: every code and scale of the repacked weight equals the checkpoint's.
size_t repack_mismatches(const LinearWeight& hw, const W4A16Weight& dw) {
  const int N = hw.n_out, K = hw.n_in;
  const auto packed = to_host(dw.packed, size_t(N) * K / 8);
  const auto scales = to_host(dw.scales, size_t(N) * K / 32);
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

// ------------------------------------------------------------------------------------------------ linear

void check_linear(Rng& rng, bool quick) {
  std::printf("## w4a16_linear vs linear_f32 (CPU)\n\n| check | rel err | tol | max abs err | max abs ref | status |\n");
  std::printf("|---|---|---|---|---|---|\n");
  // 1792x512: 112 row blocks, which R7 and R14 divide.
  // 400x512: 25 row blocks, a partial last CTA tile of the 128-row wgmma and tiled kernels and of R2/R4.
  std::vector<std::pair<int, int>> shapes = {{256, 512}, {400, 512}, {1792, 512}, {2048, 7168}, {7168, 2048}};
  std::vector<int> Ms = {1, 3, 4, 8, 13, 16, 37, 64, 200, 256};  // 4: where 2048x7168 auto takes flat R2 cluster 2
  if (quick) {
    shapes = {{256, 512}, {400, 512}};
    Ms = {1, 16, 37};
  }
  struct Case {
    W4A16Options opt;
    const char* label;
  };
  auto opt = [](W4A16Path p, int split = 0, int rows = 0, int warps = 0, int bt = 0, int kcl = 0) {
    W4A16Options o;
    o.path = p;
    o.split_k = split;
    o.skinny_rows = rows;
    o.skinny_warps = warps;
    o.skinny_split = kcl;
    o.wgmma_tokens = bt;
    return o;
  };
  auto xs = [](W4A16Options o, int v) {  // the register-staged kernel
    o.skinny_pipe = 0;
    o.skinny_xs = v;
    return o;
  };
  auto ws = [](W4A16Options o, int v) {  // the wgmma kernel: cp.async (0) or warp-specialised (1)
    o.wgmma_ws = v;
    return o;
  };
  auto stages = [](W4A16Options o, int v) {
    o.skinny_pipe = 1;
    o.skinny_stages = v;
    return o;
  };
  auto flat = [](W4A16Options o, int v) {  // the pipelined kernel's flat form (1) or its ring (0)
    o.skinny_pipe = 1;
    o.skinny_flat = v;
    return o;
  };
  const Case cases[] = {
      {opt(W4A16Path::Naive), "naive"},
      {opt(W4A16Path::Skinny), "skinny"},
      {opt(W4A16Path::Skinny, 0, 1, 4), "skinny R1 W4"},
      {opt(W4A16Path::Skinny, 0, 2, 8), "skinny R2 W8"},
      {opt(W4A16Path::Skinny, 0, 4, 16), "skinny R4 W16"},
      {opt(W4A16Path::Skinny, 0, 1, 8, 0, 2), "skinny R1 W8 cluster2"},
      {opt(W4A16Path::Skinny, 0, 2, 16, 0, 4), "skinny R2 W16 cluster4"},
      // The pipelined kernel with 2 and 8 stages; the register-staged one (pipe 0) with x through its shared-memory
      // ring (xs) and through 4-byte loads, whatever M; PDL off.
      {stages(opt(W4A16Path::Skinny, 0, 2, 8), 2), "skinny pipe S2 R2 W8"},
      {stages(opt(W4A16Path::Skinny, 0, 1, 4, 0, 2), 8), "skinny pipe S8 R1 W4 cluster2"},
      {stages(opt(W4A16Path::Skinny, 0, 8, 8), 0), "skinny pipe R8 (M > 8) W8"},
      {stages(opt(W4A16Path::Skinny, 0, 8, 4, 0, 2), 0), "skinny pipe R8 (M > 8) W4 cluster2"},
      {stages(opt(W4A16Path::Skinny, 0, 8, 8, 0, 2), 0), "skinny pipe R8 (M > 8) W8 cluster2"},
      {stages(opt(W4A16Path::Skinny, 0, 7, 4), 0), "skinny pipe R7 (N % 112 == 0) W4"},
      {stages(opt(W4A16Path::Skinny, 0, 7, 4, 0, 2), 0), "skinny pipe R7 (N % 112 == 0) W4 cluster2"},
      {stages(opt(W4A16Path::Skinny, 0, 14, 8), 3), "skinny pipe S3 R14 (M <= 8, N % 224 == 0) W8"},
      // The flat kernel where each warp gets exactly 2, 4, 7 or 8 k tiles (else the label shows the ring ran), and
      // the ring where auto would take the flat kernel.
      {flat(opt(W4A16Path::Skinny, 0, 1, 4), 0), "skinny ring R1 W4"},
      {flat(opt(W4A16Path::Skinny, 0, 2, 4), 1), "skinny flat R2 W4"},
      {flat(opt(W4A16Path::Skinny, 0, 1, 4, 0, 2), 1), "skinny flat R1 W4 cluster2"},
      {flat(opt(W4A16Path::Skinny, 0, 1, 16), 1), "skinny flat R1 W16"},
      {flat(opt(W4A16Path::Skinny, 0, 2, 8, 0, 2), 1), "skinny flat R2 W8 cluster2"},
      {xs(opt(W4A16Path::Skinny, 0, 1, 4), 1), "skinny regs xs R1 W4"},
      {xs(opt(W4A16Path::Skinny, 0, 4, 16), 1), "skinny regs xs R4 W16"},
      {xs(opt(W4A16Path::Skinny, 0, 2, 8, 0, 2), 1), "skinny regs xs R2 W8 cluster2"},
      {xs(opt(W4A16Path::Skinny, 0, 4, 8), 0), "skinny regs R4 W8"},
      {xs(opt(W4A16Path::Skinny), 0), "skinny regs auto"},
      {[&] {
         W4A16Options o = opt(W4A16Path::Skinny);
         o.pdl = false;
         return o;
       }(),
       "skinny noPDL"},
      {opt(W4A16Path::Wgmma, 0, 0, 0, 64), "wgmma BT64"},
      {opt(W4A16Path::Wgmma, 0, 0, 0, 128), "wgmma BT128"},
      {opt(W4A16Path::Wgmma, 0, 0, 0, 256), "wgmma BT256"},
      {opt(W4A16Path::Wgmma, 1), "wgmma split1"},
      // The wgmma kernels by name (auto takes the warp-specialised one above 64 tokens).
      {ws(opt(W4A16Path::Wgmma, 1, 0, 0, 256), 0), "wgmma cp.async BT256 split1"},
      {ws(opt(W4A16Path::Wgmma, 3, 0, 0, 64), 0), "wgmma cp.async BT64 split3"},
      {ws(opt(W4A16Path::Wgmma, 1, 0, 0, 64), 1), "wgmma warp-specialised BT64 split1"},
      {ws(opt(W4A16Path::Wgmma, 0, 0, 0, 128), 1), "wgmma warp-specialised BT128"},
      {ws(opt(W4A16Path::Wgmma, 1, 0, 0, 256), 1), "wgmma warp-specialised BT256 split1"},
      {ws(opt(W4A16Path::Wgmma, 3, 0, 0, 256), 1), "wgmma warp-specialised BT256 split3"},
      {[&] {
         W4A16Options o = ws(opt(W4A16Path::Wgmma, 1), 1);
         o.wgmma_smem_epilogue = false;
         return o;
       }(),
       "wgmma warp-specialised split1 direct stores"},
      {opt(W4A16Path::Wgmma, 3), "wgmma split3"},
      {[&] {
         W4A16Options o = opt(W4A16Path::Wgmma, 1);
         o.wgmma_smem_epilogue = false;
         return o;
       }(),
       "wgmma split1 direct stores"},
      {opt(W4A16Path::Tiled), "tiled"},
      {opt(W4A16Path::Tiled, 3), "tiled split3"},
      {opt(W4A16Path::Auto), "auto"},
  };
  for (auto [N, K] : shapes) {
    HostInt4 hw(N, K, rng, "check");
    W4A16Weight dw = w4a16_upload(hw.w);
    report_exact("N " + std::to_string(N) + " K " + std::to_string(K) + " repack round trip (codes, scales)",
                 repack_mismatches(hw.w, dw), size_t(N) * K * 2);
    for (int M : Ms) {
      std::vector<uint16_t> xb;
      std::vector<float> xf;
      random_x(rng, size_t(M) * K, &xb, &xf);
      std::vector<float> ref(size_t(M) * N);
      linear_f32(xf.data(), M, hw.w, ref.data());
      uint16_t* dx = to_device(xb);
      uint16_t* dy = nullptr;
      STRATA_CUDA_CHECK(cudaMalloc(&dy, ref.size() * 2));
      for (const Case& c : cases) {
        if (c.opt.path == W4A16Path::Skinny && M > 16) continue;
        if (c.opt.path == W4A16Path::Naive && size_t(M) * N * K > (size_t(1) << 33)) continue;
        const size_t ws_bytes = w4a16_workspace_bytes(M, N, K, c.opt);
        void* ws = nullptr;
        if (ws_bytes) STRATA_CUDA_CHECK(cudaMalloc(&ws, ws_bytes));
        STRATA_CUDA_CHECK(cudaMemset(dy, 0xFF, ref.size() * 2));  // bf16 0xFFFF = NaN
        w4a16_linear(dx, M, dw, dy, ws, ws_bytes, nullptr, c.opt);
        STRATA_CUDA_CHECK(cudaDeviceSynchronize());
        const auto got = to_host(dy, ref.size());
        if (ws) STRATA_CUDA_CHECK(cudaFree(ws));
        const W4A16Path taken = c.opt.path == W4A16Path::Auto ? w4a16_auto_path(M) : c.opt.path;
        std::string label = c.label;
        if (c.opt.path == W4A16Path::Auto) label += std::string("=") + w4a16_path_name(taken);
        if (taken == W4A16Path::Skinny) {
          const SkinnyConfig sc = w4a16_skinny_config(M, N, K, c.opt);
          label += " (";
          label += w4a16_skinny_name(sc);
          label += " U" + std::to_string(sc.unroll) + ")";
        }
        if (taken == W4A16Path::Wgmma) {
          const WgmmaConfig wc = w4a16_wgmma_config(M, N, K, c.opt);
          label += std::string(wc.ws ? " (warp-specialised" : " (cp.async") + " BT" + std::to_string(wc.tokens) + ")";
        }
        if (ws_bytes) label += " (" + std::to_string(ws_bytes / (size_t(M) * N * 4)) + " K splits)";
        report("N " + std::to_string(N) + " K " + std::to_string(K) + " M " + std::to_string(M) + " " + label,
               compare(got.size(), [&](size_t i) { return double(bf16_to_f32(got[i])); }, ref.data()), kTolLinear);
      }
      STRATA_CUDA_CHECK(cudaFree(dx));
      STRATA_CUDA_CHECK(cudaFree(dy));
    }
    w4a16_free(dw);
  }
}

// ------------------------------------------------------------------------------------------------ MoE

struct RouterKind {
  const char* name;
  bool sigmoid, renorm, bias;
  float scaling;
  int n_group, topk_group;
};

const RouterKind kKinds[] = {
    {"softmax", false, false, false, 1.f, 1, 1},
    {"softmax+renorm", false, true, false, 1.f, 1, 1},
    {"sigmoid+bias+renorm+scale", true, true, true, 2.827f, 1, 1},
    {"sigmoid+bias group-limited", true, true, true, 2.5f, 8, 4},
};

RouterParams cpu_params(const RouterKind& k, int E, int top_k, const float* bias) {
  RouterParams p;
  p.n_experts = E;
  p.top_k = top_k;
  p.sigmoid = k.sigmoid;
  p.renormalize = k.renorm;
  p.renorm_eps = k.renorm ? 1e-20f : 0.f;
  p.scaling = k.scaling;
  p.n_group = k.n_group;
  p.topk_group = k.topk_group;
  p.choice_bias = k.bias ? bias : nullptr;
  return p;
}

MoeRouting gpu_routing(const RouterParams& p, const float* d_bias) {
  MoeRouting r;
  r.n_experts = p.n_experts;
  r.top_k = p.top_k;
  r.sigmoid = p.sigmoid;
  r.renormalize = p.renormalize;
  r.renorm_eps = p.renorm_eps;
  r.scaling = p.scaling;
  r.n_group = p.n_group;
  r.topk_group = p.topk_group;
  r.choice_bias = p.choice_bias ? d_bias : nullptr;
  return r;
}

// One MoE configuration: E experts (+ shared), D x F, checked for each router kind and token count.
void check_moe(Rng& rng, int E, int D, int F, int top_k, bool shared, const std::vector<int>& Ts,
               const std::vector<int>& kinds, bool with_router) {
  std::printf("\n## MoE E=%d D=%d F=%d top-%d%s%s vs CPU backend\n\n", E, D, F, top_k, shared ? " +shared" : "",
              with_router ? " (router GEMM on the GPU)" : " (given logits)");
  std::printf("| check | rel err | tol | max abs err | max abs ref | status |\n|---|---|---|---|---|---|\n");
  std::vector<std::unique_ptr<HostInt4>> ws;
  std::vector<FfnWeights> experts(static_cast<size_t>(E));
  W4A16MoeLayer L = w4a16_moe_create(E, D, F, shared);
  FfnWeights shared_w;
  for (int e = 0; e < E + (shared ? 1 : 0); e++) {
    ws.push_back(std::make_unique<HostInt4>(F, D, rng, "gate", 0.01f, 0.04f));
    ws.push_back(std::make_unique<HostInt4>(F, D, rng, "up", 0.01f, 0.04f));
    ws.push_back(std::make_unique<HostInt4>(D, F, rng, "down", 0.01f, 0.04f));
    FfnWeights f{ws[ws.size() - 3]->w, ws[ws.size() - 2]->w, ws[ws.size() - 1]->w};
    w4a16_moe_upload_expert(L, e, f.gate, f.up, f.down);
    if (e < E)
      experts[size_t(e)] = f;
    else
      shared_w = f;
  }
  // Router: bf16 [E, D] with values whose logits spread over a few units.
  std::vector<uint16_t> router(size_t(E) * D);
  for (auto& v : router) v = f32_to_bf16(rng.sym(0.001f, 0.06f));
  LinearWeight router_w;
  router_w.name = "router";
  router_w.kind = WeightKind::BF16;
  router_w.n_out = E;
  router_w.n_in = D;
  router_w.dense = router.data();
  uint16_t* d_router = to_device(router);
  L.router = d_router;
  std::vector<float> bias(static_cast<size_t>(E));
  for (auto& b : bias) b = rng.sym(0.0f, 0.05f);
  float* d_bias = to_device(bias);
  auto cpu = make_cpu_backend();

  for (int kind : kinds) {
    const RouterKind& K = kKinds[kind];
    if (K.n_group > 1 && E % K.n_group != 0) continue;
    const RouterParams p = cpu_params(K, E, top_k, bias.data());
    const MoeRouting r = gpu_routing(p, d_bias);
    for (int T : Ts) {
      const std::string tag = std::string(K.name) + " T " + std::to_string(T);
      std::vector<uint16_t> xb;
      std::vector<float> xf;
      random_x(rng, size_t(T) * D, &xb, &xf);
      std::vector<float> logits_cpu(size_t(T) * E);
      linear_f32(xf.data(), T, router_w, logits_cpu.data());
      uint16_t* dx = to_device(xb);
      float* d_logits_in = with_router ? nullptr : to_device(logits_cpu);
      float *dy = nullptr, *t_logits = nullptr, *t_w = nullptr;
      int *t_ids = nullptr, *t_na = nullptr;
      STRATA_CUDA_CHECK(cudaMalloc(&dy, size_t(T) * D * 4));
      STRATA_CUDA_CHECK(cudaMalloc(&t_logits, size_t(T) * E * 4));
      STRATA_CUDA_CHECK(cudaMalloc(&t_w, size_t(T) * top_k * 4));
      STRATA_CUDA_CHECK(cudaMalloc(&t_ids, size_t(T) * top_k * 4));
      STRATA_CUDA_CHECK(cudaMalloc(&t_na, 4));
      STRATA_CUDA_CHECK(cudaMemset(t_ids, 0xFF, size_t(T) * top_k * 4));
      STRATA_CUDA_CHECK(cudaMemset(t_w, 0xFF, size_t(T) * top_k * 4));
      const size_t wsb = w4a16_moe_workspace_bytes(L, top_k, T);
      void* dws = nullptr;
      STRATA_CUDA_CHECK(cudaMalloc(&dws, wsb));
      STRATA_CUDA_CHECK(cudaMemset(dws, 0xFF, wsb));  // poison the intermediates too
      MoeTrace tr;
      tr.logits = t_logits;
      tr.ids = t_ids;
      tr.weights = t_w;
      tr.n_active = t_na;

      // y = ..., poisoned; then y += ... on random y0; with the pipelined expert kernel (the default), then the
      // register-staged one; then y = ... with the pipelined kernel at 8 row blocks per warp (4 warps).
      for (int variant = 0; variant < 5; variant++) {
        const int acc = variant & 1;
        MoeOptions mo;
        mo.pipe = variant < 2 || variant == 4 ? 1 : 0;
        if (variant == 4) mo.gu_rows = mo.dn_rows = 8, mo.gu_warps = mo.dn_warps = 4;
        std::vector<float> y0(size_t(T) * D, NAN);
        if (acc)
          for (auto& v : y0) v = rng.sym(0.1f, 1.f);
        STRATA_CUDA_CHECK(cudaMemcpy(dy, y0.data(), y0.size() * 4, cudaMemcpyHostToDevice));
        w4a16_moe_forward(L, r, dx, T, d_logits_in, dy, acc != 0, dws, wsb, nullptr, &tr, mo);
        STRATA_CUDA_CHECK(cudaDeviceSynchronize());
        const auto got = to_host(dy, y0.size());
        const auto g_logits = to_host(t_logits, logits_cpu.size());
        const auto g_ids = to_host(t_ids, size_t(T) * top_k);
        const auto g_w = to_host(t_w, size_t(T) * top_k);
        const int n_active = to_host(t_na, 1)[0];
        if (variant == 0) {
          if (with_router)
            report(tag + (T <= kMoeRouterGemvMaxT ? " router logits (GEMV)" : " router logits (cuBLAS)") + " vs CPU",
                   compare(g_logits.size(), [&](size_t i) { return double(g_logits[i]); }, logits_cpu.data()),
                   kTolLogits);
          // CPU routing on the GPU's own logits: same input, so the choice must agree exactly.
          std::vector<int> c_ids(size_t(T) * top_k);
          std::vector<float> c_w(size_t(T) * top_k);
          moe_route_f32(g_logits.data(), T, p, c_ids.data(), c_w.data());
          // A differing id is a float tie (GPU expf / sum order vs the CPU's) when the two experts' choice
          // values agree to 1e-5; anything else fails.
          size_t id_bad = 0, ties = 0;
          for (int t = 0; t < T; t++) {
            const float* l = g_logits.data() + size_t(t) * E;
            float mx = l[0];
            double z = 0;
            for (int e = 0; e < E; e++) mx = std::max(mx, l[e]);
            for (int e = 0; e < E; e++) z += std::exp(double(l[e]) - mx);
            auto choice = [&](int e) {
              const double sc = p.sigmoid ? 1.0 / (1.0 + std::exp(-double(l[e]))) : std::exp(double(l[e]) - mx) / z;
              return sc + (p.choice_bias ? p.choice_bias[e] : 0.0);
            };
            for (int j = 0; j < top_k; j++) {
              const int a = c_ids[size_t(t) * top_k + j], b = g_ids[size_t(t) * top_k + j];
              if (a == b) continue;
              if (b < 0 || b >= E) {
                id_bad++;
                continue;
              }
              const double ca = choice(a), cb = choice(b);
              if (std::fabs(ca - cb) <= 1e-5 * std::max(std::fabs(ca), std::fabs(cb)))
                ties++;
              else
                id_bad++;
            }
          }
          report_exact(tag + " routing ids vs moe_route_f32 (" + std::to_string(ties) + " float ties)", id_bad,
                       c_ids.size());
          double wmax = 0;
          size_t wnan = 0;
          for (size_t i = 0; i < c_w.size(); i++) {
            if (!std::isfinite(g_w[i])) wnan++;
            if (c_ids[i] == g_ids[i])
              wmax = std::max(wmax, std::fabs(double(g_w[i]) - c_w[i]) / std::max(1e-30, std::fabs(double(c_w[i]))));
          }
          Stats ws_;
          ws_.rel = wmax;
          ws_.non_finite = wnan;
          report(tag + " routing weights (max rel)", ws_, kTolWeights);
          std::set<int> act(g_ids.begin(), g_ids.end());
          report_exact(tag + " active experts (" + std::to_string(act.size()) + " routed" +
                           (shared ? " + shared" : "") + ")",
                       size_t(std::abs(n_active - int(act.size() + (shared ? 1 : 0)))), 1);
        }
        // Reference: CPU experts on the GPU's ids/weights (+ the shared expert's ffn).
        std::vector<float> ref(y0.size(), 0.f);
        if (acc) ref = y0;
        cpu->moe_experts(xf.data(), T, D, experts, g_ids.data(), g_w.data(), top_k, ref.data());
        if (shared) {
          std::vector<float> sh(y0.size());
          cpu->ffn(xf.data(), T, shared_w, sh.data());
          for (size_t i = 0; i < sh.size(); i++) ref[i] += sh[i];
        }
        report(tag + (variant == 4 ? " pipelined R8 experts" : mo.pipe ? " pipelined experts" : " register-staged experts") +
                   (acc ? " layer output y += (random y0)" : " layer output y = (poisoned y)"),
               compare(got.size(), [&](size_t i) { return double(got[i]); }, ref.data()), kTolMoe);
      }
      for (void* ptr : {(void*)dx, (void*)d_logits_in, (void*)dy, (void*)t_logits, (void*)t_w, (void*)t_ids,
                        (void*)t_na, dws})
        if (ptr) STRATA_CUDA_CHECK(cudaFree(ptr));
    }
  }
  STRATA_CUDA_CHECK(cudaFree(d_router));
  STRATA_CUDA_CHECK(cudaFree(d_bias));
  w4a16_moe_free(L);
}

// ------------------------------------------------------------------------------------------------ backend

// The CUDA backend against the CPU backend through the Backend interface (host f32 in and out).
void check_backend(Rng& rng) {
  std::printf("\n## Backend ops: make_cuda_backend() vs make_cpu_backend()\n\n");
  std::printf("| check | rel err | tol | max abs err | max abs ref | status |\n|---|---|---|---|---|---|\n");
  auto cpu = make_cpu_backend();
  auto gpu = make_cuda_backend();
  auto rand_f = [&](size_t n, float lo, float hi) {
    std::vector<float> v(n);
    for (auto& x : v) x = rng.sym(lo, hi);
    return v;
  };
  auto cmp = [&](const std::vector<float>& got, const std::vector<float>& ref) {
    return compare(got.size(), [&](size_t i) { return double(got[i]); }, ref.data());
  };
  {  // INT4 linear with bias, several M
    HostInt4 w(512, 1024, rng, "lin");
    w.w.bias = rand_f(512, 0.1f, 1.f);
    for (int M : {1, 7, 40}) {
      const auto x = rand_f(size_t(M) * 1024, 0.25f, 1.f);
      std::vector<float> a(size_t(M) * 512, NAN), b(size_t(M) * 512, NAN);
      cpu->linear(x.data(), M, w.w, a.data());
      gpu->linear(x.data(), M, w.w, b.data());
      report("backend linear INT4 + bias M " + std::to_string(M), cmp(b, a), kTolLinear);
    }
  }
  {  // bf16 linear: not a GPU kernel, the CPU fallback must give the CPU's bits
    std::vector<uint16_t> wb(size_t(96) * 80);
    for (auto& v : wb) v = f32_to_bf16(rng.sym(0.01f, 0.1f));
    LinearWeight w;
    w.name = "bf16";
    w.kind = WeightKind::BF16;
    w.n_out = 96;
    w.n_in = 80;
    w.dense = wb.data();
    const auto x = rand_f(size_t(3) * 80, 0.25f, 1.f);
    std::vector<float> a(3 * 96, NAN), b(3 * 96, NAN);
    cpu->linear(x.data(), 3, w, a.data());
    gpu->linear(x.data(), 3, w, b.data());
    report("backend linear bf16 (CPU fallback, bit-exact)", cmp(b, a), 0.0);
  }
  {  // INT4 SwiGLU FFN
    HostInt4 g(256, 512, rng, "gate", 0.01f, 0.04f), u(256, 512, rng, "up", 0.01f, 0.04f),
        d(512, 256, rng, "down", 0.01f, 0.04f);
    const FfnWeights f{g.w, u.w, d.w};
    const auto x = rand_f(size_t(5) * 512, 0.25f, 1.f);
    std::vector<float> a(5 * 512, NAN), b(5 * 512, NAN);
    cpu->ffn(x.data(), 5, f, a.data());
    gpu->ffn(x.data(), 5, f, b.data());
    report("backend ffn INT4 M 5", cmp(b, a), kTolMoe);
  }
  {  // routing, the four kinds, same logits
    const int E = 64, k = 6, M = 33;
    const auto logits = rand_f(size_t(M) * E, 0.f, 3.f);
    const auto bias = rand_f(E, 0.f, 0.05f);
    for (const RouterKind& K : kKinds) {
      const RouterParams p = cpu_params(K, E, k, bias.data());
      std::vector<int> ia(size_t(M) * k), ib(size_t(M) * k, -1);
      std::vector<float> wa(size_t(M) * k), wb(size_t(M) * k, NAN);
      cpu->moe_route(logits.data(), M, p, ia.data(), wa.data());
      gpu->moe_route(logits.data(), M, p, ib.data(), wb.data());
      size_t bad = 0;
      double wmax = 0;
      for (size_t i = 0; i < ia.size(); i++) {
        if (ia[i] != ib[i]) {
          bad++;
          continue;
        }
        wmax = std::max(wmax, std::fabs(double(wb[i]) - wa[i]) / std::max(1e-30, std::fabs(double(wa[i]))));
      }
      report_exact(std::string("backend moe_route ids ") + K.name, bad, ia.size());
      Stats st;
      st.rel = wmax;
      report(std::string("backend moe_route weights (max rel) ") + K.name, st, kTolWeights);
    }
  }
  {  // MoE experts, y += on random y
    const int E = 16, D = 256, F = 128, k = 4, M = 9;
    std::vector<std::unique_ptr<HostInt4>> ws;
    std::vector<FfnWeights> experts;
    for (int e = 0; e < E; e++) {
      ws.push_back(std::make_unique<HostInt4>(F, D, rng, "gate", 0.01f, 0.04f));
      ws.push_back(std::make_unique<HostInt4>(F, D, rng, "up", 0.01f, 0.04f));
      ws.push_back(std::make_unique<HostInt4>(D, F, rng, "down", 0.01f, 0.04f));
      experts.push_back({ws[ws.size() - 3]->w, ws[ws.size() - 2]->w, ws[ws.size() - 1]->w});
    }
    const auto x = rand_f(size_t(M) * D, 0.25f, 1.f);
    std::vector<int> ids(size_t(M) * k);
    std::vector<float> w(size_t(M) * k);
    for (int m = 0; m < M; m++) {
      std::vector<int> perm(static_cast<size_t>(E));
      for (int e = 0; e < E; e++) perm[size_t(e)] = e;
      for (int j = 0; j < k; j++) {  // k distinct experts
        std::swap(perm[size_t(j)], perm[size_t(j) + rng.next() % size_t(E - j)]);
        ids[size_t(m) * k + j] = perm[size_t(j)];
        w[size_t(m) * k + j] = rng.uniform(0.1f, 1.f);
      }
    }
    auto a = rand_f(size_t(M) * D, 0.1f, 1.f);
    auto b = a;
    const ExpertLoad la = cpu->moe_experts(x.data(), M, D, experts, ids.data(), w.data(), k, a.data());
    const ExpertLoad lb = gpu->moe_experts(x.data(), M, D, experts, ids.data(), w.data(), k, b.data());
    report("backend moe_experts y += M 9 top-4 of 16", cmp(b, a), kTolMoe);
    report_exact("backend moe_experts ExpertLoad (experts, bytes)",
                 size_t(la.n_active_experts != lb.n_active_experts) + size_t(la.bytes != lb.bytes), 2);
  }
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t seed = uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()) ^ std::random_device{}();
  bool quick = false, moe_only = false;
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--seed") && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    if (!std::strcmp(argv[i], "--moe-only")) moe_only = true;
  }
  try {
    cudaDeviceProp prop{};
    int dev = 0;
    STRATA_CUDA_CHECK(cudaGetDevice(&dev));
    STRATA_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    std::printf("cuda_op_check: %s (sm_%d%d, %d SMs), seed %llu (rerun: --seed %llu), CPU ref ISA %s\n", prop.name,
                prop.major, prop.minor, prop.multiProcessorCount, (unsigned long long)seed, (unsigned long long)seed,
                cpu_isa_name(cpu_isa_active()));
    std::printf("rel err = ||gpu - cpu|| / ||cpu|| over all outputs; every output must be finite (poisoned to NaN "
                "before each run)\n\n");
    Rng rng{seed};
    if (!moe_only) check_linear(rng, quick);
    // Router kinds with given logits at realistic expert counts, small widths.
    check_moe(rng, 64, 256, 128, 4, false, quick ? std::vector<int>{1, 9} : std::vector<int>{1, 7, 33}, {0, 1}, false);
    if (!quick) {
      check_moe(rng, 384, 256, 128, 8, true, {1, 8, 64, 256}, {2}, false);
      check_moe(rng, 256, 256, 128, 8, true, {1, 19, 64}, {3}, false);
      // Kimi-K2 widths (hidden 7168, expert 2048), fewer experts, router GEMM on the GPU.
      check_moe(rng, 16, 7168, 2048, 8, true, {1, 5, 64}, {2}, true);
    } else {
      check_moe(rng, 32, 256, 128, 8, true, {1, 17}, {3}, true);
    }
    check_backend(rng);
    std::printf("\n%s: %d of %d checks failed (seed %llu)\n", g_failures ? "FAILED" : "PASSED", g_failures, g_rows,
                (unsigned long long)seed);
    return g_failures ? 1 : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cuda_op_check: error: %s\n", e.what());
    return 2;
  }
}
