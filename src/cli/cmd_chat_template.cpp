// `strata chat-template`: renders a conversation with a model's chat template and prints the
// prompt exactly (no newline added), as transformers' apply_chat_template(tokenize=False) would.
// Not tokenization (`strata tokenize`).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/command.h"
#include "core/error.h"
#include "server/tool_calls.h"
#include "tokenizer/chat_template.h"

namespace strata::cli {
namespace {

using ojson = nlohmann::ordered_json;

// A JSON argument given inline or as @file.
ojson json_arg(const std::string& value, const std::string& what) {
  std::string text = value;
  if (!value.empty() && value[0] == '@') {
    std::ifstream f(value.substr(1), std::ios::binary);
    STRATA_CHECK(f.good(), what + ": cannot read " + value.substr(1));
    std::ostringstream ss;
    ss << f.rdbuf();
    text = ss.str();
  }
  try {
    return ojson::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(what + ": invalid JSON: " + e.what());
  }
}

ChatTemplate load(const std::string& path) {
  namespace fs = std::filesystem;
  if (fs::is_directory(path) || fs::path(path).extension() == ".json") return ChatTemplate::from_tokenizer_config(path);
  return ChatTemplate::from_file(path);
}

// --var k=v: v as JSON when it parses (true, 3, "x", {...}), else as a plain string.
void add_var(ojson& vars, const std::string& kv) {
  size_t eq = kv.find('=');
  STRATA_CHECK(eq != std::string::npos && eq > 0, "--var: expected NAME=VALUE, got '" + kv + "'");
  const std::string name = kv.substr(0, eq), value = kv.substr(eq + 1);
  ojson v = ojson::parse(value, nullptr, /*allow_exceptions=*/false);
  vars[name] = v.is_discarded() ? ojson(value) : v;
}

int cmd_chat_template(const Args& a) {
  ChatTemplate tpl = load(a.need("template"));
  ojson messages = json_arg(a.need("messages"), "--messages");
  ChatOptions opt;
  opt.add_generation_prompt = a.flag("generation-prompt");
  if (a.has("tools")) opt.tools = json_arg(a.get("tools", ""), "--tools");
  if (a.has("vars")) {
    opt.vars = json_arg(a.get("vars", ""), "--vars");
    STRATA_CHECK(opt.vars.is_object(), "--vars must be a JSON object");
  }
  if (a.has("var")) add_var(opt.vars, a.get("var", ""));
  if (a.has("template-name")) opt.template_name = a.get("template-name", "");
  const std::string prompt = tpl.render(messages, opt);
  std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  std::fflush(stdout);
  return 0;
}

// `strata tool-calls`: what the server's tool-call parser makes of a model's text.
int cmd_tool_calls(const Args& a) {
  using namespace strata::server;
  ToolFormat f = a.has("format") ? tool_format_from_name(a.get("format", ""))
                                 : detect_tool_format(load(a.need("template")).source(true));
  ojson tools = a.has("tools") ? json_arg(a.get("tools", ""), "--tools") : ojson(nullptr);
  auto run = [&](const std::string& text, long chunk) {  // chunk > 0: fed in pieces of that many bytes
    std::string content;
    std::vector<ToolCall> calls;
    ToolCallStream s(f, tools);
    if (chunk > 0)
      for (size_t i = 0; i < text.size(); i += size_t(chunk)) s.push(text.substr(i, size_t(chunk)), content, calls);
    else
      s.push(text, content, calls);
    s.finish(content, calls);
    ojson out = {{"format", tool_format_name(f)}, {"content", content}, {"tool_calls", ojson::array()}};
    for (const auto& c : calls)
      out["tool_calls"].push_back({{"index", c.index}, {"id", c.id}, {"name", c.name}, {"arguments", c.arguments}});
    return out;
  };
  const long chunk = a.get_int("chunk", 0, 0, 1 << 30);
  ojson result;
  if (a.has("batch")) {  // [{"text": T, "chunk": N}, ...] -> [result, ...]
    const ojson batch = json_arg(a.get("batch", ""), "--batch");
    STRATA_CHECK(batch.is_array(), "--batch must be a JSON array");
    result = ojson::array();
    for (const auto& b : batch) {
      STRATA_CHECK(b.is_object() && b.contains("text") && b["text"].is_string(), "--batch entries need a 'text'");
      result.push_back(run(b["text"].get<std::string>(), b.value("chunk", 0L)));
    }
  } else {
    std::string text = a.need("text");
    if (!text.empty() && text[0] == '@') {
      std::ifstream in(text.substr(1), std::ios::binary);
      STRATA_CHECK(in.good(), "--text: cannot read " + text.substr(1));
      std::ostringstream ss;
      ss << in.rdbuf();
      text = ss.str();
    }
    result = run(text, chunk);
  }
  const std::string j = result.dump(-1, ' ', false, ojson::error_handler_t::replace) + "\n";
  std::fwrite(j.data(), 1, j.size(), stdout);
  return 0;
}

const CommandRegistration kToolCalls(
    {"tool-calls",
     "  strata tool-calls (--template FILE|DIR | --format hermes|kimi_k2|deepseek_v31|minimax_m2)\n"
     "                    --text TEXT|@FILE | --batch JSON|@FILE  [--tools JSON|@FILE] [--chunk N]\n"
     "      prints as JSON the content and tool calls `strata serve` parses from a model's text (the\n"
     "      format is the one the chat template renders); --chunk N feeds it N bytes at a time;\n"
     "      --batch [{\"text\": T, \"chunk\": N}, ...] prints a JSON array of results",
     {},
     cmd_tool_calls});

const CommandRegistration kChatTemplate(
    {"chat-template",
     "  strata chat-template --template FILE|DIR --messages JSON|@FILE [--generation-prompt]\n"
     "                       [--tools JSON|@FILE] [--var NAME=VALUE] [--vars JSON|@FILE] [--template-name N]\n"
     "      prints the prompt the chat template renders, exactly as transformers' apply_chat_template;\n"
     "      FILE is a .jinja template or a tokenizer_config.json, DIR a tokenizer directory (special\n"
     "      tokens come from its config); --var VALUE is JSON when it parses, else a string",
     {"generation-prompt"},
     cmd_chat_template});

}  // namespace
}  // namespace strata::cli
