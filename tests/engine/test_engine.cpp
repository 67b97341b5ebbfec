// The threaded Engine (engine.h contract): streaming events with exactly one final event,
// admission errors before compute, stop ids, logprobs, seeds, abort freeing blocks, drain and
// abort on shutdown, metrics. Not policy numerics: test_engine_equivalence.cpp does those.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "engine/engine.h"
#include "engine_test_util.h"

namespace strata {
namespace {

// Collects one request's events from the engine thread.
struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<GenerationEvent> events;
  int finals = 0;

  EventSink sink() {
    return [this](const GenerationEvent& e) {
      std::lock_guard<std::mutex> lk(mu);
      events.push_back(e);
      finals += e.finished;
      cv.notify_all();
    };
  }
  // Waits for the final event (at most 20 s) and returns it.
  GenerationEvent wait() {
    std::unique_lock<std::mutex> lk(mu);
    EXPECT_TRUE(cv.wait_for(lk, std::chrono::seconds(20), [&] { return finals > 0; }));
    return events.empty() ? GenerationEvent{} : events.back();
  }
  std::vector<int> tokens() {
    std::lock_guard<std::mutex> lk(mu);
    std::vector<int> t;
    for (const auto& e : events)
      if (!e.finished) t.push_back(e.token);
    return t;
  }
};

EngineConfig small_config(SchedulerPolicy p = SchedulerPolicy::Chunked) {
  EngineConfig c;
  c.policy = p;
  c.max_step_tokens = 32;
  c.layer_groups = 2;
  c.kv_block_size = 8;
  c.kv_blocks = 64;
  return c;
}

GenerationRequest greedy(std::vector<int> prompt, int max_tokens) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0;
  r.ignore_eos = true;
  return r;
}

TEST(Engine, StreamsTheUnscheduledGreedyTokensOnEveryPolicy) {
  auto model = test::load_fixture("qwen3_moe");
  const int V = model->config().n_vocab;
  std::vector<std::vector<int>> prompts = {test::random_prompt(20, V, 1), test::random_prompt(45, V, 2),
                                           test::random_prompt(3, V, 3)};
  for (SchedulerPolicy p : {SchedulerPolicy::None, SchedulerPolicy::Chunked, SchedulerPolicy::Layered,
                            SchedulerPolicy::ChunkedLayered}) {
    Engine engine(model, small_config(p));
    std::vector<Collector> c(prompts.size());
    for (size_t i = 0; i < prompts.size(); i++) engine.submit(greedy(prompts[i], 6), c[i].sink());
    for (size_t i = 0; i < prompts.size(); i++) {
      GenerationEvent fin = c[i].wait();
      EXPECT_EQ(fin.reason, FinishReason::Length);
      EXPECT_EQ(fin.token, -1);
      EXPECT_EQ(c[i].tokens(), test::reference_greedy(*model, prompts[i], 6).ids);
      EXPECT_EQ(fin.stats.prompt_tokens, int(prompts[i].size()));
      EXPECT_EQ(fin.stats.completion_tokens, 6);
      EXPECT_GT(fin.stats.expert_bytes, 0u);
      EXPECT_GE(fin.stats.e2e_s, fin.stats.ttft_s);
      EXPECT_GE(fin.stats.ttft_s, fin.stats.queue_s);
    }
    engine.shutdown(true);
    for (auto& x : c) EXPECT_EQ(x.finals, 1);
    EngineMetrics m = engine.metrics();
    EXPECT_EQ(m.generated_tokens, 18u);
    EXPECT_EQ(m.prompt_tokens, 68u);
    EXPECT_EQ(m.kv_blocks_used, 0);
    EXPECT_GT(m.expert_bytes, 0u);
    EXPECT_FALSE(m.ready);
    // Per-layer expert bytes add up to the total; every qwen3_moe layer is MoE.
    ASSERT_EQ(m.layer_expert_bytes.size(), size_t(model->config().n_layers));
    uint64_t sum = 0;
    for (uint64_t b : m.layer_expert_bytes) {
      EXPECT_GT(b, 0u);
      sum += b;
    }
    EXPECT_EQ(sum, m.expert_bytes);
    EXPECT_EQ(m.prefill_tokens_computed, 68u);  // distinct prompts: no prefix hits
  }
}

TEST(Engine, AdmissionErrorsComeBeforeAnyCompute) {
  auto model = test::load_fixture("mixtral");
  const int V = model->config().n_vocab;
  EngineConfig cfg = small_config();
  cfg.max_context = 100;
  Engine engine(model, cfg);
  Collector c;
  auto kind_of = [&](GenerationRequest r) {
    try {
      engine.submit(std::move(r), c.sink());
    } catch (const AdmissionError& e) {
      return int(e.kind);
    }
    return -1;
  };
  EXPECT_EQ(kind_of(greedy({}, 4)), AdmissionError::BadRequest);
  EXPECT_EQ(kind_of(greedy({1, V}, 4)), AdmissionError::BadRequest);
  EXPECT_EQ(kind_of(greedy({1, -3}, 4)), AdmissionError::BadRequest);
  EXPECT_EQ(kind_of(greedy({1, 2}, 0)), AdmissionError::BadRequest);
  EXPECT_EQ(kind_of(greedy({1, 2}, -5)), AdmissionError::BadRequest);
  GenerationRequest hot = greedy({1, 2}, 4);
  hot.sampling.temperature = -1;
  EXPECT_EQ(kind_of(hot), AdmissionError::BadRequest);
  GenerationRequest many = greedy({1, 2}, 4);
  many.top_logprobs = 21;
  EXPECT_EQ(kind_of(many), AdmissionError::BadRequest);
  EXPECT_EQ(kind_of(greedy(test::random_prompt(90, V, 1), 11)), AdmissionError::PromptTooLong);
  EXPECT_EQ(kind_of(greedy({1, 2}, 2000000000)), AdmissionError::PromptTooLong);
  EXPECT_EQ(engine.metrics().steps, 0u);  // nothing ran
  EXPECT_TRUE(c.events.empty());
  EXPECT_EQ(kind_of(greedy(test::random_prompt(90, V, 1), 10)), -1);  // exactly the context: fine
  EXPECT_EQ(c.wait().reason, FinishReason::Length);
  engine.shutdown(true);
  EXPECT_EQ(kind_of(greedy({1, 2}, 4)), AdmissionError::ShuttingDown);

  EngineConfig tiny = small_config();
  tiny.kv_blocks = 2;  // 16 tokens of KV
  Engine small(model, tiny);
  try {
    small.submit(greedy(test::random_prompt(12, V, 2), 8), c.sink());
    ADD_FAILURE() << "a request larger than the whole KV cache was admitted";
  } catch (const AdmissionError& e) {
    EXPECT_EQ(e.kind, AdmissionError::PromptTooLong);
  }
  EngineConfig noqueue = small_config();
  noqueue.max_waiting = 0;
  Engine full(model, noqueue);
  try {
    full.submit(greedy({1, 2}, 4), c.sink());
    ADD_FAILURE() << "admitted past a zero-length queue";
  } catch (const AdmissionError& e) {
    EXPECT_EQ(e.kind, AdmissionError::QueueFull);
  }
}

// The step-time target is the chunked scheduler's: a negative one, or one for another policy, is a clear error
// at construction rather than a silently ignored setting.
TEST(Engine, StepTargetOnlyForTheChunkedScheduler) {
  auto model = test::load_fixture("mixtral");
  EngineConfig cfg = small_config();
  cfg.policy = SchedulerPolicy::Chunked;
  cfg.step_target_ms = 100;
  EXPECT_NO_THROW(Engine(model, cfg));
  cfg.step_target_ms = -1;
  EXPECT_THROW(Engine(model, cfg), Error);
  cfg.step_target_ms = 100;
  cfg.policy = SchedulerPolicy::Layered;
  EXPECT_THROW(Engine(model, cfg), Error);
}

TEST(Engine, StopIdsLogprobsAndSeeds) {
  auto model = test::load_fixture("kimi_k2");
  const int V = model->config().n_vocab;
  const auto prompt = test::random_prompt(17, V, 5);
  const auto want = test::reference_greedy(*model, prompt, 6).ids;
  Engine engine(model, small_config());

  GenerationRequest stop = greedy(prompt, 6);
  stop.stop_token_ids = {want[2]};
  stop.top_logprobs = 3;
  Collector a;
  engine.submit(stop, a.sink());
  GenerationEvent fin = a.wait();
  EXPECT_EQ(fin.reason, FinishReason::Stop);
  // The stop token is reported; generation ends at its first occurrence.
  const size_t first = size_t(std::find(want.begin(), want.end(), want[2]) - want.begin());
  EXPECT_EQ(a.tokens(), std::vector<int>(want.begin(), want.begin() + ptrdiff_t(first) + 1));
  for (const auto& e : a.events) {
    if (e.finished) continue;
    ASSERT_EQ(e.top.size(), 3u);
    EXPECT_EQ(e.top[0].id, e.token);  // greedy picks the most likely
    EXPECT_FLOAT_EQ(e.top[0].logprob, e.logprob);
    EXPECT_LE(e.logprob, 0.f);
    EXPECT_GE(e.top[0].logprob, e.top[1].logprob);
    EXPECT_GE(e.top[1].logprob, e.top[2].logprob);
  }

  // Sampling at temperature 1 with a seed: the same seed gives the same tokens.
  auto sampled = [&](uint64_t seed) {
    GenerationRequest r = greedy(prompt, 12);
    r.sampling.temperature = 1.0f;
    r.sampling.top_p = 0.9f;
    r.sampling.seed = seed;
    Collector c;
    engine.submit(r, c.sink());
    c.wait();
    return c.tokens();
  };
  const auto s1 = sampled(7), s2 = sampled(7), s3 = sampled(8);
  EXPECT_EQ(s1, s2);
  EXPECT_EQ(s1.size(), 12u);
  EXPECT_NE(s1, s3);  // 12 draws from a random model: equal by chance is negligible
}

TEST(Engine, AbortFinishesWithinAStepAndFreesBlocks) {
  auto model = test::load_fixture("deepseek_v3");
  const int V = model->config().n_vocab;
  Engine engine(model, small_config());
  Collector c, other;
  const uint64_t id = engine.submit(greedy(test::random_prompt(30, V, 9), 400), c.sink());
  engine.submit(greedy(test::random_prompt(10, V, 10), 5), other.sink());
  {
    std::unique_lock<std::mutex> lk(c.mu);
    ASSERT_TRUE(c.cv.wait_for(lk, std::chrono::seconds(20), [&] { return c.events.size() >= 2; }));
  }
  engine.abort(id);
  GenerationEvent fin = c.wait();
  EXPECT_EQ(fin.reason, FinishReason::Abort);
  EXPECT_LT(fin.stats.completion_tokens, 400);
  engine.abort(id);  // idempotent
  engine.abort(12345);
  EXPECT_EQ(other.wait().reason, FinishReason::Length);
  engine.shutdown(true);
  EXPECT_EQ(c.finals, 1);
  EXPECT_EQ(engine.metrics().kv_blocks_used, 0);
}

// Many client threads submitting and aborting at once, as HTTP workers do: every request gets
// exactly one final event, aborted ones end Abort (or had already finished), the rest Length, and
// the pool is empty afterwards.
TEST(Engine, ConcurrentSubmitAndAbortFromManyThreads) {
  auto model = test::load_fixture("qwen3_moe");
  const int V = model->config().n_vocab;
  EngineConfig cfg = small_config(SchedulerPolicy::ChunkedLayered);
  cfg.kv_blocks = 40;  // tight: preemption happens too
  cfg.max_running = 16;
  Engine engine(model, cfg);
  constexpr int kThreads = 4, kPerThread = 10;
  std::vector<Collector> c(kThreads * kPerThread);
  std::vector<std::thread> threads;
  std::atomic<int> aborted{0};
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<uint32_t>(t));
      for (int i = 0; i < kPerThread; i++) {
        Collector& col = c[size_t(t * kPerThread + i)];
        const int len = 1 + int(rng() % 40);
        const uint64_t id = engine.submit(greedy(test::random_prompt(len, V, rng()), 1 + int(rng() % 8)), col.sink());
        if (rng() % 3 == 0) {
          std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
          engine.abort(id);
          aborted++;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  int n_abort = 0;
  for (auto& col : c) {
    const GenerationEvent fin = col.wait();
    EXPECT_TRUE(fin.reason == FinishReason::Length || fin.reason == FinishReason::Abort) << fin.error;
    n_abort += fin.reason == FinishReason::Abort;
  }
  engine.shutdown(true);
  for (auto& col : c) EXPECT_EQ(col.finals, 1);
  EXPECT_LE(n_abort, aborted.load());
  const EngineMetrics m = engine.metrics();
  EXPECT_EQ(m.kv_blocks_used, 0);
  EXPECT_EQ(m.running, 0);
  EXPECT_EQ(m.waiting, 0);
}

TEST(Engine, PolicyNamesRoundTrip) {
  for (SchedulerPolicy p : {SchedulerPolicy::None, SchedulerPolicy::Chunked, SchedulerPolicy::Layered,
                            SchedulerPolicy::ChunkedLayered}) {
    SchedulerPolicy q = SchedulerPolicy::None;
    ASSERT_TRUE(parse_scheduler_policy(scheduler_policy_name(p), q));
    EXPECT_EQ(q, p);
    EXPECT_GE(default_max_step_tokens(p), 512);
  }
  SchedulerPolicy q;
  EXPECT_FALSE(parse_scheduler_policy("Layered ", q));
  EXPECT_FALSE(parse_scheduler_policy("", q));
  // Layered needs a batch cap large enough for several groups.
  EXPECT_GT(default_max_step_tokens(SchedulerPolicy::Layered), default_max_step_tokens(SchedulerPolicy::Chunked));
}

TEST(Engine, ShutdownDrainsOrAborts) {
  auto model = test::load_fixture("minimax_m2");
  const int V = model->config().n_vocab;
  for (bool drain : {true, false}) {
    Engine engine(model, small_config());
    std::vector<Collector> c(4);
    for (size_t i = 0; i < c.size(); i++)
      engine.submit(greedy(test::random_prompt(8 + int(i), V, uint32_t(i)), drain ? 5 : 300), c[i].sink());
    engine.shutdown(drain);
    for (auto& x : c) {
      EXPECT_EQ(x.finals, 1);  // every request got its final event before shutdown returned
      EXPECT_EQ(x.events.back().reason, drain ? FinishReason::Length : FinishReason::Abort);
      if (drain) {
        EXPECT_EQ(x.tokens().size(), 5u);
      }
    }
    EXPECT_EQ(engine.metrics().kv_blocks_used, 0);
  }
}

}  // namespace
}  // namespace strata
