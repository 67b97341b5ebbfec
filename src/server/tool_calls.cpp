// Tool-call parsers (Hermes/Qwen3, Kimi-K2, DeepSeek-V3.1, MiniMax-M2) and the streaming filter
// that separates plain text from tool-call sections. Strict about the inside of a section (any
// junk makes the whole section plain text) and lenient about what surrounds it.
#include "server/tool_calls.h"

#include <cstdio>
#include <random>

#include "core/error.h"

namespace strata::server {

using ojson = nlohmann::ordered_json;

namespace {

struct Markers {
  const char* start;
  const char* end;
};

Markers markers(ToolFormat f) {
  switch (f) {
    case ToolFormat::Hermes: return {"<tool_call>", "</tool_call>"};
    case ToolFormat::KimiK2: return {"<|tool_calls_section_begin|>", "<|tool_calls_section_end|>"};
    case ToolFormat::DeepSeekV31: return {"<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"};
    case ToolFormat::MiniMaxM2: return {"<minimax:tool_call>", "</minimax:tool_call>"};
    case ToolFormat::None: break;
  }
  return {"", ""};
}

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && is_ws(s[a])) a++;
  while (b > a && is_ws(s[b - 1])) b--;
  return s.substr(a, b - a);
}

void skip_ws(const std::string& s, size_t& p) {
  while (p < s.size() && is_ws(s[p])) p++;
}

// s at p starts with lit: consume it.
bool eat(const std::string& s, size_t& p, const std::string& lit) {
  if (s.compare(p, lit.size(), lit) != 0) return false;
  p += lit.size();
  return true;
}

// The text from p up to the next `lit` (consumed); false when there is none.
bool until(const std::string& s, size_t& p, const std::string& lit, std::string& out) {
  size_t q = s.find(lit, p);
  if (q == std::string::npos) return false;
  out = s.substr(p, q - p);
  p = q + lit.size();
  return true;
}

// JSON text of an object (arguments), or nothing.
bool object_text(const std::string& s, std::string& out) {
  ojson j = ojson::parse(s, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return false;
  out = j.dump(-1, ' ', false, ojson::error_handler_t::replace);
  return true;
}

bool parse_hermes(const std::string& body, std::vector<ToolCall>& out) {
  ojson j = ojson::parse(trim(body), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("name") || !j["name"].is_string()) return false;
  ToolCall c;
  c.name = j["name"].get<std::string>();
  if (c.name.empty()) return false;
  const char* key = j.contains("arguments") ? "arguments" : j.contains("parameters") ? "parameters" : nullptr;
  ojson args = key ? j[key] : ojson::object();
  if (args.is_string()) {  // arguments given as a JSON string
    args = ojson::parse(args.get<std::string>(), nullptr, false);
    if (args.is_discarded()) return false;
  }
  if (!args.is_object()) return false;
  c.arguments = args.dump(-1, ' ', false, ojson::error_handler_t::replace);
  out.push_back(std::move(c));
  return true;
}

// Kimi-K2 and DeepSeek-V3.1: a run of BEGIN id SEP args END, whitespace between.
bool parse_delimited(const std::string& body, const std::string& begin, const std::string& sep, const std::string& end,
                     bool kimi_ids, std::vector<ToolCall>& out) {
  size_t p = 0;
  for (;;) {
    skip_ws(body, p);
    if (p == body.size()) break;
    std::string head, args;
    if (!eat(body, p, begin) || !until(body, p, sep, head) || !until(body, p, end, args)) return false;
    ToolCall c;
    head = trim(head);
    if (kimi_ids) {  // functions.NAME:IDX
      c.id = head;
      std::string n = head;
      if (n.rfind("functions.", 0) == 0) n = n.substr(10);
      size_t colon = n.rfind(':');
      if (colon != std::string::npos) n = n.substr(0, colon);
      c.name = n;
    } else if (head == "function" && args.find("\n```json\n") != std::string::npos) {
      // DeepSeek-V3 (before V3.1): TYPE<sep>NAME\n```json\nARGS\n```
      const size_t nl = args.find("\n```json\n");
      c.name = trim(args.substr(0, nl));
      std::string a = trim(args.substr(nl + 9));
      if (a.size() < 3 || a.compare(a.size() - 3, 3, "```") != 0) return false;
      args = a.substr(0, a.size() - 3);
      if (c.name.find_first_of("<>\n") != std::string::npos) return false;
    } else {
      c.name = head;
    }
    if (c.name.empty() || head.find_first_of("<>\n") != std::string::npos) return false;
    if (!object_text(trim(args), c.arguments)) return false;
    out.push_back(std::move(c));
  }
  return !out.empty();
}

// The JSON schema type of parameter `key` of tool `name` in `tools` ("" when not declared).
std::string schema_type(const ojson& tools, const std::string& name, const std::string& key) {
  if (!tools.is_array()) return "";
  for (const auto& t : tools) {
    if (!t.is_object() || !t.contains("function") || !t["function"].is_object()) continue;
    const ojson& f = t["function"];
    if (!f.contains("name") || f["name"] != name) continue;
    if (!f.contains("parameters") || !f["parameters"].is_object()) return "";
    const ojson& ps = f["parameters"];
    if (!ps.contains("properties") || !ps["properties"].is_object() || !ps["properties"].contains(key)) return "";
    const ojson& p = ps["properties"][key];
    if (!p.is_object() || !p.contains("type")) return "";
    if (p["type"].is_string()) return p["type"].get<std::string>();
    if (p["type"].is_array())  // ["string", "null"]: a string when it can be one
      for (const auto& x : p["type"])
        if (x == "string") return "string";
    return "json";
  }
  return "";
}

bool parse_minimax(const std::string& body, const ojson& tools, std::vector<ToolCall>& out) {
  size_t p = 0;
  for (;;) {
    skip_ws(body, p);
    if (p == body.size()) break;
    std::string name, inner;
    if (!eat(body, p, "<invoke name=\"") || !until(body, p, "\">", name) || !until(body, p, "</invoke>", inner))
      return false;
    if (name.empty() || name.find_first_of("<>\"\n") != std::string::npos) return false;
    ojson args = ojson::object();
    size_t q = 0;
    for (;;) {
      skip_ws(inner, q);
      if (q == inner.size()) break;
      std::string key, value;
      if (!eat(inner, q, "<parameter name=\"") || !until(inner, q, "\">", key) ||
          !until(inner, q, "</parameter>", value))
        return false;
      if (key.empty() || key.find_first_of("<>\"\n") != std::string::npos) return false;
      const std::string type = schema_type(tools, name, key);
      ojson v;
      if (type.empty()) {  // not declared: JSON when it is JSON, else the text itself
        v = ojson::parse(value, nullptr, false);
        if (v.is_discarded()) v = value;
      } else if (type != "string") {  // declared non-string: must be JSON, else the call is broken
        v = ojson::parse(value, nullptr, false);
        if (v.is_discarded()) return false;
      } else {
        v = value;
      }
      args[key] = std::move(v);
    }
    ToolCall c;
    c.name = name;
    c.arguments = args.dump(-1, ' ', false, ojson::error_handler_t::replace);
    out.push_back(std::move(c));
  }
  return !out.empty();
}

}  // namespace

ToolFormat detect_tool_format(const std::string& src) {
  // Most specific first: a Kimi or DeepSeek template may mention <tool_call> in prose.
  if (src.find("<|tool_calls_section_begin|>") != std::string::npos) return ToolFormat::KimiK2;
  if (src.find("<｜tool▁calls▁begin｜>") != std::string::npos) return ToolFormat::DeepSeekV31;
  if (src.find("minimax:tool_call") != std::string::npos) return ToolFormat::MiniMaxM2;
  if (src.find("<tool_call>") != std::string::npos) return ToolFormat::Hermes;
  return ToolFormat::None;
}

std::vector<std::string> tool_format_markers(ToolFormat f) {
  switch (f) {
    case ToolFormat::Hermes: return {"<tool_call>", "</tool_call>"};
    case ToolFormat::KimiK2:
      return {"<|tool_calls_section_begin|>", "<|tool_calls_section_end|>", "<|tool_call_begin|>",
              "<|tool_call_argument_begin|>", "<|tool_call_end|>"};
    case ToolFormat::DeepSeekV31:
      return {"<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁sep｜>",
              "<｜tool▁call▁end｜>"};
    case ToolFormat::MiniMaxM2: return {"<minimax:tool_call>", "</minimax:tool_call>"};
    case ToolFormat::None: break;
  }
  return {};
}

const char* tool_format_name(ToolFormat f) {
  switch (f) {
    case ToolFormat::Hermes: return "hermes";
    case ToolFormat::KimiK2: return "kimi_k2";
    case ToolFormat::DeepSeekV31: return "deepseek_v31";
    case ToolFormat::MiniMaxM2: return "minimax_m2";
    case ToolFormat::None: break;
  }
  return "none";
}

ToolFormat tool_format_from_name(const std::string& name) {
  for (ToolFormat f : {ToolFormat::None, ToolFormat::Hermes, ToolFormat::KimiK2, ToolFormat::DeepSeekV31,
                       ToolFormat::MiniMaxM2})
    if (name == tool_format_name(f)) return f;
  throw Error("unknown tool-call format '" + name + "' (hermes, kimi_k2, deepseek_v31, minimax_m2, none)");
}

ToolCallStream::ToolCallStream(ToolFormat f, ojson tools, std::string id_prefix)
    : fmt_(f), tools_(std::move(tools)), id_prefix_(std::move(id_prefix)) {
  Markers m = markers(f);
  start_ = m.start;
  end_ = m.end;
  if (id_prefix_.empty()) {
    std::random_device rd;
    char b[24];
    std::snprintf(b, sizeof b, "call_%08x%08x", rd(), rd());
    id_prefix_ = b;
  }
}

std::string ToolCallStream::next_id() {
  char b[16];
  std::snprintf(b, sizeof b, "%08llx", (unsigned long long)id_counter_++);
  return id_prefix_ + b;
}

void ToolCallStream::emit_plain(const std::string& s, std::string& text) {
  size_t last = s.size();
  while (last > 0 && is_ws(s[last - 1])) last--;
  if (last == 0) {
    held_ws_ += s;
    return;
  }
  text += held_ws_;
  text.append(s, 0, last);
  held_ws_ = s.substr(last);
}

bool ToolCallStream::parse_section(const std::string& body, std::vector<ToolCall>& out) const {
  switch (fmt_) {
    case ToolFormat::Hermes: return parse_hermes(body, out);
    case ToolFormat::KimiK2:
      return parse_delimited(body, "<|tool_call_begin|>", "<|tool_call_argument_begin|>", "<|tool_call_end|>", true,
                             out);
    case ToolFormat::DeepSeekV31:
      return parse_delimited(body, "<｜tool▁call▁begin｜>", "<｜tool▁sep｜>", "<｜tool▁call▁end｜>", false, out);
    case ToolFormat::MiniMaxM2: return parse_minimax(body, tools_, out);
    case ToolFormat::None: break;
  }
  return false;
}

void ToolCallStream::process(std::string& text, std::vector<ToolCall>& calls, bool final) {
  for (;;) {
    if (!in_section_) {
      size_t p = buf_.find(start_);
      if (p != std::string::npos) {
        emit_plain(buf_.substr(0, p), text);
        section_ws_ = std::move(held_ws_);
        held_ws_.clear();
        buf_.erase(0, p + start_.size());
        in_section_ = true;
        continue;
      }
      size_t hold = 0;  // the longest tail that may still become the start marker
      if (!final)
        for (size_t k = std::min(start_.size() - 1, buf_.size()); k > 0; k--)
          if (buf_.compare(buf_.size() - k, k, start_, 0, k) == 0) {
            hold = k;
            break;
          }
      emit_plain(buf_.substr(0, buf_.size() - hold), text);
      buf_.erase(0, buf_.size() - hold);
      return;
    }
    size_t q = buf_.find(end_);
    if (q == std::string::npos) {
      if (final) {  // never closed: plain text after all
        emit_plain(section_ws_ + start_ + buf_, text);
        section_ws_.clear();
        buf_.clear();
        in_section_ = false;
      }
      return;
    }
    std::vector<ToolCall> got;
    if (parse_section(buf_.substr(0, q), got)) {
      for (auto& c : got) {
        c.index = n_calls_++;
        if (c.id.empty()) c.id = next_id();
        calls.push_back(std::move(c));
      }
    } else {
      emit_plain(section_ws_ + start_ + buf_.substr(0, q + end_.size()), text);
    }
    section_ws_.clear();
    buf_.erase(0, q + end_.size());
    in_section_ = false;
  }
}

void ToolCallStream::push(const std::string& s, std::string& text, std::vector<ToolCall>& calls) {
  if (fmt_ == ToolFormat::None) {
    text += s;
    return;
  }
  buf_ += s;
  process(text, calls, false);
}

void ToolCallStream::finish(std::string& text, std::vector<ToolCall>& calls) {
  if (fmt_ == ToolFormat::None) return;
  process(text, calls, true);
  if (n_calls_ == 0) text += held_ws_;  // whitespace only disappears around tool calls
  held_ws_.clear();
}

ParsedToolCalls parse_tool_calls(ToolFormat f, const std::string& text, const ojson& tools) {
  ParsedToolCalls r;
  ToolCallStream s(f, tools);
  s.push(text, r.content, r.calls);
  s.finish(r.content, r.calls);
  return r;
}

}  // namespace strata::server
