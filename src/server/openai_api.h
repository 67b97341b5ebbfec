// The OpenAI HTTP API as Strata speaks it: request JSON -> ApiRequest (validated, tokenized),
// and the JSON of errors, completions, chat completions and their stream chunks.
// Not transport and not generation: no sockets here, and no engine calls (server.cpp does both).
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "server/tool_calls.h"
#include "tokenizer/model_text.h"

namespace strata::server {

// An error the client caused (or must hear about), in OpenAI's shape:
// {"error": {"message", "type", "param", "code"}}.
struct ApiError : std::runtime_error {
  int status;
  std::string type, param, code;
  ApiError(int status_, std::string message, std::string param_ = "", std::string code_ = "",
           std::string type_ = "");
};
std::string error_body(const ApiError& e);
std::string error_body(int status, const std::string& message, const std::string& param = "",
                       const std::string& code = "");

enum class Endpoint { Completions, Chat };

// What the API layer validates against (facts about the served model and the server's limits).
struct ApiLimits {
  std::vector<std::string> model_names;  // accepted "model" values; the first is reported
  int max_context = 0;                   // prompt + max_tokens must fit
  int vocab_size = 0;                    // token-id prompts must be below it
  int default_max_tokens = 0;            // chat without max_tokens: 0 = the rest of the context
  int max_n = 16;                        // choices per prompt
  int max_prompts = 64;                  // completions: prompts per request
  int max_stop = 16;                     // stop strings; 4 in OpenAI, a little more here
  int max_top_logprobs = 20;
};

struct ApiRequest {
  Endpoint endpoint = Endpoint::Completions;
  std::string model;                      // the reported model id
  std::vector<std::vector<int>> prompts;  // completions: one per prompt; chat: exactly one
  int n = 1;
  bool stream = false;
  bool include_usage = false;             // stream_options.include_usage
  bool return_stats = false;              // Strata extension: per-choice engine stats in the reply
  int max_tokens = 16;                    // resolved against the context, per prompt at submit
  bool max_tokens_given = false;
  std::vector<std::string> stop;          // cut the text before the first match, finish "stop"
  std::vector<int> stop_token_ids;
  bool ignore_eos = false;
  bool skip_special_tokens = true;
  bool echo = false;                      // completions: prepend the prompt text
  std::vector<std::string> prompt_texts;  // for echo
  int logprobs = -1;                      // < 0: none; else alternatives per token (0..20)
  SamplingParams sampling;
  bool starts_in_reasoning = false;       // chat: the rendered prompt ends inside <think>
  // chat: the request's `tools` (rendered into the prompt) and the format tool calls are parsed
  // in (None: not parsed, e.g. no tools, tool_choice "none", or a template without tool calls).
  nlohmann::ordered_json tools;
  ToolFormat tool_format = ToolFormat::None;
};

// Parses and validates a request body (already known to be valid JSON) for `endpoint`. Text
// prompts and chat messages are tokenized here, so this runs on a worker thread. Throws ApiError.
// ordered_body: the same body with its objects' key order kept (what chat templates print, e.g.
// the order of a tool's parameters); without it the order is nlohmann::json's (sorted).
ApiRequest parse_api_request(const nlohmann::json& body, Endpoint endpoint, const ModelText& text,
                             const ApiLimits& lim, const nlohmann::ordered_json* ordered_body = nullptr);

// The max_tokens a prompt of `prompt_len` tokens gets (throws ApiError 400 when it cannot fit).
int resolve_max_tokens(const ApiRequest& r, int prompt_len, const ApiLimits& lim);

// One token's logprob entry, rendered per endpoint by the builders below.
struct LogprobEntry {
  std::string token;           // the token's text (decoded alone)
  float logprob = 0;
  std::vector<std::pair<std::string, float>> top;  // alternatives, best first
};

// The text and state of one choice, as the response builders need it.
struct ChoiceResult {
  int index = 0;
  std::string text;            // completions text / chat content
  std::string reasoning;       // chat: reasoning_content (empty: none)
  bool has_reasoning = false;
  std::vector<LogprobEntry> logprobs;
  size_t text_offset0 = 0;     // completions: offset of the first token's text (echo)
  std::string finish_reason;   // "stop", "length", "abort", "error", "tool_calls"
  std::vector<ToolCall> tool_calls;  // chat: parsed tool calls (a delta: the calls completed in it)
};

struct Usage {
  int prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
};

nlohmann::json usage_json(const Usage& u);
// The engine's per-choice RequestStats (queue/TTFT/e2e seconds, expert bytes read by the steps the
// choice took part in, prefix-cache hits, preemptions), for "return_stats": true.
nlohmann::json stats_json(int index, const RequestStats& s);
// Non-streamed responses.
nlohmann::json completion_response(const std::string& id, int64_t created, const std::string& model,
                                   const std::vector<ChoiceResult>& choices, const Usage& u, bool logprobs);
nlohmann::json chat_response(const std::string& id, int64_t created, const std::string& model,
                             const std::vector<ChoiceResult>& choices, const Usage& u, bool logprobs);
// Stream chunks: one choice's delta (text/reasoning may be empty; finish_reason "" = null).
nlohmann::json completion_chunk(const std::string& id, int64_t created, const std::string& model,
                                const ChoiceResult& delta, bool logprobs, const std::string& finish_reason);
nlohmann::json chat_chunk(const std::string& id, int64_t created, const std::string& model, const ChoiceResult& delta,
                          bool logprobs, const std::string& finish_reason, bool role);
// The final usage chunk (choices: []).
nlohmann::json usage_chunk(const std::string& id, int64_t created, const std::string& model, Endpoint ep,
                           const Usage& u);
// "data: <json>\n\n" with invalid UTF-8 replaced (the text side never produces it, but a reply
// must never throw).
std::string sse_event(const nlohmann::json& j);
std::string dump_json(const nlohmann::json& j);

nlohmann::json models_response(const std::vector<std::string>& names, int64_t created, int max_context);

}  // namespace strata::server
