// Token sampling from logits: penalties -> temperature -> top-k / top-p / min-p -> draw.
// Temperature 0 (or top_k 1) is greedy. A seed makes the draw sequence reproducible.
// Not batched: one sequence's next token; the engine keeps one Sampler per sequence.
#pragma once
#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <vector>

namespace strata {

struct SamplingParams {
  float temperature = 1.0f;          // 0: greedy
  int top_k = 0;                     // 0: off
  float top_p = 1.0f;                // nucleus mass in (0, 1]
  float min_p = 0.0f;                // drop tokens below min_p * p(max)
  float repetition_penalty = 1.0f;   // HF/CTRL style, on tokens seen in prompt or output
  float presence_penalty = 0.0f;     // OpenAI style, on tokens in the output
  float frequency_penalty = 0.0f;    // OpenAI style, times the token's count in the output
  std::optional<uint64_t> seed;      // none: nondeterministic
};

// Throws Error naming the first out-of-range field.
void validate(const SamplingParams& p);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);
  // logits [V] (modified in place by penalties); `prompt` and `output` are the ids so far.
  int sample(std::span<float> logits, std::span<const int> prompt, std::span<const int> output);
  // log-softmax of the logits the last sample() drew from (after penalties and temperature).
  const std::vector<float>& last_logprobs() const { return logprobs_; }

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<float> logprobs_;
  std::vector<int> order_;
};

int argmax(std::span<const float> v);

}  // namespace strata
