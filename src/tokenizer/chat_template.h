// Chat templates: a conversation (OpenAI-style JSON messages) -> the prompt text, rendered
// exactly as Hugging Face transformers' apply_chat_template(..., tokenize=False) renders it
// (jinja2 sandbox, trim_blocks, lstrip_blocks, loop controls, raise_exception, strftime_now,
// transformers' tojson). Parse once, render many: a ChatTemplate is immutable and render() is
// safe to call from several threads. Not tokenization (tokenizer.h).
#pragma once
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace strata {

struct ChatOptions {
  // The template variable add_generation_prompt (transformers' default is false).
  bool add_generation_prompt = false;
  // `tools` and `documents` as transformers passes them: a list of JSON schemas, or null (None).
  nlohmann::ordered_json tools = nullptr;
  nlohmann::ordered_json documents = nullptr;
  // Further template variables (enable_thinking, bos_token, ...). They override the special
  // tokens read from tokenizer_config.json, like apply_chat_template's **kwargs. They may not
  // be named messages, tools, documents or add_generation_prompt.
  nlohmann::ordered_json vars = nlohmann::ordered_json::object();
  // For a tokenizer with several named templates: which one. Empty picks like transformers
  // ("tool_use" when tools are given and it exists, else "default").
  std::string template_name;
};

class ChatTemplate {
 public:
  ChatTemplate() = default;  // empty: render() throws until one of the factories fills it
  // A Jinja template's text. Throws jinja::JinjaError (a strata::Error) naming the line on
  // syntax errors and on syntax this engine does not support.
  static ChatTemplate from_string(const std::string& source);
  static ChatTemplate from_file(const std::string& path);  // a .jinja file
  // A tokenizer directory (chat_template.jinja and additional_chat_templates/*.jinja take
  // priority, as in transformers; else tokenizer_config.json's chat_template, a string or a
  // list of {name, template}) or a tokenizer_config.json path. Also reads the special tokens
  // (bos_token, eos_token, unk_token, sep_token, pad_token, cls_token, mask_token).
  static ChatTemplate from_tokenizer_config(const std::string& dir_or_file);

  // messages: a JSON array of message objects; key order matters for what templates print
  // (|tojson, |items), so pass ordered_json parsed from the request. Throws JinjaError naming
  // the template line on runtime errors, including the template's own raise_exception().
  std::string render(const nlohmann::ordered_json& messages, const ChatOptions& opt = {}) const;
  // Same, from nlohmann::json (whose objects iterate keys in sorted order, unlike the request).
  std::string render(const nlohmann::json& messages, const ChatOptions& opt = {}) const;

  // bos_token etc. as read from tokenizer_config.json (empty for from_string/from_file).
  const std::map<std::string, std::string>& special_tokens() const;
  std::vector<std::string> template_names() const;  // "default" for a single template
  // The text of the template render() picks without a template_name (with or without tools);
  // empty when none. What the tool-call format of a model is read from (server/tool_calls.h).
  std::string source(bool tools = false) const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace strata
