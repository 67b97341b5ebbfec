// Expert-load accounting: Layered Prefill reads fewer expert weight bytes than chunked prefill
// for the same workload (long prompts arriving while short requests decode), with equal outputs.
// Both numbers are printed. Not a timing benchmark: bytes are counted, not measured.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "engine_test_util.h"

namespace strata {
namespace {

struct Load {
  uint64_t total = 0, prefill_steps = 0;  // expert bytes: all steps, steps that carried prefill rows
  int steps = 0;
  std::vector<test::Greedy> out;
  std::vector<uint64_t> per_layer;  // [n_layers] since start
};

std::string layers(const std::vector<uint64_t>& v) {
  std::string s;
  for (uint64_t b : v) s += (s.empty() ? "" : " / ") + std::to_string(b);
  return s;
}

Load run(Model& model, const EngineConfig& cfg, const std::vector<test::Arrival>& arrivals, int max_tokens) {
  EngineCore core(model, cfg);
  Load l;
  l.out = test::run_core(core, arrivals, max_tokens, 1000, [&](const EngineCore& c) {
    uint64_t step_bytes = 0;
    for (size_t b : c.last_step_layer_expert_bytes()) step_bytes += b;
    l.total += step_bytes;
    if (c.last_plan().n_prefill_tokens > 0) l.prefill_steps += step_bytes;
    l.steps++;
  });
  for (const test::Greedy& g : l.out) EXPECT_EQ(g.reason, FinishReason::Length) << g.error;
  EXPECT_EQ(l.total, core.metrics().expert_bytes);
  l.per_layer = core.metrics().layer_expert_bytes;
  return l;
}

TEST(ExpertLoad, LayeredPrefillReadsFewerExpertBytesThanChunked) {
  auto model = test::load_fixture("qwen3_moe");
  const int V = model->config().n_vocab;
  // Two short requests decode while four 300-token prompts arrive (T = 1200: G = 3 groups).
  std::vector<test::Arrival> arrivals = {{0, test::random_prompt(8, V, 1)}, {0, test::random_prompt(6, V, 2)}};
  for (int i = 0; i < 4; i++) arrivals.push_back({2, test::random_prompt(300, V, 10 + uint32_t(i))});
  EngineConfig chunked;
  chunked.policy = SchedulerPolicy::Chunked;
  chunked.max_step_tokens = 512;  // Sarathi-Serve's strict-SLO budget
  chunked.kv_block_size = 16;
  chunked.kv_blocks = 128;
  EngineConfig layered = chunked;
  layered.policy = SchedulerPolicy::Layered;
  layered.max_step_tokens = 8192;  // the paper's batch cap; G from the rule max(1, ceil(T / 512))
  const int max_tokens = 12;
  Load c = run(*model, chunked, arrivals, max_tokens);
  Load l = run(*model, layered, arrivals, max_tokens);
  std::printf("expert bytes, qwen3_moe, 2 decoding + 4 x 300-token prompts, %d tokens each:\n", max_tokens);
  std::printf("  chunked-512 : %10llu total, %10llu in steps with prefill, %d steps\n", (unsigned long long)c.total,
              (unsigned long long)c.prefill_steps, c.steps);
  std::printf("  layered     : %10llu total, %10llu in steps with prefill, %d steps\n", (unsigned long long)l.total,
              (unsigned long long)l.prefill_steps, l.steps);
  std::printf("  layered / chunked = %.3f (total), %.3f (prefill steps)\n", double(l.total) / double(c.total),
              double(l.prefill_steps) / double(c.prefill_steps));
  std::printf("  per MoE layer, chunked: %s\n  per MoE layer, layered: %s\n", layers(c.per_layer).c_str(),
              layers(l.per_layer).c_str());
  EXPECT_LT(l.total, c.total);
  EXPECT_LT(l.prefill_steps, c.prefill_steps);
  for (size_t i = 0; i < arrivals.size(); i++) EXPECT_EQ(l.out[i].ids, c.out[i].ids) << "request " << i;
}

}  // namespace
}  // namespace strata
