// The server in-process over real sockets, against a scripted fake engine: routing, auth, SSE,
// disconnect -> abort, hostile framing, timeouts, pipelining, admission errors, drain on stop.
// Not the real engine (tests/server/test_serve.py does that black-box with the openai client).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include "server/server.h"
#include "tokenizer/model_text.h"
#include "test_util.h"

namespace strata::server {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// Emits one token per request every 2 ms on its own "engine" thread, like the real engine: the
// sink is only ever called from that thread.
class FakeService final : public GenerationService {
 public:
  explicit FakeService(std::vector<int> script) : script_(std::move(script)), th_([this] { run(); }) {}
  ~FakeService() override { shutdown(false); }

  uint64_t submit(GenerationRequest req, EventSink sink) override {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopping_) throw AdmissionError(AdmissionError::ShuttingDown, "shutting down");
    if (int(reqs_.size()) >= max_active) throw AdmissionError(AdmissionError::QueueFull, "queue full");
    uint64_t id = ++next_;
    reqs_[id] = {std::move(req), std::move(sink), 0, false};
    submitted++;
    return id;
  }
  void abort(uint64_t id) override {
    std::lock_guard<std::mutex> lk(mu_);
    if (auto it = reqs_.find(id); it != reqs_.end()) it->second.aborted = true;
  }
  EngineMetrics metrics() const override {
    std::lock_guard<std::mutex> lk(mu_);
    EngineMetrics m;
    m.running = int(reqs_.size());
    m.kv_blocks_total = 100;
    m.kv_blocks_used = int(reqs_.size());
    m.ready = true;
    return m;
  }
  void shutdown(bool) override {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (stopping_) return;
      stopping_ = true;
      for (auto& [id, r] : reqs_) r.aborted = true;
    }
    th_.join();
  }
  int max_context() const override { return 256; }
  int vocab_size() const override { return 512; }
  std::vector<int> eos_ids() const override { return {2}; }

  std::atomic<int> aborts{0}, submitted{0};
  std::atomic<int> max_active{1000};

 private:
  struct Req {
    GenerationRequest g;
    EventSink sink;
    int produced;
    bool aborted;
  };
  void run() {
    while (true) {
      std::vector<std::pair<EventSink, GenerationEvent>> out;
      {
        std::lock_guard<std::mutex> lk(mu_);
        if (stopping_ && reqs_.empty()) return;
        for (auto it = reqs_.begin(); it != reqs_.end();) {
          Req& r = it->second;
          GenerationEvent ev;
          if (!r.aborted) {
            ev.token = script_[size_t(r.produced++) % script_.size()];
            ev.logprob = -0.5f;
            for (int k = 0; k < r.g.top_logprobs; k++) ev.top.push_back({5 + k, -1.f - k});
            out.emplace_back(r.sink, ev);
          }
          const bool eos = !r.aborted && ev.token == 2;  // a script may end its turn
          if (r.aborted || eos || r.produced >= r.g.max_tokens) {
            GenerationEvent fin;
            fin.finished = true;
            fin.reason = r.aborted ? FinishReason::Abort : eos ? FinishReason::Stop : FinishReason::Length;
            fin.stats.prompt_tokens = int(r.g.prompt.size());
            fin.stats.completion_tokens = r.produced;
            if (r.aborted) aborts++;
            out.emplace_back(r.sink, fin);
            it = reqs_.erase(it);
          } else {
            ++it;
          }
        }
      }
      for (auto& [sink, ev] : out) sink(ev);
      std::this_thread::sleep_for(2ms);
    }
  }
  std::vector<int> script_;
  mutable std::mutex mu_;
  std::map<uint64_t, Req> reqs_;
  uint64_t next_ = 0;
  bool stopping_ = false;
  std::thread th_;
};

const ModelText& tiny() {
  static ModelText t = load_model_text(test::fixtures_dir() + "/models/qwen3_moe");
  return t;
}

struct Running {
  std::unique_ptr<FakeService> svc;
  std::unique_ptr<Server> srv;
  std::thread th;
  int port = 0;
  std::vector<int> script;
  explicit Running(ServerOptions o = {}, std::vector<int> script_ = {}, int max_context = 256) {
    script = script_.empty() ? tiny().tokenizer->encode(" the whale", false) : std::move(script_);
    svc = std::make_unique<FakeService>(script);
    o.host = "127.0.0.1";
    o.port = 0;
    o.api.model_names = {"tiny"};
    o.api.max_context = max_context;
    o.api.vocab_size = 512;
    o.log_requests = false;
    srv = std::make_unique<Server>(o, *svc, tiny());
    srv->listen();
    port = srv->port();
    th = std::thread([this] { srv->run(); });
  }
  ~Running() {
    srv->request_stop();
    th.join();
    svc->shutdown(false);
  }
};

int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  return fd;
}

void send_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;  // the server may close early (413): the test reads what it said
    off += size_t(n);
  }
}

// Reads until `done(buf)` or the peer closes or `timeout` passes.
std::string read_until(int fd, const std::function<bool(const std::string&)>& done, std::chrono::milliseconds timeout) {
  std::string buf;
  auto end = std::chrono::steady_clock::now() + timeout;
  while (!done(buf)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count();
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, int(left)) <= 0) break;
    char tmp[65536];
    ssize_t n = recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0) break;
    buf.append(tmp, size_t(n));
  }
  return buf;
}

// One complete response (Content-Length or chunked) at the front of `buf`, or 0.
size_t response_len(const std::string& buf) {
  size_t he = buf.find("\r\n\r\n");
  if (he == std::string::npos) return 0;
  const std::string head = buf.substr(0, he);
  size_t cl = head.find("Content-Length: ");
  if (cl != std::string::npos) {
    size_t n = std::stoul(head.substr(cl + 16));
    return buf.size() >= he + 4 + n ? he + 4 + n : 0;
  }
  if (head.find("Transfer-Encoding: chunked") != std::string::npos) {
    size_t e = buf.find("\r\n0\r\n\r\n", he);
    return e == std::string::npos ? 0 : e + 7;
  }
  return 0;
}

int status_of(const std::string& r) { return r.size() > 12 ? std::atoi(r.c_str() + 9) : 0; }
std::string body_of(const std::string& r) {
  size_t he = r.find("\r\n\r\n");
  return he == std::string::npos ? "" : r.substr(he + 4);
}

std::string post(const std::string& path, const std::string& body, const std::string& extra = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string roundtrip(int port, const std::string& req, std::chrono::milliseconds t = 5000ms) {
  int fd = connect_to(port);
  send_all(fd, req);
  std::string r = read_until(fd, [](const std::string& b) { return response_len(b) > 0; }, t);
  close(fd);
  return r;
}

void expect_openai_error(const std::string& resp, int status) {
  EXPECT_EQ(status_of(resp), status) << resp;
  json j = json::parse(body_of(resp), nullptr, false);
  ASSERT_TRUE(j.is_object() && j.contains("error")) << resp;
  for (const char* k : {"message", "type", "param", "code"}) EXPECT_TRUE(j["error"].contains(k)) << k;
}

TEST(ServerSockets, CompletionNonStreamedAndStreamedChat) {
  Running s;
  std::string r = roundtrip(s.port, post("/v1/completions", R"({"model":"tiny","prompt":"Call me","max_tokens":5})"));
  ASSERT_EQ(status_of(r), 200) << r;
  json j = json::parse(body_of(r));
  std::vector<int> first5;
  for (int i = 0; i < 5; i++) first5.push_back(s.script[size_t(i) % s.script.size()]);
  EXPECT_EQ(j["choices"][0]["text"], tiny().tokenizer->decode(first5));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["completion_tokens"], 5);
  EXPECT_EQ(j["object"], "text_completion");

  std::string req = post("/v1/chat/completions",
                         R"({"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":4,"stream":true,
                             "n":2,"stream_options":{"include_usage":true}})");
  r = roundtrip(s.port, req);
  ASSERT_EQ(status_of(r), 200) << r;
  EXPECT_NE(r.find("Content-Type: text/event-stream"), std::string::npos);
  // De-chunk, then split the SSE events.
  std::string body = body_of(r), sse;
  for (size_t p = 0;;) {
    size_t nl = body.find("\r\n", p);
    size_t n = std::stoul(body.substr(p, nl - p), nullptr, 16);
    if (n == 0) break;
    sse += body.substr(nl + 2, n);
    p = nl + 2 + n + 2;
  }
  std::vector<std::string> events;
  for (size_t p = 0; p < sse.size();) {
    size_t e = sse.find("\n\n", p);
    ASSERT_EQ(sse.compare(p, 6, "data: "), 0) << sse;
    events.push_back(sse.substr(p + 6, e - p - 6));
    p = e + 2;
  }
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::map<int, std::string> text;
  std::map<int, std::string> finish;
  int roles = 0;
  for (size_t k = 0; k + 2 < events.size(); k++) {
    json c = json::parse(events[k]);
    EXPECT_EQ(c["object"], "chat.completion.chunk");
    json ch = c["choices"][0];
    if (ch["delta"].contains("role")) roles++;
    if (ch["delta"].contains("content")) text[ch["index"]] += ch["delta"]["content"].get<std::string>();
    if (!ch["finish_reason"].is_null()) finish[ch["index"]] = ch["finish_reason"];
  }
  json usage = json::parse(events[events.size() - 2]);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["completion_tokens"], 8);
  EXPECT_EQ(roles, 2);
  std::vector<int> first4(first5.begin(), first5.begin() + 4);
  EXPECT_EQ(text[0], tiny().tokenizer->decode(first4));
  EXPECT_EQ(text[1], text[0]);
  EXPECT_EQ(finish[0], "length");
  EXPECT_EQ(finish[1], "length");
}

TEST(ServerSockets, AuthAndRoutes) {
  ServerOptions o;
  o.api_key = "sekrit-key";
  Running s(o);
  expect_openai_error(roundtrip(s.port, "GET /v1/models HTTP/1.1\r\n\r\n"), 401);
  expect_openai_error(roundtrip(s.port, "GET /v1/models HTTP/1.1\r\nAuthorization: Bearer sekrit-kez\r\n\r\n"), 401);
  expect_openai_error(roundtrip(s.port, "GET /v1/models HTTP/1.1\r\nAuthorization: Bearer sekrit\r\n\r\n"), 401);
  std::string r = roundtrip(s.port, "GET /v1/models HTTP/1.1\r\nAuthorization: Bearer sekrit-key\r\n\r\n");
  ASSERT_EQ(status_of(r), 200) << r;
  EXPECT_EQ(json::parse(body_of(r))["data"][0]["id"], "tiny");
  EXPECT_EQ(status_of(roundtrip(s.port, "GET /health HTTP/1.1\r\n\r\n")), 200);
  r = roundtrip(s.port, "GET /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(status_of(r), 200);
  EXPECT_NE(r.find("strata_kv_cache_blocks_total 100"), std::string::npos);
  expect_openai_error(roundtrip(s.port, "GET /nope HTTP/1.1\r\n\r\n"), 404);
  expect_openai_error(roundtrip(s.port, "DELETE /health HTTP/1.1\r\n\r\n"), 405);
  expect_openai_error(
      roundtrip(s.port, post("/v1/completions", R"({"model":"other","prompt":"a"})", "Authorization: Bearer sekrit-key\r\n")),
      404);
}

TEST(ServerSockets, HostileInputGets4xxAndServingGoesOn) {
  ServerOptions o;
  o.http.max_body_bytes = 1 << 20;
  o.request_timeout_s = 0.3;
  Running s(o);
  const std::string good = post("/v1/completions", R"({"prompt":"a","max_tokens":2})");
  auto still_serves = [&] { EXPECT_EQ(status_of(roundtrip(s.port, good)), 200); };
  expect_openai_error(roundtrip(s.port, "HELLO\r\n\r\n"), 400);
  still_serves();
  expect_openai_error(roundtrip(s.port, post("/v1/completions", "{\"prompt\": \"a\"")), 400);
  expect_openai_error(roundtrip(s.port, post("/v1/completions", "{\"prompt\": \"a\xff\xfe\"}")), 400);
  std::string deep(100000, '[');
  expect_openai_error(roundtrip(s.port, post("/v1/completions", deep)), 400);
  still_serves();
  // 10 MB body: refused on the header, the connection is drained and closed, no buffering.
  std::string big = "POST /v1/completions HTTP/1.1\r\nContent-Length: 10485760\r\n\r\n" + std::string(10485760, 'x');
  expect_openai_error(roundtrip(s.port, big, 10000ms), 413);
  still_serves();
  // A slow client that never finishes its head gets 408 after the request timeout.
  int fd = connect_to(s.port);
  send_all(fd, "POST /v1/completions HTTP/1.1\r\nContent-Le");
  std::string r = read_until(fd, [](const std::string& b) { return response_len(b) > 0; }, 3000ms);
  close(fd);
  expect_openai_error(r, 408);
  // Two pipelined requests in one write are answered in order on one connection.
  fd = connect_to(s.port);
  send_all(fd, good + "GET /health HTTP/1.1\r\n\r\n");
  r = read_until(fd, [](const std::string& b) {
    size_t n = response_len(b);
    return n > 0 && response_len(b.substr(n)) > 0;
  }, 5000ms);
  close(fd);
  size_t n1 = response_len(r);
  ASSERT_GT(n1, 0u) << r;
  EXPECT_EQ(status_of(r), 200);
  EXPECT_NE(r.find("\"text_completion\""), std::string::npos);
  EXPECT_EQ(status_of(r.substr(n1)), 200);
  EXPECT_NE(r.substr(n1).find("\"ok\""), std::string::npos);
  still_serves();
}

TEST(ServerSockets, DisconnectAbortsAndQueueFullIs429) {
  Running s;
  int fd = connect_to(s.port);
  send_all(fd, post("/v1/completions", R"({"prompt":"a","max_tokens":200,"stream":true})"));
  std::string r = read_until(fd, [](const std::string& b) { return b.find("data: {") != std::string::npos; }, 3000ms);
  ASSERT_NE(r.find("data: {"), std::string::npos) << r;
  close(fd);
  for (int i = 0; i < 100 && s.svc->aborts.load() == 0; i++) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(s.svc->aborts.load(), 1);

  // A non-streamed request writes nothing until the end: the disconnect is seen on the socket.
  fd = connect_to(s.port);
  send_all(fd, post("/v1/completions", R"({"prompt":"a","max_tokens":200})"));
  for (int i = 0; i < 200 && s.svc->submitted.load() < 2; i++) std::this_thread::sleep_for(2ms);
  close(fd);
  for (int i = 0; i < 100 && s.svc->aborts.load() < 2; i++) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(s.svc->aborts.load(), 2);

  s.svc->max_active = 0;
  r = roundtrip(s.port, post("/v1/completions", R"({"prompt":"a","max_tokens":2})"));
  expect_openai_error(r, 429);
  EXPECT_EQ(json::parse(body_of(r))["error"]["code"], "queue_full");
  s.svc->max_active = 1000;
}

TEST(ServerSockets, StopStringAbortsTheEngineRequest) {
  Running s;
  // The script repeats " the whale"; stop at "whale" after the first " the ".
  std::string r = roundtrip(s.port, post("/v1/completions", R"({"prompt":"a","max_tokens":100,"stop":["whale"]})"));
  ASSERT_EQ(status_of(r), 200) << r;
  json j = json::parse(body_of(r));
  EXPECT_EQ(j["choices"][0]["text"], " the ");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_LT(j["usage"]["completion_tokens"].get<int>(), 10);
  EXPECT_EQ(s.svc->aborts.load(), 1);
}

TEST(ServerSockets, StopDrainsInFlightStreams) {
  auto s = std::make_unique<Running>();
  int fd = connect_to(s->port);
  send_all(fd, post("/v1/completions", R"({"prompt":"a","max_tokens":50,"stream":true})"));
  ASSERT_NE(read_until(fd, [](const std::string& b) { return b.find("data: {") != std::string::npos; }, 3000ms)
                .find("data: {"),
            std::string::npos);
  s->srv->request_stop();
  std::string rest = read_until(fd, [](const std::string& b) { return b.find("0\r\n\r\n") != std::string::npos; },
                                5000ms);
  close(fd);
  EXPECT_NE(rest.find("data: [DONE]"), std::string::npos) << rest;
  EXPECT_NE(rest.find("\"finish_reason\":\"length\""), std::string::npos);
  EXPECT_EQ(s->svc->aborts.load(), 0);
  s->th.join();  // run() returned by itself after the drain
  s->th = std::thread([] {});
}

// Tool calls over HTTP: the fake engine "generates" the Qwen3 template's own rendering of an
// assistant turn with two tool calls (then eos); the reply must carry those calls, non-streamed
// (message.tool_calls, content null, finish_reason "tool_calls") and streamed (delta.tool_calls).
TEST(ServerSockets, ToolCallsNonStreamedAndStreamed) {
  using ojson = nlohmann::ordered_json;
  const ojson calls = ojson::parse(R"([
      {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich", "days": 2}}},
      {"type": "function", "function": {"name": "search", "arguments": {"query": "q", "filter": {"a": [1, null]}}}}])");
  const ojson user = ojson::array({{{"role", "user"}, {"content", "weather?"}}});
  ojson conv = user;
  conv.push_back({{"role", "assistant"}, {"content", "Checking."}, {"tool_calls", calls}});
  ChatOptions gen;
  gen.add_generation_prompt = true;
  const std::string prefix = tiny().render_chat(user, gen);
  std::string turn = tiny().render_chat(conv, ChatOptions{}).substr(prefix.size());
  turn = turn.substr(0, turn.find("<|im_end|>"));
  std::vector<int> script = tiny().tokenizer->encode(turn, false);
  script.push_back(2);  // eos
  // The content the template wrote (after its empty <think></think>, before the calls).
  const std::string after = turn.substr(turn.find("</think>") + 8);
  const std::string content_want = after.substr(0, after.find("Checking.") + 9);
  Running s({}, script, 2048);
  const std::string tools =
      R"([{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{}}}},
          {"type":"function","function":{"name":"search","parameters":{"type":"object","properties":{}}}}])";
  const std::string req = R"({"model":"tiny","messages":[{"role":"user","content":"weather?"}],"max_tokens":500,"tools":)" +
                          tools;
  auto check_calls = [&](const json& got) {
    ASSERT_EQ(got.size(), calls.size()) << got.dump();
    for (size_t i = 0; i < calls.size(); i++) {
      EXPECT_EQ(got[i]["type"], "function");
      EXPECT_EQ(got[i]["id"].get<std::string>().rfind("call_", 0), 0u);
      EXPECT_EQ(got[i]["function"]["name"], calls[i]["function"]["name"]);
      EXPECT_EQ(ojson::parse(got[i]["function"]["arguments"].get<std::string>()), calls[i]["function"]["arguments"]);
    }
  };
  std::string r = roundtrip(s.port, post("/v1/chat/completions", req + "}"));
  ASSERT_EQ(status_of(r), 200) << r;
  json j = json::parse(body_of(r));
  const json& msg = j["choices"][0]["message"];
  EXPECT_EQ(j["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_EQ(msg["content"], content_want);
  check_calls(msg["tool_calls"]);

  // tool_choice "none": the same text, nothing parsed.
  r = roundtrip(s.port, post("/v1/chat/completions", req + R"(,"tool_choice":"none"})"));
  j = json::parse(body_of(r));
  EXPECT_FALSE(j["choices"][0]["message"].contains("tool_calls"));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_NE(j["choices"][0]["message"]["content"].get<std::string>().find("<tool_call>"), std::string::npos);

  int fd = connect_to(s.port);
  send_all(fd, post("/v1/chat/completions", req + R"(,"stream":true})"));
  std::string sse = read_until(fd, [](const std::string& b) { return b.find("data: [DONE]") != std::string::npos; },
                               5000ms);
  close(fd);
  json streamed = json::array();
  std::string content, finish;
  for (size_t p = sse.find("data: {"); p != std::string::npos; p = sse.find("data: {", p + 1)) {
    json ev = json::parse(sse.substr(p + 6, sse.find('\n', p) - p - 6));
    const json& c = ev["choices"][0];
    if (c["delta"].contains("content")) content += c["delta"]["content"].get<std::string>();
    if (c["delta"].contains("tool_calls"))
      for (const auto& tc : c["delta"]["tool_calls"]) {
        EXPECT_EQ(tc["index"], streamed.size());
        streamed.push_back(tc);
      }
    if (!c["finish_reason"].is_null()) finish = c["finish_reason"];
  }
  EXPECT_EQ(content, content_want);
  EXPECT_EQ(finish, "tool_calls");
  check_calls(streamed);
}

}  // namespace
}  // namespace strata::server
