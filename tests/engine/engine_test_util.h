// Helpers for the engine tests: fixture models, random prompts, the unscheduled reference
// (Model::forward, one sequence at a time, greedy) and an EngineCore driven step by step with
// requests arriving at chosen steps. Not assertions: each test states its own.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/engine_core.h"
#include "model/model.h"
#include "test_util.h"

namespace strata::test {

inline std::shared_ptr<Model> load_fixture(const std::string& name) {
  return std::shared_ptr<Model>(Model::load(fixtures_dir() + "/models/" + name));
}

inline std::vector<int> random_prompt(int n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(3, vocab - 1);  // clear of the tiny tokenizer's specials
  std::vector<int> p(static_cast<size_t>(n));
  for (int& t : p) t = d(rng);
  return p;
}

struct Greedy {
  std::vector<int> ids;
  std::vector<std::vector<float>> logits;  // [n][vocab] the logits that chose each id
  RequestStats stats;
  FinishReason reason = FinishReason::Length;
  std::string error;
};

// The unscheduled forward: whole prompt through a contiguous KvCache, then one token per call.
inline Greedy reference_greedy(Model& m, const std::vector<int>& prompt, int max_tokens) {
  const int V = m.config().n_vocab;
  KvCache kv = m.new_cache(int(prompt.size()) + max_tokens);
  std::vector<float> row(static_cast<size_t>(V));
  m.forward(prompt.data(), int(prompt.size()), kv, row.data(), false);
  Greedy g;
  for (int i = 0; i < max_tokens; i++) {
    g.logits.push_back(row);
    const int next = int(std::max_element(row.begin(), row.end()) - row.begin());
    g.ids.push_back(next);
    if (i + 1 < max_tokens) m.forward(&next, 1, kv, row.data(), false);
  }
  return g;
}

struct Arrival {
  int step;  // engine step before which the request is added
  std::vector<int> prompt;
};

// Greedy outputs per arrival index, stepping the core until every request finished;
// `after_step` (optional) sees the core after each step (e.g. its expert bytes).
inline std::vector<Greedy> run_core(EngineCore& core, const std::vector<Arrival>& arrivals, int max_tokens,
                                    int max_steps = 10000,
                                    const std::function<void(const EngineCore&)>& after_step = {}) {
  std::vector<Greedy> out(arrivals.size());
  std::map<uint64_t, size_t> index;
  std::vector<CoreOutput> ev;
  size_t finished = 0;
  for (int step = 0; finished < arrivals.size() && step < max_steps; step++) {
    for (size_t i = 0; i < arrivals.size(); i++) {
      if (arrivals[i].step != step) continue;
      GenerationRequest r;
      r.prompt = arrivals[i].prompt;
      r.max_tokens = max_tokens;
      r.sampling.temperature = 0;
      r.ignore_eos = true;
      core.validate(r);
      index[i + 1] = i;
      core.add(i + 1, r, EngineCore::now());
    }
    core.step(ev);
    if (after_step) after_step(core);
    for (CoreOutput& o : ev) {
      Greedy& g = out[index.at(o.id)];
      if (o.event.finished) {
        g.stats = o.event.stats;
        g.reason = o.event.reason;
        g.error = o.event.error;
        finished++;
      } else {
        g.ids.push_back(o.event.token);
        g.logits.push_back(std::move(o.logits));
      }
    }
    ev.clear();
  }
  return out;
}

}  // namespace strata::test
