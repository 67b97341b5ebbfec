// Unit tests of the server half: HTTP parsing/framing, OpenAI JSON <-> requests, the per-choice
// text stream (stop strings, reasoning), metrics exposition, and the whole server in-process over
// real sockets against a scripted fake engine. Not the engine: tests/server/test_serve.py runs the
// real `strata serve` binary black-box with the openai client.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <span>
#include <thread>

#include <nlohmann/json.hpp>

#include "server/generation.h"
#include "server/http.h"
#include "server/metrics.h"
#include "server/openai_api.h"
#include "server/server.h"
#include "server/service.h"
#include "test_util.h"

namespace strata::server {
namespace {

using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// HTTP parser

TEST(Http, ParsesAGetByteByByte) {
  const std::string raw = "GET /v1/models?x=1 HTTP/1.1\r\nHost: a\r\nX-Thing:  v  \r\n\r\n";
  RequestParser p;
  std::string buf;
  RequestParser::Status s = RequestParser::Status::NeedMore;
  for (char ch : raw) {
    ASSERT_EQ(s, RequestParser::Status::NeedMore);
    buf += ch;
    s = p.feed(buf);
  }
  ASSERT_EQ(s, RequestParser::Status::Complete);
  EXPECT_EQ(p.request().method, "GET");
  EXPECT_EQ(p.request().path, "/v1/models");
  EXPECT_EQ(p.request().query, "x=1");
  ASSERT_NE(p.request().header("x-thing"), nullptr);
  EXPECT_EQ(*p.request().header("x-thing"), "v");
  EXPECT_TRUE(p.request().keep_alive);
  EXPECT_EQ(p.consumed(), raw.size());
}

TEST(Http, BodyAndPipelinedRequest) {
  std::string raw = "POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.0\r\n\r\n";
  RequestParser p;
  ASSERT_EQ(p.feed(raw), RequestParser::Status::Complete);
  EXPECT_EQ(p.request().body, "hello");
  raw.erase(0, p.consumed());
  p.reset();
  ASSERT_EQ(p.feed(raw), RequestParser::Status::Complete);
  EXPECT_EQ(p.request().path, "/b");
  EXPECT_FALSE(p.request().keep_alive);  // HTTP/1.0 without keep-alive
}

TEST(Http, HeadersDoneThenBody) {
  RequestParser p;
  std::string raw = "POST /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
  EXPECT_EQ(p.feed(raw), RequestParser::Status::HeadersDone);
  EXPECT_TRUE(p.request().expect_continue);
  raw += "ab";
  EXPECT_EQ(p.feed(raw), RequestParser::Status::NeedMore);
  raw += "c";
  EXPECT_EQ(p.feed(raw), RequestParser::Status::Complete);
  EXPECT_EQ(p.request().body, "abc");
}

int parse_error(const std::string& raw, HttpLimits lim = {}) {
  RequestParser p(lim);
  auto s = p.feed(raw);
  return s == RequestParser::Status::Error ? p.error_status() : 0;
}

TEST(Http, RefusesHostileFraming) {
  HttpLimits lim;
  lim.max_body_bytes = 100;
  EXPECT_EQ(parse_error("POST /a HTTP/1.1\r\nContent-Length: 10485760\r\n\r\n", lim), 413);
  EXPECT_EQ(parse_error("POST /a HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"), 400);
  EXPECT_EQ(parse_error("POST /a HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 400);
  EXPECT_EQ(parse_error("POST /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"), 400);
  EXPECT_EQ(parse_error("POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), 501);
  EXPECT_EQ(parse_error("GET /a HTTP/1.1\r\nX: a\r\n  folded\r\n\r\n"), 400);
  EXPECT_EQ(parse_error("GET /a HTTP/2.0\r\n\r\n"), 505);
  EXPECT_EQ(parse_error(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n", 13)), 400);  // TLS hello
  EXPECT_EQ(parse_error("GET  /a HTTP/1.1\r\n\r\n"), 400);
  EXPECT_EQ(parse_error("GET a HTTP/1.1\r\n\r\n"), 400);
  EXPECT_EQ(parse_error("GET /a HTTP/1.1\r\nBad Name: x\r\n\r\n"), 400);
  EXPECT_EQ(parse_error("GET /a HTTP/1.1\r\nX: a\x01z\r\n\r\n"), 400);
  EXPECT_EQ(parse_error(std::string("GET /a HTTP/1.1\r\nX: ") + std::string(20000, 'a')), 431);  // no end yet
  std::string many = "GET /a HTTP/1.1\r\n";
  for (int i = 0; i < 200; i++) many += "X" + std::to_string(i) + ": 1\r\n";
  EXPECT_EQ(parse_error(many + "\r\n"), 431);
}

TEST(Http, ResponseFraming) {
  std::string r = http_response(404, "application/json", "{}", false);
  EXPECT_EQ(r.rfind("HTTP/1.1 404 Not Found\r\n", 0), 0u);
  EXPECT_NE(r.find("Content-Length: 2\r\n"), std::string::npos);
  EXPECT_NE(r.find("Connection: close\r\n"), std::string::npos);
  EXPECT_EQ(r.substr(r.size() - 6), "\r\n\r\n{}");
  EXPECT_EQ(http_chunk("hello world, 17b"), "10\r\nhello world, 17b\r\n");
  EXPECT_EQ(http_chunk(""), "");
  EXPECT_EQ(sse_event(json{{"a", 1}}), "data: {\"a\":1}\n\n");
  // A reply never throws on bytes that are not UTF-8: they become U+FFFD.
  EXPECT_EQ(dump_json(json(std::string("a\xff"))), "\"a\xef\xbf\xbd\"");
}

// ---------------------------------------------------------------------------------------------
// OpenAI JSON mapping (tiny512 tokenizer and Qwen3's chat template from a fixture model dir)

const ModelText& tiny() {
  static ModelText t = load_model_text(test::fixtures_dir() + "/models/qwen3_moe");
  return t;
}

ApiLimits limits() {
  ApiLimits l;
  l.model_names = {"tiny", "/path/tiny"};
  l.max_context = 256;
  l.vocab_size = 512;
  return l;
}

ApiError api_error(const std::string& body, Endpoint ep) {
  try {
    parse_api_request(json::parse(body), ep, tiny(), limits());
  } catch (const ApiError& e) {
    return e;
  }
  return ApiError(0, "no error");
}

TEST(OpenAi, CompletionPromptsInEveryShape) {
  auto r = parse_api_request(json::parse(R"({"model":"tiny","prompt":"Call me Ishmael."})"), Endpoint::Completions,
                             tiny(), limits());
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_EQ(r.prompts[0], tiny().tokenizer->encode("Call me Ishmael.", true));
  EXPECT_EQ(r.max_tokens, 16);
  EXPECT_EQ(r.model, "tiny");
  r = parse_api_request(json::parse(R"({"model":"/path/tiny","prompt":[5,6,7],"n":3,"seed":-1})"), Endpoint::Completions,
                        tiny(), limits());
  EXPECT_EQ(r.prompts, (std::vector<std::vector<int>>{{5, 6, 7}}));
  EXPECT_EQ(r.n, 3);
  EXPECT_EQ(r.model, "tiny");  // an alias answers with the reported name
  EXPECT_EQ(*r.sampling.seed, ~uint64_t(0));
  r = parse_api_request(json::parse(R"({"prompt":[[5],[6,7]],"max_tokens":3,"stop":"x","logprobs":2})"),
                        Endpoint::Completions, tiny(), limits());
  EXPECT_EQ(r.prompts.size(), 2u);
  EXPECT_EQ(r.stop, std::vector<std::string>{"x"});
  EXPECT_EQ(r.logprobs, 2);
  r = parse_api_request(json::parse(R"({"prompt":["a","b"],"temperature":30,"top_k":-1,"top_p":0.5})"),
                        Endpoint::Completions, tiny(), limits());
  EXPECT_EQ(r.prompts.size(), 2u);
  EXPECT_EQ(r.sampling.temperature, 30.f);
  EXPECT_EQ(r.sampling.top_k, 0);
}

TEST(OpenAi, HostileFieldsAre4xxNamingTheParam) {
  struct Case {
    const char* body;
    int status;
    const char* param;
  } cases[] = {
      {R"([1,2])", 400, ""},
      {R"({"prompt":"a","model":"gpt-4"})", 404, "model"},
      {R"({"prompt":"a","model":7})", 400, "model"},
      {R"({})", 400, "prompt"},
      {R"({"prompt":7})", 400, "prompt"},
      {R"({"prompt":[]})", 400, "prompt"},
      {R"({"prompt":""})", 400, "prompt"},
      {R"({"prompt":[1,"a"]})", 400, "prompt"},
      {R"({"prompt":[1,512]})", 400, "prompt"},
      {R"({"prompt":[-1]})", 400, "prompt"},
      {R"({"prompt":"a","max_tokens":-5})", 400, "max_tokens"},
      {R"({"prompt":"a","max_tokens":0})", 400, "max_tokens"},
      {R"({"prompt":"a","max_tokens":"ten"})", 400, "max_tokens"},
      {R"({"prompt":"a","max_tokens":1.5})", 400, "max_tokens"},
      {R"({"prompt":"a","max_tokens":100000000000000000000})", 400, "max_tokens"},
      {R"({"prompt":"a","max_tokens":9223372036854775807})", 400, "max_tokens"},
      {R"({"prompt":"a","max_tokens":300})", 400, "max_tokens"},
      {R"({"prompt":"a","n":0})", 400, "n"},
      {R"({"prompt":"a","n":1000})", 400, "n"},
      {R"({"prompt":"a","temperature":-1})", 400, "temperature"},
      {R"({"prompt":"a","temperature":"hot"})", 400, "temperature"},
      {R"({"prompt":"a","top_p":2})", 400, "top_p"},
      {R"({"prompt":"a","logprobs":21})", 400, "logprobs"},
      {R"({"prompt":"a","stop":[""]})", 400, "stop"},
      {R"({"prompt":"a","stop":[1]})", 400, "stop"},
      {R"({"prompt":"a","stream":"yes"})", 400, "stream"},
      {R"({"prompt":"a","stream_options":{"include_usage":true}})", 400, "stream_options"},
      {R"({"prompt":"a","seed":"x"})", 400, "seed"},
      {R"({"prompt":"a","logit_bias":{"5":1}})", 400, "logit_bias"},
      {R"({"prompt":"a","stop_token_ids":[9999]})", 400, "stop_token_ids"},
  };
  for (const auto& c : cases) {
    ApiError e = api_error(c.body, Endpoint::Completions);
    EXPECT_EQ(e.status, c.status) << c.body << ": " << e.what();
    EXPECT_EQ(e.param, c.param) << c.body;
    json body = json::parse(error_body(e));
    for (const char* k : {"message", "type", "param", "code"}) EXPECT_TRUE(body["error"].contains(k)) << k;
  }
  // A prompt beyond the context is refused with OpenAI's code, before any compute.
  json lp = {{"prompt", std::vector<int>(300, 5)}};
  ApiError e = api_error(lp.dump(), Endpoint::Completions);
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.code, "context_length_exceeded");
}

TEST(OpenAi, ChatRendersTheTemplate) {
  auto r = parse_api_request(
      json::parse(R"({"model":"tiny","messages":[{"role":"system","content":"Be brief."},
                  {"role":"user","content":[{"type":"text","text":"Hi"},{"type":"text","text":" there"}]}],
                  "max_completion_tokens":5,"logprobs":true,"top_logprobs":3})"),
      Endpoint::Chat, tiny(), limits());
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_EQ(tiny().tokenizer->decode(r.prompts[0]),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(r.max_tokens, 5);
  EXPECT_EQ(r.logprobs, 3);
  EXPECT_FALSE(r.starts_in_reasoning);
  EXPECT_EQ(api_error(R"({"messages":[]})", Endpoint::Chat).param, "messages");
  EXPECT_EQ(api_error(R"({"messages":[{"role":"wizard","content":"x"}]})", Endpoint::Chat).param, "messages[0].role");
  EXPECT_EQ(api_error(R"({"messages":[{"role":"user","content":5}]})", Endpoint::Chat).param, "messages[0].content");
  EXPECT_EQ(api_error(R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})", Endpoint::Chat).status, 400);
  EXPECT_EQ(api_error(R"({"messages":[{"role":"user","content":"x"}],"top_logprobs":2})", Endpoint::Chat).param,
            "top_logprobs");
}

// Tool requests: the template gets what vLLM gives it (arguments as objects in the request's key
// order, null content as ""), so the prompt is the template's render of that shape; templates
// that concatenate arguments as strings (DeepSeek-V3) get the strings the client sent.
TEST(OpenAi, ToolCallsInTheRequestReachTheTemplate) {
  using ojson = nlohmann::ordered_json;
  const std::string body = R"({"model":"tiny","messages":[{"role":"user","content":"weather?"},
      {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
        "function":{"name":"get_weather","arguments":"{\"unit\": \"c\", \"city\": \"Zürich\"}"}}]},
      {"role":"tool","tool_call_id":"c1","content":"cold"}],
      "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object",
        "properties":{"unit":{"type":"string"},"city":{"type":"string"}}}}}]})";
  const ojson ob = ojson::parse(body);
  ojson msgs = ob["messages"];
  msgs[1]["content"] = "";
  msgs[1]["tool_calls"][0]["function"]["arguments"] = ojson::parse(R"({"unit": "c", "city": "Zürich"})");
  ChatOptions opt;
  opt.add_generation_prompt = true;
  opt.tools = ob["tools"];
  ApiLimits lim = limits();
  lim.max_context = 4096;
  auto r = parse_api_request(json::parse(body), Endpoint::Chat, tiny(), lim, &ob);
  EXPECT_EQ(tiny().tokenizer->decode(r.prompts[0]), tiny().render_chat(msgs, opt));
  EXPECT_EQ(r.tool_format, ToolFormat::Hermes);
  // tool_choice "none": the same prompt, no parsing.
  ojson none = ob;
  none["tool_choice"] = "none";
  auto rn = parse_api_request(json::parse(none.dump()), Endpoint::Chat, tiny(), lim, &none);
  EXPECT_EQ(rn.prompts[0], r.prompts[0]);
  EXPECT_EQ(rn.tool_format, ToolFormat::None);

  static ModelText ds = load_model_text(test::fixtures_dir() + "/tokenizers/deepseek_v3");
  ojson two = ojson::parse(R"([{"role":"user","content":"q"},{"role":"assistant","content":null,"tool_calls":[
      {"type":"function","function":{"name":"f","arguments":"{\"b\": 1, \"a\": 2}"}},
      {"type":"function","function":{"name":"g","arguments":"{}"}}]}])");
  ojson dreq = {{"messages", two}, {"tools", ob["tools"]}, {"max_tokens", 2}};
  ApiLimits big = limits();
  big.max_context = 4096;
  big.vocab_size = 1 << 20;
  auto rd = parse_api_request(json::parse(dreq.dump()), Endpoint::Chat, ds, big, &dreq);
  two[1]["content"] = "";  // as passed, with the arguments as sent
  opt.tools = ob["tools"];
  EXPECT_EQ(ds.tokenizer->decode(rd.prompts[0]), ds.render_chat(two, opt));
  EXPECT_EQ(rd.tool_format, ToolFormat::DeepSeekV31);
}

// Mutated requests (seeded): the parser and the API mapping only ever answer with a status or an
// ApiError; nothing else escapes, nothing hangs, and a Complete request never claims more bytes
// than it was given.
TEST(Fuzz, MutatedRequestsOnlyEverGiveAStatus) {
  std::mt19937 rng(12345);
  const std::vector<std::string> bodies = {
      R"({"model":"tiny","prompt":"Call me","max_tokens":4,"stop":["x"],"logprobs":2,"n":2,"seed":3})",
      R"({"model":"tiny","prompt":[[1,2],[3]],"stream":true,"stream_options":{"include_usage":true}})",
      R"({"messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"hi"}]}],)"
      R"("max_completion_tokens":3,"logprobs":true,"top_logprobs":2,"chat_template_kwargs":{"enable_thinking":false}})"};
  int statuses = 0, api_errors = 0, parsed = 0;
  for (int it = 0; it < 3000; it++) {
    const std::string& b = bodies[size_t(it) % bodies.size()];
    std::string body = b;
    const int n_mut = 1 + int(rng() % 4);
    for (int k = 0; k < n_mut && !body.empty(); k++) {
      size_t i = rng() % body.size();
      switch (rng() % 4) {
        case 0: body[i] = char(rng() % 256); break;
        case 1: body.erase(i, 1 + rng() % 8); break;
        case 2: body.insert(i, std::string(1 + rng() % 3, "{}[]\",:0-9e\"\xff"[rng() % 12])); break;
        case 3: body.insert(i, body.substr(rng() % body.size(), 1 + rng() % 16)); break;
      }
    }
    std::string raw = "POST /v1/completions HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    if (it % 3 == 0) {  // mutate the framing too
      size_t i = rng() % raw.size();
      raw[i] = char(rng() % 256);
    }
    HttpLimits lim;
    lim.max_body_bytes = 4096;
    RequestParser p(lim);
    auto st = p.feed(raw);
    if (st == RequestParser::Status::Error) {
      EXPECT_GE(p.error_status(), 400);
      EXPECT_LT(p.error_status(), 600);
      statuses++;
      continue;
    }
    if (st != RequestParser::Status::Complete) continue;  // waits for bytes that never come: the timeout's job
    EXPECT_LE(p.consumed(), raw.size());
    try {
      json j = json::parse(p.request().body);
      parse_api_request(j, it % 3 == 2 ? Endpoint::Chat : Endpoint::Completions, tiny(), limits());
      parsed++;
    } catch (const json::exception&) {
      statuses++;
    } catch (const ApiError& e) {
      EXPECT_GE(e.status, 400);
      EXPECT_LT(e.status, 500) << e.what();
      api_errors++;
    }
  }
  std::printf("fuzz: %d framing/JSON errors, %d API errors, %d accepted\n", statuses, api_errors, parsed);
  // The mix must have reached every outcome, or the fuzz is not testing much.
  EXPECT_GT(statuses, 100);
  EXPECT_GT(api_errors, 50);
  EXPECT_GT(parsed, 10);
}

// ---------------------------------------------------------------------------------------------
// Per-choice text: stop strings and reasoning

GenerationEvent tok(int id) {
  GenerationEvent e;
  e.token = id;
  return e;
}

std::vector<int> ids_of(const std::string& s) { return tiny().tokenizer->encode(s, false); }

TEST(ChoiceText, StopStringCutsAcrossTokensAndHoldsBackPrefixes) {
  size_t hold = 0;
  EXPECT_EQ(find_stop("abc the e", {"the end"}, &hold), std::string::npos);
  EXPECT_EQ(hold, 5u);  // "the e" may still become "the end"
  EXPECT_EQ(find_stop("abc the end!", {"end", "the"}, &hold), 4u);

  TextConfig tc;
  tc.tok = tiny().tokenizer;
  tc.stop = {"whale"};
  const std::string text = "the white whale swims";
  ChoiceStream s(tc, {}, 0);
  std::string streamed;
  bool hit = false;
  for (int id : ids_of(text)) {
    ChoiceResult d;
    hit = s.push(tok(id), d);
    streamed += d.text;
    EXPECT_EQ(streamed.find("wha"), std::string::npos) << "a stop-string prefix was released: " << streamed;
    if (hit) break;
  }
  ASSERT_TRUE(hit);
  EXPECT_EQ(streamed, "the white ");
  EXPECT_EQ(s.total().text, "the white ");
  EXPECT_EQ(s.total().finish_reason, "stop");
}

TEST(ChoiceText, ReasoningSplitAndHiddenEos) {
  TextConfig tc;
  tc.tok = tiny().tokenizer;
  tc.split_reasoning = true;
  tc.hidden_ids = {2};
  ChoiceStream s(tc, {}, 1);
  std::vector<int> seq = {3};
  for (int id : ids_of("Let me think.")) seq.push_back(id);
  seq.push_back(4);
  for (int id : ids_of("Ahoy!")) seq.push_back(id);
  seq.push_back(2);
  std::string reasoning, content;
  for (int id : seq) {
    ChoiceResult d;
    EXPECT_FALSE(s.push(tok(id), d));
    reasoning += d.reasoning;
    content += d.text;
  }
  GenerationEvent fin;
  fin.finished = true;
  fin.reason = FinishReason::Stop;
  ChoiceResult d;
  s.finish(fin, d);
  EXPECT_EQ(reasoning, "Let me think.");
  EXPECT_EQ(content, "Ahoy!");
  EXPECT_TRUE(s.total().has_reasoning);
  EXPECT_EQ(s.total().finish_reason, "stop");
  EXPECT_EQ(s.tokens(), int(seq.size()));
  // Without the split (completions), <think> is a special token and is skipped like eos.
  tc.split_reasoning = false;
  ChoiceStream plain(tc, {}, 0);
  std::string all;
  for (int id : seq) {
    ChoiceResult dd;
    plain.push(tok(id), dd);
    all += dd.text;
  }
  EXPECT_EQ(all, "Let me think.Ahoy!");
}

// Tool calls through the per-choice stream and the response JSON. The oracle is a round trip: the
// model's own chat template (Qwen3, Hermes-style calls; its rendering is checked against jinja2 in
// tests/tokenizer) renders an assistant turn with tool calls; its tokens, generated one by one,
// must come back as the same calls, whole (non-streaming) and as deltas (streaming).
TEST(ChoiceText, ToolCallsRoundTripThroughTheChatTemplate) {
  using ojson = nlohmann::ordered_json;
  const ojson calls = ojson::parse(R"([
      {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich", "days": 2}}},
      {"id": "c2", "type": "function", "function": {"name": "search",
        "arguments": {"query": "东京 🐋", "filter": {"and": [{"y": 2020}, [true, null, 2.5]]}}}}])");
  const ojson user = ojson::array({{{"role", "user"}, {"content", "weather?"}}});
  ojson conv = user;
  conv.push_back({{"role", "assistant"}, {"content", ""}, {"tool_calls", calls}});  // null arrives as ""
  ChatOptions gen;
  gen.add_generation_prompt = true;
  const std::string prefix = tiny().render_chat(user, gen);
  const std::string full = tiny().render_chat(conv, ChatOptions{});
  ASSERT_EQ(full.compare(0, prefix.size(), prefix), 0);
  std::string turn = full.substr(prefix.size());
  turn = turn.substr(0, turn.find("<|im_end|>"));
  ASSERT_NE(turn.find("<tool_call>"), std::string::npos) << turn;

  TextConfig tc;
  tc.tok = tiny().tokenizer;
  tc.split_reasoning = true;
  tc.tool_format = detect_tool_format(tiny().chat_template.source(true));
  ASSERT_EQ(tc.tool_format, ToolFormat::Hermes);
  ChoiceStream s(tc, {}, 0);
  std::vector<ToolCall> streamed;
  std::string content;
  std::vector<json> chunks;
  for (int id : ids_of(turn)) {
    ChoiceResult d;
    s.push(tok(id), d);
    content += d.text;
    for (const auto& c : d.tool_calls) streamed.push_back(c);
    if (!d.tool_calls.empty()) chunks.push_back(chat_chunk("id", 0, "m", d, false, "", false));
  }
  GenerationEvent fin;
  fin.finished = true;
  fin.reason = FinishReason::Stop;
  ChoiceResult last;
  s.finish(fin, last);
  EXPECT_EQ(last.finish_reason, "tool_calls");
  EXPECT_EQ(content, "");
  ASSERT_EQ(s.total().tool_calls.size(), calls.size());
  ASSERT_EQ(streamed.size(), calls.size());
  for (size_t i = 0; i < calls.size(); i++) {
    const ToolCall& c = s.total().tool_calls[i];
    EXPECT_EQ(c.index, int(i));
    EXPECT_EQ(c.name, calls[i]["function"]["name"]);
    EXPECT_EQ(ojson::parse(c.arguments), calls[i]["function"]["arguments"]);  // values and key order
    EXPECT_EQ(streamed[i].id, c.id);
    EXPECT_EQ(c.id.rfind("call_", 0), 0u);
  }
  json resp = chat_response("id", 0, "m", {s.total()}, Usage{}, false);
  const json& msg = resp["choices"][0]["message"];
  EXPECT_TRUE(msg["content"].is_null());
  EXPECT_EQ(resp["choices"][0]["finish_reason"], "tool_calls");
  ASSERT_EQ(msg["tool_calls"].size(), calls.size());
  EXPECT_EQ(msg["tool_calls"][1]["type"], "function");
  EXPECT_EQ(msg["tool_calls"][1]["function"]["name"], "search");
  EXPECT_EQ(ojson::parse(msg["tool_calls"][1]["function"]["arguments"].get<std::string>()),
            calls[1]["function"]["arguments"]);
  ASSERT_FALSE(chunks.empty());
  const json& dc = chunks[0]["choices"][0]["delta"]["tool_calls"][0];
  EXPECT_EQ(dc["index"], 0);
  EXPECT_EQ(dc["type"], "function");
  EXPECT_EQ(dc["function"]["name"], "get_weather");

  // Cut by max_tokens inside the second call: the first call stands, the rest is plain text.
  const std::vector<int> ids = ids_of(turn);
  ChoiceStream cut(tc, {}, 0);
  const size_t second = turn.rfind("<tool_call>");
  std::string cut_content;
  for (size_t n = 0; n < ids.size(); n++) {
    ChoiceResult d;
    cut.push(tok(ids[n]), d);
    cut_content += d.text;
    if (tiny().tokenizer->decode(std::span<const int>(ids.data(), n + 1), false).size() > second + 30) break;
  }
  GenerationEvent len;
  len.finished = true;
  len.reason = FinishReason::Length;
  ChoiceResult d;
  cut.finish(len, d);
  cut_content += d.text;
  EXPECT_EQ(cut.total().finish_reason, "length");
  ASSERT_EQ(cut.total().tool_calls.size(), 1u);
  EXPECT_NE(cut_content.find("<tool_call>\n{\"name\": \"search\""), std::string::npos) << cut_content;
}

TEST(Metrics, HistogramIsCumulativeAndEngineGaugesShow) {
  ServerMetrics m;
  FinishedStats f;
  f.stats.completion_tokens = 3;
  f.stats.ttft_s = 0.03;
  f.stats.e2e_s = 0.7;
  m.observe_finished(f);
  m.observe_inter_token(0.02);
  m.observe_inter_token(0.5);
  EngineMetrics e;
  e.kv_blocks_total = 10;
  e.kv_blocks_used = 4;
  e.expert_bytes = 12345;
  std::string t = m.render(e);
  EXPECT_NE(t.find("strata_time_to_first_token_seconds_bucket{le=\"0.040000000000000001\"} 1\n"), std::string::npos) << t;
  EXPECT_NE(t.find("strata_time_to_first_token_seconds_bucket{le=\"0.02\"} 0\n"), std::string::npos);
  EXPECT_NE(t.find("strata_inter_token_latency_seconds_bucket{le=\"0.025000000000000001\"} 1\n"), std::string::npos);
  EXPECT_NE(t.find("strata_inter_token_latency_seconds_count 2\n"), std::string::npos);
  EXPECT_NE(t.find("strata_kv_cache_usage_ratio 0.40000000000000002\n"), std::string::npos);
  EXPECT_NE(t.find("strata_expert_bytes_total 12345\n"), std::string::npos);
  EXPECT_NE(t.find("strata_request_finished_total{finished_reason=\"stop\"} 1\n"), std::string::npos);
}

}  // namespace
}  // namespace strata::server
