// CUDA backend: INT4 linear / FFN / MoE on the GPU through kernels/cuda, the rest delegated to the CPU backend.
// Not fast per op (host round trips; see cuda_backend.h): it exists so the CUDA ops are checked op by op against
// the CPU backend through the same interface the model uses, and so a model can run with CUDA kernels today.
#include "backend/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/ops.h"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/cuda_moe.h"
#include "kernels/cuda/cuda_w4a16.h"

namespace strata {

namespace {

// Grow-only device scratch.
struct DevBuf {
  void* p = nullptr;
  size_t n = 0;
  void* get(size_t bytes) {
    if (bytes > n) {
      if (p) STRATA_CUDA_CHECK(cudaFree(p));
      p = nullptr;
      STRATA_CUDA_CHECK(cudaMalloc(&p, bytes));
      n = bytes;
    }
    return p;
  }
  ~DevBuf() {
    if (p) cudaFree(p);
  }
};

bool gpu_int4(const LinearWeight& w) {
  return w.kind == WeightKind::Int4 && w.packed && w.scales && w.n_out > 0 && w.n_in > 0 && w.n_out % 16 == 0 &&
         w.n_in % 64 == 0;
}

std::vector<uint16_t> to_bf16(const float* x, size_t n) {
  std::vector<uint16_t> v(n);
  for (size_t i = 0; i < n; i++) v[i] = f32_to_bf16(x[i]);
  return v;
}

class CudaBackend final : public Backend {
 public:
  CudaBackend() : cpu_(make_cpu_backend()) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
      (void)cudaGetLastError();
      throw Error("cuda backend: no CUDA device");
    }
    STRATA_CUDA_CHECK(cudaStreamCreate(&stream_));
  }
  ~CudaBackend() override {
    for (auto& [key, w] : weights_) cuda::w4a16_free(w);
    for (auto& [key, m] : moe_) cuda::w4a16_moe_free(m);
    if (stream_) cudaStreamDestroy(stream_);
  }
  const char* name() const override { return "cuda"; }

  void linear(const float* x, int M, const LinearWeight& w, float* y) override {
    if (!gpu_int4(w) || M <= 0) return cpu_->linear(x, M, w, y);
    const int N = w.n_out, K = w.n_in;
    const cuda::W4A16Weight& dw = upload(w);
    const auto xb = to_bf16(x, size_t(M) * K);
    auto* dx = static_cast<uint16_t*>(x_.get(xb.size() * 2));
    auto* dy = static_cast<uint16_t*>(y_.get(size_t(M) * N * 2));
    const size_t wsb = cuda::w4a16_workspace_bytes(M, N, K);
    void* ws = wsb ? ws_.get(wsb) : nullptr;
    STRATA_CUDA_CHECK(cudaMemcpyAsync(dx, xb.data(), xb.size() * 2, cudaMemcpyHostToDevice, stream_));
    cuda::w4a16_linear(dx, M, dw, dy, ws, wsb, stream_);
    std::vector<uint16_t> yb(size_t(M) * N);
    STRATA_CUDA_CHECK(cudaMemcpyAsync(yb.data(), dy, yb.size() * 2, cudaMemcpyDeviceToHost, stream_));
    STRATA_CUDA_CHECK(cudaStreamSynchronize(stream_));
    for (int m = 0; m < M; m++)
      for (int n = 0; n < N; n++)
        y[size_t(m) * N + n] = bf16_to_f32(yb[size_t(m) * N + n]) + (w.bias.empty() ? 0.f : w.bias[size_t(n)]);
  }

  void rms_norm(const float* x, const float* weight, int M, int D, float eps, float* y) override {
    cpu_->rms_norm(x, weight, M, D, eps, y);
  }

  void ffn(const float* x, int M, const FfnWeights& w, float* y) override {
    if (!gpu_int4(w.gate) || !gpu_int4(w.up) || !gpu_int4(w.down)) return cpu_->ffn(x, M, w, y);
    const int F = w.gate.n_out;
    std::vector<float> g(size_t(M) * F), u(size_t(M) * F);  // [M, F]
    linear(x, M, w.gate, g.data());
    linear(x, M, w.up, u.data());
    silu_mul_f32(g.data(), u.data(), g.size(), g.data());
    linear(g.data(), M, w.down, y);
  }

  void rope(float* x, int M, int n_heads, int stride, int rot_dim, const float* cos, const float* sin,
            bool interleaved) override {
    cpu_->rope(x, M, n_heads, stride, rot_dim, cos, sin, interleaved);
  }

  void attention(const float* q, int M, int H, int Hkv, int hd, int hdv, const float* k, const float* v, int pos0,
                 float scale, float* out) override {
    cpu_->attention(q, M, H, Hkv, hd, hdv, k, v, pos0, scale, out);
  }

  void mla_attention(const float* q_lat, const float* q_pe, int M, int H, int R, int P, const float* latent,
                     const float* k_pe, int pos0, float scale, float* out_lat) override {
    cpu_->mla_attention(q_lat, q_pe, M, H, R, P, latent, k_pe, pos0, scale, out_lat);
  }

  void moe_route(const float* logits, int M, const RouterParams& p, int* ids, float* weights) override {
    if (M <= 0) return;
    if (p.n_experts <= 0 || p.n_experts > 1024 || p.top_k <= 0 || p.top_k > 32)
      return cpu_->moe_route(logits, M, p, ids, weights);
    const int E = p.n_experts, k = p.top_k;
    auto* dl = static_cast<float*>(x_.get(size_t(M) * E * 4));
    auto* did = static_cast<int*>(y_.get(size_t(M) * k * 8));
    auto* dw = reinterpret_cast<float*>(did + size_t(M) * k);
    STRATA_CUDA_CHECK(cudaMemcpyAsync(dl, logits, size_t(M) * E * 4, cudaMemcpyHostToDevice, stream_));
    cuda::MoeRouting r = routing(p, E);
    cuda::w4a16_moe_route(dl, M, r, did, dw, stream_);
    STRATA_CUDA_CHECK(cudaMemcpyAsync(ids, did, size_t(M) * k * 4, cudaMemcpyDeviceToHost, stream_));
    STRATA_CUDA_CHECK(cudaMemcpyAsync(weights, dw, size_t(M) * k * 4, cudaMemcpyDeviceToHost, stream_));
    STRATA_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  ExpertLoad moe_experts(const float* x, int M, int D, const std::vector<FfnWeights>& experts, const int* ids,
                         const float* weights, int top_k, float* y) override {
    const int E = int(experts.size());
    if (M <= 0 || E == 0 || E > 1024 || top_k <= 0 || top_k > 32 || top_k > E || !moe_fits(experts, D))
      return cpu_->moe_experts(x, M, D, experts, ids, weights, top_k, y);
    ExpertLoad load;
    std::vector<char> used(size_t(E), 0);
    for (size_t i = 0; i < size_t(M) * top_k; i++) {
      if (ids[i] < 0 || ids[i] >= E) throw Error("cuda backend: moe_experts: expert id " + std::to_string(ids[i]) +
                                                 " out of range [0, " + std::to_string(E) + ")");
      if (!used[size_t(ids[i])]++) {
        const FfnWeights& w = experts[size_t(ids[i])];
        load.n_active_experts++;
        load.bytes += w.gate.bytes() + w.up.bytes() + w.down.bytes();
      }
    }
    const cuda::W4A16MoeLayer& L = moe_layer(experts, D);
    const auto xb = to_bf16(x, size_t(M) * D);
    const size_t wsb = cuda::w4a16_moe_workspace_bytes(L, top_k, M);
    char* base = static_cast<char*>(x_.get(xb.size() * 2 + 256 + size_t(M) * D * 4 + size_t(M) * top_k * 8 + 256));
    auto* dx = reinterpret_cast<uint16_t*>(base);
    auto* dy = reinterpret_cast<float*>(base + (xb.size() * 2 + 255) / 256 * 256);
    auto* did = reinterpret_cast<int*>(dy + size_t(M) * D);
    auto* dw = reinterpret_cast<float*>(did + size_t(M) * top_k);
    void* ws = ws_.get(wsb);
    STRATA_CUDA_CHECK(cudaMemcpyAsync(dx, xb.data(), xb.size() * 2, cudaMemcpyHostToDevice, stream_));
    STRATA_CUDA_CHECK(cudaMemcpyAsync(dy, y, size_t(M) * D * 4, cudaMemcpyHostToDevice, stream_));
    STRATA_CUDA_CHECK(cudaMemcpyAsync(did, ids, size_t(M) * top_k * 4, cudaMemcpyHostToDevice, stream_));
    STRATA_CUDA_CHECK(cudaMemcpyAsync(dw, weights, size_t(M) * top_k * 4, cudaMemcpyHostToDevice, stream_));
    cuda::w4a16_moe_experts(L, dx, M, did, dw, top_k, dy, /*accumulate=*/true, ws, wsb, stream_);
    STRATA_CUDA_CHECK(cudaMemcpyAsync(y, dy, size_t(M) * D * 4, cudaMemcpyDeviceToHost, stream_));
    STRATA_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return load;
  }

 private:
  const cuda::W4A16Weight& upload(const LinearWeight& w) {
    auto it = weights_.find(w.packed);
    if (it != weights_.end() && it->second.n_out == w.n_out && it->second.n_in == w.n_in) return it->second;
    if (it != weights_.end()) {
      cuda::w4a16_free(it->second);
      weights_.erase(it);
    }
    return weights_.emplace(w.packed, cuda::w4a16_upload(w)).first->second;
  }

  // Every expert INT4 with gate/up [F, D], down [D, F], kernel-friendly sizes.
  static bool moe_fits(const std::vector<FfnWeights>& experts, int D) {
    const int F = experts[0].gate.n_out;
    if (D % 64 != 0 || F % 64 != 0) return false;
    for (const FfnWeights& w : experts)
      if (!gpu_int4(w.gate) || !gpu_int4(w.up) || !gpu_int4(w.down) || w.gate.n_out != F || w.gate.n_in != D ||
          w.up.n_out != F || w.up.n_in != D || w.down.n_out != D || w.down.n_in != F || !w.gate.bias.empty() ||
          !w.up.bias.empty() || !w.down.bias.empty())
        return false;
    return true;
  }

  const cuda::W4A16MoeLayer& moe_layer(const std::vector<FfnWeights>& experts, int D) {
    const auto key = std::make_pair(static_cast<const void*>(experts[0].gate.packed), experts.size());
    auto it = moe_.find(key);
    if (it != moe_.end()) return it->second;
    cuda::W4A16MoeLayer L = cuda::w4a16_moe_create(int(experts.size()), D, experts[0].gate.n_out, false);
    for (size_t e = 0; e < experts.size(); e++)
      cuda::w4a16_moe_upload_expert(L, int(e), experts[e].gate, experts[e].up, experts[e].down);
    return moe_.emplace(key, L).first->second;
  }

  cuda::MoeRouting routing(const RouterParams& p, int E) {
    cuda::MoeRouting r;
    r.n_experts = E;
    r.top_k = p.top_k;
    r.sigmoid = p.sigmoid;
    r.renormalize = p.renormalize;
    r.renorm_eps = p.renorm_eps;
    r.scaling = p.scaling;
    r.n_group = p.n_group;
    r.topk_group = p.topk_group;
    if (p.choice_bias) {
      auto* db = static_cast<float*>(bias_.get(size_t(E) * 4));
      STRATA_CUDA_CHECK(cudaMemcpyAsync(db, p.choice_bias, size_t(E) * 4, cudaMemcpyHostToDevice, stream_));
      r.choice_bias = db;
    }
    return r;
  }

  std::unique_ptr<Backend> cpu_;
  cudaStream_t stream_ = nullptr;
  std::unordered_map<const void*, cuda::W4A16Weight> weights_;      // INT4 linears, key: LinearWeight::packed
  std::map<std::pair<const void*, size_t>, cuda::W4A16MoeLayer> moe_;  // key: expert 0's gate bytes, E
  DevBuf x_, y_, ws_, bias_;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend() { return std::make_unique<CudaBackend>(); }

}  // namespace strata
