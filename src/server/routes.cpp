// The worker side of the server: routing, API-key check, JSON parsing and the OpenAI mapping that
// turns a request into a response or a prepared Job. Runs on worker threads and touches no socket
// and no connection state: results go to the loop through the Mailbox.
#include <strings.h>

#include <cstdio>
#include <ctime>

#include "server/server_impl.h"

namespace strata::server {

using nlohmann::json;

namespace {

// Compares without an early exit, so response time does not reveal how much of a key matched.
bool constant_time_equal(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; i++) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

}  // namespace

// ============================================================================================
// Worker side: routing, auth, API parsing. Runs on worker threads; touches no connection.

void Server::Impl::worker_main() {
  while (true) {
    std::pair<uint64_t, HttpRequest> item;
    {
      std::unique_lock<std::mutex> lk(wmu);
      wcv.wait(lk, [&] { return wstop || !wq.empty(); });
      if (wq.empty()) return;
      item = std::move(wq.front());
      wq.pop_front();
    }
    Mailbox::Outcome o;
    try {
      o = handle(item.second);
    } catch (const ApiError& e) {
      o = error(e, item.second.keep_alive);
    } catch (const std::exception& e) {
      // A bug or an out-of-memory, not bad input: the server keeps serving.
      o = error(ApiError(500, std::string("internal error: ") + e.what()), false);
    }
    o.conn_id = item.first;
    {
      std::lock_guard<std::mutex> lk(mail->mu);
      mail->outcomes.push_back(std::move(o));
    }
    mail->wake();
  }
}

Mailbox::Outcome Server::Impl::handle(const HttpRequest& req) {
  const bool ka = req.keep_alive && !draining.load();
  const std::string& p = req.path;
  const bool is_get = req.method == "GET";
  auto method_not_allowed = [&](const char* allow) {
    return respond(405, error_body(405, "method " + req.method + " is not allowed on " + p), ka, "application/json",
                   {std::string("Allow: ") + allow});
  };
  if (p == "/health") {
    if (!is_get) return method_not_allowed("GET");
    if (draining.load()) return error(ApiError(503, "the server is shutting down"), false);
    if (!svc.metrics().ready) return error(ApiError(503, "the engine is not ready"), ka);
    return respond(200, "{\"status\":\"ok\"}", ka);
  }
  if (p == "/metrics") {
    if (!is_get) return method_not_allowed("GET");
    return respond(200, metrics.render(svc.metrics()), ka, "text/plain; version=0.0.4; charset=utf-8");
  }
  if (p.rfind("/v1/", 0) != 0) throw ApiError(404, "no route for " + p, "", "not_found");
  // Only the API is behind the key (as vLLM does): load balancers probe /health, and /metrics
  // exposes no content. The key itself is never logged or echoed.
  if (!opt.api_key.empty()) {
    const std::string* auth = req.header("authorization");
    std::string given;
    if (auth && auth->size() > 7 && strncasecmp(auth->c_str(), "Bearer ", 7) == 0) given = auth->substr(7);
    if (!constant_time_equal(given, opt.api_key))
      throw ApiError(401, auth ? "invalid API key" : "missing API key: send 'Authorization: Bearer <key>'", "",
                     "invalid_api_key");
  }
  if (p == "/v1/models") {
    if (!is_get) return method_not_allowed("GET");
    return respond(200, dump_json(models_response(opt.api.model_names, std::time(nullptr), opt.api.max_context)), ka);
  }
  if (p.rfind("/v1/models/", 0) == 0) {
    if (!is_get) return method_not_allowed("GET");
    const std::string name = p.substr(11);
    for (const auto& n : opt.api.model_names)
      if (n == name) {
        json m = models_response({n}, std::time(nullptr), opt.api.max_context)["data"][0];
        return respond(200, dump_json(m), ka);
      }
    throw ApiError(404, "The model '" + name + "' does not exist", "model", "model_not_found");
  }
  if (p == "/v1/completions" || p == "/v1/chat/completions") {
    if (req.method != "POST") return method_not_allowed("POST");
    return generation(req, p == "/v1/completions" ? Endpoint::Completions : Endpoint::Chat);
  }
  throw ApiError(404, "no route for " + p, "", "not_found");
}

Mailbox::Outcome Server::Impl::generation(const HttpRequest& req, Endpoint ep) {
  if (draining.load()) return error(ApiError(503, "the server is shutting down"), false);
  json body;
  try {
    // Deeply nested input would make later recursive copies overflow the stack: refuse it while
    // parsing (the parser itself is iterative).
    body = json::parse(req.body, [](int depth, json::parse_event_t, json&) {
      if (depth > 64) throw ApiError(400, "the JSON body is nested more than 64 levels deep", "", "invalid_json");
      return true;
    });
  } catch (const json::exception& e) {  // parse_error, and out_of_range for numbers like 1e999
    // nlohmann refuses ill-formed UTF-8 inside strings here too (error 101).
    throw ApiError(400, std::string("the body is not valid JSON: ") + e.what(), "", "invalid_json");
  }
  nlohmann::ordered_json obody;  // chat: key order kept for the chat template (tool schemas)
  if (ep == Endpoint::Chat) obody = nlohmann::ordered_json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  ApiRequest r = parse_api_request(body, ep, text, opt.api, obody.is_object() ? &obody : nullptr);
  if (!svc.metrics().ready) throw ApiError(503, "the engine is not ready");

  auto job = std::make_shared<Job>();
  job->req = std::move(r);
  const ApiRequest& a = job->req;
  char idbuf[40];
  std::snprintf(idbuf, sizeof idbuf, "%s-%016llx", ep == Endpoint::Chat ? "chatcmpl" : "cmpl",
                (unsigned long long)(id_salt ^ (0x9e3779b97f4a7c15ULL * ++next_req)));
  job->id = idbuf;
  job->created = std::time(nullptr);
  job->chunked = req.version_minor >= 1;
  job->keep_alive = req.keep_alive && (!a.stream || job->chunked);
  job->start = Clock::now();
  TextConfig tc;
  tc.tok = text.tokenizer;
  tc.stop = a.stop;
  tc.hidden_ids = a.stop_token_ids;
  if (auto eos = text.tokenizer->eos_id()) tc.hidden_ids.push_back(*eos);
  for (int e : svc.eos_ids()) tc.hidden_ids.push_back(e);
  // Tool-call markers are special tokens in some vocabularies (Kimi-K2): then the text keeps
  // special tokens, or the parser would never see a call (as vLLM does for such parsers).
  bool special_markers = false;
  for (const auto& m : tool_format_markers(a.tool_format))
    if (auto id = text.tokenizer->token_to_id(m); id && text.tokenizer->is_special(*id)) special_markers = true;
  tc.skip_special = a.skip_special_tokens && !special_markers;
  tc.tool_format = a.tool_format;
  tc.tools = a.tools;
  tc.logprobs = a.logprobs;
  tc.split_reasoning = ep == Endpoint::Chat;
  tc.starts_in_reasoning = a.starts_in_reasoning;
  for (size_t pi = 0; pi < a.prompts.size(); pi++) {
    const int max_tokens = resolve_max_tokens(a, int(a.prompts[pi].size()), opt.api);
    job->usage.prompt_tokens += int(a.prompts[pi].size());
    for (int j = 0; j < a.n; j++) {
      GenerationRequest g;
      g.prompt = a.prompts[pi];
      g.sampling = a.sampling;
      // n choices of one seeded request differ from each other and are each reproducible.
      if (g.sampling.seed && j > 0) g.sampling.seed = *g.sampling.seed + uint64_t(j);
      g.max_tokens = max_tokens;
      g.stop_token_ids = a.stop_token_ids;
      g.ignore_eos = a.ignore_eos;
      g.top_logprobs = a.logprobs;
      job->gen.push_back(std::move(g));
      const int index = int(pi) * a.n + j;
      job->streams.push_back(std::make_unique<ChoiceStream>(tc, a.prompts[pi], index));
      if (a.echo) {
        job->streams.back()->total().text = a.prompt_texts[pi];
        job->streams.back()->total().text_offset0 = a.prompt_texts[pi].size();
      }
    }
  }
  const size_t n = job->gen.size();
  job->engine_ids.assign(n, 0);
  job->submitted.assign(n, 0);
  job->final_seen.assign(n, 0);
  job->last_token.assign(n, Clock::time_point{});
  Mailbox::Outcome o;
  o.job = std::move(job);
  o.status = 200;
  return o;
}

}  // namespace strata::server
