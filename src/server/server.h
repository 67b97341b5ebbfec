// `strata serve`'s HTTP server: one epoll event loop owns every socket, a few worker threads
// turn requests into responses or engine jobs, the engine's sinks feed per-job channels.
// Not the engine and not the API mapping (openai_api.h): this file is I/O, routing and lifetimes.
#pragma once
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "server/http.h"
#include "server/metrics.h"
#include "server/openai_api.h"
#include "server/service.h"
#include "tokenizer/model_text.h"

namespace strata::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;            // 0: any free port (see Server::port())
  std::string api_key;        // empty: no auth; else /v1/* needs "Authorization: Bearer <key>"
  ApiLimits api;
  HttpLimits http;
  double request_timeout_s = 30;   // first byte of a request -> whole request received
  double idle_timeout_s = 60;      // keep-alive connection without a request
  double write_timeout_s = 60;     // pending response bytes without progress
  double drain_timeout_s = 60;     // SIGTERM: in-flight requests get this long, then are aborted
  int max_connections = 4096;      // beyond: accepted, answered 503, closed
  size_t max_pending_output = 8u << 20;  // a client that reads slower than this is dropped
  int workers = 2;                 // request parsing/tokenization threads
  bool log_requests = true;        // one line per response on stderr (never headers or bodies)
};

class Server {
 public:
  Server(ServerOptions opt, GenerationService& service, ModelText text);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens; throws Error naming the address on failure.
  void listen();
  int port() const;
  // Serves until request_stop(), then drains (in-flight requests finish, new ones get 503) and
  // returns. Runs on the calling thread.
  void run();
  // Async-signal-safe: may be called from a SIGTERM handler.
  void request_stop();

  ServerMetrics& metrics();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::server
