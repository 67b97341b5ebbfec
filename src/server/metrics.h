// Prometheus text exposition (format 0.0.4) of the server's latency histograms and counters,
// plus the engine's gauges and counters (Engine::metrics()) read at scrape time.
// Not a general metrics library: a fixed set of series, thread-safe through one small mutex.
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace strata::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}
  void observe(double v);
  // "# HELP/# TYPE" and the _bucket/_sum/_count lines; call with the owner's lock held.
  void render(std::string& out, const std::string& name, const std::string& help) const;
  uint64_t count() const { return n_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative); last is +Inf
  double sum_ = 0;
  uint64_t n_ = 0;
};

// One finished request (one choice) as the metrics see it.
struct FinishedStats {
  RequestStats stats;
  FinishReason reason = FinishReason::Stop;
};

class ServerMetrics {
 public:
  ServerMetrics();
  void observe_finished(const FinishedStats& f);
  void observe_inter_token(double seconds);
  void count_http(int status);
  void set_connections(int n);
  std::string render(const EngineMetrics& e) const;

 private:
  mutable std::mutex mu_;
  Histogram ttft_, itl_, e2e_, queue_;
  std::map<int, uint64_t> http_by_status_;
  std::map<std::string, uint64_t> finished_by_reason_;
  uint64_t cached_prompt_tokens_ = 0;
  int connections_ = 0;
};

}  // namespace strata::server
