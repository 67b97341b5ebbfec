// Internals of the serving loop shared by server.cpp (sockets, jobs, timeouts: the loop thread)
// and routes.cpp (routing, auth, API parsing: the worker threads). Not a public header.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "server/generation.h"
#include "server/server.h"

namespace strata::server {

using Clock = std::chrono::steady_clock;

inline double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

struct TimedEvent {
  int choice = 0;
  GenerationEvent ev;
  Clock::time_point t;
};

struct Job;

// The loop's inbox: worker outcomes and job signals. Shared with engine sinks through a
// shared_ptr, so a sink that fires after the server is gone writes into a live object.
struct Mailbox {
  struct Outcome {
    uint64_t conn_id = 0;
    int status = 0;
    std::string response;      // a full response, when job is null
    bool close = false;
    std::shared_ptr<Job> job;  // prepared, not yet submitted (the loop submits)
  };
  std::mutex mu;
  std::vector<Outcome> outcomes;
  std::vector<std::shared_ptr<Job>> signaled;
  int wake_fd = -1;
  std::atomic<bool> stop{false};

  ~Mailbox() {
    if (wake_fd >= 0) close(wake_fd);
  }
  void wake() {
    uint64_t one = 1;
    ssize_t r = write(wake_fd, &one, sizeof one);
    (void)r;  // EAGAIN means the counter is already non-zero: the loop will wake anyway
  }
};

// One HTTP request's generation: its choices, their engine ids and text streams, and the channel
// the engine's sinks fill (drained by the loop).
struct Job {
  uint64_t conn_id = 0;
  ApiRequest req;
  std::string id;
  int64_t created = 0;
  bool chunked = true, keep_alive = true;
  Clock::time_point start;
  std::vector<GenerationRequest> gen;  // per choice, submitted by the loop
  std::vector<std::unique_ptr<ChoiceStream>> streams;
  std::vector<uint64_t> engine_ids;
  std::vector<char> submitted, final_seen;
  std::vector<Clock::time_point> last_token;
  int n_final = 0;
  Usage usage;
  nlohmann::json stats = nlohmann::json::array();  // return_stats: per choice, in finishing order
  std::string error;  // an engine error (reason Error) to report
  bool head_sent = false, completed = false;

  std::mutex mu;
  std::vector<TimedEvent> inbox;
  bool signaled = false;
};

struct Conn {
  int fd = -1;
  uint64_t id = 0;
  std::string in, out;
  size_t out_off = 0;
  RequestParser parser;
  enum class St { Reading, Busy, Flushing, Lingering } st = St::Reading;
  bool close_after_write = false, epollout = false, epollin = true, req_started = false;
  Clock::time_point last_activity, req_start, write_progress, linger_until;
  std::shared_ptr<Job> job;
  std::string method, path;  // for the access log
  Clock::time_point t_request;
};

struct Server::Impl {
  ServerOptions opt;
  GenerationService& svc;
  ModelText text;
  ServerMetrics metrics;
  std::shared_ptr<Mailbox> mail = std::make_shared<Mailbox>();
  int listen_fd = -1, ep = -1, bound_port = 0;
  std::unordered_map<uint64_t, std::unique_ptr<Conn>> conns;
  uint64_t next_conn = 2, id_salt = 0;
  std::atomic<uint64_t> next_req{0};  // bumped by workers
  std::atomic<bool> draining{false};
  Clock::time_point drain_deadline;

  // Worker pool.
  std::mutex wmu;
  std::condition_variable wcv;
  std::deque<std::pair<uint64_t, HttpRequest>> wq;
  bool wstop = false;
  std::vector<std::thread> workers;

  Impl(ServerOptions o, GenerationService& s, ModelText t) : opt(std::move(o)), svc(s), text(std::move(t)) {
    std::random_device rd;
    id_salt = (uint64_t(rd()) << 32) ^ rd();
  }

  // ---- worker side -------------------------------------------------------------------------
  void worker_main();
  Mailbox::Outcome handle(const HttpRequest& req);
  Mailbox::Outcome generation(const HttpRequest& req, Endpoint ep);
  Mailbox::Outcome respond(int status, const std::string& body, bool keep_alive,
                           const char* type = "application/json", std::vector<std::string> extra = {}) {
    Mailbox::Outcome o;
    o.status = status;
    o.close = !keep_alive;
    o.response = http_response(status, type, body, keep_alive, extra);
    return o;
  }
  Mailbox::Outcome error(const ApiError& e, bool keep_alive) {
    std::vector<std::string> extra;
    if (e.status == 401) extra.push_back("WWW-Authenticate: Bearer");
    return respond(e.status, error_body(e), keep_alive, "application/json", extra);
  }

  // ---- loop side ---------------------------------------------------------------------------
  void loop();
  void accept_all();
  void on_event(uint64_t id, uint32_t events);
  void read_conn(Conn& c);
  void try_parse(Conn& c);
  void queue_out(Conn& c, std::string_view bytes);
  void flush(Conn& c);
  void finish_response(Conn& c, bool close);
  void begin_linger(Conn& c);
  void close_conn(uint64_t id);
  void set_events(Conn& c);
  void take_mail();
  void start_job(Conn& c, std::shared_ptr<Job> job);
  void drain_job(const std::shared_ptr<Job>& job);
  void complete_job(Conn* c, Job& job);
  void abort_job(Job& job);
  void check_timeouts(Clock::time_point now);
  void log_line(const Conn& c, int status, double secs, const std::string& extra = "");
  Conn* find(uint64_t id) {
    auto it = conns.find(id);
    return it == conns.end() ? nullptr : it->second.get();
  }
};

}  // namespace strata::server
