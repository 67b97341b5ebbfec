// The engine's synchronous core: requests, scheduler, block manager, runner and per-request
// samplers, advanced one step() at a time. Deterministic and single-threaded, so tests drive it
// step by step (arrivals at chosen steps) and read the logits behind every sampled token.
// Not threads or queues: Engine (engine.cpp) wraps it with the submit queue and the engine thread.
#pragma once
#include <chrono>
#include <memory>
#include <unordered_map>
#include <vector>

#include "engine/engine.h"
#include "engine/kv_cache.h"
#include "engine/runner.h"
#include "engine/scheduler.h"

namespace strata {

struct CoreOutput {
  uint64_t id = 0;
  GenerationEvent event;
  std::vector<float> logits;  // [vocab] raw logits behind event.token, when capture_logits
};

class EngineCore {
 public:
  EngineCore(Model& model, const EngineConfig& cfg);
  ~EngineCore();

  // Throws AdmissionError (PromptTooLong, BadRequest) when the request can never run. Const and
  // touching only config: safe from any thread.
  void validate(const GenerationRequest& r) const;
  // Adds a validated request; submit_s is its arrival time (seconds, now() clock).
  void add(uint64_t id, GenerationRequest r, double submit_s);
  // Finishes the request with reason Abort (its blocks freed); unknown ids are ignored.
  void abort(uint64_t id, std::vector<CoreOutput>& out);
  void abort_all(std::vector<CoreOutput>& out);
  // Finishes every request with reason Error (the engine thread's last resort on a bug).
  void fail_all(const std::string& why, std::vector<CoreOutput>& out);
  // One iteration: schedule, run, sample. Appends token events and final events to out.
  void step(std::vector<CoreOutput>& out);

  bool has_work() const { return sched_.has_work(); }
  int n_waiting() const { return sched_.n_waiting(); }
  EngineMetrics metrics() const;
  const EngineConfig& config() const { return cfg_; }
  const BlockManager& blocks() const { return blocks_; }
  const Runner& runner() const { return runner_; }
  // Expert bytes of the last step per layer ([n_layers]).
  const std::vector<size_t>& last_step_layer_expert_bytes() const { return runner_.step_layer_expert_bytes; }
  const StepPlan& last_plan() const { return last_plan_; }

  bool capture_logits = false;
  static double now();

 private:
  struct Request;
  void sample(Request& r, std::vector<CoreOutput>& out);
  void finish(Request& r, FinishReason reason, const std::string& error, std::vector<CoreOutput>& out);

  Model& model_;
  EngineConfig cfg_;
  BlockManager blocks_;
  Scheduler sched_;
  Runner runner_;
  std::unordered_map<uint64_t, std::unique_ptr<Request>> reqs_;
  StepPlan last_plan_;
  uint64_t steps_ = 0, expert_bytes_ = 0, prompt_tokens_ = 0, generated_tokens_ = 0, preemptions_ = 0;
  uint64_t prefill_tokens_ = 0;
  std::vector<uint64_t> layer_expert_bytes_;  // [n_layers] since start
};

// EngineConfig with its zeros resolved against the model (max_context, kv_blocks), validated.
EngineConfig resolve_config(const Model& model, EngineConfig cfg);

}  // namespace strata
