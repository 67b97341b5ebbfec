// The text side of one choice: generated ids -> streaming-safe text, stop strings cut on the
// detokenized text, <think>...</think> split into reasoning_content, logprob entries.
// Not the engine side: it never samples or aborts; it tells the caller when a stop string hit.
#pragma once
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "server/openai_api.h"
#include "server/tool_calls.h"
#include "tokenizer/tokenizer.h"

namespace strata::server {

struct TextConfig {
  std::shared_ptr<const Tokenizer> tok;
  std::vector<std::string> stop;   // stop strings (non-empty)
  std::vector<int> hidden_ids;     // eos and stop token ids: counted, never rendered as text
  bool skip_special = true;
  int logprobs = -1;               // < 0: no entries
  bool split_reasoning = false;    // chat: <think>...</think> goes to reasoning
  bool starts_in_reasoning = false;
  ToolFormat tool_format = ToolFormat::None;  // chat: content is parsed for tool calls in this format
  nlohmann::ordered_json tools;               // the request's tools (typing MiniMax-M2 parameters)
};

class ChoiceStream {
 public:
  ChoiceStream(const TextConfig& cfg, std::span<const int> prompt, int index);

  // One reported token. Appends what is now safe to show to `delta` (text or reasoning, plus its
  // logprob entry). Returns true when a stop string matched: the text is cut before it and the
  // choice is finished ("stop"); the caller must abort the engine request. Tokens after that
  // are ignored.
  bool push(const GenerationEvent& ev, ChoiceResult& delta);
  // The engine's final event: releases held-back text into `delta` and sets the finish reason
  // (unless a stop string already did).
  void finish(const GenerationEvent& ev, ChoiceResult& delta);

  bool stopped_by_string() const { return stopped_; }
  bool finished() const { return finished_; }
  int tokens() const { return n_tokens_; }  // tokens up to and including the one that stopped
  const ChoiceResult& total() const { return total_; }
  ChoiceResult& total() { return total_; }

 private:
  void release(int section, ChoiceResult& delta, bool final);
  void emit(int section, const std::string& s, ChoiceResult& delta);

  TextConfig cfg_;
  StreamDecoder dec_;
  std::optional<int> think_open_, think_close_;
  int section_ = 0;            // 0 content, 1 reasoning
  std::string pending_[2];     // decoded text held back (a stop string may still start in it)
  bool stopped_ = false, finished_ = false;
  int n_tokens_ = 0;
  ChoiceResult total_;
  std::unique_ptr<ToolCallStream> tool_stream_;  // set when tool calls are parsed
};

// Where in `text` the first of `stops` starts (npos: none); `hold` gets how many trailing bytes
// could still begin a stop string and must be held back.
size_t find_stop(const std::string& text, const std::vector<std::string>& stops, size_t* hold);

const char* finish_reason_name(FinishReason r);

}  // namespace strata::server
