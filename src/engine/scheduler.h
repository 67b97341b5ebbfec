// The scheduler: which sequences run which tokens through which layers this step. Plain data
// (sequence pointers, block ids, budgets; no tensors), so a schedule is tested in microseconds.
// Not the execution (runner) nor sampling (engine): it plans a step and learns what completed.
#pragma once
#include <deque>
#include <vector>

#include "engine/engine.h"
#include "engine/kv_cache.h"
#include "engine/step_plan.h"

namespace strata {

struct SchedulerConfig {
  SchedulerPolicy policy = SchedulerPolicy::Chunked;
  int max_step_tokens = 512;  // chunked: per-step token budget; layered: admitted batch cap
  int layer_groups = 0;       // layered: 0 = max(1, ceil(T / group_tokens)), capped by n_layers
  int group_tokens = 512;     // layered: prefill tokens one group's worth of work aims at
  int max_running = 64;
  int n_layers = 1;
  // Chunked: while sequences decode, cap a step's prefill tokens so that its predicted time stays under this
  // (the decode TBT a new prompt may cause); 0 = the token budget only. The prediction comes from observe_step.
  double step_target_ms = 0;
  int min_prefill_chunk = 16;  // prefill tokens a capped step still takes, so prompts always progress
};

// Layer boundaries of G contiguous groups over L layers, like numpy.array_split: the first L % G
// groups get one layer more. Returns G + 1 boundaries, 0 first, L last.
std::vector<int> layer_groups(int L, int G);

class Scheduler {
 public:
  Scheduler(const SchedulerConfig& cfg, BlockManager& blocks);

  void add(Sequence* s);     // joins the waiting queue (FCFS)
  void remove(Sequence* s);  // finished or aborted: blocks freed, gone from every queue
  StepPlan schedule();
  // After the plan ran: advances n_computed and the layered stage, publishes full blocks to the
  // prefix cache. Returns the sequences whose item produced logits for their next token.
  std::vector<Sequence*> complete(const StepPlan& plan);

  // A step's measured time, for the step-time cap: decode-only steps give the decode part of a step (EWMA),
  // steps with >= 8 prefill tokens the cost of one prefill token on top of it (EWMA).
  void observe_step(int n_prefill_tokens, int n_decode_tokens, double ms);
  // The prefill tokens a step with decodes may take under step_target_ms (-1: no cap: off, or no estimate yet).
  int prefill_cap() const;

  int n_waiting() const { return int(waiting_.size()); }
  int n_running() const { return int(running_.size()); }
  bool has_work() const { return !waiting_.empty() || !running_.empty(); }
  const SchedulerConfig& config() const { return cfg_; }

 private:
  // The layered prefill batch in flight: its members' token ranges and the group it runs next.
  struct Member {
    Sequence* seq;
    int token_begin, token_end;
  };
  struct LayeredBatch {
    std::vector<Member> members;
    std::vector<int> bounds;  // G + 1 layer boundaries
    int stage = 0;
  };

  bool layered() const;
  bool chunked() const;
  void schedule_decodes(StepPlan& plan, int& budget);
  void admit(StepPlan& plan, int budget);
  void emit_batch_stage(StepPlan& plan);
  void preempt(Sequence* s, StepPlan& plan);
  bool in_batch(const Sequence* s) const;

  SchedulerConfig cfg_;
  BlockManager& blocks_;
  std::deque<Sequence*> waiting_;
  std::vector<Sequence*> running_;  // admission order: the back is preempted first (LIFO)
  LayeredBatch batch_;
  double decode_step_ms_ = -1, prefill_token_ms_ = -1;  // step-time model (observe_step); -1 = no estimate
};

}  // namespace strata
