// Hessian capture for GPTQ (quant/calibration.h): records linear inputs, delegates every op.
#include "quant/calibration.h"

#include "core/error.h"
#include "kernels/cpu/ops.h"
#include "model/model.h"

namespace strata {

void accumulate_xtx_upper(const float* x, int M, int K, float* H) {
  // Transposed copy xt [K, M] so that H[i, j] is a dot of two contiguous rows (vectorises).
  std::vector<float> xt(size_t(K) * M);
  for (int m = 0; m < M; m++)
    for (int k = 0; k < K; k++) xt[size_t(k) * M + m] = x[size_t(m) * K + k];
#pragma omp parallel for schedule(dynamic, 8)
  for (int i = 0; i < K; i++) {
    const float* a = &xt[size_t(i) * M];
    for (int j = i; j < K; j++) {
      const float* b = &xt[size_t(j) * M];
      float s = 0.f;
#pragma omp simd reduction(+ : s)
      for (int m = 0; m < M; m++) s += a[m] * b[m];
      H[size_t(i) * K + j] += s;
    }
  }
}

HessianCaptureBackend::HessianCaptureBackend(std::unique_ptr<Backend> inner, const ModelWeights& w,
                                             const std::vector<std::string>& targets)
    : inner_(std::move(inner)) {
  std::map<std::string, bool> want;
  for (const auto& t : targets) want[t] = true;
  auto add = [&](const LinearWeight& lw) {
    if (lw.valid() && want.count(lw.name)) target_[&lw] = lw.name;
  };
  auto add_ffn = [&](const FfnWeights& f) {
    add(f.gate);
    add(f.up);
    add(f.down);
  };
  add(w.lm_head);
  for (const LayerWeights& L : w.layers) {
    for (const LinearWeight* lw : {&L.gqa.q, &L.gqa.k, &L.gqa.v, &L.gqa.o, &L.mla.q, &L.mla.q_a, &L.mla.q_b,
                                   &L.mla.kv_a, &L.mla.kv_b, &L.mla.o, &L.moe.router})
      add(*lw);
    add_ffn(L.ffn);
    for (const FfnWeights& e : L.moe.experts) add_ffn(e);
    if (L.moe.has_shared) add_ffn(L.moe.shared);
  }
}

void HessianCaptureBackend::record(const LinearWeight& w, const float* x, int M) {
  const std::string& name = target_.at(&w);
  // Consecutive linears on the same input buffer (q/k/v) share one accumulation; the pairing is
  // learnt on the first call and then trusted, since the forward's call order never changes.
  auto al = alias_.find(name);
  if (al != alias_.end()) {
    last_owner_ = al->second;
    return;
  }
  if (!acc_.count(name) && x == last_x_ && M == last_M_ && !last_owner_.empty() &&
      acc_[last_owner_].K == w.n_in) {
    alias_[name] = last_owner_;
    return;
  }
  InputHessian& h = acc_[name];
  if (h.K == 0) {
    h.K = w.n_in;
    h.H.assign(size_t(h.K) * h.K, 0.f);
  }
  accumulate_xtx_upper(x, M, h.K, h.H.data());
  h.n_rows += M;
  last_x_ = x;
  last_M_ = M;
  last_owner_ = name;
}

void HessianCaptureBackend::record_ffn(const FfnWeights& f, const float* x, int M) {
  if (wanted(f.gate)) {
    record(f.gate, x, M);
    if (wanted(f.up)) record(f.up, x, M);  // same x: aliases gate's accumulation
  } else if (wanted(f.up)) {
    record(f.up, x, M);
  }
  last_x_ = nullptr;
  if (!wanted(f.down)) return;
  // down's input is not visible through the fused op: recompute it with the inner backend.
  std::vector<float> g(size_t(M) * f.gate.n_out), u(size_t(M) * f.up.n_out);
  inner_->linear(x, M, f.gate, g.data());
  inner_->linear(x, M, f.up, u.data());
  silu_mul_f32(g.data(), u.data(), g.size(), g.data());
  record(f.down, g.data(), M);
  last_x_ = nullptr;
}

std::map<std::string, InputHessian> HessianCaptureBackend::take() {
  std::map<std::string, InputHessian> out;
  for (auto& [name, h] : acc_) {
    for (int i = 0; i < h.K; i++)
      for (int j = 0; j < i; j++) h.H[size_t(i) * h.K + j] = h.H[size_t(j) * h.K + i];
  }
  for (const auto& [name, owner] : alias_) out[name] = acc_.at(owner);
  for (auto& [name, h] : acc_) out[name] = std::move(h);
  acc_.clear();
  alias_.clear();
  return out;
}

void HessianCaptureBackend::linear(const float* x, int M, const LinearWeight& w, float* y) {
  if (wanted(w)) record(w, x, M);
  else last_x_ = nullptr;
  inner_->linear(x, M, w, y);
}

void HessianCaptureBackend::ffn(const float* x, int M, const FfnWeights& w, float* y) {
  record_ffn(w, x, M);
  inner_->ffn(x, M, w, y);
}

ExpertLoad HessianCaptureBackend::moe_experts(const float* x, int M, int D, const std::vector<FfnWeights>& experts,
                                              const int* ids, const float* weights, int top_k, float* y) {
  // Each expert's Hessian gets exactly the rows routed to it (the rows it computes at inference).
  std::vector<std::vector<int>> rows(experts.size());
  for (int m = 0; m < M; m++)
    for (int j = 0; j < top_k; j++) {
      const int e = ids[size_t(m) * top_k + j];
      if (e >= 0 && size_t(e) < experts.size()) rows[size_t(e)].push_back(m);
    }
  std::vector<float> xe;
  for (size_t e = 0; e < experts.size(); e++) {
    if (rows[e].empty()) continue;
    xe.resize(rows[e].size() * size_t(D));
    for (size_t r = 0; r < rows[e].size(); r++)
      std::copy(x + size_t(rows[e][r]) * D, x + size_t(rows[e][r] + 1) * D, xe.begin() + r * D);
    record_ffn(experts[e], xe.data(), int(rows[e].size()));
  }
  last_x_ = nullptr;
  return inner_->moe_experts(x, M, D, experts, ids, weights, top_k, y);
}

void HessianCaptureBackend::rms_norm(const float* x, const float* weight, int M, int D, float eps, float* y) {
  last_x_ = nullptr;
  inner_->rms_norm(x, weight, M, D, eps, y);
}
void HessianCaptureBackend::rope(float* x, int M, int n_heads, int stride, int rot_dim, const float* cos,
                                 const float* sin, bool interleaved) {
  last_x_ = nullptr;
  inner_->rope(x, M, n_heads, stride, rot_dim, cos, sin, interleaved);
}
void HessianCaptureBackend::attention(const float* q, int M, int H, int Hkv, int hd, int hdv, const float* k,
                                      const float* v, int pos0, float scale, float* out) {
  last_x_ = nullptr;
  inner_->attention(q, M, H, Hkv, hd, hdv, k, v, pos0, scale, out);
}
void HessianCaptureBackend::mla_attention(const float* q_lat, const float* q_pe, int M, int H, int R, int P,
                                          const float* latent, const float* k_pe, int pos0, float scale,
                                          float* out_lat) {
  last_x_ = nullptr;
  inner_->mla_attention(q_lat, q_pe, M, H, R, P, latent, k_pe, pos0, scale, out_lat);
}
void HessianCaptureBackend::moe_route(const float* logits, int M, const RouterParams& p, int* ids, float* weights) {
  last_x_ = nullptr;
  inner_->moe_route(logits, M, p, ids, weights);
}

}  // namespace strata
