// Prometheus exposition for `strata serve` (/metrics). Names follow Prometheus conventions
// (strata_ prefix, _seconds/_total suffixes); buckets match vLLM's so dashboards transfer.
// Not pushed anywhere: scraped.
#include "server/metrics.h"

#include "server/generation.h"

#include <algorithm>
#include <cstdio>

namespace strata::server {

namespace {

std::string num(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

void line(std::string& out, const std::string& name, const std::string& help, const char* type, double v) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + " " + num(v) + "\n";
}


}  // namespace

void Histogram::observe(double v) {
  size_t i = size_t(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  counts_[i]++;  // le is inclusive: lower_bound puts v == bound in that bound's bucket
  sum_ += v;
  n_++;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  uint64_t cum = 0;
  for (size_t i = 0; i < bounds_.size(); i++) {
    cum += counts_[i];
    out += name + "_bucket{le=\"" + num(bounds_[i]) + "\"} " + std::to_string(cum) + "\n";
  }
  cum += counts_.back();
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(cum) + "\n";
  out += name + "_sum " + num(sum_) + "\n" + name + "_count " + std::to_string(n_) + "\n";
}

ServerMetrics::ServerMetrics()
    : ttft_({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
             80.0, 160.0, 640.0, 2560.0}),
      itl_({0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0}),
      e2e_({0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0,
            960.0, 1920.0, 7680.0}),
      queue_({0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0,
              960.0, 1920.0, 7680.0}) {}

void ServerMetrics::observe_finished(const FinishedStats& f) {
  std::lock_guard<std::mutex> lk(mu_);
  // A request aborted or failed before its first token has no TTFT worth recording.
  if (f.stats.completion_tokens > 0) ttft_.observe(f.stats.ttft_s);
  e2e_.observe(f.stats.e2e_s);
  queue_.observe(f.stats.queue_s);
  finished_by_reason_[finish_reason_name(f.reason)]++;
  cached_prompt_tokens_ += uint64_t(std::max(0, f.stats.cached_prompt_tokens));
}

void ServerMetrics::observe_inter_token(double seconds) {
  std::lock_guard<std::mutex> lk(mu_);
  itl_.observe(seconds);
}

void ServerMetrics::count_http(int status) {
  std::lock_guard<std::mutex> lk(mu_);
  http_by_status_[status]++;
}

void ServerMetrics::set_connections(int n) {
  std::lock_guard<std::mutex> lk(mu_);
  connections_ = n;
}

std::string ServerMetrics::render(const EngineMetrics& e) const {
  std::string o;
  o.reserve(8192);
  line(o, "strata_num_requests_running", "Sequences in the running batch.", "gauge", e.running);
  line(o, "strata_num_requests_waiting", "Sequences queued for admission.", "gauge", e.waiting);
  line(o, "strata_kv_cache_blocks_total", "KV cache blocks in the pool.", "gauge", e.kv_blocks_total);
  line(o, "strata_kv_cache_blocks_used", "KV cache blocks held by sequences.", "gauge", e.kv_blocks_used);
  line(o, "strata_kv_cache_usage_ratio", "Fraction of KV cache blocks in use (0..1).", "gauge",
       e.kv_blocks_total > 0 ? double(e.kv_blocks_used) / e.kv_blocks_total : 0.0);
  line(o, "strata_prefix_cache_queries_tokens_total", "Prompt tokens looked up in the prefix cache.", "counter",
       double(e.prefix_queries_tokens));
  line(o, "strata_prefix_cache_hits_tokens_total", "Prompt tokens found in the prefix cache.", "counter",
       double(e.prefix_hit_tokens));
  line(o, "strata_prefix_cache_hit_ratio", "Prefix cache hit tokens over queried tokens since start.", "gauge",
       e.prefix_queries_tokens ? double(e.prefix_hit_tokens) / double(e.prefix_queries_tokens) : 0.0);
  line(o, "strata_engine_steps_total", "Engine iterations run.", "counter", double(e.steps));
  line(o, "strata_expert_bytes_total", "Bytes of MoE expert weights read by all steps.", "counter",
       double(e.expert_bytes));
  line(o, "strata_prompt_tokens_total", "Prompt tokens computed.", "counter", double(e.prompt_tokens));
  line(o, "strata_generation_tokens_total", "Tokens generated.", "counter", double(e.generated_tokens));
  line(o, "strata_preemptions_total", "Sequences preempted (recomputed) for lack of KV blocks.", "counter",
       double(e.preemptions));
  line(o, "strata_engine_ready", "1 when a generation can run.", "gauge", e.ready ? 1 : 0);
  std::lock_guard<std::mutex> lk(mu_);
  line(o, "strata_http_connections", "Open HTTP connections.", "gauge", connections_);
  line(o, "strata_cached_prompt_tokens_total", "Prompt tokens of finished requests served from the prefix cache.",
       "counter", double(cached_prompt_tokens_));
  o += "# HELP strata_http_responses_total HTTP responses by status code.\n# TYPE strata_http_responses_total counter\n";
  for (const auto& [code, n] : http_by_status_)
    o += "strata_http_responses_total{code=\"" + std::to_string(code) + "\"} " + std::to_string(n) + "\n";
  o += "# HELP strata_request_finished_total Finished sequences by finish reason.\n"
       "# TYPE strata_request_finished_total counter\n";
  for (const char* r : {"stop", "length", "abort", "error"}) {
    auto it = finished_by_reason_.find(r);
    o += std::string("strata_request_finished_total{finished_reason=\"") + r + "\"} " +
         std::to_string(it == finished_by_reason_.end() ? 0 : it->second) + "\n";
  }
  ttft_.render(o, "strata_time_to_first_token_seconds", "Submit to first token.");
  itl_.render(o, "strata_inter_token_latency_seconds", "Time between consecutive tokens of a sequence.");
  e2e_.render(o, "strata_e2e_request_latency_seconds", "Submit to finish.");
  queue_.render(o, "strata_request_queue_time_seconds", "Submit to first scheduled.");
  return o;
}

}  // namespace strata::server
