// `strata logits` (full-sequence forward to a safetensors file) and `strata generate` (greedy
// decode through the KV cache, ids as JSON). Not the server (that is `strata serve`).
#include <algorithm>
#include <cstdio>
#include <vector>

#include "cli/command.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "model/model.h"

namespace strata::cli {
namespace {

std::vector<int> need_ids(const Args& a) {
  std::vector<int> ids = parse_id_list(a.need("input-ids"), "--input-ids");
  STRATA_CHECK(!ids.empty(), "--input-ids is empty");
  return ids;
}

int cmd_logits(const Args& a) {
  auto model = Model::load(a.need("model"));
  std::vector<int> ids = need_ids(a);
  const int T = int(ids.size()), V = model->config().n_vocab;
  KvCache kv = model->new_cache(T);
  std::vector<float> logits(size_t(T) * V);
  model->forward(ids.data(), T, kv, logits.data());
  write_safetensors(a.need("output"), {{"logits", DType::F32, {T, V}, logits.data()}});
  return 0;
}

int cmd_generate(const Args& a) {
  auto model = Model::load(a.need("model"));
  std::vector<int> ids = need_ids(a);
  STRATA_CHECK(a.has("max-tokens"), "missing --max-tokens\nusage:\n" + a.usage);
  const long max_tokens = a.get_int("max-tokens", 0, 0, 1000000);
  const auto& eos = model->config().eos_token_ids;
  const int V = model->config().n_vocab;
  KvCache kv = model->new_cache(int(ids.size() + size_t(max_tokens)));
  std::vector<float> logits(static_cast<size_t>(V));
  std::vector<int> out;
  std::vector<int> next = ids;
  for (long step = 0; step < max_tokens; step++) {
    model->forward(next.data(), int(next.size()), kv, logits.data(), /*all_logits=*/false);
    int best = 0;
    for (int v = 1; v < V; v++)
      if (logits[size_t(v)] > logits[size_t(best)]) best = v;
    out.push_back(best);
    if (!a.flag("ignore-eos") && std::find(eos.begin(), eos.end(), best) != eos.end()) break;
    next = {best};
  }
  std::printf("[");
  for (size_t i = 0; i < out.size(); i++) std::printf("%s%d", i ? ", " : "", out[i]);
  std::printf("]\n");
  return 0;
}

const CommandRegistration kLogits({"logits",
                                   "  strata logits   --model DIR --input-ids 3,14,15 --output FILE.safetensors\n"
                                   "      writes tensor `logits` f32 [T, vocab] of the full-sequence forward",
                                   {}, cmd_logits});
const CommandRegistration kGenerate({"generate",
                                     "  strata generate --model DIR --input-ids 3,14,15 --max-tokens N [--ignore-eos]\n"
                                     "      greedy decode through the KV cache; prints the generated ids as JSON;\n"
                                     "      stops at the model's eos token unless --ignore-eos",
                                     {"ignore-eos"}, cmd_generate});

}  // namespace
}  // namespace strata::cli
