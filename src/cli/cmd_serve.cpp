// `strata serve`: loads a model, starts the engine thread and the OpenAI-compatible HTTP server,
// prints the URL when ready, drains on SIGTERM/SIGINT and exits 0.
// Not the server itself (src/server/) and not the engine (src/engine/): flags -> configs, wiring.
#include <csignal>
#include <cstdio>
#include <cstdlib>

#include "cli/command.h"
#include "core/error.h"
#include "engine/engine.h"
#include "model/model.h"
#include "server/server.h"
#include "tokenizer/model_text.h"

namespace strata::cli {
namespace {

std::atomic<server::Server*> g_server{nullptr};
extern "C" void on_stop_signal(int) {
  if (server::Server* s = g_server.load()) s->request_stop();  // async-signal-safe (eventfd write)
}

SchedulerPolicy parse_policy(const std::string& s) {
  SchedulerPolicy p;
  if (!parse_scheduler_policy(s, p))
    throw Error("--scheduler: '" + s + "' is not one of none, chunked, layered, chunked+layered");
  return p;
}

// "models/qwen3_moe/" -> "qwen3_moe"; "x/SmolLM2.Q4_1.gguf" -> "SmolLM2.Q4_1.gguf"
std::string default_model_name(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

int cmd_serve(const Args& a) {
  const std::string path = model_path_or_default(a);
  ModelText text = load_model_text(path, a.get("tokenizer", ""));
  if (a.has("chat-template")) {
    // A .jinja file, or a tokenizer directory / tokenizer_config.json (with its special tokens).
    const std::string t = a.get("chat-template", "");
    const bool jinja = t.size() > 6 && t.compare(t.size() - 6, 6, ".jinja") == 0;
    text.chat_template = jinja ? ChatTemplate::from_file(t) : ChatTemplate::from_tokenizer_config(t);
    text.has_chat_template = true;
  }
  std::shared_ptr<Model> model = Model::load(path);
  const int model_ctx = model->config().max_position_embeddings;  // 0: unknown

  EngineConfig ec;
  ec.policy = parse_policy(a.get("scheduler", "chunked"));
  // Each policy's own default budget (chunked 512, layered 8192, ...), as the engine defines them.
  ec.max_step_tokens = int(a.get_int("max-step-tokens", default_max_step_tokens(ec.policy), 1, 1 << 20));
  ec.layer_groups = int(a.get_int("layer-groups", 0, 0, 1 << 16));
  ec.step_target_ms = a.get_double("step-target-ms", 0, 0, 1e6);
  ec.kv_block_size = int(a.get_int("kv-block-size", ec.kv_block_size, 1, 4096));
  ec.kv_blocks = int(a.get_int("kv-blocks", 0, 0, 1 << 30));
  ec.max_running = int(a.get_int("max-running", ec.max_running, 1, 1 << 16));
  ec.max_waiting = int(a.get_int("max-waiting", ec.max_waiting, 0, 1 << 24));
  // The context the API validates against is the engine's: --ctx capped by the model's own.
  const int mpe = model_ctx > 0 ? model_ctx : 4096;
  const int ctx = int(a.get_int("ctx", 0, 0, 1 << 24));
  ec.max_context = ctx == 0 ? mpe : std::min(ctx, mpe);
  ec.prefix_caching = !a.flag("no-prefix-caching");

  server::ServerOptions so;
  so.host = a.get("host", "127.0.0.1");
  so.port = int(a.get_int("port", 8000, 0, 65535));
  // The key may come from the environment so that it does not show in `ps`.
  so.api_key = a.get("api-key", std::getenv("STRATA_API_KEY") ? std::getenv("STRATA_API_KEY") : "");
  const std::string name = a.get("served-model-name", default_model_name(path));
  so.api.model_names = {name};
  if (path != name) so.api.model_names.push_back(path);
  so.api.max_context = ec.max_context;
  so.api.vocab_size = std::max(model->config().n_vocab, text.tokenizer->vocab_size());
  so.api.default_max_tokens = int(a.get_int("default-max-tokens", 0, 0, 1 << 24));
  so.api.max_n = int(a.get_int("max-n", 16, 1, 256));
  so.http.max_body_bytes = size_t(a.get_int("max-body-bytes", long(so.http.max_body_bytes), 1024, 1L << 30));
  so.request_timeout_s = a.get_double("request-timeout", so.request_timeout_s, 0.01, 86400);
  so.idle_timeout_s = a.get_double("idle-timeout", so.idle_timeout_s, 0.01, 86400);
  so.write_timeout_s = a.get_double("write-timeout", so.write_timeout_s, 0.01, 86400);
  so.drain_timeout_s = a.get_double("drain-timeout", so.drain_timeout_s, 0, 86400);
  so.max_connections = int(a.get_int("max-connections", so.max_connections, 1, 1 << 20));
  so.workers = int(a.get_int("workers", so.workers, 1, 256));
  so.log_requests = !a.flag("quiet");

  // The tokenizer may be larger than the model's embedding (added tokens): ids past the model's
  // vocabulary are refused by the engine, the API checks the tighter bound.
  so.api.vocab_size = model->config().n_vocab;
  auto engine = std::make_unique<Engine>(model, ec);
  auto svc = server::make_engine_service(std::move(engine), ec.max_context);
  server::Server srv(so, *svc, std::move(text));
  srv.listen();

  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  g_server.store(&srv);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  const bool v6 = so.host.find(':') != std::string::npos;
  std::printf("strata serve: model %s (context %d, scheduler %s, %d step tokens) ready at http://%s%s%s:%d/v1\n",
              name.c_str(), ec.max_context, scheduler_policy_name(ec.policy), ec.max_step_tokens, v6 ? "[" : "",
              so.host.c_str(), v6 ? "]" : "", srv.port());
  std::fflush(stdout);
  srv.run();
  g_server.store(nullptr);
  // The HTTP side drained (or gave up after --drain-timeout and aborted what was left).
  svc->shutdown(false);
  std::fprintf(stderr, "strata serve: stopped\n");
  return 0;
}

const CommandRegistration kServe(
    {"serve",
     "  strata serve [--model M] [--host 127.0.0.1] [--port 8000] [--api-key K | $STRATA_API_KEY]\n"
     "      [--scheduler none|chunked|layered|chunked+layered] [--layer-groups G] [--max-step-tokens T]\n"
     "      [--step-target-ms MS]\n"
     "      [--kv-blocks B] [--kv-block-size 16] [--max-running 64] [--max-waiting 1024] [--ctx N]\n"
     "      [--no-prefix-caching] [--served-model-name NAME] [--tokenizer PATH] [--chat-template FILE|DIR]\n"
     "      [--default-max-tokens N] [--max-n 16] [--max-body-bytes 4194304] [--request-timeout 30]\n"
     "      [--idle-timeout 60] [--write-timeout 60] [--drain-timeout 60] [--max-connections 4096] [--workers 2]\n"
     "      [--quiet]\n"
     "      OpenAI-compatible server: /v1/completions, /v1/chat/completions, /v1/models, /health, /metrics;\n"
     "      SIGTERM drains in-flight requests and exits 0",
     {"no-prefix-caching", "quiet"},
     cmd_serve});

}  // namespace
}  // namespace strata::cli
