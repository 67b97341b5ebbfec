// What the server needs from a generation engine: submit/abort/metrics plus the few model facts
// the API layer validates against. Not the engine: EngineService adapts engine/engine.h to it,
// and the server's unit tests plug in a scripted fake, so HTTP/SSE/API code is testable alone.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace strata::server {

class GenerationService {
 public:
  virtual ~GenerationService() = default;
  // As Engine::submit: thread-safe, may throw AdmissionError; the sink runs on the engine thread.
  virtual uint64_t submit(GenerationRequest req, EventSink sink) = 0;
  virtual void abort(uint64_t id) = 0;
  virtual EngineMetrics metrics() const = 0;
  // Finishes (drain) or aborts everything and stops; called once, after the HTTP side stopped.
  virtual void shutdown(bool drain) = 0;

  virtual int max_context() const = 0;   // prompt + max_tokens must fit
  virtual int vocab_size() const = 0;    // prompt ids must be below it
  virtual std::vector<int> eos_ids() const = 0;  // counted as tokens, never rendered as text
};

// The real engine behind the interface (server/engine_service.cpp).
std::unique_ptr<GenerationService> make_engine_service(std::unique_ptr<Engine> engine, int max_context);

}  // namespace strata::server
