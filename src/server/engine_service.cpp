// GenerationService over the real engine (engine/engine.h): a pass-through plus the model facts
// the API validates against. Not a second queue: Engine::submit is the queue.
#include "model/model.h"
#include "server/service.h"

namespace strata::server {

namespace {

class EngineService final : public GenerationService {
 public:
  EngineService(std::unique_ptr<Engine> e, int max_context) : e_(std::move(e)), max_context_(max_context) {}
  uint64_t submit(GenerationRequest req, EventSink sink) override { return e_->submit(std::move(req), std::move(sink)); }
  void abort(uint64_t id) override { e_->abort(id); }
  EngineMetrics metrics() const override { return e_->metrics(); }
  void shutdown(bool drain) override { e_->shutdown(drain); }
  int max_context() const override { return max_context_; }
  int vocab_size() const override { return e_->model().config().n_vocab; }
  std::vector<int> eos_ids() const override { return e_->model().config().eos_token_ids; }

 private:
  std::unique_ptr<Engine> e_;
  int max_context_;
};

}  // namespace

std::unique_ptr<GenerationService> make_engine_service(std::unique_ptr<Engine> engine, int max_context) {
  return std::make_unique<EngineService>(std::move(engine), max_context);
}

}  // namespace strata::server
