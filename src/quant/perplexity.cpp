// llama-perplexity's computation over a Model (quant/perplexity.h).
#include "quant/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "model/model.h"

namespace strata {

PerplexityResult perplexity(Model& model, const std::vector<int>& tokens, const PerplexityOptions& opt) {
  const int ctx = opt.ctx;
  const int stride = opt.stride > 0 ? opt.stride : ctx;
  STRATA_CHECK(ctx >= 4, "perplexity: ctx must be at least 4");
  STRATA_CHECK(int64_t(tokens.size()) >= ctx, "the text has " + std::to_string(tokens.size()) +
                                                  " tokens, fewer than one chunk of --ctx " + std::to_string(ctx));
  PerplexityResult r;
  r.n_chunks = int((int64_t(tokens.size()) - ctx) / stride + 1);
  const int first = ctx / 2;
  const int V = model.config().n_vocab;
  std::vector<float> logits(size_t(ctx) * V);  // [ctx, vocab]
  double nll = 0, nll2 = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int c = 0; c < r.n_chunks; c++) {
    std::vector<int> chunk(tokens.begin() + int64_t(c) * stride, tokens.begin() + int64_t(c) * stride + ctx);
    if (opt.bos_id >= 0) chunk[0] = opt.bos_id;
    KvCache kv = model.new_cache(ctx);
    model.forward(chunk.data(), ctx, kv, logits.data(), /*all_logits=*/true);
    for (int i = first; i < ctx - 1; i++) {
      const float* row = logits.data() + size_t(i) * V;
      const float mx = *std::max_element(row, row + V);
      double z = 0;
      for (int v = 0; v < V; v++) z += std::exp(double(row[v] - mx));
      const double lp = double(row[chunk[size_t(i + 1)]] - mx) - std::log(z);
      nll -= lp;
      nll2 += lp * lp;
      r.scored++;
    }
    if (opt.progress) {
      const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const int done = c + 1, bar = 30 * done / r.n_chunks;
      std::fprintf(stderr, "\r[%.*s%*s] %d/%d chunks  %.0f tok/s  ppl %.4f  eta %.0f s", bar,
                   "##############################", 30 - bar, "", done, r.n_chunks, double(done) * ctx / el,
                   std::exp(nll / double(r.scored)), el / done * (r.n_chunks - done));
    }
  }
  if (opt.progress) std::fprintf(stderr, "\n");
  const double mean = nll / double(r.scored);
  const double var = nll2 / double(r.scored) - mean * mean;
  r.ppl = std::exp(mean);
  r.stderr_ppl = r.scored > 1 ? r.ppl * std::sqrt(std::max(var, 0.0) / double(r.scored - 1)) : 0;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.tokens_per_s = double(r.n_chunks) * ctx / r.seconds;
  return r;
}

}  // namespace strata
