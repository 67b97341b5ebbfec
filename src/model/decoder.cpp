// Model loading and the forward pass shared by all architectures: the explicit per-layer loop
// (pre-norm attention + FFN/MoE with residuals) over a batch of sequences with paged KV, and the
// attention / MoE blocks it calls. Not a scheduler: which rows run which layers comes in the items.
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

int Model::kv_row_k(int il) const {
  const ModelConfig& c = cfg_;
  return w_.layers[size_t(il)].is_mla ? c.kv_lora_rank : c.n_kv_heads * c.head_dim;
}

int Model::kv_row_v(int il) const {
  const ModelConfig& c = cfg_;
  return w_.layers[size_t(il)].is_mla ? c.qk_rope_head_dim : c.n_kv_heads * c.head_dim;
}

size_t Model::kv_bytes_per_token() const {
  size_t n = 0;
  for (int il = 0; il < cfg_.n_layers; il++) n += size_t(kv_row_k(il) + kv_row_v(il)) * sizeof(float);
  return n;
}

KvCache Model::new_cache(int capacity) const {
  STRATA_CHECK(capacity >= 0, "new_cache: negative capacity " + std::to_string(capacity));
  KvCache kv;
  kv.capacity = capacity;
  for (int il = 0; il < cfg_.n_layers; il++) {
    kv.k.emplace_back(size_t(capacity) * kv_row_k(il));
    kv.v.emplace_back(size_t(capacity) * kv_row_v(il));
  }
  return kv;
}

PagedKvCache Model::new_paged_cache(int n_blocks, int block_size) const {
  STRATA_CHECK(n_blocks > 0 && block_size > 0, "new_paged_cache: need n_blocks > 0 and block_size > 0, got " +
                                                   std::to_string(n_blocks) + " x " + std::to_string(block_size));
  PagedKvCache kv;
  kv.block_size = block_size;
  kv.n_blocks = n_blocks;
  const size_t rows = size_t(n_blocks) * size_t(block_size);
  for (int il = 0; il < cfg_.n_layers; il++) {
    kv.k.emplace_back(rows * kv_row_k(il));
    kv.v.emplace_back(rows * kv_row_v(il));
  }
  return kv;
}

KvPool kv_pool(PagedKvCache& c) {
  KvPool p;
  p.block_size = c.block_size;
  for (auto& k : c.k) p.k.push_back(k.data());
  for (auto& v : c.v) p.v.push_back(v.data());
  return p;
}

namespace {
// Pool row of position t in a block table.
inline size_t pool_row(const int* table, int block_size, int t) {
  return size_t(table[t / block_size]) * size_t(block_size) + size_t(t % block_size);
}

// Copies rows src [n, width] to the pool rows of positions [pos0, pos0 + n).
void write_rows(float* pool, int width, const AttnSegment& s, int block_size, const float* src) {
  for (int t = 0; t < s.n; t++)
    std::copy_n(src + size_t(t) * width, width, pool + pool_row(s.block_table, block_size, s.pos0 + t) * width);
}
}  // namespace

void Model::attention_gqa(int il, const float* x, int n, std::span<const AttnSegment> segs, const KvPool& kv,
                          const float* cos, const float* sin, float* out) {
  const ModelConfig& c = cfg_;
  const GqaWeights& g = w_.layers[size_t(il)].gqa;
  Backend& be = *backend_;
  const int H = c.n_heads, Hkv = c.n_kv_heads, hd = c.head_dim;
  std::vector<float> q(size_t(n) * H * hd);                                  // [n, H, hd]
  std::vector<float> k(size_t(n) * Hkv * hd), v(size_t(n) * Hkv * hd);       // [n, Hkv, hd] new rows
  be.linear(x, n, g.q, q.data());
  be.linear(x, n, g.k, k.data());
  be.linear(x, n, g.v, v.data());
  if (!g.q_norm.empty()) {
    // Per head: rows of hd; over all heads (MiniMax-M2): one row per token.
    const bool per_head = int(g.q_norm.size()) == hd;
    be.rms_norm(q.data(), g.q_norm.data(), per_head ? n * H : n, per_head ? hd : H * hd, float(c.rms_norm_eps),
                q.data());
    be.rms_norm(k.data(), g.k_norm.data(), per_head ? n * Hkv : n, per_head ? hd : Hkv * hd,
                float(c.rms_norm_eps), k.data());
  }
  be.rope(q.data(), n, H, hd, rope_.rot_dim, cos, sin, c.gqa_rope_pairs);
  be.rope(k.data(), n, Hkv, hd, rope_.rot_dim, cos, sin, c.gqa_rope_pairs);
  float* kp = kv.k[size_t(il)];
  float* vp = kv.v[size_t(il)];
  std::vector<float> att(size_t(n) * H * hd);  // [n, H, hd]
  // Every segment's rows are written before any attends: segments are distinct sequences.
  for (const AttnSegment& s : segs) {
    write_rows(kp, Hkv * hd, s, kv.block_size, k.data() + size_t(s.row0) * Hkv * hd);
    write_rows(vp, Hkv * hd, s, kv.block_size, v.data() + size_t(s.row0) * Hkv * hd);
  }
  for (const AttnSegment& s : segs)
    be.attention_paged(q.data() + size_t(s.row0) * H * hd, s.n, H, Hkv, hd, hd, kp, vp, s.block_table,
                       kv.block_size, s.pos0, attn_scale_, att.data() + size_t(s.row0) * H * hd);
  be.linear(att.data(), n, g.o, out);
}

void Model::attention_mla(int il, const float* x, int n, std::span<const AttnSegment> segs, const KvPool& kv,
                          const float* cos, const float* sin, float* out) {
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
  std::vector<float> latent(size_t(n) * R), k_pe(size_t(n) * P);  // [n, R], [n, P] new cache rows
  for (int t = 0; t < n; t++) {
    std::copy_n(ckv.data() + size_t(t) * (R + P), R, latent.data() + size_t(t) * R);
    std::copy_n(ckv.data() + size_t(t) * (R + P) + R, P, k_pe.data() + size_t(t) * P);
  }
  be.rms_norm(latent.data(), m.kv_a_norm.data(), n, R, kMlaNormEps, latent.data());
  be.rope(k_pe.data(), n, 1, P, P, cos, sin, c.rope_interleave);
  be.rope(q.data() + NP, n, H, QK, P, cos, sin, c.rope_interleave);
  float* lp = kv.k[size_t(il)];
  float* pp = kv.v[size_t(il)];
  for (const AttnSegment& s : segs) {
    write_rows(lp, R, s, kv.block_size, latent.data() + size_t(s.row0) * R);
    write_rows(pp, P, s, kv.block_size, k_pe.data() + size_t(s.row0) * P);
  }

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
  for (const AttnSegment& s : segs)
    be.mla_attention_paged(q_lat.data() + size_t(s.row0) * H * R, q_pe.data() + size_t(s.row0) * H * P, s.n, H, R,
                           P, lp, pp, s.block_table, kv.block_size, s.pos0, attn_scale_,
                           o_lat.data() + size_t(s.row0) * H * R);
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
    if (stats->layer_expert_bytes.size() < size_t(c.n_layers)) stats->layer_expert_bytes.resize(size_t(c.n_layers));
    stats->layer_expert_bytes[size_t(il)] += load.bytes;
  }
  if (m.has_shared) {
    std::vector<float> s(size_t(n) * D);  // [n, D]
    be.ffn(x, n, m.shared, s.data());
    add_f32(out, s.data(), s.size());
  }
}

void Model::forward(const int* ids, int n, KvCache& kv, float* logits, bool all_logits, ForwardStats* stats) {
  STRATA_CHECK(n > 0, "forward: no tokens");
  STRATA_CHECK(kv.n_past + n <= kv.capacity, "forward: " + std::to_string(kv.n_past + n) +
                                                 " tokens exceed the KV cache capacity " + std::to_string(kv.capacity));
  // The contiguous cache is a pool of one block of `capacity` rows.
  KvPool pool;
  pool.block_size = kv.capacity;
  for (auto& k : kv.k) pool.k.push_back(k.data());
  for (auto& v : kv.v) pool.v.push_back(v.data());
  const int table[1] = {0};
  std::vector<float> hidden(size_t(n) * cfg_.d_model);  // [n, D]
  ForwardItem it;
  it.ids = ids;
  it.n = n;
  it.pos0 = kv.n_past;
  it.layer_begin = 0;
  it.layer_end = cfg_.n_layers;
  it.block_table = table;
  it.hidden = hidden.data();
  it.logits = logits;
  it.all_logits = all_logits;
  forward_batch(std::span<const ForwardItem>(&it, 1), pool, stats);
  kv.n_past += n;
}

void Model::validate_items(std::span<const ForwardItem> items, const KvPool& kv) const {
  const ModelConfig& c = cfg_;
  const int L = c.n_layers;
  STRATA_CHECK(int(kv.k.size()) == L && int(kv.v.size()) == L && kv.block_size > 0,
               "forward: KV pool has " + std::to_string(kv.k.size()) + " layers, model " + std::to_string(L));
  for (const ForwardItem& it : items) {
    STRATA_CHECK(it.n > 0, "forward: no tokens");
    STRATA_CHECK(it.pos0 >= 0 && it.block_table && it.hidden, "forward: item without positions, table or hidden");
    STRATA_CHECK(0 <= it.layer_begin && it.layer_begin < it.layer_end && it.layer_end <= L,
                 "forward: bad layer range [" + std::to_string(it.layer_begin) + ", " +
                     std::to_string(it.layer_end) + ")");
    if (it.layer_begin == 0)
      for (int t = 0; t < it.n; t++)
        STRATA_CHECK(it.ids[t] >= 0 && it.ids[t] < c.n_vocab, "token id " + std::to_string(it.ids[t]) +
                                                                   " out of range [0, " + std::to_string(c.n_vocab) +
                                                                   ")");
  }
}

// One pre-norm decoder layer on the gathered rows h [n, D], in place.
void Model::decoder_layer(int il, float* h, int n, std::span<const AttnSegment> segs, const KvPool& kv,
                          const float* cos, const float* sin, ForwardStats* stats) {
  const ModelConfig& c = cfg_;
  Backend& be = *backend_;
  const int D = c.d_model;
  const LayerWeights& lw = w_.layers[size_t(il)];
  std::vector<float> xn(size_t(n) * D), y(size_t(n) * D);  // [n, D] normed input, block output
  be.rms_norm(h, lw.attn_norm.data(), n, D, float(c.rms_norm_eps), xn.data());
  if (lw.is_mla)
    attention_mla(il, xn.data(), n, segs, kv, cos, sin, y.data());
  else
    attention_gqa(il, xn.data(), n, segs, kv, cos, sin, y.data());
  add_f32(h, y.data(), y.size());
  be.rms_norm(h, lw.ffn_norm.data(), n, D, float(c.rms_norm_eps), xn.data());
  if (lw.is_moe)
    moe(il, xn.data(), n, y.data(), stats);
  else
    be.ffn(xn.data(), n, lw.ffn, y.data());
  add_f32(h, y.data(), y.size());
}

// Final norm + LM head once over the rows of every item that left the last layer wanting logits.
void Model::lm_head_rows(std::span<const ForwardItem> items) {
  const ModelConfig& c = cfg_;
  Backend& be = *backend_;
  const int L = c.n_layers, D = c.d_model, V = c.n_vocab;
  auto wants = [&](const ForwardItem& it) { return it.layer_end == L && it.logits; };
  auto n_rows = [](const ForwardItem& it) { return it.all_logits ? it.n : 1; };
  int rows = 0, n_out = 0;
  for (const ForwardItem& it : items)
    if (wants(it)) rows += n_rows(it), n_out++;
  if (rows == 0) return;
  std::vector<float> xn(size_t(rows) * D);  // [rows, D]
  int r = 0;
  for (const ForwardItem& it : items) {
    if (!wants(it)) continue;
    const int first = it.n - n_rows(it);
    be.rms_norm(it.hidden + size_t(first) * D, w_.final_norm.data(), n_rows(it), D, float(c.rms_norm_eps),
                xn.data() + size_t(r) * D);
    r += n_rows(it);
  }
  if (n_out == 1) {  // straight into the caller's buffer
    for (const ForwardItem& it : items)
      if (wants(it)) be.linear(xn.data(), rows, w_.lm_head, it.logits);
    return;
  }
  std::vector<float> all(size_t(rows) * V);  // [rows, V]
  be.linear(xn.data(), rows, w_.lm_head, all.data());
  r = 0;
  for (const ForwardItem& it : items) {
    if (!wants(it)) continue;
    std::copy_n(all.data() + size_t(r) * V, size_t(n_rows(it)) * V, it.logits);
    r += n_rows(it);
  }
}

void Model::forward_batch(std::span<const ForwardItem> items, const KvPool& kv, ForwardStats* stats) {
  validate_items(items, kv);  // first: a rejected call leaves every cache untouched
  const int L = cfg_.n_layers, D = cfg_.d_model, half = rope_.rot_dim / 2;
  // Per item: embeddings when it enters at layer 0, rope cos/sin of its positions.
  std::vector<std::vector<float>> cos_i(items.size()), sin_i(items.size());  // per item [n, rot_dim/2]
  for (size_t i = 0; i < items.size(); i++) {
    const ForwardItem& it = items[i];
    if (it.layer_begin == 0)
      for (int t = 0; t < it.n; t++) decode_weight_row(w_.embed, it.ids[t], it.hidden + size_t(t) * D);
    std::vector<int> pos(size_t(it.n));
    std::iota(pos.begin(), pos.end(), it.pos0);
    cos_i[i].resize(size_t(it.n) * half);
    sin_i[i].resize(size_t(it.n) * half);
    rope_.cos_sin(pos.data(), it.n, cos_i[i].data(), sin_i[i].data());
  }
  std::vector<float> h, cs, sn;  // [N, D], [N, rot_dim/2] x2: the layer's active rows
  std::vector<AttnSegment> segs;
  std::vector<size_t> active;
  for (int il = 0; il < L; il++) {
    // Gather the rows of every item active at this layer, run the layer once, scatter back.
    segs.clear();
    active.clear();
    int N = 0;
    for (size_t i = 0; i < items.size(); i++) {
      if (il < items[i].layer_begin || il >= items[i].layer_end) continue;
      segs.push_back({N, items[i].n, items[i].pos0, items[i].block_table});
      active.push_back(i);
      N += items[i].n;
    }
    if (N == 0) continue;
    h.resize(size_t(N) * D);
    cs.resize(size_t(N) * half);
    sn.resize(size_t(N) * half);
    for (size_t j = 0; j < active.size(); j++) {
      const ForwardItem& it = items[active[j]];
      std::copy_n(it.hidden, size_t(it.n) * D, h.data() + size_t(segs[j].row0) * D);
      std::copy(cos_i[active[j]].begin(), cos_i[active[j]].end(), cs.begin() + ptrdiff_t(segs[j].row0) * half);
      std::copy(sin_i[active[j]].begin(), sin_i[active[j]].end(), sn.begin() + ptrdiff_t(segs[j].row0) * half);
    }
    decoder_layer(il, h.data(), N, segs, kv, cs.data(), sn.data(), stats);
    for (size_t j = 0; j < active.size(); j++)
      std::copy_n(h.data() + size_t(segs[j].row0) * D, size_t(items[active[j]].n) * D, items[active[j]].hidden);
  }
  lm_head_rows(items);
}

}  // namespace strata
