// The serving loop. Why epoll and not a thread per connection: streams mostly wait, and hundreds
// of them (plus slow or half-open clients) then cost a few KB of buffers each instead of a thread
// each; one loop also makes disconnect -> Engine::abort immediate (EPOLLRDHUP), with no polling.
// CPU work per request (JSON, chat template, tokenizer) runs on a small worker pool (routes.cpp)
// so the loop never stalls; detokenization and SSE framing run on the loop (microseconds per token).
// Not the engine: HTTP threads never touch tensors; they post GenerationRequests and read the
// per-job channel the engine's sink fills (llama.cpp-server shape: queue + one engine thread).
#include "server/server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <functional>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include "core/error.h"
#include "server/server_impl.h"

namespace strata::server {

using nlohmann::json;

namespace {

constexpr uint64_t kListenId = 0, kWakeId = 1;  // epoll data of the listening socket and the mailbox

}  // namespace

// ============================================================================================
// Loop side: sockets, jobs, timeouts. Everything below runs on the loop thread only.

void Server::Impl::set_events(Conn& c) {
  epoll_event ev{};
  ev.events = EPOLLRDHUP | (c.epollin ? EPOLLIN : 0u) | (c.epollout ? EPOLLOUT : 0u);
  ev.data.u64 = c.id;
  epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
}

void Server::Impl::log_line(const Conn& c, int status, double secs, const std::string& extra) {
  metrics.count_http(status);
  if (!opt.log_requests) return;
  // Method, path, status and timing only: headers (the API key) and bodies are never logged.
  std::string path = c.path.size() > 200 ? c.path.substr(0, 200) + "..." : c.path;
  for (char& ch : path)
    if (static_cast<unsigned char>(ch) < 0x20 || static_cast<unsigned char>(ch) >= 0x7f) ch = '?';
  std::fprintf(stderr, "strata serve: %s %s %d %.3fs%s\n", c.method.empty() ? "-" : c.method.c_str(),
               path.empty() ? "-" : path.c_str(), status, secs, extra.c_str());
}

void Server::Impl::accept_all() {
  while (true) {
    sockaddr_storage sa{};
    socklen_t len = sizeof sa;
    int fd = accept4(listen_fd, reinterpret_cast<sockaddr*>(&sa), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or EMFILE etc.: try again on the next readiness
    if (int(conns.size()) >= opt.max_connections || draining.load()) {
      std::string r = http_response(503, "application/json",
                                    error_body(503, draining.load() ? "the server is shutting down"
                                                                    : "too many connections"),
                                    false);
      ssize_t w = send(fd, r.data(), r.size(), MSG_NOSIGNAL);
      (void)w;
      close(fd);
      metrics.count_http(503);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // SSE chunks are small and latency-bound
    auto c = std::make_unique<Conn>();
    c->fd = fd;
    c->id = next_conn++;
    c->parser = RequestParser(opt.http);
    c->last_activity = Clock::now();
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = c->id;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
      close(fd);
      continue;
    }
    conns.emplace(c->id, std::move(c));
    metrics.set_connections(int(conns.size()));
  }
}

void Server::Impl::close_conn(uint64_t id) {
  auto it = conns.find(id);
  if (it == conns.end()) return;
  Conn& c = *it->second;
  if (c.job) {
    // The client went away mid-generation: abort now so the engine frees the blocks within a
    // step; the job lives on (the sinks hold it) until the final events arrive, for metrics.
    abort_job(*c.job);
    log_line(c, 499, seconds(Clock::now() - c.t_request), " (client disconnected)");
  }
  close(c.fd);
  conns.erase(it);
  metrics.set_connections(int(conns.size()));
}

void Server::Impl::abort_job(Job& job) {
  for (size_t i = 0; i < job.engine_ids.size(); i++)
    if (job.submitted[i] && !job.final_seen[i]) svc.abort(job.engine_ids[i]);
}

void Server::Impl::queue_out(Conn& c, std::string_view bytes) {
  if (c.out_off == c.out.size()) {
    c.out.clear();
    c.out_off = 0;
  }
  if (c.out.empty()) c.write_progress = Clock::now();
  c.out.append(bytes);
}

void Server::Impl::flush(Conn& c) {
  while (c.out_off < c.out.size()) {
    ssize_t n = send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
    if (n > 0) {
      c.out_off += size_t(n);
      c.write_progress = Clock::now();
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0 && errno == EINTR) continue;
    close_conn(c.id);  // EPIPE/ECONNRESET: the client is gone
    return;
  }
  if (c.out_off < c.out.size()) {
    if (c.out.size() - c.out_off > opt.max_pending_output) {
      close_conn(c.id);  // a client that stopped reading must not grow our memory without bound
      return;
    }
    if (!c.epollout) {
      c.epollout = true;
      set_events(c);
    }
    return;
  }
  c.out.clear();
  c.out_off = 0;
  if (c.epollout) {
    c.epollout = false;
    set_events(c);
  }
  if (c.st == Conn::St::Flushing) {
    if (c.close_after_write || draining.load()) {
      begin_linger(c);
      return;
    }
    c.st = Conn::St::Reading;
    c.last_activity = Clock::now();
    if (!c.epollin) {
      c.epollin = true;
      set_events(c);
    }
    try_parse(c);  // a pipelined request may already be buffered
  }
}

void Server::Impl::finish_response(Conn& c, bool close) {
  c.st = Conn::St::Flushing;
  c.close_after_write = c.close_after_write || close;
  flush(c);
}

void Server::Impl::begin_linger(Conn& c) {
  // Half-close, then read and discard for a moment: closing with unread input would send an RST
  // that can destroy the error response (e.g. a 413 while the client is still sending its body).
  shutdown(c.fd, SHUT_WR);
  c.st = Conn::St::Lingering;
  c.linger_until = Clock::now() + std::chrono::seconds(2);
  c.in.clear();
  if (!c.epollin) {
    c.epollin = true;
    set_events(c);
  }
}

void Server::Impl::read_conn(Conn& c) {
  char buf[65536];
  const size_t cap = opt.http.max_header_bytes + opt.http.max_body_bytes + sizeof buf;
  while (true) {
    if (c.st != Conn::St::Lingering && c.in.size() >= cap) {
      // A busy connection (response in progress) pipelining more than one request's worth:
      // stop reading until the response is out; EPOLLRDHUP still reports a disconnect.
      c.epollin = false;
      set_events(c);
      break;
    }
    ssize_t n = recv(c.fd, buf, sizeof buf, 0);
    if (n > 0) {
      c.last_activity = Clock::now();
      if (c.st == Conn::St::Lingering) continue;  // discarded
      if (c.in.empty() && c.st == Conn::St::Reading && !c.req_started) {
        c.req_started = true;
        c.req_start = c.last_activity;
      }
      c.in.append(buf, size_t(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0 && errno == EINTR) continue;
    // EOF or error. A client that half-closes after its request is treated as gone: API
    // clients never do that, and a generation nobody can read is compute thrown away.
    close_conn(c.id);
    return;
  }
  if (c.st == Conn::St::Reading) try_parse(c);
}

void Server::Impl::try_parse(Conn& c) {
  if (c.in.empty()) {
    c.req_started = false;
    return;
  }
  if (!c.req_started) {
    c.req_started = true;
    c.req_start = Clock::now();
  }
  auto s = c.parser.feed(c.in);
  if (s == RequestParser::Status::NeedMore) return;
  if (s == RequestParser::Status::HeadersDone) {
    if (c.parser.request().expect_continue) {
      queue_out(c, "HTTP/1.1 100 Continue\r\n\r\n");
      flush(c);
    }
    return;
  }
  c.t_request = Clock::now();
  if (s == RequestParser::Status::Error) {
    // The framing is lost (we cannot tell where the next request starts): answer and close.
    const int st = c.parser.error_status();
    c.method = c.parser.request().method;
    c.path = c.parser.request().path;
    log_line(c, st, 0);
    queue_out(c, http_response(st, "application/json", error_body(st, c.parser.error_message()), false));
    c.in.clear();
    finish_response(c, true);
    return;
  }
  HttpRequest req = std::move(c.parser.request());
  c.in.erase(0, c.parser.consumed());
  c.parser.reset();
  c.req_started = false;
  c.method = req.method;
  c.path = req.path;
  c.st = Conn::St::Busy;
  {
    std::lock_guard<std::mutex> lk(wmu);
    wq.emplace_back(c.id, std::move(req));
  }
  wcv.notify_one();
}

void Server::Impl::take_mail() {
  uint64_t v;
  while (read(mail->wake_fd, &v, sizeof v) > 0) {
  }
  std::vector<Mailbox::Outcome> outs;
  std::vector<std::shared_ptr<Job>> sig;
  {
    std::lock_guard<std::mutex> lk(mail->mu);
    outs.swap(mail->outcomes);
    sig.swap(mail->signaled);
  }
  for (auto& o : outs) {
    Conn* c = find(o.conn_id);
    if (!c) continue;  // the client left while its request was being parsed; nothing submitted
    if (o.job) {
      start_job(*c, std::move(o.job));
      continue;
    }
    log_line(*c, o.status, seconds(Clock::now() - c->t_request));
    queue_out(*c, o.response);
    finish_response(*c, o.close);
  }
  for (auto& j : sig) drain_job(j);
}

void Server::Impl::start_job(Conn& c, std::shared_ptr<Job> job) {
  job->conn_id = c.id;
  std::weak_ptr<Mailbox> wmail = mail;
  for (size_t i = 0; i < job->gen.size(); i++) {
    // The sink runs on the engine thread: append to the job's channel, wake the loop, return.
    std::shared_ptr<Job> jref = job;
    EventSink sink = [jref, wmail, i](const GenerationEvent& ev) {
      bool first;
      {
        std::lock_guard<std::mutex> lk(jref->mu);
        jref->inbox.push_back({int(i), ev, Clock::now()});
        first = !jref->signaled;
        jref->signaled = true;
      }
      if (!first) return;
      if (auto m = wmail.lock()) {
        {
          std::lock_guard<std::mutex> lk(m->mu);
          m->signaled.push_back(jref);
        }
        m->wake();
      }
    };
    int status = 0;
    std::string code, msg;
    try {
      job->engine_ids[i] = svc.submit(job->gen[i], std::move(sink));
      job->submitted[i] = 1;
    } catch (const AdmissionError& e) {
      msg = e.what();
      switch (e.kind) {
        case AdmissionError::QueueFull: status = 429; code = "queue_full"; break;
        case AdmissionError::PromptTooLong: status = 400; code = "context_length_exceeded"; break;
        case AdmissionError::BadRequest: status = 400; break;
        case AdmissionError::ShuttingDown: status = 503; break;
      }
    } catch (const Error& e) {  // validation the API layer did not anticipate: still the client's input
      status = 400;
      msg = e.what();
    }
    if (status) {
      abort_job(*job);
      job->completed = true;  // events of the choices already submitted are drained for metrics only
      const std::string& what = msg;
      log_line(c, status, seconds(Clock::now() - c.t_request));
      queue_out(c, http_response(status, "application/json", error_body(status, what, "", code),
                                 job->keep_alive && status != 503));
      finish_response(c, !job->keep_alive || status == 503);
      return;
    }
  }
  c.job = job;
  if (job->req.stream) {
    queue_out(c, http_stream_head(200, "text/event-stream; charset=utf-8", job->chunked, job->keep_alive));
    job->head_sent = true;
    for (const auto& s : job->streams) {
      ChoiceResult d;
      d.index = s->total().index;
      std::string ev;
      if (job->req.endpoint == Endpoint::Chat) {
        ev = sse_event(chat_chunk(job->id, job->created, job->req.model, d, false, "", true));
      } else if (job->req.echo) {
        d.text = job->req.prompt_texts[size_t(d.index / job->req.n)];
        ev = sse_event(completion_chunk(job->id, job->created, job->req.model, d, false, ""));
      }
      if (!ev.empty()) queue_out(c, job->chunked ? http_chunk(ev) : ev);
    }
    flush(c);
  }
  if (find(job->conn_id)) drain_job(job);
}

void Server::Impl::drain_job(const std::shared_ptr<Job>& jp) {
  Job& job = *jp;
  std::vector<TimedEvent> evs;
  {
    std::lock_guard<std::mutex> lk(job.mu);
    evs.swap(job.inbox);
    job.signaled = false;
  }
  Conn* c = find(job.conn_id);
  if (c && c->job != jp) c = nullptr;  // orphaned (client gone) or not yet started
  const bool stream = job.req.stream, chat = job.req.endpoint == Endpoint::Chat, lp = job.req.logprobs >= 0;
  auto send_delta = [&](const ChoiceResult& d, const std::string& finish) {
    if (!c || !stream) return;
    if (d.text.empty() && d.reasoning.empty() && d.logprobs.empty() && d.tool_calls.empty() && finish.empty()) return;
    json j = chat ? chat_chunk(job.id, job.created, job.req.model, d, lp, finish, false)
                  : completion_chunk(job.id, job.created, job.req.model, d, lp, finish);
    std::string ev = sse_event(j);
    queue_out(*c, job.chunked ? http_chunk(ev) : ev);
  };
  for (TimedEvent& te : evs) {
    const size_t i = size_t(te.choice);
    ChoiceStream& s = *job.streams[i];
    if (te.ev.token >= 0 && !job.completed) {
      if (job.last_token[i] != Clock::time_point{}) metrics.observe_inter_token(seconds(te.t - job.last_token[i]));
      job.last_token[i] = te.t;
      if (!s.finished()) {
        ChoiceResult d;
        try {
          if (s.push(te.ev, d)) {
            svc.abort(job.engine_ids[i]);  // stop string: the engine stops within a step
            s.finish(te.ev, d);
            send_delta(d, d.finish_reason);
          } else {
            send_delta(d, "");
          }
        } catch (const std::exception& e) {
          // E.g. an id the tokenizer cannot decode (a model vocabulary padded past the
          // tokenizer's): this choice fails, the server and the other choices go on.
          if (job.error.empty()) job.error = std::string("cannot detokenize the output: ") + e.what();
          svc.abort(job.engine_ids[i]);
          GenerationEvent fail;
          fail.finished = true;
          fail.reason = FinishReason::Error;
          ChoiceResult none;
          s.finish(fail, none);
        }
      }
    }
    if (te.ev.finished && !job.final_seen[i]) {
      job.final_seen[i] = 1;
      job.n_final++;
      metrics.observe_finished({te.ev.stats, te.ev.reason});
      if (job.req.return_stats) job.stats.push_back(stats_json(s.total().index, te.ev.stats));
      if (te.ev.reason == FinishReason::Error && job.error.empty())
        job.error = te.ev.error.empty() ? "generation failed" : te.ev.error;
      if (!job.completed) {
        job.usage.completion_tokens += s.tokens();
        if (size_t(i) % size_t(job.req.n) == 0) job.usage.cached_tokens += te.ev.stats.cached_prompt_tokens;
        if (!s.finished()) {
          ChoiceResult d;
          s.finish(te.ev, d);
          send_delta(d, d.finish_reason);
        }
      }
    }
  }
  if (!job.completed && job.n_final == int(job.streams.size())) complete_job(c, job);
  else if (c) flush(*c);
}

void Server::Impl::complete_job(Conn* c, Job& job) {
  job.completed = true;
  if (!c) return;
  c->job.reset();
  const auto& a = job.req;
  std::string extra = " prompt=" + std::to_string(job.usage.prompt_tokens) +
                      " completion=" + std::to_string(job.usage.completion_tokens);
  if (a.stream) {
    if (!job.error.empty()) {
      std::string ev = sse_event(json::parse(error_body(500, job.error)));
      queue_out(*c, job.chunked ? http_chunk(ev) : ev);
    }
    if (a.include_usage) {
      json u = usage_chunk(job.id, job.created, a.model, a.endpoint, job.usage);
      if (a.return_stats) u["stats"] = job.stats;
      std::string ev = sse_event(u);
      queue_out(*c, job.chunked ? http_chunk(ev) : ev);
    }
    const std::string done = "data: [DONE]\n\n";
    queue_out(*c, job.chunked ? http_chunk(done) : done);
    if (job.chunked) queue_out(*c, kHttpLastChunk);
    log_line(*c, 200, seconds(Clock::now() - c->t_request), extra);
    finish_response(*c, !job.keep_alive);
    return;
  }
  if (!job.error.empty()) {
    log_line(*c, 500, seconds(Clock::now() - c->t_request), extra);
    queue_out(*c, http_response(500, "application/json", error_body(500, job.error), job.keep_alive));
    finish_response(*c, !job.keep_alive);
    return;
  }
  std::vector<ChoiceResult> choices;
  for (const auto& s : job.streams) choices.push_back(s->total());
  json body = a.endpoint == Endpoint::Chat
                  ? chat_response(job.id, job.created, a.model, choices, job.usage, a.logprobs >= 0)
                  : completion_response(job.id, job.created, a.model, choices, job.usage, a.logprobs >= 0);
  if (a.return_stats) body["stats"] = job.stats;
  log_line(*c, 200, seconds(Clock::now() - c->t_request), extra);
  queue_out(*c, http_response(200, "application/json", dump_json(body), job.keep_alive));
  finish_response(*c, !job.keep_alive);
}

void Server::Impl::check_timeouts(Clock::time_point now) {
  // Decide first, act after: acting may close connections, which must not happen mid-iteration.
  std::vector<uint64_t> to_close, to_408;
  for (auto& [id, cp] : conns) {
    Conn& c = *cp;
    if (c.st == Conn::St::Lingering) {
      if (now > c.linger_until) to_close.push_back(id);
    } else if (c.out_off < c.out.size() && seconds(now - c.write_progress) > opt.write_timeout_s) {
      to_close.push_back(id);  // the client stopped reading (or vanished without a FIN)
    } else if (c.st == Conn::St::Reading) {
      if (c.req_started && seconds(now - c.req_start) > opt.request_timeout_s) to_408.push_back(id);
      else if (!c.req_started && (seconds(now - c.last_activity) > opt.idle_timeout_s || draining.load()))
        to_close.push_back(id);
    }
  }
  for (uint64_t id : to_close) close_conn(id);
  for (uint64_t id : to_408) {
    Conn* c = find(id);
    if (!c) continue;
    c->method = c->parser.request().method;
    c->path = c->parser.request().path;
    log_line(*c, 408, seconds(now - c->req_start));
    queue_out(*c, http_response(408, "application/json",
                                error_body(408, "the request was not received in time", "", "request_timeout"), false));
    c->in.clear();
    finish_response(*c, true);
  }
}

void Server::Impl::on_event(uint64_t id, uint32_t events) {
  Conn* c = find(id);
  if (!c) return;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    read_conn(*c);  // reads to EOF/error and closes there
    c = find(id);
    if (!c) return;
    if (events & (EPOLLHUP | EPOLLERR)) {
      close_conn(id);
      return;
    }
  }
  if ((events & EPOLLOUT) && c->out_off < c->out.size()) flush(*c);
}

void Server::Impl::loop() {
  epoll_event evs[256];
  auto last_scan = Clock::now();
  bool stop_seen = false;
  while (true) {
    int n = epoll_wait(ep, evs, 256, 100);
    for (int k = 0; k < n; k++) {
      const uint64_t id = evs[k].data.u64;
      try {
        if (id == kListenId) accept_all();
        else if (id == kWakeId) take_mail();
        else on_event(id, evs[k].events);
      } catch (const std::exception& e) {
        // A bug or an allocation failure while serving one connection must not end the others.
        std::fprintf(stderr, "strata serve: internal error: %s\n", e.what());
        if (id > kWakeId) close_conn(id);
      }
    }
    if (mail->stop.load() && !stop_seen) {
      stop_seen = true;
      draining = true;
      drain_deadline = Clock::now() + std::chrono::milliseconds(int64_t(opt.drain_timeout_s * 1000));
      epoll_ctl(ep, EPOLL_CTL_DEL, listen_fd, nullptr);
      close(listen_fd);
      listen_fd = -1;
      std::fprintf(stderr, "strata serve: draining %zu connection(s)\n", conns.size());
    }
    const auto now = Clock::now();
    if (seconds(now - last_scan) > 0.1 || stop_seen) {
      last_scan = now;
      check_timeouts(now);
    }
    if (stop_seen) {
      bool busy = false;
      for (auto& [id, c] : conns) busy |= c->st != Conn::St::Lingering;
      if (!busy) {
        std::lock_guard<std::mutex> lk(wmu);
        busy = !wq.empty();
      }
      if (!busy) break;
      if (now > drain_deadline) {
        std::vector<uint64_t> ids;
        for (auto& [id, c] : conns) ids.push_back(id);
        for (uint64_t id : ids) close_conn(id);
        break;
      }
    }
  }
  std::vector<uint64_t> ids;
  for (auto& [id, c] : conns) ids.push_back(id);
  for (uint64_t id : ids) close_conn(id);
}

// ============================================================================================

Server::Server(ServerOptions opt, GenerationService& service, ModelText text)
    : impl_(std::make_unique<Impl>(std::move(opt), service, std::move(text))) {
  impl_->mail->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  STRATA_CHECK(impl_->mail->wake_fd >= 0, std::string("eventfd: ") + std::strerror(errno));
}

Server::~Server() {
  {
    std::lock_guard<std::mutex> lk(impl_->wmu);
    impl_->wstop = true;
  }
  impl_->wcv.notify_all();
  for (auto& t : impl_->workers) t.join();
  if (impl_->listen_fd >= 0) close(impl_->listen_fd);
  if (impl_->ep >= 0) close(impl_->ep);
}

void Server::listen() {
  Impl& s = *impl_;
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  const std::string port = std::to_string(s.opt.port);
  int rc = getaddrinfo(s.opt.host.empty() ? nullptr : s.opt.host.c_str(), port.c_str(), &hints, &res);
  STRATA_CHECK(rc == 0, "cannot resolve --host " + s.opt.host + ": " + gai_strerror(rc));
  std::string last_err;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 1024) == 0) {
      s.listen_fd = fd;
      sockaddr_storage sa{};
      socklen_t len = sizeof sa;
      getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
      s.bound_port = sa.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&sa)->sin6_port)
                                              : ntohs(reinterpret_cast<sockaddr_in*>(&sa)->sin_port);
      break;
    }
    last_err = std::strerror(errno);
    close(fd);
  }
  freeaddrinfo(res);
  STRATA_CHECK(s.listen_fd >= 0, "cannot listen on " + s.opt.host + ":" + port + ": " + last_err);
  s.ep = epoll_create1(EPOLL_CLOEXEC);
  STRATA_CHECK(s.ep >= 0, std::string("epoll_create1: ") + std::strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenId;
  epoll_ctl(s.ep, EPOLL_CTL_ADD, s.listen_fd, &ev);
  ev.data.u64 = kWakeId;
  epoll_ctl(s.ep, EPOLL_CTL_ADD, s.mail->wake_fd, &ev);
}

int Server::port() const { return impl_->bound_port; }

void Server::run() {
  Impl& s = *impl_;
  STRATA_CHECK(s.ep >= 0, "Server::run() before listen()");
  for (int i = 0; i < std::max(1, s.opt.workers); i++) s.workers.emplace_back([&s] { s.worker_main(); });
  s.loop();
}

void Server::request_stop() {
  impl_->mail->stop.store(true);
  impl_->mail->wake();
}

ServerMetrics& Server::metrics() { return impl_->metrics; }

}  // namespace strata::server
