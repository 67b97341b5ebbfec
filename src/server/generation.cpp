// Per-choice text assembly for the OpenAI endpoints (detokenize, stop strings, reasoning split).
// Not thread-safe by design: one ChoiceStream belongs to one response, driven by one thread.
#include "server/generation.h"

#include <algorithm>

namespace strata::server {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Abort: return "abort";
    case FinishReason::Error: return "error";
  }
  return "error";
}

size_t find_stop(const std::string& text, const std::vector<std::string>& stops, size_t* hold) {
  size_t best = std::string::npos;
  for (const auto& s : stops) {
    size_t p = text.find(s);
    if (p < best) best = p;
  }
  size_t h = 0;
  if (best == std::string::npos) {
    // Longest suffix of text that is a proper prefix of some stop string.
    for (const auto& s : stops) {
      for (size_t k = std::min(s.size() - 1, text.size()); k > h; k--)
        if (text.compare(text.size() - k, k, s, 0, k) == 0) {
          h = k;
          break;
        }
    }
  }
  if (hold) *hold = h;
  return best;
}

ChoiceStream::ChoiceStream(const TextConfig& cfg, std::span<const int> prompt, int index)
    : cfg_(cfg), dec_(cfg.tok, cfg.skip_special, prompt) {
  total_.index = index;
  if (cfg_.tool_format != ToolFormat::None) tool_stream_ = std::make_unique<ToolCallStream>(cfg_.tool_format, cfg_.tools);
  if (cfg_.split_reasoning) {
    think_open_ = cfg_.tok->token_to_id("<think>");
    think_close_ = cfg_.tok->token_to_id("</think>");
    if (cfg_.starts_in_reasoning && think_close_) {
      section_ = 1;
      total_.has_reasoning = true;
    }
  }
}

void ChoiceStream::emit(int section, const std::string& s, ChoiceResult& delta) {
  if (s.empty()) return;
  if (section == 0 && tool_stream_) {  // content goes through the tool-call parser
    std::string text;
    std::vector<ToolCall> calls;
    tool_stream_->push(s, text, calls);
    delta.text += text;
    total_.text += text;
    for (auto& c : calls) {
      total_.tool_calls.push_back(c);
      delta.tool_calls.push_back(std::move(c));
    }
    return;
  }
  (section ? delta.reasoning : delta.text) += s;
  (section ? total_.reasoning : total_.text) += s;
}

void ChoiceStream::release(int section, ChoiceResult& delta, bool final) {
  std::string& p = pending_[section];
  if (p.empty()) return;
  size_t hold = 0;
  size_t at = cfg_.stop.empty() ? std::string::npos : find_stop(p, cfg_.stop, &hold);
  if (at != std::string::npos) {
    emit(section, p.substr(0, at), delta);
    p.clear();
    stopped_ = true;
    total_.finish_reason = "stop";
    return;
  }
  if (final) hold = 0;
  emit(section, p.substr(0, p.size() - hold), delta);
  p.erase(0, p.size() - hold);
}

bool ChoiceStream::push(const GenerationEvent& ev, ChoiceResult& delta) {
  delta.index = total_.index;
  if (stopped_ || finished_ || ev.token < 0) return false;
  n_tokens_++;
  const int id = ev.token;
  if (cfg_.logprobs >= 0) {
    LogprobEntry e;
    e.token = cfg_.tok->decode(std::span<const int>(&id, 1), false);
    e.logprob = ev.logprob;
    for (size_t k = 0; k < ev.top.size() && int(k) < cfg_.logprobs; k++)
      e.top.emplace_back(cfg_.tok->decode(std::span<const int>(&ev.top[k].id, 1), false), ev.top[k].logprob);
    delta.logprobs.push_back(e);
    total_.logprobs.push_back(std::move(e));
  }
  if (std::find(cfg_.hidden_ids.begin(), cfg_.hidden_ids.end(), id) != cfg_.hidden_ids.end()) return false;
  if (think_open_ && think_close_ && (id == *think_open_ || id == *think_close_)) {
    // Section switch: text held back for a stop string is released where it was produced.
    release(section_, delta, true);
    if (stopped_) return true;
    section_ = id == *think_open_ ? 1 : 0;
    if (section_ == 1) {
      total_.has_reasoning = true;
      delta.has_reasoning = true;
    }
    return false;
  }
  pending_[section_] += dec_.push(id);
  release(section_, delta, false);
  return stopped_;
}

void ChoiceStream::finish(const GenerationEvent& ev, ChoiceResult& delta) {
  delta.index = total_.index;
  if (finished_) return;
  finished_ = true;
  if (!stopped_) {
    pending_[section_] += dec_.finish();
    release(section_, delta, true);
  }
  if (tool_stream_) {  // an open tool-call section is plain text after all
    std::string text;
    std::vector<ToolCall> calls;
    tool_stream_->finish(text, calls);
    delta.text += text;
    total_.text += text;
    for (auto& c : calls) {
      total_.tool_calls.push_back(c);
      delta.tool_calls.push_back(std::move(c));
    }
  }
  if (!stopped_) total_.finish_reason = finish_reason_name(ev.reason);
  // The model ended its turn with tool calls (not cut by length or an error).
  if (!total_.tool_calls.empty() && total_.finish_reason == "stop") total_.finish_reason = "tool_calls";
  delta.finish_reason = total_.finish_reason;
}

}  // namespace strata::server
