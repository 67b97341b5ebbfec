// The runner: executes a StepPlan through the model's batched forward over the paged KV pool,
// keeps layered prefill hidden states between steps, and counts expert bytes per step and layer.
// Not scheduling and not sampling: it turns items into ForwardItems and hands back logits.
#pragma once
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "engine/step_plan.h"
#include "model/model.h"

namespace strata {

class Runner {
 public:
  Runner(Model& model, int n_blocks, int block_size);

  // Runs every item of the plan in one batched forward. Afterwards logits(id) holds the last
  // token's logits of each item that left the last layer at the end of its sequence's tokens.
  void run(const StepPlan& plan);
  const std::vector<float>& logits(uint64_t seq) const { return logits_.at(seq); }
  void drop(uint64_t seq);  // forget a sequence's kept hidden state (finished, aborted, preempted)

  // Expert weight bytes of the last run(), in total and per layer ([n_layers]).
  size_t step_expert_bytes = 0;
  std::vector<size_t> step_layer_expert_bytes;
  size_t kept_sequences() const { return kept_.size(); }

 private:
  // A layered prefill item's residual stream between groups: tokens [token_begin, token_end)
  // after layers [0, layer_end).
  struct Kept {
    int token_begin = 0, token_end = 0, layer_end = 0;
    std::vector<float> hidden;  // [n, d_model]
  };
  Model& model_;
  PagedKvCache kv_;
  KvPool pool_;
  std::unordered_map<uint64_t, Kept> kept_;
  std::unordered_map<uint64_t, std::vector<float>> logits_;  // [vocab] per sampled sequence
};

}  // namespace strata
