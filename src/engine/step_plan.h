// One engine iteration as a tile in tokens x layers: items {seq, token_begin, token_end,
// layer_begin, layer_end}. Plain data made by the scheduler and executed by the runner.
// Not the execution: the runner (engine/runner.h) turns items into model ForwardItems.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/sequence.h"

namespace strata {

struct StepItem {
  Sequence* seq = nullptr;
  int token_begin = 0, token_end = 0;  // tokens of seq->tokens this item feeds
  int layer_begin = 0, layer_end = 0;  // layers it runs them through
  int n_tokens() const { return token_end - token_begin; }
};

struct StepPlan {
  std::vector<StepItem> items;          // one per sequence at most
  std::vector<uint64_t> preempted;      // sequences that lost their blocks this step (back to waiting)
  int n_prefill_tokens = 0, n_decode_tokens = 0;
  int layered_stage = -1;  // the layer group the layered prefill batch runs this step, or -1
  bool empty() const { return items.empty(); }
};

}  // namespace strata
