// OpenAI tool calls in generated text: one parser per model family, picked from the chat
// template (the format a model was trained to emit is the one its template renders for past
// assistant tool calls). Streaming: text is fed as it is decoded; plain text comes out at once,
// except what could be the start of a tool-call section (held back until it is decided), and a
// section is buffered from its start marker to its end marker, then becomes complete calls.
// A section that does not parse, or is still open when the text ends, is released as plain text.
// Whitespace next to a parsed section (the newlines templates put around calls) is dropped; the
// rest of the text is kept byte for byte.
// Not the chat template (tokenizer/chat_template.h renders the calls) and not the HTTP layer.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace strata::server {

enum class ToolFormat {
  None,        // the template renders no tool calls: nothing is parsed
  Hermes,      // Qwen3 (and Hermes-style): <tool_call>\n{"name": N, "arguments": {...}}\n</tool_call>
  KimiK2,      // <|tool_calls_section_begin|><|tool_call_begin|>functions.N:I<|tool_call_argument_begin|>{...}
               //   <|tool_call_end|>...<|tool_calls_section_end|>
  DeepSeekV31, // <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>N<｜tool▁sep｜>{...}<｜tool▁call▁end｜>...<｜tool▁calls▁end｜>
               //   (and DeepSeek-V3's <｜tool▁call▁begin｜>function<｜tool▁sep｜>N\n```json\n{...}\n```<｜tool▁call▁end｜>)
  MiniMaxM2,   // <minimax:tool_call>\n<invoke name="N">\n<parameter name="K">V</parameter>\n</invoke>\n</minimax:tool_call>
};

// The format a chat template's source renders tool calls in (None when it renders none).
ToolFormat detect_tool_format(const std::string& template_source);
// The marker strings of a format (section and call delimiters): where they are special tokens of
// a vocabulary, the text must be decoded with special tokens kept for the calls to be seen.
std::vector<std::string> tool_format_markers(ToolFormat f);
const char* tool_format_name(ToolFormat f);                 // "hermes", "kimi_k2", "deepseek_v31", "minimax_m2", "none"
ToolFormat tool_format_from_name(const std::string& name);  // throws Error on an unknown name

struct ToolCall {
  int index = 0;          // position among the choice's calls
  std::string id;         // "call_<hex>", or Kimi's own "functions.NAME:IDX"
  std::string name;
  std::string arguments;  // JSON text of an object
};

class ToolCallStream {
 public:
  // tools: the request's `tools` (OpenAI function tools) or null; MiniMax-M2 parameter values
  // are typed by their JSON schema (a "string" parameter stays text, others are parsed as JSON).
  ToolCallStream(ToolFormat f, nlohmann::ordered_json tools = nullptr, std::string id_prefix = "");
  // Feeds decoded content text; appends what is plain text to `text` and finished calls to `calls`.
  void push(const std::string& s, std::string& text, std::vector<ToolCall>& calls);
  // End of the text: an open section and held-back text are released as plain text.
  void finish(std::string& text, std::vector<ToolCall>& calls);
  int calls() const { return n_calls_; }

 private:
  void process(std::string& text, std::vector<ToolCall>& calls, bool final);
  void emit_plain(const std::string& s, std::string& text);
  bool parse_section(const std::string& body, std::vector<ToolCall>& out) const;
  std::string next_id();

  ToolFormat fmt_;
  nlohmann::ordered_json tools_;
  std::string id_prefix_;
  std::string start_, end_;  // section markers
  std::string buf_;          // undecided text (outside: a possible marker prefix; inside: the section)
  std::string held_ws_;      // trailing whitespace outside sections: dropped before a section
  std::string section_ws_;   // the whitespace dropped before the open section (restored if it fails)
  bool in_section_ = false;
  int n_calls_ = 0;
  uint64_t id_counter_ = 0;
};

// The whole text at once (what streaming gives, concatenated): plain content and the calls.
struct ParsedToolCalls {
  std::string content;
  std::vector<ToolCall> calls;
};
ParsedToolCalls parse_tool_calls(ToolFormat f, const std::string& text, const nlohmann::ordered_json& tools = nullptr);

}  // namespace strata::server
