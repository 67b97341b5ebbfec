// The engine: a request queue and one engine thread that runs continuous batching over a model
// (scheduler -> StepPlan -> runner -> sampler) and reports each sampled token to its request.
// Not HTTP, not text: requests are token ids in, token ids out; the server (src/server/) maps
// OpenAI JSON to GenerationRequest, detokenizes, applies stop strings and writes SSE.
//
// Contract between engine/ and server/ (both sides code against it; extend, don't break):
// - submit() is thread-safe, validates and admits or throws AdmissionError before any compute.
// - The sink is called on the engine thread, once per sampled token and once more with
//   finished = true (exactly one final event per request, also after abort or error). It must
//   not block: push into a channel and return. Token events have finished = false; the final
//   event carries no token (token = -1) and the request's stats.
// - abort() is thread-safe and idempotent; the request finishes (reason Abort) within one step
//   and its KV blocks are freed.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/sampler.h"

namespace strata {

class Model;

enum class SchedulerPolicy { None, Chunked, Layered, ChunkedLayered };

// Added after the first contract (extensions only):
// "none", "chunked", "layered", "chunked+layered" (also "chunked-layered", "chunked_layered").
const char* scheduler_policy_name(SchedulerPolicy p);
bool parse_scheduler_policy(const std::string& name, SchedulerPolicy& out);  // false: unknown name
// A sensible max_step_tokens per policy (EngineConfig's 512 is chunked's): chunked 512 (Sarathi's
// strict-SLO budget), layered 8192 (the paper's batch cap; G = ceil(T/512) groups), chunked+layered
// 2048 (chunks of 2048, each run in 4 layer groups), none 8192 (prefill tokens admitted per step).
int default_max_step_tokens(SchedulerPolicy p);

struct EngineConfig {
  SchedulerPolicy policy = SchedulerPolicy::Chunked;
  int max_step_tokens = 512;     // chunked: per-step token budget; layered: admitted batch cap
  double step_target_ms = 0;     // chunked: cap prefill tokens in steps with decodes to this step time (0 = off)
  int layer_groups = 0;          // layered: 0 = max(1, ceil(T/512)) capped by n_layers
  int kv_block_size = 16;        // tokens per KV block
  int kv_blocks = 0;             // 0: enough for max_running sequences of full context
  int max_running = 64;          // sequences decoding at once
  int max_waiting = 1024;        // queue beyond this -> AdmissionError::QueueFull
  int max_context = 0;           // 0: the model's max_position_embeddings
  bool prefix_caching = true;
};

struct GenerationRequest {
  std::vector<int> prompt;          // token ids, non-empty
  SamplingParams sampling;
  int max_tokens = 16;              // >= 1; prompt + max_tokens must fit max_context
  std::vector<int> stop_token_ids;  // finish (reason Stop) when sampled; the token is reported
  bool ignore_eos = false;          // else the model's eos ids stop too
  int top_logprobs = -1;            // < 0: no logprobs; 0..20: sampled logprob + that many alternatives
};

enum class FinishReason { Stop, Length, Abort, Error };

struct TokenLogprob {
  int id = 0;
  float logprob = 0;
};

struct RequestStats {
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_prompt_tokens = 0;  // prompt tokens served from the prefix cache
  double queue_s = 0;            // submit -> first scheduled
  double ttft_s = 0;             // submit -> first token
  double e2e_s = 0;              // submit -> finish
  uint64_t expert_bytes = 0;     // expert weight bytes read by steps this request took part in
  int preemptions = 0;
};

struct GenerationEvent {
  int token = -1;                  // -1 on a final event that carries no token
  float logprob = 0;               // when requested
  std::vector<TokenLogprob> top;   // top_logprobs alternatives, best first
  bool finished = false;
  FinishReason reason = FinishReason::Stop;
  std::string error;               // reason Error: what went wrong
  RequestStats stats;              // filled on the final event
};

using EventSink = std::function<void(const GenerationEvent&)>;

struct AdmissionError : std::runtime_error {
  enum Kind { QueueFull, PromptTooLong, BadRequest, ShuttingDown } kind;
  AdmissionError(Kind k, const std::string& what) : std::runtime_error(what), kind(k) {}
};

// Counters and gauges since start; histograms live in the server's metrics.
struct EngineMetrics {
  int running = 0, waiting = 0;
  int kv_blocks_total = 0, kv_blocks_used = 0;
  uint64_t prefix_queries_tokens = 0, prefix_hit_tokens = 0;
  uint64_t steps = 0, expert_bytes = 0, prompt_tokens = 0, generated_tokens = 0, preemptions = 0;
  bool ready = false;  // a generation can run (model loaded, engine thread alive)
  // Added after the first contract (extensions only):
  std::vector<uint64_t> layer_expert_bytes;  // [n_layers] expert bytes read per layer since start (dense: 0)
  uint64_t last_step_expert_bytes = 0;       // expert bytes of the most recent step
  uint64_t prefill_tokens_computed = 0;      // prompt tokens run through the model (cache hits excluded)
};

class Engine {
 public:
  Engine(std::shared_ptr<Model> model, const EngineConfig& cfg);  // starts the engine thread
  ~Engine();                                                      // shutdown(false)
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  uint64_t submit(GenerationRequest req, EventSink sink);
  void abort(uint64_t id);
  EngineMetrics metrics() const;
  // drain: finish running and queued requests first; else abort them. Then stop the thread.
  void shutdown(bool drain);

  const Model& model() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata
