// Scheduling policies over one loop: decodes first (every layer, every step), then either the
// layered batch in flight, or partial prefills, then new requests FCFS. Preemption by recompute.
// Not the model: items name token and layer ranges only.
#include "engine/scheduler.h"

#include <algorithm>

#include "core/error.h"

namespace strata {

std::vector<int> layer_groups(int L, int G) {
  G = std::clamp(G, 1, L);
  std::vector<int> b{0};
  for (int g = 0; g < G; g++) b.push_back(b.back() + L / G + (g < L % G ? 1 : 0));
  return b;
}

Scheduler::Scheduler(const SchedulerConfig& cfg, BlockManager& blocks) : cfg_(cfg), blocks_(blocks) {
  STRATA_CHECK(cfg.max_step_tokens >= 1 && cfg.max_running >= 1 && cfg.n_layers >= 1,
               "scheduler: max_step_tokens, max_running and n_layers must be >= 1");
}

bool Scheduler::layered() const {
  return cfg_.policy == SchedulerPolicy::Layered || cfg_.policy == SchedulerPolicy::ChunkedLayered;
}
bool Scheduler::chunked() const {
  return cfg_.policy == SchedulerPolicy::Chunked || cfg_.policy == SchedulerPolicy::ChunkedLayered;
}

bool Scheduler::in_batch(const Sequence* s) const {
  for (const Member& m : batch_.members)
    if (m.seq == s) return true;
  return false;
}

void Scheduler::add(Sequence* s) {
  s->status = SeqStatus::Waiting;
  waiting_.push_back(s);
}

void Scheduler::remove(Sequence* s) {
  blocks_.release(*s);
  std::erase(running_, s);
  std::erase(waiting_, s);
  std::erase_if(batch_.members, [&](const Member& m) { return m.seq == s; });
  s->status = SeqStatus::Finished;
}

// Recompute preemption: the blocks go back to the pool (full ones stay in the prefix cache), the
// sequence rejoins the front of the queue and later re-runs all its tokens.
void Scheduler::preempt(Sequence* s, StepPlan& plan) {
  blocks_.release(*s);
  s->n_computed = 0;
  s->preemptions++;
  s->status = SeqStatus::Waiting;
  std::erase(running_, s);
  std::erase_if(batch_.members, [&](const Member& m) { return m.seq == s; });
  waiting_.push_front(s);
  plan.preempted.push_back(s->id);
}

// A running sequence with one token left to feed decodes it through every layer. When its block
// cannot grow, the newest running sequence is preempted (possibly itself).
void Scheduler::schedule_decodes(StepPlan& plan, int& budget) {
  for (size_t i = 0; i < running_.size(); i++) {
    Sequence* s = running_[i];
    if (s->remaining() != 1 || in_batch(s)) continue;
    bool preempted_self = false;
    while (!blocks_.grow(*s, s->n_tokens())) {
      Sequence* victim = running_.back();
      preempt(victim, plan);
      if (victim == s) {
        preempted_self = true;
        break;
      }
    }
    if (preempted_self) break;  // s was the back: nothing after it is left
    plan.items.push_back({s, s->n_tokens() - 1, s->n_tokens(), 0, cfg_.n_layers});
    plan.n_decode_tokens++;
    if (!layered()) budget--;  // Sarathi counts decodes against the budget; layered does not
  }
}

void Scheduler::emit_batch_stage(StepPlan& plan) {
  const int lb = batch_.bounds[size_t(batch_.stage)], le = batch_.bounds[size_t(batch_.stage) + 1];
  plan.layered_stage = batch_.stage;
  for (const Member& m : batch_.members) {
    plan.items.push_back({m.seq, m.token_begin, m.token_end, lb, le});
    plan.n_prefill_tokens += m.token_end - m.token_begin;
  }
}

// Prefill admission. Chunked policies pack the budget exactly (each prompt min(remaining, budget
// left)); layered takes whole prompts while they fit the batch cap and cuts only a prompt longer
// than the whole cap; none takes whole prompts (the first always, however long).
// Partial prefills go first: chunked continuations, or the rest of a prompt layered had to cut.
void Scheduler::admit(StepPlan& plan, int budget) {
  std::vector<Member> batch;
  auto add_prefill = [&](Sequence* s, int n) {
    if (layered())
      batch.push_back({s, s->n_computed, s->n_computed + n});
    else {
      plan.items.push_back({s, s->n_computed, s->n_computed + n, 0, cfg_.n_layers});
      plan.n_prefill_tokens += n;
    }
  };
  const bool capped = cfg_.policy != SchedulerPolicy::None;
  int used = 0;
  for (Sequence* s : running_) {
    if (s->remaining() <= 1 || in_batch(s)) continue;
    const int n = std::min(s->remaining(), budget - used);
    if (n <= 0) break;
    add_prefill(s, n);
    used += n;
  }
  while (!waiting_.empty() && int(running_.size()) < cfg_.max_running) {
    Sequence* s = waiting_.front();
    if (capped && used >= budget) break;
    if (!chunked() && used > 0 && s->n_tokens() - blocks_.cached_prefix(s->tokens) > budget - used) break;
    if (!blocks_.allocate(*s)) break;  // whole prompt's blocks, prefix-cache hits reused
    waiting_.pop_front();
    running_.push_back(s);
    s->status = SeqStatus::Running;
    const int n = capped ? std::min(s->remaining(), budget - used) : s->remaining();
    add_prefill(s, n);
    used += n;
  }
  if (batch.empty()) return;
  const int G = cfg_.layer_groups > 0 ? cfg_.layer_groups : (used + cfg_.group_tokens - 1) / cfg_.group_tokens;
  batch_.members = std::move(batch);
  batch_.bounds = layer_groups(cfg_.n_layers, std::max(1, G));
  batch_.stage = 0;
  emit_batch_stage(plan);
}

void Scheduler::observe_step(int n_prefill_tokens, int n_decode_tokens, double ms) {
  constexpr double kAlpha = 0.25;  // EWMA weight of the newest step
  auto ewma = [&](double& v, double x) { v = v < 0 ? x : (1 - kAlpha) * v + kAlpha * x; };
  if (!(ms >= 0)) return;
  if (n_prefill_tokens == 0 && n_decode_tokens > 0) {
    ewma(decode_step_ms_, ms);
  } else if (n_prefill_tokens >= 8) {
    const double decode_part = n_decode_tokens > 0 && decode_step_ms_ > 0 ? decode_step_ms_ : 0;
    ewma(prefill_token_ms_, std::max(0.0, ms - decode_part) / n_prefill_tokens);
  }
}

int Scheduler::prefill_cap() const {
  if (!(cfg_.step_target_ms > 0) || decode_step_ms_ < 0 || prefill_token_ms_ <= 0) return -1;
  const double room = cfg_.step_target_ms - decode_step_ms_;
  const double n = room / prefill_token_ms_;
  return n >= double(cfg_.max_step_tokens) ? -1 : std::max(cfg_.min_prefill_chunk, int(n));
}

StepPlan Scheduler::schedule() {
  StepPlan plan;
  int budget = cfg_.max_step_tokens;
  schedule_decodes(plan, budget);
  if (!plan.preempted.empty() && !layered()) return plan;  // blocks are short: admit nothing (vLLM)
  // Decodes are waiting on this step: keep it under the step-time target (Sarathi's TBT budget, in time).
  if (cfg_.policy == SchedulerPolicy::Chunked && plan.n_decode_tokens > 0)
    if (const int cap = prefill_cap(); cap >= 0) budget = std::min(budget, cap);
  if (layered() && !batch_.members.empty()) {
    emit_batch_stage(plan);  // one prefill batch at a time: it runs its next group
    return plan;
  }
  if (plan.preempted.empty()) admit(plan, budget);
  return plan;
}

std::vector<Sequence*> Scheduler::complete(const StepPlan& plan) {
  std::vector<Sequence*> done;
  for (const StepItem& it : plan.items) {
    Sequence* s = it.seq;
    if (it.layer_end != cfg_.n_layers) continue;
    s->n_computed = it.token_end;
    blocks_.publish(*s);
    if (it.token_end == s->n_tokens()) done.push_back(s);
  }
  // The layered batch advanced one group; after the last one its members are computed.
  if (plan.layered_stage >= 0 && !batch_.members.empty())
    if (++batch_.stage + 1 == int(batch_.bounds.size())) batch_.members.clear();
  return done;
}

}  // namespace strata
