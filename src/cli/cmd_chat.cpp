// `strata run` (one prompt, streamed answer) and `strata chat` (interactive REPL): a model, its
// tokenizer and chat template, a sampler, and the KV cache reused across turns (only the new
// suffix of the rendered conversation is computed). Ctrl-C stops the current answer (twice, or
// at the prompt: exit); Ctrl-D at the prompt exits.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "core/error.h"
#include "engine/sampler.h"
#include "model/arch/arch.h"
#include "model/model.h"
#include "tokenizer/model_text.h"

namespace strata::cli {
namespace {

std::atomic<bool> g_interrupt{false};
extern "C" void on_sigint(int) { g_interrupt.store(true); }

SamplingParams sampling_from(const Args& a) {
  SamplingParams p;
  p.temperature = float(a.get_double("temperature", 0.7, 0, 100));
  p.top_k = int(a.get_int("top-k", 40, 0, 1 << 24));
  p.top_p = float(a.get_double("top-p", 0.9, 1e-6, 1));
  p.min_p = float(a.get_double("min-p", 0.0, 0, 1));
  p.repetition_penalty = float(a.get_double("repeat-penalty", 1.0, 1e-3, 100));
  if (a.has("seed")) p.seed = uint64_t(a.get_int("seed", 0, 0, std::numeric_limits<long>::max()));
  validate(p);
  return p;
}

struct Stats {
  int prompt_tokens = 0, gen_tokens = 0;
  double prompt_s = 0, gen_s = 0;
};

// One model with its cache, reused across turns.
class Session {
 public:
  explicit Session(const Args& a) {
    const std::string path = model_path_or_default(a);
    text_ = load_model_text(path, a.get("tokenizer", ""));
    STRATA_CHECK(a.flag("raw") || text_.has_chat_template, path + " has no chat template; use --raw");
    tok_ = text_.tokenizer;
    model_ = Model::load(path);
    ctx_ = int(std::min<long>(a.get_int("ctx", 4096, 16, 1 << 20), model_->config().max_position_embeddings));
    kv_ = model_->new_cache(ctx_);
    max_tokens_ = int(a.get_int("max-tokens", 512, 1, 1 << 20));
    sampling_ = sampling_from(a);
    sampler_ = std::make_unique<Sampler>(sampling_);
  }

  std::vector<int> prompt_ids(const nlohmann::ordered_json& messages) const {
    ChatOptions o;
    o.add_generation_prompt = true;
    return text_.chat_prompt(messages, o);
  }

  std::vector<int> raw_ids(const std::string& text) const { return tok_->encode(text, /*add_special=*/true); }

  // Generates a reply to `prompt` (the whole conversation so far), streaming text to `emit`.
  std::string reply(const std::vector<int>& prompt, const std::function<void(const std::string&)>& emit, Stats& st) {
    STRATA_CHECK(int(prompt.size()) + 1 < ctx_, "the conversation (" + std::to_string(prompt.size()) +
                                                    " tokens) no longer fits the context of " + std::to_string(ctx_) +
                                                    " tokens; start a new chat or raise --ctx");
    // Reuse the cached prefix: only tokens after the common prefix are computed.
    size_t common = 0;
    while (common < cached_.size() && common < prompt.size() && cached_[common] == prompt[common]) common++;
    if (common == prompt.size()) common--;  // recompute the last prompt token to get its logits
    kv_.n_past = int(common);
    cached_.assign(prompt.begin(), prompt.begin() + long(common));
    const int V = model_->config().n_vocab;
    std::vector<float> logits(static_cast<size_t>(V));
    auto t0 = std::chrono::steady_clock::now();
    model_->forward(prompt.data() + common, int(prompt.size() - common), kv_, logits.data(), false);
    cached_.insert(cached_.end(), prompt.begin() + long(common), prompt.end());
    auto t1 = std::chrono::steady_clock::now();
    st.prompt_tokens = int(prompt.size() - common);
    st.prompt_s = std::chrono::duration<double>(t1 - t0).count();

    const auto& eos = model_->config().eos_token_ids;
    StreamDecoder sd(tok_, /*skip_special=*/true, prompt);
    std::vector<int> out;
    std::string text;
    g_interrupt.store(false);
    while (int(out.size()) < max_tokens_ && kv_.n_past < ctx_ && !g_interrupt.load()) {
      int next = sampler_->sample(logits, prompt, out);
      if (std::find(eos.begin(), eos.end(), next) != eos.end()) break;
      out.push_back(next);
      std::string piece = sd.push(next);
      text += piece;
      emit(piece);
      model_->forward(&next, 1, kv_, logits.data(), false);
      cached_.push_back(next);
    }
    std::string rest = sd.finish();
    text += rest;
    emit(rest);
    st.gen_tokens = int(out.size());
    st.gen_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    return text;
  }

 private:
  ModelText text_;
  std::shared_ptr<const Tokenizer> tok_;
  std::unique_ptr<Model> model_;
  int ctx_ = 0, max_tokens_ = 0;
  KvCache kv_;
  std::vector<int> cached_;  // ids whose K/V are in kv_
  SamplingParams sampling_;
  std::unique_ptr<Sampler> sampler_;
};

void print_piece(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

void print_stats(const Stats& st, bool json) {
  const double pp = st.prompt_s > 0 ? st.prompt_tokens / st.prompt_s : 0, tg = st.gen_s > 0 ? st.gen_tokens / st.gen_s : 0;
  if (json)
    std::fprintf(stderr, "{\"prompt_tokens\": %d, \"prompt_tokens_per_s\": %.2f, \"generated_tokens\": %d, "
                         "\"generated_tokens_per_s\": %.2f}\n", st.prompt_tokens, pp, st.gen_tokens, tg);
  else
    std::fprintf(stderr, "[prompt %d tokens at %.1f tok/s, %d tokens generated at %.1f tok/s]\n", st.prompt_tokens, pp,
                 st.gen_tokens, tg);
}

void install_sigint() {
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocked read at the prompt returns and we exit
  sigaction(SIGINT, &sa, nullptr);
}

int cmd_run(const Args& a) {
  install_sigint();
  Session s(a);
  std::vector<int> prompt;
  if (a.flag("raw")) {
    prompt = s.raw_ids(a.need("prompt"));
  } else {
    nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
    if (a.has("system")) msgs.push_back({{"role", "system"}, {"content", a.get("system", "")}});
    msgs.push_back({{"role", "user"}, {"content", a.need("prompt")}});
    prompt = s.prompt_ids(msgs);
  }
  Stats st;
  s.reply(prompt, print_piece, st);
  std::printf("\n");
  std::fflush(stdout);  // the answer's newline before the stats line on stderr
  if (a.flag("stats") || a.flag("stats-json")) print_stats(st, a.flag("stats-json"));
  return 0;
}

int cmd_chat(const Args& a) {
  install_sigint();
  Session s(a);
  const bool tty = isatty(0);
  nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
  if (a.has("system")) msgs.push_back({{"role", "system"}, {"content", a.get("system", "")}});
  if (tty) std::fprintf(stderr, "strata chat: type a message; Ctrl-C stops an answer, Ctrl-D exits.\n");
  while (true) {
    if (tty) std::fputs("> ", stdout), std::fflush(stdout);
    std::string line;
    g_interrupt.store(false);
    if (!std::getline(std::cin, line) || g_interrupt.load()) {
      if (tty) std::printf("\n");
      return 0;
    }
    if (line.empty()) continue;
    msgs.push_back({{"role", "user"}, {"content", line}});
    Stats st;
    std::string answer = s.reply(s.prompt_ids(msgs), print_piece, st);
    std::printf("\n");
    if (g_interrupt.load()) std::fprintf(stderr, "[stopped]\n");
    if (a.flag("stats")) print_stats(st, false);
    msgs.push_back({{"role", "assistant"}, {"content", answer}});
  }
}

const char* kSamplingUsage =
    "      sampling: [--temperature 0.7] [--top-k 40] [--top-p 0.9] [--min-p 0] [--repeat-penalty 1] [--seed N]\n"
    "      [--max-tokens 512] [--ctx 4096] [--system TEXT]; --model defaults to the fetched SmolLM2\n"
    "      (scripts/fetch_model.sh; or $STRATA_MODEL)";

const CommandRegistration kRun({"run",
                                std::string("  strata run  [--model M] --prompt TEXT [--raw] [--stats|--stats-json]\n"
                                            "      one answer, streamed, through the model's chat template (--raw: none)\n") +
                                    kSamplingUsage,
                                {"raw", "stats", "stats-json"},
                                cmd_run});
const CommandRegistration kChat({"chat",
                                 std::string("  strata chat [--model M] [--stats]\n"
                                             "      interactive chat (streams tokens; Ctrl-C stops an answer, Ctrl-D exits)\n") +
                                     kSamplingUsage,
                                 {"stats"},
                                 cmd_chat});

}  // namespace
}  // namespace strata::cli
