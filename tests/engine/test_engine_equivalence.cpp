// Every scheduling policy against the unscheduled forward on the MoE fixtures: mixed prompts
// arriving at different steps give the same greedy ids and logits (rel err <= 1e-4) under none,
// chunked, layered and chunked+layered, with prefix-cache hits and with preemption.
// Not the threaded Engine (test_engine.cpp) and not expert-byte accounting (test_expert_load.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "engine_test_util.h"
#include "kernels/cpu/linear.h"

namespace strata {
namespace {

constexpr double kTol = 1e-4;

struct Policy {
  std::string name;
  EngineConfig cfg;
};

std::vector<Policy> policies() {
  auto make = [](SchedulerPolicy p, int budget, int groups, int block) {
    EngineConfig c;
    c.policy = p;
    c.max_step_tokens = budget;
    c.layer_groups = groups;
    c.kv_block_size = block;
    c.kv_blocks = 256;
    c.max_running = 8;
    return c;
  };
  return {{"none", make(SchedulerPolicy::None, 512, 0, 16)},
          {"chunked16", make(SchedulerPolicy::Chunked, 16, 0, 4)},
          {"layered3", make(SchedulerPolicy::Layered, 512, 3, 8)},
          {"layered2", make(SchedulerPolicy::Layered, 48, 2, 5)},
          {"chunked_layered", make(SchedulerPolicy::ChunkedLayered, 24, 3, 4)}};
}

// Mixed lengths (1 to 41 tokens), arrivals spread over steps; prompt 3 shares prompt 0's first
// 16 tokens so prefix caching has something to find.
std::vector<test::Arrival> workload(int V) {
  std::vector<test::Arrival> a = {{0, test::random_prompt(23, V, 1)}, {0, test::random_prompt(1, V, 2)},
                                  {2, test::random_prompt(41, V, 3)}, {4, {}},
                                  {5, test::random_prompt(30, V, 5)}, {9, test::random_prompt(12, V, 6)}};
  a[3].prompt.assign(a[0].prompt.begin(), a[0].prompt.begin() + 16);
  for (int t : test::random_prompt(9, V, 4)) a[3].prompt.push_back(t);
  return a;
}

// Largest relative error seen by the current test and how many logit rows were bit-identical.
double g_max_err = 0;
size_t g_rows = 0, g_identical = 0;

void report(const std::string& what) {
  std::printf("%s: %zu logit rows, %zu bit-identical, max rel err %.3g\n", what.c_str(), g_rows, g_identical,
              g_max_err);
  g_max_err = 0;
  g_rows = g_identical = 0;
}

void expect_same(const test::Greedy& got, const test::Greedy& want, const std::string& what) {
  ASSERT_EQ(got.reason, FinishReason::Length) << what << ": " << got.error;
  ASSERT_EQ(got.ids, want.ids) << what;
  ASSERT_EQ(got.logits.size(), want.logits.size()) << what;
  for (size_t i = 0; i < want.logits.size(); i++) {
    ASSERT_EQ(got.logits[i].size(), want.logits[i].size()) << what;
    const double err = test::rel_err(got.logits[i].data(), want.logits[i].data(), want.logits[i].size());
    EXPECT_LE(err, kTol) << what << " token " << i;
    g_max_err = std::max(g_max_err, err);
    g_rows++;
    g_identical += got.logits[i] == want.logits[i];
  }
}

class PolicyEquivalence : public ::testing::TestWithParam<std::string> {};

TEST_P(PolicyEquivalence, SameGreedyIdsAndLogitsAsTheUnscheduledForward) {
  auto model = test::load_fixture(GetParam());
  const int V = model->config().n_vocab, max_tokens = 5;
  const auto arrivals = workload(V);
  std::vector<test::Greedy> want;
  for (const auto& a : arrivals) want.push_back(test::reference_greedy(*model, a.prompt, max_tokens));
  for (const Policy& p : policies()) {
    EngineCore core(*model, p.cfg);
    core.capture_logits = true;
    auto got = test::run_core(core, arrivals, max_tokens);
    for (size_t i = 0; i < arrivals.size(); i++) expect_same(got[i], want[i], p.name + " request " + std::to_string(i));
    EXPECT_FALSE(core.has_work());
    EXPECT_EQ(core.metrics().kv_blocks_used, 0) << p.name;  // every block back in the pool
  }
  report(GetParam() + " policies");
}

TEST_P(PolicyEquivalence, PrefixCacheHitsGiveTheSameOutputs) {
  auto model = test::load_fixture(GetParam());
  const int V = model->config().n_vocab, max_tokens = 4;
  const std::vector<int> base = test::random_prompt(40, V, 11);
  std::vector<int> longer = base, branch(base.begin(), base.begin() + 27);
  for (int t : test::random_prompt(6, V, 12)) longer.push_back(t), branch.push_back(t);
  // The first request finishes (its blocks freed but cached) before the others arrive.
  const std::vector<test::Arrival> arrivals = {{0, base}, {12, base}, {12, longer}, {13, branch}};
  for (const Policy& p : policies()) {
    EngineCore core(*model, p.cfg);
    core.capture_logits = true;
    auto got = test::run_core(core, arrivals, max_tokens);
    for (size_t i = 0; i < arrivals.size(); i++)
      expect_same(got[i], test::reference_greedy(*model, arrivals[i].prompt, max_tokens),
                  p.name + " request " + std::to_string(i));
    const int bs = p.cfg.kv_block_size;
    EXPECT_EQ(got[0].stats.cached_prompt_tokens, 0) << p.name;
    EXPECT_EQ(got[1].stats.cached_prompt_tokens, (39 / bs) * bs) << p.name;  // all but the last token
    EXPECT_GE(got[2].stats.cached_prompt_tokens, (40 / bs) * bs) << p.name;
    EXPECT_GE(got[3].stats.cached_prompt_tokens, (27 / bs) * bs) << p.name;
    EXPECT_GT(core.metrics().prefix_hit_tokens, 0u) << p.name;
  }
  report(GetParam() + " prefix hits");
}

TEST_P(PolicyEquivalence, PreemptionUnderATinyKvBudgetGivesTheSameOutputs) {
  auto model = test::load_fixture(GetParam());
  const int V = model->config().n_vocab, max_tokens = 8;
  std::vector<test::Arrival> arrivals;
  for (int i = 0; i < 5; i++) arrivals.push_back({i / 2, test::random_prompt(14 + 3 * i, V, 20 + uint32_t(i))});
  for (Policy p : policies()) {
    p.cfg.kv_block_size = 4;
    p.cfg.kv_blocks = 9;  // 36 token rows: the longest request (26 + 8) fits alone, never all five
    EngineCore core(*model, p.cfg);
    core.capture_logits = true;
    auto got = test::run_core(core, arrivals, max_tokens);
    for (size_t i = 0; i < arrivals.size(); i++)
      expect_same(got[i], test::reference_greedy(*model, arrivals[i].prompt, max_tokens),
                  p.name + " request " + std::to_string(i));
    EXPECT_GT(core.metrics().preemptions, 0u) << p.name;
    EXPECT_EQ(core.metrics().kv_blocks_used, 0) << p.name;
  }
  report(GetParam() + " preemption");
}

// With the GEMV path for every M the linear kernels compute each row the same way whatever the
// batch, so the scheduled forward must reproduce the unscheduled one bit for bit: any difference
// would come from the engine (paging, gathering, layer groups, hidden states kept between steps).
class BitIdentical : public ::testing::TestWithParam<std::string> {};

TEST_P(BitIdentical, WhenLinearKernelsAreRowIndependent) {
  auto model = test::load_fixture(GetParam());
  struct GemvOnly {  // restored however the test exits
    int saved = linear_gemm_min_rows();
    GemvOnly() { set_linear_gemm_min_rows(1 << 30); }
    ~GemvOnly() { set_linear_gemm_min_rows(saved); }
  } gemv_only;
  const int V = model->config().n_vocab, max_tokens = 4;
  const auto arrivals = workload(V);
  std::vector<test::Greedy> want;
  for (const auto& a : arrivals) want.push_back(test::reference_greedy(*model, a.prompt, max_tokens));
  for (const Policy& p : policies()) {
    EngineCore core(*model, p.cfg);
    core.capture_logits = true;
    auto got = test::run_core(core, arrivals, max_tokens);
    for (size_t i = 0; i < arrivals.size(); i++) {
      ASSERT_EQ(got[i].ids, want[i].ids) << p.name << " request " << i;
      for (size_t t = 0; t < want[i].logits.size(); t++)
        EXPECT_TRUE(got[i].logits[t] == want[i].logits[t]) << p.name << " request " << i << " token " << t;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(MoeFixtures, PolicyEquivalence,
                         ::testing::Values("qwen3_moe", "mixtral", "deepseek_v3", "kimi_k2", "minimax_m2",
                                           "qwen3_moe_int4"),
                         [](const auto& info) { return info.param; });
// One per attention kind: GQA with per-head q/k norm, MLA, GQA with all-head norm.
INSTANTIATE_TEST_SUITE_P(MoeFixtures, BitIdentical, ::testing::Values("qwen3_moe", "kimi_k2", "minimax_m2"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace strata
