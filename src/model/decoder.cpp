// Model loading and the forward pass shared by all architectures: the explicit per-layer loop
// (pre-norm attention + FFN/MoE with residuals) and the attention / MoE blocks it calls.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "model/arch/arch.h"
#include "model/model.h"

namespace strata {

namespace {
// HF's DeepseekV3RMSNorm for q_a/kv_a_layernorm is built without eps, so it uses its default.
constexpr float kMlaNormEps = 1e-6f;
}  // namespace

std::unique_ptr<Model> Model::load(const std::string& path) {
  auto m = std::unique_ptr<Model>(new Model());
  if (is_gguf_path(path)) {
    // GGUF: config from the file's metadata, tensors read in place (model/arch/llama_gguf.cpp).
    m->gguf_ = std::make_shared<GgufFile>(GgufFile::open(path));
    m->cfg_ = gguf_model_config(*m->gguf_);
    load_gguf_weights(*m->gguf_, m->cfg_, m->w_);
  } else {
    // Not a GGUF file: must be a checkpoint directory. A FIFO, device or other file is an Error
    // here, before anything opens it (open() on a FIFO would block).
    struct stat st;
    STRATA_CHECK(::stat(path.c_str(), &st) == 0, path + ": cannot access: " + std::strerror(errno));
    STRATA_CHECK(S_ISDIR(st.st_mode), path + ": not a model directory (config.json + safetensors) or a GGUF file");
    m->cfg_ = load_model_config(path);
    m->store_ = TensorStore::open(path);
    WeightLoader loader(m->store_, m->cfg_);
    find_arch_loader(m->cfg_.architecture)(m->cfg_, loader, m->w_);
  }
  for (auto& lw : m->w_.layers)
    if (lw.is_moe) lw.moe.params.choice_bias = lw.moe.choice_bias.empty() ? nullptr : lw.moe.choice_bias.data();
  const ModelConfig& c = m->cfg_;
  m->rope_ = make_rope_table(c.rope, c.head_dim, c.max_position_embeddings);
  if (c.kv_lora_rank > 0) {
    // MLA: softmax scale over the full qk dim, times mscale^2 under YaRN (DeepSeek's rule).
    double s = 1.0 / std::sqrt(double(c.qk_nope_head_dim + c.qk_rope_head_dim));
    if (c.rope.type != RopeType::Default && c.rope.mscale_all_dim != 0) {
      const double ms = yarn_get_mscale(c.rope.factor, c.rope.mscale_all_dim);
      s *= ms * ms;
    }
    m->attn_scale_ = float(s);
  } else {
    m->attn_scale_ = float(1.0 / std::sqrt(double(c.head_dim)));
  }
  m->backend_ = make_cpu_backend();
  return m;
}

KvCache Model::new_cache(int capacity) const {
  STRATA_CHECK(capacity >= 0, "new_cache: negative capacity " + std::to_string(capacity));
  KvCache kv;
  kv.capacity = capacity;
  const ModelConfig& c = cfg_;
  for (const auto& lw : w_.layers) {
    if (lw.is_mla) {
      kv.k.emplace_back(size_t(capacity) * c.kv_lora_rank);
      kv.v.emplace_back(size_t(capacity) * c.qk_rope_head_dim);
    } else {
      kv.k.emplace_back(size_t(capacity) * c.n_kv_heads * c.head_dim);
      kv.v.emplace_back(size_t(capacity) * c.n_kv_heads * c.head_dim);
    }
  }
  return kv;
}

void Model::attention_gqa(int il, const float* x, int n, KvCache& kv, const RopeTable& rope, const float* cos,
                          const float* sin, float* out) {
  const ModelConfig& c = cfg_;
  const GqaWeights& g = w_.layers[size_t(il)].gqa;
  Backend& be = *backend_;
  const int H = c.n_heads, Hkv = c.n_kv_heads, hd = c.head_dim;
  std::vector<float> q(size_t(n) * H * hd);  // [n, H, hd]
  float* k = kv.k[size_t(il)].data() + size_t(kv.n_past) * Hkv * hd;  // [n, Hkv, hd] new cache rows
  float* v = kv.v[size_t(il)].data() + size_t(kv.n_past) * Hkv * hd;  // [n, Hkv, hd]
  be.linear(x, n, g.q, q.data());
  be.linear(x, n, g.k, k);
  be.linear(x, n, g.v, v);
  if (!g.q_norm.empty()) {
    // Per head: rows of hd; over all heads (MiniMax-M2): one row per token.
    const bool per_head = int(g.q_norm.size()) == hd;
    be.rms_norm(q.data(), g.q_norm.data(), per_head ? n * H : n, per_head ? hd : H * hd, float(c.rms_norm_eps),
                q.data());
    be.rms_norm(k, g.k_norm.data(), per_head ? n * Hkv : n, per_head ? hd : Hkv * hd, float(c.rms_norm_eps), k);
  }
  be.rope(q.data(), n, H, hd, rope.rot_dim, cos, sin, c.gqa_rope_pairs);
  be.rope(k, n, Hkv, hd, rope.rot_dim, cos, sin, c.gqa_rope_pairs);
  std::vector<float> att(size_t(n) * H * hd);  // [n, H, hd]
  be.attention(q.data(), n, H, Hkv, hd, hd, kv.k[size_t(il)].data(), kv.v[size_t(il)].data(), kv.n_past,
               attn_scale_, att.data());
  be.linear(att.data(), n, g.o, out);
}

void Model::attention_mla(int il, const float* x, int n, KvCache& kv, const float* cos, const float* sin,
                          float* out) {
  const ModelConfig& c = cfg_;
  const MlaWeights& m = w_.layers[size_t(il)].mla;
  Backend& be = *backend_;
  const int H = c.n_heads, R = c.kv_lora_rank, P = c.qk_rope_head_dim, NP = c.qk_nope_head_dim, V = c.v_head_dim;
  const int QK = NP + P;
  std::vector<float> q(size_t(n) * H * QK);  // [n, H, nope + rope]
  if (c.q_lora_rank > 0) {
    std::vector<float> qa(size_t(n) * c.q_lora_rank);  // [n, q_lora]
    be.linear(x, n, m.q_a, qa.data());
    be.rms_norm(qa.data(), m.q_a_norm.data(), n, c.q_lora_rank, kMlaNormEps, qa.data());
    be.linear(qa.data(), n, m.q_b, q.data());
  } else {
    be.linear(x, n, m.q, q.data());
  }
  std::vector<float> ckv(size_t(n) * (R + P));  // [n, R + P]
  be.linear(x, n, m.kv_a, ckv.data());
  float* latent = kv.k[size_t(il)].data() + size_t(kv.n_past) * R;  // [n, R] new cache rows
  float* k_pe = kv.v[size_t(il)].data() + size_t(kv.n_past) * P;    // [n, P]
  for (int t = 0; t < n; t++) {
    std::copy_n(ckv.data() + size_t(t) * (R + P), R, latent + size_t(t) * R);
    std::copy_n(ckv.data() + size_t(t) * (R + P) + R, P, k_pe + size_t(t) * P);
  }
  be.rms_norm(latent, m.kv_a_norm.data(), n, R, kMlaNormEps, latent);
  be.rope(k_pe, n, 1, P, P, cos, sin, c.rope_interleave);
  be.rope(q.data() + NP, n, H, QK, P, cos, sin, c.rope_interleave);

  // Absorb W_UK into the query: q_lat[h] = q_nope[h] . W_UK[h]  ([n, NP] x [NP, R]).
  std::vector<float> q_lat(size_t(n) * H * R), q_pe(size_t(n) * H * P), tmp_in(size_t(n) * NP), tmp_out(size_t(n) * R);
  for (int h = 0; h < H; h++) {
    for (int t = 0; t < n; t++) {
      const float* qh = q.data() + (size_t(t) * H + h) * QK;
      std::copy_n(qh, NP, tmp_in.data() + size_t(t) * NP);
      std::copy_n(qh + NP, P, q_pe.data() + (size_t(t) * H + h) * P);
    }
    matmul_rows_f32(tmp_in.data(), n, m.kv_b, h * (NP + V), NP, tmp_out.data());
    for (int t = 0; t < n; t++) std::copy_n(tmp_out.data() + size_t(t) * R, R, q_lat.data() + (size_t(t) * H + h) * R);
  }
  std::vector<float> o_lat(size_t(n) * H * R);  // [n, H, R]
  be.mla_attention(q_lat.data(), q_pe.data(), n, H, R, P, kv.k[size_t(il)].data(), kv.v[size_t(il)].data(),
                   kv.n_past, attn_scale_, o_lat.data());
  // Un-absorb through W_UV per head: att[t, h, :] = W_UV[h] . o_lat[t, h]  -> [n, H, V].
  std::vector<float> att(size_t(n) * H * V), vin(size_t(n) * R), vout(size_t(n) * V);
  for (int h = 0; h < H; h++) {
    for (int t = 0; t < n; t++) std::copy_n(o_lat.data() + (size_t(t) * H + h) * R, R, vin.data() + size_t(t) * R);
    be.linear(vin.data(), n, weight_rows(m.kv_b, h * (NP + V) + NP, V), vout.data());
    for (int t = 0; t < n; t++) std::copy_n(vout.data() + size_t(t) * V, V, att.data() + (size_t(t) * H + h) * V);
  }
  be.linear(att.data(), n, m.o, out);
}

void Model::moe(int il, const float* x, int n, float* out, ForwardStats* stats) {
  const ModelConfig& c = cfg_;
  const MoeWeights& m = w_.layers[size_t(il)].moe;
  Backend& be = *backend_;
  const int E = c.n_experts, K = c.n_experts_per_tok, D = c.d_model;
  std::vector<float> logits(size_t(n) * E), weights(size_t(n) * K);  // [n, E], [n, K]
  std::vector<int> ids(size_t(n) * K);                                // [n, K]
  be.linear(x, n, m.router, logits.data());
  be.moe_route(logits.data(), n, m.params, ids.data(), weights.data());
  std::fill(out, out + size_t(n) * D, 0.f);
  ExpertLoad load = be.moe_experts(x, n, D, m.experts, ids.data(), weights.data(), K, out);
  if (stats) {
    stats->expert_bytes += load.bytes;
    stats->expert_activations += load.n_active_experts;
  }
  if (m.has_shared) {
    std::vector<float> s(size_t(n) * D);  // [n, D]
    be.ffn(x, n, m.shared, s.data());
    add_f32(out, s.data(), s.size());
  }
}

void Model::forward(const int* ids, int n, KvCache& kv, float* logits, bool all_logits, ForwardStats* stats) {
  const ModelConfig& c = cfg_;
  Backend& be = *backend_;
  STRATA_CHECK(n > 0, "forward: no tokens");
  STRATA_CHECK(kv.n_past + n <= kv.capacity, "forward: " + std::to_string(kv.n_past + n) +
                                                 " tokens exceed the KV cache capacity " + std::to_string(kv.capacity));
  for (int t = 0; t < n; t++)
    STRATA_CHECK(ids[t] >= 0 && ids[t] < c.n_vocab,
                 "token id " + std::to_string(ids[t]) + " out of range [0, " + std::to_string(c.n_vocab) + ")");
  const int D = c.d_model;
  std::vector<int> pos(static_cast<size_t>(n));
  std::iota(pos.begin(), pos.end(), kv.n_past);
  const int half = rope_.rot_dim / 2;
  std::vector<float> cos(size_t(n) * half), sin(size_t(n) * half);  // [n, rot_dim/2]
  rope_.cos_sin(pos.data(), n, cos.data(), sin.data());

  std::vector<float> h(size_t(n) * D), xn(size_t(n) * D), y(size_t(n) * D);  // [n, D] each
  for (int t = 0; t < n; t++) decode_weight_row(w_.embed, ids[t], h.data() + size_t(t) * D);
  for (int il = 0; il < c.n_layers; il++) {
    const LayerWeights& lw = w_.layers[size_t(il)];
    be.rms_norm(h.data(), lw.attn_norm.data(), n, D, float(c.rms_norm_eps), xn.data());
    if (lw.is_mla)
      attention_mla(il, xn.data(), n, kv, cos.data(), sin.data(), y.data());
    else
      attention_gqa(il, xn.data(), n, kv, rope_, cos.data(), sin.data(), y.data());
    add_f32(h.data(), y.data(), h.size());
    be.rms_norm(h.data(), lw.ffn_norm.data(), n, D, float(c.rms_norm_eps), xn.data());
    if (lw.is_moe)
      moe(il, xn.data(), n, y.data(), stats);
    else
      be.ffn(xn.data(), n, lw.ffn, y.data());
    add_f32(h.data(), y.data(), h.size());
  }
  kv.n_past += n;
  const int first = all_logits ? 0 : n - 1;
  const int rows = n - first;
  be.rms_norm(h.data() + size_t(first) * D, w_.final_norm.data(), rows, D, float(c.rms_norm_eps), xn.data());
  be.linear(xn.data(), rows, w_.lm_head, logits);
}

}  // namespace strata
