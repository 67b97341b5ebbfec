// Engine: the thread-safe shell around EngineCore. submit()/abort() post to a queue under a
// mutex; one engine thread drains it between steps, runs step() and calls the sinks.
// Not the step logic (engine_core.cpp) and not HTTP: sinks are the server's channels.
#include "engine/engine.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "engine/engine_core.h"
#include "model/model.h"

namespace strata {

struct Engine::Impl {
  struct Pending {
    uint64_t id;
    GenerationRequest req;
    EventSink sink;
    double t_submit;
  };

  std::shared_ptr<Model> model;
  EngineCore core;  // engine thread only (validate() aside: it reads config only)

  std::mutex mu;  // guards everything below up to `thread`
  std::condition_variable cv;
  std::vector<Pending> incoming;
  std::vector<uint64_t> aborts;
  bool stopping = false, drain = false;
  uint64_t next_id = 1;
  EngineMetrics snapshot;  // refreshed after every step

  std::mutex join_mu;
  std::thread thread;
  std::unordered_map<uint64_t, EventSink> sinks;  // engine thread only

  Impl(std::shared_ptr<Model> m, const EngineConfig& cfg) : model(std::move(m)), core(*model, cfg) {
    snapshot = core.metrics();
    snapshot.ready = true;
  }

  void deliver(std::vector<CoreOutput>& out) {
    for (CoreOutput& o : out) {
      auto it = sinks.find(o.id);
      if (it == sinks.end()) continue;
      try {
        it->second(o.event);
      } catch (...) {
        // A sink must not throw; if one does, the engine keeps serving everyone else.
      }
      if (o.event.finished) sinks.erase(it);
    }
    out.clear();
  }

  void loop() {
    std::vector<CoreOutput> out;
    std::vector<Pending> in;
    std::vector<uint64_t> ab;
    for (;;) {
      bool stop_now = false, abort_everything = false;
      {
        std::unique_lock<std::mutex> lk(mu);
        const bool busy = core.has_work();
        cv.wait(lk, [&] { return busy || stopping || !incoming.empty() || !aborts.empty(); });
        in.swap(incoming);
        ab.swap(aborts);
        abort_everything = stopping && !drain;
        stop_now = stopping && in.empty() && (abort_everything || !core.has_work());
      }
      for (Pending& p : in) {
        sinks[p.id] = std::move(p.sink);
        core.add(p.id, std::move(p.req), p.t_submit);
      }
      in.clear();
      for (uint64_t id : ab) core.abort(id, out);
      ab.clear();
      if (abort_everything) core.abort_all(out);
      bool idle_step = false;
      try {
        if (core.has_work()) {
          core.step(out);
          idle_step = core.last_plan().empty();
        }
      } catch (const std::exception& e) {
        core.fail_all(std::string("engine: ") + e.what(), out);  // a bug, not bad input: fail, keep serving
      }
      deliver(out);
      {
        std::lock_guard<std::mutex> lk(mu);
        snapshot = core.metrics();
        snapshot.ready = !stopping;
      }
      if (stop_now && !core.has_work()) break;
      if (idle_step) {
        // Work exists but nothing could be scheduled (blocks held elsewhere): do not spin hot.
        std::unique_lock<std::mutex> lk(mu);
        cv.wait_for(lk, std::chrono::milliseconds(1));
      }
    }
    std::lock_guard<std::mutex> lk(mu);
    snapshot.ready = false;
  }
};

const char* scheduler_policy_name(SchedulerPolicy p) {
  switch (p) {
    case SchedulerPolicy::None: return "none";
    case SchedulerPolicy::Chunked: return "chunked";
    case SchedulerPolicy::Layered: return "layered";
    case SchedulerPolicy::ChunkedLayered: return "chunked+layered";
  }
  return "?";
}

bool parse_scheduler_policy(const std::string& name, SchedulerPolicy& out) {
  if (name == "none") out = SchedulerPolicy::None;
  else if (name == "chunked") out = SchedulerPolicy::Chunked;
  else if (name == "layered") out = SchedulerPolicy::Layered;
  else if (name == "chunked+layered" || name == "chunked-layered" || name == "chunked_layered")
    out = SchedulerPolicy::ChunkedLayered;
  else return false;
  return true;
}

int default_max_step_tokens(SchedulerPolicy p) {
  switch (p) {
    case SchedulerPolicy::Chunked: return 512;
    case SchedulerPolicy::ChunkedLayered: return 2048;
    case SchedulerPolicy::Layered:
    case SchedulerPolicy::None: return 8192;
  }
  return 512;
}

Engine::Engine(std::shared_ptr<Model> model, const EngineConfig& cfg)
    : impl_(std::make_unique<Impl>(std::move(model), cfg)) {
  impl_->thread = std::thread([this] { impl_->loop(); });
}

Engine::~Engine() { shutdown(false); }

uint64_t Engine::submit(GenerationRequest req, EventSink sink) {
  if (!sink) throw AdmissionError(AdmissionError::BadRequest, "no event sink");
  impl_->core.validate(req);  // throws before anything is queued or computed
  const double t = EngineCore::now();
  std::lock_guard<std::mutex> lk(impl_->mu);
  if (impl_->stopping) throw AdmissionError(AdmissionError::ShuttingDown, "the engine is shutting down");
  if (int(impl_->incoming.size()) + impl_->snapshot.waiting >= impl_->core.config().max_waiting)
    throw AdmissionError(AdmissionError::QueueFull,
                         "queue full (" + std::to_string(impl_->core.config().max_waiting) + " waiting)");
  const uint64_t id = impl_->next_id++;
  impl_->incoming.push_back({id, std::move(req), std::move(sink), t});
  impl_->cv.notify_one();
  return id;
}

void Engine::abort(uint64_t id) {
  std::lock_guard<std::mutex> lk(impl_->mu);
  impl_->aborts.push_back(id);
  impl_->cv.notify_one();
}

EngineMetrics Engine::metrics() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  EngineMetrics m = impl_->snapshot;
  m.waiting += int(impl_->incoming.size());  // submitted, not yet seen by the engine thread
  return m;
}

void Engine::shutdown(bool drain) {
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    // A second call may turn a draining shutdown into an aborting one, never the reverse.
    if (!impl_->stopping) impl_->drain = drain;
    else if (!drain) impl_->drain = false;
    impl_->stopping = true;
    impl_->snapshot.ready = false;
    impl_->cv.notify_one();
  }
  std::lock_guard<std::mutex> lk(impl_->join_mu);
  if (impl_->thread.joinable() && impl_->thread.get_id() != std::this_thread::get_id()) impl_->thread.join();
}

const Model& Engine::model() const { return *impl_->model; }

}  // namespace strata
