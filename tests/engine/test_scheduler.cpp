// Block manager and scheduler on plain data: allocation, prefix hits, LRU eviction, policies'
// step plans, preemption. No model, no tensors: each test runs in microseconds.
// Not numerics: tests/engine/test_engine_equivalence.cpp checks the logits.
#include <gtest/gtest.h>

#include <memory>

#include "engine/kv_cache.h"
#include "engine/scheduler.h"

namespace strata {
namespace {

std::unique_ptr<Sequence> seq(uint64_t id, int n_prompt, int first = 100) {
  auto s = std::make_unique<Sequence>();
  s->id = id;
  for (int i = 0; i < n_prompt; i++) s->tokens.push_back(first + i);
  s->n_prompt = n_prompt;
  return s;
}

// Plays the sampler: every sequence whose logits came out gets one more token.
void complete_and_sample(Scheduler& sc, const StepPlan& p) {
  for (Sequence* s : sc.complete(p)) s->tokens.push_back(7);
}

TEST(LayerGroups, ContiguousLikeArraySplit) {
  EXPECT_EQ(layer_groups(48, 16), (std::vector<int>{0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33, 36, 39, 42, 45, 48}));
  EXPECT_EQ(layer_groups(7, 3), (std::vector<int>{0, 3, 5, 7}));
  EXPECT_EQ(layer_groups(3, 8), (std::vector<int>{0, 1, 2, 3}));  // capped by the layer count
  EXPECT_EQ(layer_groups(5, 1), (std::vector<int>{0, 5}));
}

TEST(BlockManager, AllocatesGrowsAndReleases) {
  BlockManager bm(4, 4, false);
  auto a = seq(1, 6);
  ASSERT_TRUE(bm.allocate(*a));
  EXPECT_EQ(a->block_table.size(), 2u);
  EXPECT_EQ(bm.n_used(), 2);
  EXPECT_TRUE(bm.grow(*a, 8));  // still in block 2
  EXPECT_EQ(bm.n_used(), 2);
  EXPECT_TRUE(bm.grow(*a, 9));
  EXPECT_EQ(bm.n_used(), 3);
  auto b = seq(2, 8);
  EXPECT_FALSE(bm.allocate(*b));  // needs 2, 1 free
  EXPECT_TRUE(b->block_table.empty());
  bm.release(*a);
  EXPECT_EQ(bm.n_used(), 0);
  EXPECT_TRUE(bm.allocate(*b));
}

TEST(BlockManager, PrefixHitsWholeBlocksNeverTheLastToken) {
  BlockManager bm(16, 4, true);
  auto a = seq(1, 10);
  ASSERT_TRUE(bm.allocate(*a));
  EXPECT_EQ(a->n_cached, 0);
  a->n_computed = 10;
  bm.publish(*a);  // blocks [0,4) [4,8) are full and computed
  EXPECT_EQ(a->block_hashes.size(), 2u);
  auto b = seq(2, 12);  // same first 10 tokens, then more
  EXPECT_EQ(bm.cached_prefix(b->tokens), 8);
  ASSERT_TRUE(bm.allocate(*b));
  EXPECT_EQ(b->n_computed, 8);
  EXPECT_EQ(b->block_table[0], a->block_table[0]);  // shared
  EXPECT_EQ(b->block_table[1], a->block_table[1]);
  EXPECT_NE(b->block_table[2], a->block_table[2]);
  auto c = seq(3, 8);  // exactly two blocks: the second holds the last token, so only one hits
  EXPECT_EQ(bm.cached_prefix(c->tokens), 4);
  auto d = seq(4, 10, 200);  // other tokens: no hit
  EXPECT_EQ(bm.cached_prefix(d->tokens), 0);
  EXPECT_EQ(bm.hit_tokens, 8u);
}

TEST(BlockManager, FreeCachedBlocksAreEvictedLeastRecentlyUsedFirst) {
  BlockManager bm(4, 2, true);
  auto a = seq(1, 5);  // 3 blocks, 2 full ones published
  ASSERT_TRUE(bm.allocate(*a));
  a->n_computed = 5;
  bm.publish(*a);
  bm.release(*a);
  EXPECT_EQ(bm.n_used(), 0);
  EXPECT_EQ(bm.cached_prefix(seq(9, 5)->tokens), 4);  // still cached while free
  auto b = seq(2, 6, 300);  // 3 blocks: the two never-cached free ones, then the LRU's oldest
  ASSERT_TRUE(bm.allocate(*b));
  // The deepest block of a's chain went first, so a's first block still hits.
  EXPECT_EQ(bm.cached_prefix(seq(9, 5)->tokens), 2);
  bm.release(*b);
  auto c = seq(3, 5);
  ASSERT_TRUE(bm.allocate(*c));  // the hit block plus two fresh ones
  EXPECT_EQ(c->n_cached, 2);
  EXPECT_EQ(bm.n_used(), 3);
}

SchedulerConfig config(SchedulerPolicy p, int budget, int groups = 0, int L = 6) {
  SchedulerConfig c;
  c.policy = p;
  c.max_step_tokens = budget;
  c.layer_groups = groups;
  c.max_running = 8;
  c.n_layers = L;
  return c;
}

TEST(Scheduler, ChunkedSarathiOrder) {
  BlockManager bm(64, 4, false);
  Scheduler sc(config(SchedulerPolicy::Chunked, 8), bm);
  auto a = seq(1, 3), b = seq(2, 12), c = seq(3, 5);
  sc.add(a.get());
  StepPlan p = sc.schedule();  // a's whole prompt
  ASSERT_EQ(p.items.size(), 1u);
  EXPECT_EQ(p.items[0].token_end, 3);
  complete_and_sample(sc, p);
  sc.add(b.get());
  sc.add(c.get());
  p = sc.schedule();  // decode a, then b's first 7 tokens (budget 8 - 1)
  ASSERT_EQ(p.items.size(), 2u);
  EXPECT_EQ(p.items[0].seq, a.get());
  EXPECT_EQ(p.items[0].n_tokens(), 1);
  EXPECT_EQ(p.items[1].seq, b.get());
  EXPECT_EQ(p.items[1].n_tokens(), 7);
  complete_and_sample(sc, p);
  EXPECT_EQ(b->n_computed, 7);
  EXPECT_EQ(b->n_output(), 0);  // a partial chunk samples nothing
  p = sc.schedule();  // decode a, b's remaining 5, then c gets the 2 left
  ASSERT_EQ(p.items.size(), 3u);
  EXPECT_EQ(p.items[1].seq, b.get());
  EXPECT_EQ(p.items[1].token_begin, 7);
  EXPECT_EQ(p.items[1].token_end, 12);
  EXPECT_EQ(p.items[2].seq, c.get());
  EXPECT_EQ(p.items[2].n_tokens(), 2);
  for (const auto& it : p.items) EXPECT_EQ(it.layer_end - it.layer_begin, 6);
}

TEST(Scheduler, LayeredRunsOneGroupPerStepBesideDecodes) {
  BlockManager bm(64, 4, false);
  Scheduler sc(config(SchedulerPolicy::Layered, 64, 3, 7), bm);
  auto a = seq(1, 2), b = seq(2, 10), c = seq(3, 6), d = seq(4, 4);
  sc.add(a.get());
  StepPlan p = sc.schedule();  // a alone, three groups
  for (int g = 0; g < 3; g++) {
    ASSERT_EQ(p.items.size(), 1u);
    EXPECT_EQ(p.layered_stage, g);
    complete_and_sample(sc, p);
    if (g < 2) p = sc.schedule();
  }
  EXPECT_EQ(a->n_output(), 1);  // first token after the last group
  sc.add(b.get());
  sc.add(c.get());
  const std::vector<int> bounds = {0, 3, 5, 7};
  for (int g = 0; g < 3; g++) {
    p = sc.schedule();
    if (g == 1) sc.add(d.get());  // arrives mid-batch: waits for the batch to finish
    ASSERT_EQ(p.items.size(), 3u);
    EXPECT_EQ(p.items[0].seq, a.get());  // decode: every layer
    EXPECT_EQ(p.items[0].layer_begin, 0);
    EXPECT_EQ(p.items[0].layer_end, 7);
    for (int i : {1, 2}) {
      EXPECT_EQ(p.items[size_t(i)].layer_begin, bounds[size_t(g)]);
      EXPECT_EQ(p.items[size_t(i)].layer_end, bounds[size_t(g) + 1]);
      EXPECT_EQ(p.items[size_t(i)].token_begin, 0);
    }
    complete_and_sample(sc, p);
  }
  EXPECT_EQ(b->n_output(), 1);
  EXPECT_EQ(c->n_output(), 1);
  p = sc.schedule();  // three decodes, d's batch starts
  ASSERT_EQ(p.items.size(), 4u);
  EXPECT_EQ(p.items[3].seq, d.get());
}

TEST(Scheduler, LayeredGroupCountFollowsBatchTokens) {
  BlockManager bm(1024, 16, false);
  Scheduler sc(config(SchedulerPolicy::Layered, 8192, 0, 48), bm);
  auto a = seq(1, 1500);
  sc.add(a.get());
  StepPlan p = sc.schedule();
  ASSERT_EQ(p.items.size(), 1u);
  EXPECT_EQ(p.items[0].layer_end, 16);  // G = ceil(1500 / 512) = 3 -> 16 layers each
}

TEST(Scheduler, LayeredTakesWholePromptsAndCutsOnlyOneLongerThanTheCap) {
  BlockManager bm(64, 4, false);
  Scheduler sc(config(SchedulerPolicy::Layered, 10, 1, 4), bm);
  auto a = seq(1, 6), b = seq(2, 6), c = seq(3, 25);
  sc.add(a.get());
  sc.add(b.get());
  sc.add(c.get());
  StepPlan p = sc.schedule();  // a whole; b would exceed the cap of 10: next batch
  ASSERT_EQ(p.items.size(), 1u);
  EXPECT_EQ(p.items[0].n_tokens(), 6);
  complete_and_sample(sc, p);
  p = sc.schedule();  // a decodes; b alone (c does not fit beside it)
  ASSERT_EQ(p.items.size(), 2u);
  EXPECT_EQ(p.items[1].seq, b.get());
  complete_and_sample(sc, p);
  p = sc.schedule();  // c is longer than the cap: its first 10 tokens
  ASSERT_EQ(p.items.size(), 3u);
  EXPECT_EQ(p.items[2].seq, c.get());
  EXPECT_EQ(p.items[2].token_end, 10);
  complete_and_sample(sc, p);
  p = sc.schedule();  // then the next 10, as a partial prefill
  ASSERT_EQ(p.items.size(), 3u);
  EXPECT_EQ(p.items[2].token_begin, 10);
  EXPECT_EQ(p.items[2].token_end, 20);
}

// The step-time cap: a step with decodes takes only the prefill tokens that fit the target by the measured costs
// (never fewer than min_prefill_chunk); a step without decodes, or before any estimate, keeps the token budget.
TEST(Scheduler, ChunkedStepTargetCapsPrefillBesideDecodes) {
  BlockManager bm(256, 4, false);
  SchedulerConfig cfg = config(SchedulerPolicy::Chunked, 512);
  cfg.step_target_ms = 100;
  cfg.min_prefill_chunk = 16;
  Scheduler sc(cfg, bm);
  EXPECT_EQ(sc.prefill_cap(), -1);  // no estimate yet
  auto a = seq(1, 3), b = seq(2, 300);
  sc.add(a.get());
  StepPlan p = sc.schedule();
  complete_and_sample(sc, p);  // a decodes from now on
  sc.observe_step(0, 1, 40.0);  // a decode step: 40 ms
  EXPECT_EQ(sc.prefill_cap(), -1);  // no prefill cost yet
  sc.observe_step(200, 1, 440.0);  // (440 - 40) / 200 = 2 ms per prefill token
  EXPECT_EQ(sc.prefill_cap(), 30);  // (100 - 40) / 2
  sc.add(b.get());
  p = sc.schedule();
  ASSERT_EQ(p.items.size(), 2u);
  EXPECT_EQ(p.n_decode_tokens, 1);
  EXPECT_EQ(p.items[1].seq, b.get());
  EXPECT_EQ(p.items[1].n_tokens(), 30);
  complete_and_sample(sc, p);
  // A target below the decode step alone still moves prompts by min_prefill_chunk.
  sc.observe_step(0, 1, 150.0);
  sc.observe_step(0, 1, 150.0);
  sc.observe_step(0, 1, 150.0);
  sc.observe_step(0, 1, 150.0);
  sc.observe_step(0, 1, 150.0);
  sc.observe_step(0, 1, 150.0);
  EXPECT_EQ(sc.prefill_cap(), 16);
  p = sc.schedule();
  EXPECT_EQ(p.items[1].n_tokens(), 16);
  complete_and_sample(sc, p);

  // Without decodes the whole budget goes to prefill, cap or not.
  BlockManager bm2(256, 4, false);
  Scheduler solo(cfg, bm2);
  solo.observe_step(0, 1, 40.0);
  solo.observe_step(200, 0, 400.0);
  EXPECT_EQ(solo.prefill_cap(), 30);
  auto c = seq(3, 600);
  solo.add(c.get());
  p = solo.schedule();
  ASSERT_EQ(p.items.size(), 1u);
  EXPECT_EQ(p.items[0].n_tokens(), 512);

  // Off (target 0): the token budget only.
  cfg.step_target_ms = 0;
  BlockManager bm3(256, 4, false);
  Scheduler off(cfg, bm3);
  off.observe_step(0, 1, 40.0);
  off.observe_step(200, 1, 440.0);
  EXPECT_EQ(off.prefill_cap(), -1);
}

TEST(Scheduler, ChunkedLayeredCutsAtTheBudgetAndLayersEachChunk) {
  BlockManager bm(64, 4, false);
  Scheduler sc(config(SchedulerPolicy::ChunkedLayered, 8, 2, 4), bm);
  auto a = seq(1, 12);
  sc.add(a.get());
  StepPlan p = sc.schedule();
  EXPECT_EQ(p.items[0].token_end, 8);
  EXPECT_EQ(p.items[0].layer_end, 2);
  complete_and_sample(sc, p);
  p = sc.schedule();
  EXPECT_EQ(p.items[0].layer_begin, 2);
  complete_and_sample(sc, p);
  EXPECT_EQ(a->n_computed, 8);
  p = sc.schedule();  // the continuation: tokens [8, 12), group 0
  EXPECT_EQ(p.items[0].token_begin, 8);
  EXPECT_EQ(p.items[0].token_end, 12);
  EXPECT_EQ(p.items[0].layer_end, 2);
}

TEST(Scheduler, PreemptsTheNewestWhenBlocksRunOut) {
  BlockManager bm(4, 2, false);  // 8 token slots
  Scheduler sc(config(SchedulerPolicy::None, 64), bm);
  auto a = seq(1, 4), b = seq(2, 3);
  sc.add(a.get());
  sc.add(b.get());
  StepPlan p = sc.schedule();  // both prompts: 2 + 2 blocks
  ASSERT_EQ(p.items.size(), 2u);
  complete_and_sample(sc, p);
  p = sc.schedule();  // a's decode needs a 3rd block: b (newest) is preempted
  ASSERT_EQ(p.preempted, std::vector<uint64_t>{2});
  EXPECT_EQ(b->status, SeqStatus::Waiting);
  EXPECT_EQ(b->n_computed, 0);
  ASSERT_EQ(p.items.size(), 1u);
  EXPECT_EQ(p.items[0].seq, a.get());
  complete_and_sample(sc, p);
  sc.remove(a.get());  // a finishes: b re-runs prompt + its sampled token
  p = sc.schedule();
  ASSERT_EQ(p.items.size(), 1u);
  EXPECT_EQ(p.items[0].seq, b.get());
  EXPECT_EQ(p.items[0].token_end, 4);
  EXPECT_EQ(b->preemptions, 1);
}

}  // namespace
}  // namespace strata
