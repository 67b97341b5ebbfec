// `strata bench-model`: prompt processing and generation speed of a model, measured the way
// llama.cpp's llama-bench does (pp: one batch of N random tokens from an empty cache; tg: N
// tokens one at a time from an empty cache), so the two can be compared run for run.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "cli/command.h"
#include "model/model.h"

namespace strata::cli {
namespace {

int cmd_bench_model(const Args& a) {
  auto model = Model::load(a.need("model"));
  const int pp = int(a.get_int("pp", 512, 0, 1 << 16)), tg = int(a.get_int("tg", 128, 0, 1 << 16));
  const int reps = int(a.get_int("reps", 3, 1, 100));
  const int V = model->config().n_vocab;
  std::mt19937 rng(std::random_device{}());
  std::vector<float> logits(static_cast<size_t>(V));
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::vector<double> pp_rate, tg_rate;
  for (int r = 0; r <= reps; r++) {  // run 0 is a warm-up
    if (pp > 0) {
      std::vector<int> ids(static_cast<size_t>(pp));
      for (int& id : ids) id = int(rng() % uint32_t(V));
      KvCache kv = model->new_cache(pp);
      auto t0 = std::chrono::steady_clock::now();
      model->forward(ids.data(), pp, kv, logits.data(), /*all_logits=*/false);
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (r) pp_rate.push_back(pp / s);
    }
    if (tg > 0) {
      KvCache kv = model->new_cache(tg);
      int id = int(rng() % uint32_t(V));
      auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < tg; i++) {
        model->forward(&id, 1, kv, logits.data(), false);
        id = int(rng() % uint32_t(V));
      }
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (r) tg_rate.push_back(tg / s);
    }
  }
  std::printf("{\"pp\": %d, \"pp_tokens_per_s\": %.2f, \"tg\": %d, \"tg_tokens_per_s\": %.2f, \"reps\": %d}\n", pp,
              pp_rate.empty() ? 0.0 : median(pp_rate), tg, tg_rate.empty() ? 0.0 : median(tg_rate), reps);
  return 0;
}

const CommandRegistration kBench({"bench-model",
                                  "  strata bench-model --model M [--pp 512] [--tg 128] [--reps 3]\n"
                                  "      tokens/s of prompt processing (pp) and generation (tg), llama-bench style;\n"
                                  "      threads: OMP_NUM_THREADS",
                                  {},
                                  cmd_bench_model});

}  // namespace
}  // namespace strata::cli
