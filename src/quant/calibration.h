// GPTQ calibration: a Backend decorator that forwards every op to an inner backend and, on the
// way, accumulates H = X^T X of the inputs of chosen linears (found by address in
// Model::weights()). MoE experts see only the tokens routed to them. Not a quantiser (quant/gptq.h)
// and not thread-safe: one forward at a time, as Model::forward runs.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace strata {

struct ModelWeights;

// The Hessian of one linear's input: H [K, K] f32 (full, symmetric) and how many rows made it.
struct InputHessian {
  int K = 0;
  long long n_rows = 0;
  std::vector<float> H;
};

class HessianCaptureBackend : public Backend {
 public:
  // `targets`: module names (LinearWeight::name) whose inputs to record; weights are matched by
  // address against `weights`, so views of the same module made elsewhere are not confused.
  HessianCaptureBackend(std::unique_ptr<Backend> inner, const ModelWeights& weights,
                        const std::vector<std::string>& targets);
  const char* name() const override { return "hessian-capture"; }

  // The Hessians recorded so far, by module name; modules sharing an input (q/k/v, gate/up) share
  // one accumulation and are copied out here. Symmetrised (only the upper half is accumulated).
  std::map<std::string, InputHessian> take();

  void linear(const float* x, int M, const LinearWeight& w, float* y) override;
  void rms_norm(const float* x, const float* weight, int M, int D, float eps, float* y) override;
  void ffn(const float* x, int M, const FfnWeights& w, float* y) override;
  void rope(float* x, int M, int n_heads, int stride, int rot_dim, const float* cos, const float* sin,
            bool interleaved) override;
  void attention(const float* q, int M, int H, int Hkv, int hd, int hdv, const float* k, const float* v, int pos0,
                 float scale, float* out) override;
  void mla_attention(const float* q_lat, const float* q_pe, int M, int H, int R, int P, const float* latent,
                     const float* k_pe, int pos0, float scale, float* out_lat) override;
  void moe_route(const float* logits, int M, const RouterParams& p, int* ids, float* weights) override;
  ExpertLoad moe_experts(const float* x, int M, int D, const std::vector<FfnWeights>& experts, const int* ids,
                         const float* weights, int top_k, float* y) override;

 private:
  // Adds X^T X of x [M, K] to the accumulation of `w` (or of the weight it shares an input with).
  void record(const LinearWeight& w, const float* x, int M);
  // The FFN's three inputs: x for gate/up, silu(gate x) * up x for down.
  void record_ffn(const FfnWeights& f, const float* x, int M);
  bool wanted(const LinearWeight& w) const { return target_.count(&w) != 0; }

  std::unique_ptr<Backend> inner_;
  std::map<const LinearWeight*, std::string> target_;  // address -> module name
  std::map<std::string, InputHessian> acc_;            // owner module -> accumulation
  std::map<std::string, std::string> alias_;           // module -> owner whose input it shares
  const float* last_x_ = nullptr;                      // input of the previous linear call
  int last_M_ = 0;
  std::string last_owner_;
};

// H[K, K] (upper triangle only) += x^T x for x [M, K]. Exposed for tests.
void accumulate_xtx_upper(const float* x, int M, int K, float* H);

}  // namespace strata
