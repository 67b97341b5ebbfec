// OpenAI request validation and response JSON for /v1/completions and /v1/chat/completions.
// Not lenient about types: a wrong type or an out-of-range value is a 400 naming the field
// (param), never a silent default, since silent defaults are how peers ended up ignoring seeds.
#include "server/openai_api.h"

#include <climits>
#include <cmath>
#include <tuple>

#include "core/error.h"

namespace strata::server {

using nlohmann::json;

ApiError::ApiError(int status_, std::string message, std::string param_, std::string code_, std::string type_)
    : std::runtime_error(std::move(message)), status(status_), type(std::move(type_)), param(std::move(param_)),
      code(std::move(code_)) {
  if (type.empty()) {
    switch (status) {
      case 401: type = "authentication_error"; break;
      case 403: type = "permission_error"; break;
      case 404: type = "not_found_error"; break;
      case 429: type = "rate_limit_error"; break;
      default: type = status >= 500 ? "server_error" : "invalid_request_error";
    }
  }
}

std::string dump_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string error_body(const ApiError& e) {
  json err = {{"message", e.what()},
              {"type", e.type},
              {"param", e.param.empty() ? json(nullptr) : json(e.param)},
              {"code", e.code.empty() ? json(nullptr) : json(e.code)}};
  return dump_json(json{{"error", err}});
}

std::string error_body(int status, const std::string& message, const std::string& param, const std::string& code) {
  return error_body(ApiError(status, message, param, code));
}

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& msg, const std::string& code = "") {
  throw ApiError(400, msg, param, code);
}

const json* field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return nullptr;  // null means "not given", as OpenAI treats it
  return &*it;
}

// An integer field within [lo, hi]; values beyond 64 bits or non-integers are refused by type.
std::optional<int64_t> opt_int(const json& body, const char* key, int64_t lo, int64_t hi) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) bad(key, std::string("'") + key + "' must be an integer");
  int64_t x;
  if (v->is_number_unsigned()) {
    uint64_t u = v->get<uint64_t>();
    x = u > uint64_t(INT64_MAX) ? INT64_MAX : int64_t(u);
  } else {
    x = v->get<int64_t>();
  }
  if (x < lo || x > hi)
    bad(key, std::string("'") + key + "' must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                 std::to_string(x));
  return x;
}

std::optional<double> opt_num(const json& body, const char* key, double lo, double hi) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) bad(key, std::string("'") + key + "' must be a number");
  double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi)
    bad(key, std::string("'") + key + "' must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}

std::optional<bool> opt_bool(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) bad(key, std::string("'") + key + "' must be a boolean");
  return v->get<bool>();
}

std::vector<int> token_ids(const json& arr, const char* param, int vocab) {
  std::vector<int> ids;
  ids.reserve(arr.size());
  for (const auto& t : arr) {
    if (!t.is_number_integer()) bad(param, std::string("'") + param + "' token ids must be integers");
    int64_t x = t.is_number_unsigned() ? (t.get<uint64_t>() > uint64_t(INT_MAX) ? INT64_MAX : t.get<int64_t>())
                                       : t.get<int64_t>();
    if (x < 0 || x >= vocab)
      bad(param, "token id " + std::to_string(x) + " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    ids.push_back(int(x));
  }
  return ids;
}

std::vector<int> encode_text(const ModelText& text, const std::string& s, bool add_special, const char* param) {
  try {
    return text.tokenizer->encode(s, add_special);
  } catch (const Error& e) {
    bad(param, std::string("cannot tokenize '") + param + "': " + e.what());
  }
}

void parse_prompts(const json& body, const ModelText& text, const ApiLimits& lim, ApiRequest& r) {
  const json* p = field(body, "prompt");
  if (!p) bad("prompt", "'prompt' is required");
  auto add_text = [&](const json& s) {
    r.prompt_texts.push_back(s.get<std::string>());
    r.prompts.push_back(encode_text(text, r.prompt_texts.back(), true, "prompt"));
  };
  if (p->is_string()) {
    add_text(*p);
  } else if (p->is_array() && !p->empty() && (*p)[0].is_number()) {
    r.prompts.push_back(token_ids(*p, "prompt", lim.vocab_size));
    r.prompt_texts.push_back("");
  } else if (p->is_array() && !p->empty()) {
    if (int(p->size()) > lim.max_prompts)
      bad("prompt", "at most " + std::to_string(lim.max_prompts) + " prompts per request");
    for (const auto& e : *p) {
      if (e.is_string()) {
        add_text(e);
      } else if (e.is_array()) {
        r.prompts.push_back(token_ids(e, "prompt", lim.vocab_size));
        r.prompt_texts.push_back("");
      } else {
        bad("prompt", "'prompt' must be a string, an array of strings, an array of token ids or an array of those");
      }
    }
  } else {
    bad("prompt", "'prompt' must be a string, an array of strings, an array of token ids or an array of those");
  }
  for (auto& ids : r.prompts)
    if (ids.empty()) bad("prompt", "a prompt is empty");
  if (r.echo)  // token-id prompts echo their decoded text
    for (size_t i = 0; i < r.prompts.size(); i++)
      if (r.prompt_texts[i].empty()) r.prompt_texts[i] = text.tokenizer->decode(r.prompts[i], true);
}

using ojson = nlohmann::ordered_json;

// Message content may be a string or a list of parts; only text parts are understood.
ojson normalize_content(const ojson& c, size_t i) {
  const std::string param = "messages[" + std::to_string(i) + "].content";
  if (c.is_null() || c.is_string()) return c;
  if (!c.is_array()) bad(param, "'" + param + "' must be a string or an array of content parts");
  std::string s;
  for (const auto& part : c) {
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
      bad(param, "each content part must be an object with a 'type'");
    if (part["type"] != "text") bad(param, "content part type '" + part["type"].get<std::string>() + "' is not supported");
    if (!part.contains("text") || !part["text"].is_string()) bad(param, "a text content part needs a string 'text'");
    s += part["text"].get<std::string>();
  }
  return s;
}

// An assistant message's tool_calls, as chat templates expect them: like vLLM, function.arguments
// (a JSON string in the OpenAI API) becomes the object it encodes (templates print it with tojson
// or iterate its items); a missing or empty one becomes {}.
ojson normalize_tool_calls(const ojson& tc, const std::string& param) {
  if (!tc.is_array()) bad(param, "'" + param + "' must be an array");
  ojson out = ojson::array();
  for (size_t k = 0; k < tc.size(); k++) {
    const std::string p = param + "[" + std::to_string(k) + "]";
    ojson c = tc[k];
    if (!c.is_object()) bad(p, "'" + p + "' must be an object");
    if (c.contains("type") && c["type"] != "function") bad(p + ".type", "only tool calls of type 'function' are supported");
    if (!c.contains("function") || !c["function"].is_object()) bad(p + ".function", "'" + p + ".function' must be an object");
    ojson& f = c["function"];
    if (!f.contains("name") || !f["name"].is_string() || f["name"].get<std::string>().empty())
      bad(p + ".function.name", "'" + p + ".function.name' must be a non-empty string");
    auto it = f.find("arguments");
    if (it == f.end() || it->is_null() || (it->is_string() && it->get<std::string>().empty())) {
      f["arguments"] = ojson::object();
    } else if (it->is_string()) {
      ojson a = ojson::parse(it->get<std::string>(), nullptr, false);
      if (a.is_discarded() || !a.is_object())
        bad(p + ".function.arguments", "'" + p + ".function.arguments' must be a JSON object (as a string)");
      *it = std::move(a);
    } else if (!it->is_object()) {
      bad(p + ".function.arguments", "'" + p + ".function.arguments' must be a JSON object (as a string)");
    }
    out.push_back(std::move(c));
  }
  return out;
}

// OpenAI function tools: [{"type": "function", "function": {"name", "description"?, "parameters"?}}].
void validate_tools(const ojson& t) {
  if (!t.is_array()) bad("tools", "'tools' must be an array");
  for (size_t k = 0; k < t.size(); k++) {
    const std::string p = "tools[" + std::to_string(k) + "]";
    const ojson& e = t[k];
    if (!e.is_object()) bad(p, "'" + p + "' must be an object");
    if (!e.contains("type") || e["type"] != "function") bad(p + ".type", "'" + p + ".type' must be 'function'");
    if (!e.contains("function") || !e["function"].is_object())
      bad(p + ".function", "'" + p + ".function' must be an object");
    const ojson& f = e["function"];
    if (!f.contains("name") || !f["name"].is_string() || f["name"].get<std::string>().empty())
      bad(p + ".function.name", "'" + p + ".function.name' must be a non-empty string");
    if (f.contains("description") && !f["description"].is_string() && !f["description"].is_null())
      bad(p + ".function.description", "'" + p + ".function.description' must be a string");
    if (f.contains("parameters") && !f["parameters"].is_object())
      bad(p + ".function.parameters", "'" + p + ".function.parameters' must be a JSON schema object");
  }
}

void parse_chat(const json& body, const ojson& obody, const ModelText& text, ApiRequest& r) {
  const json* m = field(body, "messages");
  if (!m) bad("messages", "'messages' is required");
  if (!m->is_array() || m->empty()) bad("messages", "'messages' must be a non-empty array");
  if (!text.has_chat_template) bad("messages", "this model has no chat template; use /v1/completions");
  const ojson& om = obody.contains("messages") ? obody["messages"] : obody;
  if (!om.is_array() || om.size() != m->size()) bad("messages", "'messages' must be a non-empty array");
  nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
  std::vector<std::tuple<size_t, size_t, ojson>> raw_args;  // (message, call, arguments as sent)
  for (size_t i = 0; i < om.size(); i++) {
    const ojson& msg = om[i];
    const std::string param = "messages[" + std::to_string(i) + "]";
    if (!msg.is_object()) bad(param, "'" + param + "' must be an object");
    if (!msg.contains("role") || !msg["role"].is_string()) bad(param + ".role", "'" + param + ".role' must be a string");
    const std::string role = msg["role"];
    if (role != "system" && role != "user" && role != "assistant" && role != "tool" && role != "developer")
      bad(param + ".role", "unknown role '" + role + "'");
    nlohmann::ordered_json out = nlohmann::ordered_json::object();
    out["role"] = role;
    for (auto it = msg.begin(); it != msg.end(); ++it) {
      if (it.key() == "role") continue;
      if (it.key() == "content") {
        out["content"] = normalize_content(it.value(), i);
      } else if (it.key() == "tool_calls" && role == "assistant" && !it.value().is_null()) {
        out["tool_calls"] = normalize_tool_calls(it.value(), param + ".tool_calls");
        for (size_t k = 0; k < it.value().size(); k++) {
          const ojson& f = it.value()[k]["function"];
          if (f.contains("arguments") && f["arguments"].is_string())
            raw_args.emplace_back(msgs.size(), k, f["arguments"]);
        }
      } else {
        out[it.key()] = it.value();
      }
    }
    if (role == "tool" && msg.contains("tool_call_id") && !msg["tool_call_id"].is_string())
      bad(param + ".tool_call_id", "'" + param + ".tool_call_id' must be a string");
    // No content or null content (an assistant turn that only calls tools) is "", as vLLM passes
    // it: templates such as Qwen3's test `'</think>' in content`, which fails on None.
    if (!out.contains("content") || out["content"].is_null()) out["content"] = "";
    msgs.push_back(std::move(out));
  }
  ChatOptions opt;
  opt.add_generation_prompt = opt_bool(body, "add_generation_prompt").value_or(true);
  if (opt_bool(body, "continue_final_message").value_or(false))
    bad("continue_final_message", "'continue_final_message' is not supported");
  std::string tool_choice = "auto";
  if (field(body, "tools")) {
    if (!obody.contains("tools")) bad("tools", "'tools' must be an array");
    validate_tools(obody["tools"]);
    opt.tools = obody["tools"];
  }
  if (const json* tc = field(body, "tool_choice")) {
    if (tc->is_string() && (*tc == "auto" || *tc == "none")) {
      tool_choice = tc->get<std::string>();
    } else if ((tc->is_string() && *tc == "required") || tc->is_object()) {
      bad("tool_choice", "tool_choice 'required' and named functions are not supported; use 'auto' or 'none'");
    } else {
      bad("tool_choice", "'tool_choice' must be 'auto', 'none', 'required' or a named function");
    }
  }
  if (const json* ptc = field(body, "parallel_tool_calls"); ptc && !ptc->is_boolean())
    bad("parallel_tool_calls", "'parallel_tool_calls' must be a boolean");
  // Tools are rendered whatever tool_choice says (as vLLM does); calls are parsed with "auto".
  if (opt.tools.is_array() && !opt.tools.empty() && tool_choice == "auto") {
    r.tool_format = detect_tool_format(text.chat_template.source(true));
    r.tools = opt.tools;
  }
  if (const json* k = field(body, "chat_template_kwargs")) {
    if (!k->is_object()) bad("chat_template_kwargs", "'chat_template_kwargs' must be an object");
    for (auto it = k->begin(); it != k->end(); ++it) {
      if (it.key() == "messages" || it.key() == "tools" || it.key() == "documents" ||
          it.key() == "add_generation_prompt")
        bad("chat_template_kwargs", "'chat_template_kwargs' may not set '" + it.key() + "'");
      opt.vars[it.key()] = it.value();
    }
  }
  std::vector<int> ids;
  try {
    ids = text.chat_prompt(msgs, opt);
  } catch (const Error& e) {
    // Templates written for the OpenAI shape (DeepSeek-V3's concatenates the arguments as a
    // string) get the tool calls' arguments as the client sent them.
    bool retried = false;
    if (!raw_args.empty()) {
      for (auto& [i, k, a] : raw_args) msgs[i]["tool_calls"][k]["function"]["arguments"] = a;
      try {
        ids = text.chat_prompt(msgs, opt);
        retried = true;
      } catch (const Error&) {
      }
    }
    if (!retried) bad("messages", std::string("the chat template failed on these messages: ") + e.what());
  }
  if (ids.empty()) bad("messages", "the rendered prompt is empty");
  // A thinking model whose generation prompt opens <think> (Kimi-K2-Thinking, Qwen3 variants)
  // starts its answer inside the reasoning section.
  if (auto think = text.tokenizer->token_to_id("<think>")) {
    for (size_t k = ids.size(); k-- > 0;) {
      if (ids[k] == *think) { r.starts_in_reasoning = true; break; }
      std::string t = text.tokenizer->decode(std::span<const int>(&ids[k], 1), false);
      if (t.find_first_not_of(" \t\r\n") != std::string::npos) break;
    }
  }
  r.prompts.push_back(std::move(ids));
}

void parse_stop(const json& body, const ApiLimits& lim, ApiRequest& r) {
  if (const json* s = field(body, "stop")) {
    if (s->is_string()) {
      r.stop.push_back(s->get<std::string>());
    } else if (s->is_array()) {
      if (int(s->size()) > lim.max_stop) bad("stop", "at most " + std::to_string(lim.max_stop) + " stop strings");
      for (const auto& e : *s) {
        if (!e.is_string()) bad("stop", "'stop' must be a string or an array of strings");
        r.stop.push_back(e.get<std::string>());
      }
    } else {
      bad("stop", "'stop' must be a string or an array of strings");
    }
    for (const auto& x : r.stop)
      if (x.empty()) bad("stop", "stop strings must not be empty");
  }
  if (const json* t = field(body, "stop_token_ids")) {
    if (!t->is_array() || t->size() > 256) bad("stop_token_ids", "'stop_token_ids' must be an array of token ids");
    r.stop_token_ids = token_ids(*t, "stop_token_ids", lim.vocab_size);
  }
}

void parse_sampling(const json& body, ApiRequest& r) {
  SamplingParams& p = r.sampling;
  if (auto v = opt_num(body, "temperature", 0, 1e4)) p.temperature = float(*v);
  if (auto v = opt_num(body, "top_p", 0, 1)) p.top_p = float(*v);
  if (auto v = opt_int(body, "top_k", -1, INT_MAX)) p.top_k = *v < 0 ? 0 : int(*v);  // -1: off (vLLM)
  if (auto v = opt_num(body, "min_p", 0, 1)) p.min_p = float(*v);
  if (auto v = opt_num(body, "presence_penalty", -2, 2)) p.presence_penalty = float(*v);
  if (auto v = opt_num(body, "frequency_penalty", -2, 2)) p.frequency_penalty = float(*v);
  if (auto v = opt_num(body, "repetition_penalty", 1e-3, 100)) p.repetition_penalty = float(*v);
  if (const json* s = field(body, "seed")) {
    if (!s->is_number_integer()) bad("seed", "'seed' must be an integer");
    p.seed = s->is_number_unsigned() ? s->get<uint64_t>() : uint64_t(s->get<int64_t>());
  }
  try {
    validate(p);
  } catch (const Error& e) {
    bad("", e.what());
  }
}

}  // namespace

ApiRequest parse_api_request(const json& body, Endpoint endpoint, const ModelText& text, const ApiLimits& lim,
                             const nlohmann::ordered_json* ordered_body) {
  if (!body.is_object()) bad("", "the request body must be a JSON object");
  ApiRequest r;
  r.endpoint = endpoint;
  r.model = lim.model_names.empty() ? "" : lim.model_names[0];
  if (const json* m = field(body, "model")) {
    if (!m->is_string()) bad("model", "'model' must be a string");
    bool known = false;
    for (const auto& n : lim.model_names) known |= (n == m->get<std::string>());
    if (!known)
      throw ApiError(404, "The model '" + m->get<std::string>() + "' does not exist; this server serves '" + r.model + "'",
                     "model", "model_not_found");
  }
  r.n = int(opt_int(body, "n", 1, lim.max_n).value_or(1));
  if (auto b = opt_int(body, "best_of", 1, lim.max_n); b && *b != r.n) bad("best_of", "'best_of' other than n is not supported");
  r.stream = opt_bool(body, "stream").value_or(false);
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) bad("stream_options", "'stream_options' must be an object");
    if (!r.stream) bad("stream_options", "'stream_options' is only allowed with stream: true");
    r.include_usage = opt_bool(*so, "include_usage").value_or(false);
  }
  r.ignore_eos = opt_bool(body, "ignore_eos").value_or(false);
  r.return_stats = opt_bool(body, "return_stats").value_or(false);
  r.skip_special_tokens = opt_bool(body, "skip_special_tokens").value_or(true);
  if (const json* lb = field(body, "logit_bias"); lb && !(lb->is_object() && lb->empty()))
    bad("logit_bias", "'logit_bias' is not supported");
  if (const json* rf = field(body, "response_format")) {
    if (!rf->is_object() || !rf->contains("type") || (*rf)["type"] != "text")
      bad("response_format", "only response_format {\"type\": \"text\"} is supported");
  }
  // max_tokens: checked for range here, against the context per prompt in resolve_max_tokens().
  const char* mt_key = "max_tokens";
  if (endpoint == Endpoint::Chat && field(body, "max_completion_tokens")) mt_key = "max_completion_tokens";
  if (auto v = opt_int(body, mt_key, 1, INT64_MAX)) {
    r.max_tokens = *v > INT_MAX ? INT_MAX : int(*v);
    r.max_tokens_given = true;
  }
  parse_stop(body, lim, r);
  parse_sampling(body, r);

  if (endpoint == Endpoint::Completions) {
    r.echo = opt_bool(body, "echo").value_or(false);
    if (const json* s = field(body, "suffix"); s && !(s->is_string() && s->get<std::string>().empty()))
      bad("suffix", "'suffix' is not supported");
    if (const json* lp = field(body, "logprobs")) {
      if (lp->is_boolean()) r.logprobs = lp->get<bool>() ? 0 : -1;  // tolerated: some clients send a bool
      else r.logprobs = int(opt_int(body, "logprobs", 0, lim.max_top_logprobs).value());
    }
    parse_prompts(body, text, lim, r);
  } else {
    bool lp = opt_bool(body, "logprobs").value_or(false);
    auto top = opt_int(body, "top_logprobs", 0, lim.max_top_logprobs);
    if (top && !lp) bad("top_logprobs", "'top_logprobs' requires 'logprobs': true");
    r.logprobs = lp ? int(top.value_or(0)) : -1;
    if (ordered_body) {
      parse_chat(body, *ordered_body, text, r);
    } else {
      const nlohmann::ordered_json ob(body);
      parse_chat(body, ob, text, r);
    }
  }
  for (const auto& ids : r.prompts) resolve_max_tokens(r, int(ids.size()), lim);  // refuse before any compute
  return r;
}

int resolve_max_tokens(const ApiRequest& r, int prompt_len, const ApiLimits& lim) {
  const char* param = r.endpoint == Endpoint::Chat ? "messages" : "prompt";
  if (prompt_len >= lim.max_context)
    throw ApiError(400,
                   "This model's maximum context length is " + std::to_string(lim.max_context) + " tokens; the " +
                       (r.endpoint == Endpoint::Chat ? "messages have " : "prompt has ") + std::to_string(prompt_len) +
                       " tokens, leaving no room to generate",
                   param, "context_length_exceeded");
  const int room = lim.max_context - prompt_len;
  if (!r.max_tokens_given) {
    if (r.endpoint == Endpoint::Completions) return std::min(16, room);
    return lim.default_max_tokens > 0 ? std::min(lim.default_max_tokens, room) : room;
  }
  if (r.max_tokens > room)
    throw ApiError(400,
                   "This model's maximum context length is " + std::to_string(lim.max_context) + " tokens; you asked for " +
                       std::to_string(prompt_len) + " prompt tokens plus " + std::to_string(r.max_tokens) +
                       " completion tokens",
                   r.endpoint == Endpoint::Chat ? "max_completion_tokens" : "max_tokens", "context_length_exceeded");
  return r.max_tokens;
}

json usage_json(const Usage& u) {
  json j = {{"prompt_tokens", u.prompt_tokens},
            {"completion_tokens", u.completion_tokens},
            {"total_tokens", u.prompt_tokens + u.completion_tokens}};
  j["prompt_tokens_details"] = {{"cached_tokens", u.cached_tokens}};
  return j;
}

json stats_json(int index, const RequestStats& s) {
  return {{"index", index},
          {"prompt_tokens", s.prompt_tokens},
          {"completion_tokens", s.completion_tokens},
          {"cached_prompt_tokens", s.cached_prompt_tokens},
          {"queue_s", s.queue_s},
          {"ttft_s", s.ttft_s},
          {"e2e_s", s.e2e_s},
          {"expert_bytes", s.expert_bytes},
          {"preemptions", s.preemptions}};
}

namespace {

json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(int(c));
  return b;
}

json completion_logprobs(const ChoiceResult& c) {
  json tokens = json::array(), lps = json::array(), tops = json::array(), offs = json::array();
  size_t off = c.text_offset0;
  for (const auto& e : c.logprobs) {
    tokens.push_back(e.token);
    lps.push_back(e.logprob);
    json t = json::object();
    for (const auto& [s, lp] : e.top)
      if (!t.contains(s)) t[s] = lp;  // the dict keeps the best of tokens that decode alike
    tops.push_back(std::move(t));
    offs.push_back(off);
    off += e.token.size();
  }
  return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offs}};
}

json chat_logprobs(const ChoiceResult& c) {
  json content = json::array();
  for (const auto& e : c.logprobs) {
    json top = json::array();
    for (const auto& [s, lp] : e.top) top.push_back({{"token", s}, {"logprob", lp}, {"bytes", bytes_of(s)}});
    content.push_back({{"token", e.token}, {"logprob", e.logprob}, {"bytes", bytes_of(e.token)}, {"top_logprobs", top}});
  }
  return {{"content", content}};
}

json tool_calls_json(const std::vector<ToolCall>& calls, bool with_index) {
  json a = json::array();
  for (const auto& c : calls) {
    json j = json::object();
    if (with_index) j["index"] = c.index;
    j["id"] = c.id;
    j["type"] = "function";
    j["function"] = {{"name", c.name}, {"arguments", c.arguments}};
    a.push_back(std::move(j));
  }
  return a;
}

json finish_json(const std::string& f) { return f.empty() ? json(nullptr) : json(f); }

}  // namespace

json completion_response(const std::string& id, int64_t created, const std::string& model,
                         const std::vector<ChoiceResult>& choices, const Usage& u, bool logprobs) {
  json cs = json::array();
  for (const auto& c : choices)
    cs.push_back({{"index", c.index},
                  {"text", c.text},
                  {"logprobs", logprobs ? completion_logprobs(c) : json(nullptr)},
                  {"finish_reason", finish_json(c.finish_reason)}});
  return {{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model}, {"choices", cs},
          {"usage", usage_json(u)}};
}

json chat_response(const std::string& id, int64_t created, const std::string& model,
                   const std::vector<ChoiceResult>& choices, const Usage& u, bool logprobs) {
  json cs = json::array();
  for (const auto& c : choices) {
    json msg = {{"role", "assistant"}, {"content", c.text}};
    if (c.has_reasoning) msg["reasoning_content"] = c.reasoning;
    if (!c.tool_calls.empty()) {
      if (c.text.empty()) msg["content"] = nullptr;
      msg["tool_calls"] = tool_calls_json(c.tool_calls, false);
    }
    cs.push_back({{"index", c.index},
                  {"message", msg},
                  {"logprobs", logprobs ? chat_logprobs(c) : json(nullptr)},
                  {"finish_reason", finish_json(c.finish_reason)}});
  }
  return {{"id", id}, {"object", "chat.completion"}, {"created", created}, {"model", model}, {"choices", cs},
          {"usage", usage_json(u)}};
}

json completion_chunk(const std::string& id, int64_t created, const std::string& model, const ChoiceResult& d,
                      bool logprobs, const std::string& finish_reason) {
  json c = {{"index", d.index},
            {"text", d.text},
            {"logprobs", logprobs && !d.logprobs.empty() ? completion_logprobs(d) : json(nullptr)},
            {"finish_reason", finish_json(finish_reason)}};
  return {{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model}, {"choices", json::array({c})}};
}

json chat_chunk(const std::string& id, int64_t created, const std::string& model, const ChoiceResult& d, bool logprobs,
                const std::string& finish_reason, bool role) {
  json delta = json::object();
  if (role) delta["role"] = "assistant";
  if (role || !d.text.empty()) delta["content"] = d.text;
  if (!d.reasoning.empty()) delta["reasoning_content"] = d.reasoning;
  if (!d.tool_calls.empty()) delta["tool_calls"] = tool_calls_json(d.tool_calls, true);
  json c = {{"index", d.index},
            {"delta", delta},
            {"logprobs", logprobs && !d.logprobs.empty() ? chat_logprobs(d) : json(nullptr)},
            {"finish_reason", finish_json(finish_reason)}};
  return {{"id", id}, {"object", "chat.completion.chunk"}, {"created", created}, {"model", model},
          {"choices", json::array({c})}};
}

json usage_chunk(const std::string& id, int64_t created, const std::string& model, Endpoint ep, const Usage& u) {
  return {{"id", id},
          {"object", ep == Endpoint::Chat ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", model},
          {"choices", json::array()},
          {"usage", usage_json(u)}};
}

std::string sse_event(const json& j) { return "data: " + dump_json(j) + "\n\n"; }

json models_response(const std::vector<std::string>& names, int64_t created, int max_context) {
  json data = json::array();
  for (const auto& n : names)
    data.push_back({{"id", n}, {"object", "model"}, {"created", created}, {"owned_by", "strata"},
                    {"max_model_len", max_context}});
  return {{"object", "list"}, {"data", data}};
}

}  // namespace strata::server
