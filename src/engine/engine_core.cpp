// EngineCore: one step = schedule -> run -> sample, with admission checks, stop conditions,
// logprobs and per-request stats. Not thread-safe by design: only the engine thread calls it.
#include "engine/engine_core.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"

namespace strata {

namespace {
// KV memory the default pool may take (the config's "enough for max_running full contexts" is
// capped here; never below one full context, so every admitted request can run alone).
constexpr size_t kDefaultKvBytes = size_t(512) << 20;
}  // namespace

double EngineCore::now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

EngineConfig resolve_config(const Model& model, EngineConfig cfg) {
  const ModelConfig& c = model.config();
  STRATA_CHECK(cfg.kv_block_size >= 1 && cfg.kv_block_size <= 4096, "engine: kv_block_size must be in [1, 4096]");
  STRATA_CHECK(cfg.max_step_tokens >= 1, "engine: max_step_tokens must be >= 1");
  STRATA_CHECK(cfg.max_running >= 1, "engine: max_running must be >= 1");
  STRATA_CHECK(cfg.max_waiting >= 0, "engine: max_waiting must be >= 0");
  STRATA_CHECK(cfg.layer_groups >= 0, "engine: layer_groups must be >= 0");
  STRATA_CHECK(cfg.step_target_ms >= 0, "engine: step_target_ms must be >= 0");
  STRATA_CHECK(cfg.step_target_ms == 0 || cfg.policy == SchedulerPolicy::Chunked,
               "engine: step_target_ms applies to the chunked scheduler only");
  STRATA_CHECK(cfg.kv_blocks >= 0 && cfg.max_context >= 0, "engine: kv_blocks and max_context must be >= 0");
  const int mpe = c.max_position_embeddings > 0 ? c.max_position_embeddings : 4096;
  cfg.max_context = cfg.max_context == 0 ? mpe : std::min(cfg.max_context, mpe);
  if (cfg.kv_blocks == 0) {
    const size_t per_token = std::max<size_t>(1, model.kv_bytes_per_token());
    const size_t want = size_t(cfg.max_running) * size_t(cfg.max_context);
    const size_t tokens = std::min(want, std::max(size_t(cfg.max_context), kDefaultKvBytes / per_token));
    cfg.kv_blocks = int((tokens + size_t(cfg.kv_block_size) - 1) / size_t(cfg.kv_block_size));
  }
  return cfg;
}

struct EngineCore::Request {
  uint64_t id = 0;
  GenerationRequest req;
  Sequence seq;
  Sampler sampler;
  double t_submit = 0, t_sched = -1, t_first = -1;
  uint64_t expert_bytes = 0;
  int cached_prompt_tokens = 0;
  Request(uint64_t i, GenerationRequest r, double t) : id(i), req(std::move(r)), sampler(req.sampling), t_submit(t) {}
};

EngineCore::EngineCore(Model& model, const EngineConfig& cfg)
    : model_(model),
      cfg_(resolve_config(model, cfg)),
      blocks_(cfg_.kv_blocks, cfg_.kv_block_size, cfg_.prefix_caching),
      sched_(SchedulerConfig{cfg_.policy, cfg_.max_step_tokens, cfg_.layer_groups, 512, cfg_.max_running,
                             model.config().n_layers, cfg_.step_target_ms},
             blocks_),
      runner_(model, cfg_.kv_blocks, cfg_.kv_block_size),
      layer_expert_bytes_(size_t(model.config().n_layers), 0) {}

EngineCore::~EngineCore() = default;

void EngineCore::validate(const GenerationRequest& r) const {
  using E = AdmissionError;
  if (r.prompt.empty()) throw E(E::BadRequest, "prompt is empty");
  const int V = model_.config().n_vocab;
  for (int t : r.prompt)
    if (t < 0 || t >= V)
      throw E(E::BadRequest, "prompt token id " + std::to_string(t) + " out of range [0, " + std::to_string(V) + ")");
  if (r.max_tokens < 1) throw E(E::BadRequest, "max_tokens must be >= 1, got " + std::to_string(r.max_tokens));
  if (r.top_logprobs > 20) throw E(E::BadRequest, "top_logprobs must be <= 20");
  try {
    strata::validate(r.sampling);
  } catch (const Error& e) {
    throw E(E::BadRequest, e.what());
  }
  const int64_t total = int64_t(r.prompt.size()) + int64_t(r.max_tokens);
  if (total > cfg_.max_context)
    throw E(E::PromptTooLong, "prompt (" + std::to_string(r.prompt.size()) + " tokens) + max_tokens (" +
                                  std::to_string(r.max_tokens) + ") exceeds the context of " +
                                  std::to_string(cfg_.max_context) + " tokens");
  if ((total + cfg_.kv_block_size - 1) / cfg_.kv_block_size > cfg_.kv_blocks)
    throw E(E::PromptTooLong, "prompt + max_tokens (" + std::to_string(total) + " tokens) exceeds the KV cache (" +
                                  std::to_string(int64_t(cfg_.kv_blocks) * cfg_.kv_block_size) + " tokens)");
}

void EngineCore::add(uint64_t id, GenerationRequest r, double submit_s) {
  auto req = std::make_unique<Request>(id, std::move(r), submit_s);
  req->seq.id = id;
  req->seq.tokens = req->req.prompt;
  req->seq.n_prompt = int(req->seq.tokens.size());
  req->seq.max_tokens = req->req.max_tokens;
  prompt_tokens_ += uint64_t(req->seq.n_prompt);
  Sequence* s = &req->seq;
  reqs_[id] = std::move(req);
  sched_.add(s);
}

void EngineCore::finish(Request& r, FinishReason reason, const std::string& error, std::vector<CoreOutput>& out) {
  const double t = now();
  CoreOutput o;
  o.id = r.id;
  GenerationEvent& ev = o.event;
  ev.finished = true;
  ev.reason = reason;
  ev.error = error;
  RequestStats& st = ev.stats;
  st.prompt_tokens = r.seq.n_prompt;
  st.completion_tokens = r.seq.n_output();
  st.cached_prompt_tokens = r.cached_prompt_tokens;
  st.queue_s = (r.t_sched >= 0 ? r.t_sched : t) - r.t_submit;
  st.ttft_s = r.t_first >= 0 ? r.t_first - r.t_submit : 0;
  st.e2e_s = t - r.t_submit;
  st.expert_bytes = r.expert_bytes;
  st.preemptions = r.seq.preemptions;
  out.push_back(std::move(o));
  sched_.remove(&r.seq);
  runner_.drop(r.id);
  reqs_.erase(r.id);  // r is gone after this line
}

void EngineCore::abort(uint64_t id, std::vector<CoreOutput>& out) {
  auto it = reqs_.find(id);
  if (it != reqs_.end()) finish(*it->second, FinishReason::Abort, "", out);
}

void EngineCore::abort_all(std::vector<CoreOutput>& out) {
  std::vector<uint64_t> ids;
  for (auto& [id, r] : reqs_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (uint64_t id : ids) abort(id, out);
}

void EngineCore::fail_all(const std::string& why, std::vector<CoreOutput>& out) {
  std::vector<uint64_t> ids;
  for (auto& [id, r] : reqs_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (uint64_t id : ids) finish(*reqs_.at(id), FinishReason::Error, why, out);
}

void EngineCore::sample(Request& r, std::vector<CoreOutput>& out) {
  Sequence& s = r.seq;
  const std::vector<float>& raw = runner_.logits(s.id);  // [V]
  std::vector<float> l = raw;                            // the sampler applies penalties in place
  CoreOutput o;
  o.id = r.id;
  if (capture_logits) o.logits = raw;
  const std::span<const int> prompt(s.tokens.data(), size_t(s.n_prompt));
  const std::span<const int> output(s.tokens.data() + s.n_prompt, size_t(s.n_output()));
  const int tok = r.sampler.sample(l, prompt, output);
  GenerationEvent& ev = o.event;
  ev.token = tok;
  if (r.req.top_logprobs >= 0) {
    const std::vector<float>& lp = r.sampler.last_logprobs();
    ev.logprob = lp[size_t(tok)];
    const int k = std::min<int>(r.req.top_logprobs, int(lp.size()));
    std::vector<int> idx(lp.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                      [&](int a, int b) { return lp[size_t(a)] > lp[size_t(b)] || (lp[size_t(a)] == lp[size_t(b)] && a < b); });
    for (int i = 0; i < k; i++) ev.top.push_back({idx[size_t(i)], lp[size_t(idx[size_t(i)])]});
  }
  s.tokens.push_back(tok);
  generated_tokens_++;
  if (r.t_first < 0) r.t_first = now();
  out.push_back(std::move(o));
  const auto& stop = r.req.stop_token_ids;
  const auto& eos = model_.config().eos_token_ids;
  if (std::find(stop.begin(), stop.end(), tok) != stop.end() ||
      (!r.req.ignore_eos && std::find(eos.begin(), eos.end(), tok) != eos.end()))
    finish(r, FinishReason::Stop, "", out);
  else if (s.n_output() >= r.req.max_tokens || s.n_tokens() >= cfg_.max_context)
    finish(r, FinishReason::Length, "", out);
}

void EngineCore::step(std::vector<CoreOutput>& out) {
  last_plan_ = sched_.schedule();
  const StepPlan& plan = last_plan_;
  for (uint64_t id : plan.preempted) {
    runner_.drop(id);
    preemptions_++;
  }
  if (plan.empty()) return;
  const double t = now();
  for (const StepItem& it : plan.items) {
    Request& r = *reqs_.at(it.seq->id);
    if (r.t_sched < 0) {
      r.t_sched = t;
      r.cached_prompt_tokens = std::min(it.seq->n_cached, it.seq->n_prompt);
    }
  }
  try {
    runner_.run(plan);
    sched_.observe_step(plan.n_prefill_tokens, plan.n_decode_tokens, (now() - t) * 1e3);
  } catch (const std::exception& e) {
    // The step's requests fail (their KV may be half written); everyone else keeps going.
    std::vector<uint64_t> ids;
    for (const StepItem& it : plan.items) ids.push_back(it.seq->id);
    for (uint64_t id : ids) finish(*reqs_.at(id), FinishReason::Error, e.what(), out);
    last_plan_ = StepPlan{};
    return;
  }
  steps_++;
  expert_bytes_ += runner_.step_expert_bytes;
  layer_expert_bytes_.resize(runner_.step_layer_expert_bytes.size());
  for (size_t il = 0; il < layer_expert_bytes_.size(); il++) layer_expert_bytes_[il] += runner_.step_layer_expert_bytes[il];
  // Prompt tokens whose last layer ran this step (a layered batch counts once, at its last group).
  for (const StepItem& it : plan.items)
    if (it.layer_end == model_.config().n_layers)
      prefill_tokens_ += uint64_t(std::max(0, std::min(it.token_end, it.seq->n_prompt) - it.token_begin));
  for (const StepItem& it : plan.items) reqs_.at(it.seq->id)->expert_bytes += runner_.step_expert_bytes;
  for (Sequence* s : sched_.complete(plan)) sample(*reqs_.at(s->id), out);
}

EngineMetrics EngineCore::metrics() const {
  EngineMetrics m;
  m.running = sched_.n_running();
  m.waiting = sched_.n_waiting();
  m.kv_blocks_total = blocks_.n_blocks();
  m.kv_blocks_used = blocks_.n_used();
  m.prefix_queries_tokens = blocks_.query_tokens;
  m.prefix_hit_tokens = blocks_.hit_tokens;
  m.steps = steps_;
  m.expert_bytes = expert_bytes_;
  m.prompt_tokens = prompt_tokens_;
  m.generated_tokens = generated_tokens_;
  m.preemptions = preemptions_;
  m.ready = true;
  m.layer_expert_bytes = layer_expert_bytes_;
  m.last_step_expert_bytes = last_plan_.empty() ? 0 : runner_.step_expert_bytes;
  m.prefill_tokens_computed = prefill_tokens_;
  return m;
}

}  // namespace strata
