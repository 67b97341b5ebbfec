// Perplexity of a model on a token stream, as llama.cpp's llama-perplexity computes it: chunks
// of ctx tokens (one every `stride`), each run from an empty cache, scoring positions
// ctx/2 .. ctx-2 predicting the next token. Shared by `strata perplexity` and the quantisation
// report (which is why it sits in quant/). Not a tokenizer: callers pass ids.
#pragma once
#include <vector>

namespace strata {

class Model;

struct PerplexityOptions {
  int ctx = 512;
  int stride = 0;      // 0: ctx (llama.cpp's non-overlapping chunks)
  int bos_id = -1;     // >= 0: the first token of every chunk is replaced by it
  bool progress = true;  // a progress line on stderr
};

struct PerplexityResult {
  double ppl = 0, stderr_ppl = 0;  // stderr of the mean NLL propagated to PPL
  int n_chunks = 0;
  long long scored = 0;
  double seconds = 0, tokens_per_s = 0;
};

// Throws Error when `tokens` holds fewer than ctx tokens.
PerplexityResult perplexity(Model& model, const std::vector<int>& tokens, const PerplexityOptions& opt);

}  // namespace strata
