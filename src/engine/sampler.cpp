#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>

#include "core/error.h"

namespace strata {

void validate(const SamplingParams& p) {
  STRATA_CHECK(std::isfinite(p.temperature) && p.temperature >= 0 && p.temperature <= 100,
               "temperature must be in [0, 100]");
  STRATA_CHECK(p.top_k >= 0, "top_k must be >= 0");
  STRATA_CHECK(std::isfinite(p.top_p) && p.top_p > 0 && p.top_p <= 1, "top_p must be in (0, 1]");
  STRATA_CHECK(std::isfinite(p.min_p) && p.min_p >= 0 && p.min_p <= 1, "min_p must be in [0, 1]");
  STRATA_CHECK(std::isfinite(p.repetition_penalty) && p.repetition_penalty > 0 && p.repetition_penalty <= 100,
               "repetition_penalty must be in (0, 100]");
  STRATA_CHECK(std::isfinite(p.presence_penalty) && std::fabs(p.presence_penalty) <= 2,
               "presence_penalty must be in [-2, 2]");
  STRATA_CHECK(std::isfinite(p.frequency_penalty) && std::fabs(p.frequency_penalty) <= 2,
               "frequency_penalty must be in [-2, 2]");
}

int argmax(std::span<const float> v) {
  return int(std::max_element(v.begin(), v.end()) - v.begin());
}

Sampler::Sampler(const SamplingParams& p) : p_(p) {
  validate(p);
  rng_.seed(p.seed ? *p.seed : std::random_device{}() ^ (uint64_t(std::random_device{}()) << 32));
}

int Sampler::sample(std::span<float> logits, std::span<const int> prompt, std::span<const int> output) {
  const int V = int(logits.size());
  // Penalties (vLLM order): repetition over prompt and output, presence/frequency over output.
  if (p_.repetition_penalty != 1.0f) {
    auto penalize = [&](int id) {
      if (id < 0 || id >= V) return;
      float& l = logits[size_t(id)];
      l = l > 0 ? l / p_.repetition_penalty : l * p_.repetition_penalty;
    };
    std::vector<uint8_t> seen(size_t(V), 0);
    for (int id : prompt)
      if (id >= 0 && id < V && !seen[size_t(id)]) seen[size_t(id)] = 1, penalize(id);
    for (int id : output)
      if (id >= 0 && id < V && !seen[size_t(id)]) seen[size_t(id)] = 1, penalize(id);
  }
  if (p_.presence_penalty != 0 || p_.frequency_penalty != 0) {
    std::unordered_map<int, int> counts;
    for (int id : output) counts[id]++;
    for (auto [id, n] : counts)
      if (id >= 0 && id < V) logits[size_t(id)] -= p_.presence_penalty + p_.frequency_penalty * float(n);
  }
  const bool greedy = p_.temperature == 0 || p_.top_k == 1;
  const float t = greedy ? 1.0f : p_.temperature;
  // log-softmax at temperature t (kept for logprobs).
  logprobs_.resize(size_t(V));
  float mx = -INFINITY;
  for (float l : logits) mx = std::max(mx, l);
  double z = 0;
  for (int i = 0; i < V; i++) z += std::exp(double((logits[size_t(i)] - mx) / t));
  const float lz = float(std::log(z));
  for (int i = 0; i < V; i++) logprobs_[size_t(i)] = (logits[size_t(i)] - mx) / t - lz;
  if (greedy) return argmax(logits);

  // Candidates sorted by probability; cut by top-k, then top-p mass, then min-p.
  order_.resize(size_t(V));
  std::iota(order_.begin(), order_.end(), 0);
  auto by_prob = [&](int a, int b) { return logprobs_[size_t(a)] > logprobs_[size_t(b)] || (logprobs_[size_t(a)] == logprobs_[size_t(b)] && a < b); };
  int keep = V;
  if (p_.top_k > 0 && p_.top_k < V) {
    keep = p_.top_k;
    std::partial_sort(order_.begin(), order_.begin() + keep, order_.end(), by_prob);
  } else {
    std::sort(order_.begin(), order_.end(), by_prob);
  }
  if (p_.top_p < 1.0f) {
    double mass = 0, total = 0;
    for (int i = 0; i < keep; i++) total += std::exp(double(logprobs_[size_t(order_[size_t(i)])]));
    int j = 0;
    for (; j < keep; j++) {
      mass += std::exp(double(logprobs_[size_t(order_[size_t(j)])])) / total;
      if (mass >= p_.top_p) {
        j++;
        break;
      }
    }
    keep = std::max(1, std::min(keep, j));
  }
  if (p_.min_p > 0) {
    const float floor = logprobs_[size_t(order_[0])] + std::log(p_.min_p);
    int j = 1;
    while (j < keep && logprobs_[size_t(order_[size_t(j)])] >= floor) j++;
    keep = j;
  }
  double total = 0;
  for (int i = 0; i < keep; i++) total += std::exp(double(logprobs_[size_t(order_[size_t(i)])]));
  double r = std::uniform_real_distribution<double>(0.0, total)(rng_);
  for (int i = 0; i < keep; i++) {
    r -= std::exp(double(logprobs_[size_t(order_[size_t(i)])]));
    if (r <= 0) return order_[size_t(i)];
  }
  return order_[size_t(keep - 1)];
}

}  // namespace strata
