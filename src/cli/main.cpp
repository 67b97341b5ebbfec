// The `strata` command line: `logits` (full-sequence forward to a safetensors file) and
// `generate` (greedy decode through the KV cache, ids as JSON). Errors go to stderr, exit 1.
// Not the server (that is `strata serve`, issue 5).
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"
#include "model/model.h"

using namespace strata;

namespace {

const char* kUsage =
    "usage:\n"
    "  strata logits   --model DIR --input-ids 3,14,15 --output FILE.safetensors\n"
    "  strata generate --model DIR --input-ids 3,14,15 --max-tokens N [--ignore-eos]\n"
    "\n"
    "logits writes tensor `logits` f32 [T, vocab] of the full-sequence forward.\n"
    "generate runs greedy decode through the KV cache and prints the generated ids as JSON;\n"
    "it stops at the model's eos token unless --ignore-eos.\n";

struct Args {
  std::string cmd;
  std::map<std::string, std::string> opts;
  bool flag(const std::string& k) const { return opts.count(k) != 0; }
  std::string need(const std::string& k) const {
    auto it = opts.find(k);
    STRATA_CHECK(it != opts.end() && !it->second.empty(), "missing --" + k + "\n" + kUsage);
    return it->second;
  }
};

Args parse_args(int argc, char** argv) {
  Args a;
  STRATA_CHECK(argc >= 2, std::string("no command\n") + kUsage);
  a.cmd = argv[1];
  for (int i = 2; i < argc; i++) {
    std::string s = argv[i];
    STRATA_CHECK(s.rfind("--", 0) == 0, "unexpected argument '" + s + "'\n" + kUsage);
    s = s.substr(2);
    if (s == "ignore-eos") {
      a.opts[s] = "1";
    } else {
      STRATA_CHECK(i + 1 < argc, "--" + s + " needs a value");
      a.opts[s] = argv[++i];
    }
  }
  return a;
}

std::vector<int> parse_ids(const std::string& s) {
  std::vector<int> ids;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    std::string tok = s.substr(i, j - i);
    char* end = nullptr;
    errno = 0;
    long v = std::strtol(tok.c_str(), &end, 10);
    STRATA_CHECK(!tok.empty() && end && *end == 0 && errno == 0 && v >= 0 && v <= 0x7fffffff,
                 "--input-ids: '" + tok + "' is not a token id");
    ids.push_back(int(v));
    i = j + 1;
  }
  STRATA_CHECK(!ids.empty(), "--input-ids is empty");
  return ids;
}

int cmd_logits(const Args& a) {
  auto model = Model::load(a.need("model"));
  std::vector<int> ids = parse_ids(a.need("input-ids"));
  const int T = int(ids.size()), V = model->config().n_vocab;
  KvCache kv = model->new_cache(T);
  std::vector<float> logits(size_t(T) * V);
  model->forward(ids.data(), T, kv, logits.data());
  write_safetensors(a.need("output"), {{"logits", DType::F32, {T, V}, logits.data()}});
  return 0;
}

int cmd_generate(const Args& a) {
  auto model = Model::load(a.need("model"));
  std::vector<int> ids = parse_ids(a.need("input-ids"));
  const std::string mt = a.need("max-tokens");
  char* end = nullptr;
  long max_tokens = std::strtol(mt.c_str(), &end, 10);
  STRATA_CHECK(end && *end == 0 && max_tokens >= 0 && max_tokens <= 1000000, "--max-tokens: bad value '" + mt + "'");
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

}  // namespace

int main(int argc, char** argv) {
  try {
    Args a = parse_args(argc, argv);
    if (a.cmd == "logits") return cmd_logits(a);
    if (a.cmd == "generate") return cmd_generate(a);
    if (a.cmd == "--help" || a.cmd == "help" || a.cmd == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    throw Error("unknown command '" + a.cmd + "'\n" + kUsage);
  } catch (const Error& e) {
    std::fprintf(stderr, "strata: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "strata: error: out of memory\n");
    return 1;
  }
}
