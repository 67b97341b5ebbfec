// Runner: StepPlan items -> model ForwardItems (token range, layer range, block table, hidden
// buffer, logits row) -> one forward_batch call. Not a scheduler: it trusts the plan's ranges
// but checks that a layered continuation finds the hidden state it needs.
#include "engine/runner.h"

#include "core/error.h"

namespace strata {

Runner::Runner(Model& model, int n_blocks, int block_size)
    : model_(model), kv_(model.new_paged_cache(n_blocks, block_size)), pool_(kv_pool(kv_)) {}

void Runner::drop(uint64_t seq) {
  kept_.erase(seq);
  logits_.erase(seq);
}

void Runner::run(const StepPlan& plan) {
  const ModelConfig& c = model_.config();
  const int L = c.n_layers, D = c.d_model;
  std::vector<ForwardItem> fwd;
  std::vector<std::vector<float>> scratch(plan.items.size());  // hidden of items that finish this step
  fwd.reserve(plan.items.size());
  logits_.clear();
  for (size_t i = 0; i < plan.items.size(); i++) {
    const StepItem& it = plan.items[i];
    Sequence& s = *it.seq;
    const int n = it.n_tokens();
    STRATA_CHECK(n > 0 && it.token_end <= s.n_tokens(), "runner: bad token range for sequence " + std::to_string(s.id));
    STRATA_CHECK(int(s.block_table.size()) * pool_.block_size >= it.token_end,
                 "runner: sequence " + std::to_string(s.id) + " has too few KV blocks");
    ForwardItem f;
    f.ids = s.tokens.data() + it.token_begin;
    f.n = n;
    f.pos0 = it.token_begin;
    f.layer_begin = it.layer_begin;
    f.layer_end = it.layer_end;
    f.block_table = s.block_table.data();
    if (it.layer_begin > 0) {
      // A layered continuation: the residual stream the previous group left.
      auto k = kept_.find(s.id);
      STRATA_CHECK(k != kept_.end() && k->second.token_begin == it.token_begin &&
                       k->second.token_end == it.token_end && k->second.layer_end == it.layer_begin,
                   "runner: no kept hidden state for sequence " + std::to_string(s.id) + " at layer " +
                       std::to_string(it.layer_begin));
      f.hidden = k->second.hidden.data();
      k->second.layer_end = it.layer_end;
    } else if (it.layer_end < L) {
      Kept& k = kept_[s.id];
      k = Kept{it.token_begin, it.token_end, it.layer_end, std::vector<float>(size_t(n) * D)};
      f.hidden = k.hidden.data();
    } else {
      scratch[i].resize(size_t(n) * D);
      f.hidden = scratch[i].data();
    }
    if (it.layer_end == L && it.token_end == s.n_tokens()) {
      auto& row = logits_[s.id];
      row.resize(size_t(c.n_vocab));
      f.logits = row.data();
    }
    fwd.push_back(f);
  }
  ForwardStats st;
  st.layer_expert_bytes.assign(size_t(L), 0);
  model_.forward_batch(fwd, pool_, &st);
  step_expert_bytes = st.expert_bytes;
  step_layer_expert_bytes = std::move(st.layer_expert_bytes);
  for (const StepItem& it : plan.items)
    if (it.layer_end == L) kept_.erase(it.seq->id);
}

}  // namespace strata
