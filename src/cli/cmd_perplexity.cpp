// `strata perplexity`: perplexity of a model on a text file, computed the way llama.cpp's
// llama-perplexity does: tokenize the whole file (bos only when the tokenizer adds one),
// cut it into chunks of --ctx tokens (a chunk starts every --stride tokens; default = ctx, i.e.
// llama.cpp's non-overlapping chunks), run each chunk from an empty cache (first token replaced
// by bos when the tokenizer adds bos), and score only the second half of each chunk: positions
// ctx/2 .. ctx-2 predicting the next token. PPL = exp(mean NLL over all scored tokens).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/command.h"
#include "core/error.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace strata::cli {
namespace {

std::string tokenizer_path_for(const std::string& model) { return model; }  // tokenizer.json dir or the .gguf

int cmd_perplexity(const Args& a) {
  const std::string model_path = a.need("model");
  auto tok = Tokenizer::load(a.get("tokenizer", tokenizer_path_for(model_path)));
  auto model = Model::load(model_path);
  std::ifstream f(a.need("file"), std::ios::binary);
  STRATA_CHECK(f, "cannot open " + a.need("file"));
  std::stringstream ss;
  ss << f.rdbuf();
  const int ctx = int(a.get_int("ctx", 512, 4, 1 << 20));
  const int stride = int(a.get_int("stride", ctx, 1, ctx));
  const long max_tokens = a.get_int("max-tokens", 0, 0, 1L << 40);  // 0: the whole file

  auto t0 = std::chrono::steady_clock::now();
  std::vector<int> tokens = tok->encode(ss.str(), /*add_special=*/true);
  const bool add_bos = !tokens.empty() && tok->bos_id() && tokens[0] == *tok->bos_id() &&
                       tok->encode("a", true).size() > tok->encode("a", false).size();
  if (max_tokens > 0 && long(tokens.size()) > max_tokens) tokens.resize(size_t(max_tokens));
  const double tok_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  STRATA_CHECK(int64_t(tokens.size()) >= ctx, "the text has " + std::to_string(tokens.size()) +
                                                  " tokens, fewer than one chunk of --ctx " + std::to_string(ctx));
  const int n_chunks = int((int64_t(tokens.size()) - ctx) / stride + 1);
  const int first = ctx / 2;
  std::fprintf(stderr, "perplexity: %zu tokens (tokenized in %.2f s), %d chunks of %d (stride %d), scoring %d per chunk\n",
               tokens.size(), tok_s, n_chunks, ctx, stride, ctx - 1 - first);

  const int V = model->config().n_vocab;
  std::vector<float> logits(size_t(ctx) * V);
  double nll = 0, nll2 = 0;
  int64_t count = 0;
  auto start = std::chrono::steady_clock::now();
  for (int c = 0; c < n_chunks; c++) {
    std::vector<int> chunk(tokens.begin() + int64_t(c) * stride, tokens.begin() + int64_t(c) * stride + ctx);
    if (add_bos) chunk[0] = *tok->bos_id();
    KvCache kv = model->new_cache(ctx);
    model->forward(chunk.data(), ctx, kv, logits.data(), /*all_logits=*/true);
    for (int i = first; i < ctx - 1; i++) {
      const float* row = logits.data() + size_t(i) * V;
      float mx = row[0];
      for (int v = 1; v < V; v++) mx = std::max(mx, row[v]);
      double z = 0;
      for (int v = 0; v < V; v++) z += std::exp(double(row[v] - mx));
      const double lp = double(row[chunk[size_t(i + 1)]] - mx) - std::log(z);
      nll -= lp;
      nll2 += lp * lp;
      count++;
    }
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const int done = c + 1;
    const int bar = 30 * done / n_chunks;
    std::fprintf(stderr, "\r[%.*s%*s] %d/%d chunks  %.0f tok/s  ppl %.4f  eta %.0f s", bar,
                 "##############################", 30 - bar, "", done, n_chunks, double(done) * ctx / el,
                 std::exp(nll / double(count)), el / done * (n_chunks - done));
  }
  std::fprintf(stderr, "\n");
  const double mean = nll / double(count);
  // Standard error of the mean NLL, propagated to PPL (as llama-perplexity reports it).
  const double var = nll2 / double(count) - mean * mean;
  const double ppl = std::exp(mean);
  const double err = ppl * std::sqrt(std::max(var, 0.0) / double(count - 1));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("{\"perplexity\": %.6f, \"stderr\": %.6f, \"chunks\": %d, \"ctx\": %d, \"stride\": %d, \"scored_tokens\": %lld, "
              "\"tokens\": %zu, \"seconds\": %.2f, \"tokens_per_s\": %.1f, \"method\": \"llama.cpp llama-perplexity "
              "(second half of each chunk)\"}\n",
              ppl, err, n_chunks, ctx, stride, (long long)count, tokens.size(), secs, double(n_chunks) * ctx / secs);
  return 0;
}

const CommandRegistration kPerplexity(
    {"perplexity",
     "  strata perplexity --model M --file TEXT [--ctx 512] [--stride 512] [--max-tokens N] [--tokenizer T]\n"
     "      perplexity as llama.cpp's llama-perplexity computes it (chunks of ctx, second half scored);\n"
     "      --max-tokens: use only the first N tokens of the file",
     {},
     cmd_perplexity});

}  // namespace
}  // namespace strata::cli
