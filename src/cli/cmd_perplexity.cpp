// `strata perplexity`: perplexity of a model on a text file, computed the way llama.cpp's
// llama-perplexity does: tokenize the whole file (bos only when the tokenizer adds one),
// cut it into chunks of --ctx tokens (a chunk starts every --stride tokens; default = ctx, i.e.
// llama.cpp's non-overlapping chunks), run each chunk from an empty cache (first token replaced
// by bos when the tokenizer adds bos), and score only the second half of each chunk: positions
// ctx/2 .. ctx-2 predicting the next token. PPL = exp(mean NLL over all scored tokens).
// The computation is quant/perplexity.h (shared with the quantisation report); this is the CLI.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/command.h"
#include "core/error.h"
#include "model/model.h"
#include "quant/perplexity.h"
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
  PerplexityOptions po;
  po.ctx = ctx;
  po.stride = stride;
  po.bos_id = add_bos ? *tok->bos_id() : -1;
  std::fprintf(stderr, "perplexity: %zu tokens (tokenized in %.2f s), chunks of %d (stride %d), scoring %d per chunk\n",
               tokens.size(), tok_s, ctx, stride, ctx - 1 - ctx / 2);
  const PerplexityResult r = perplexity(*model, tokens, po);
  std::printf("{\"perplexity\": %.6f, \"stderr\": %.6f, \"chunks\": %d, \"ctx\": %d, \"stride\": %d, \"scored_tokens\": %lld, "
              "\"tokens\": %zu, \"seconds\": %.2f, \"tokens_per_s\": %.1f, \"method\": \"llama.cpp llama-perplexity "
              "(second half of each chunk)\"}\n",
              r.ppl, r.stderr_ppl, r.n_chunks, ctx, stride, r.scored, tokens.size(), r.seconds, r.tokens_per_s);
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
