// Chat templates against transformers' renders (tokenizers/oracle.json `chat`, tiny512/oracle.json),
// the fixture tokenizer configs, and the engine's promises: errors name the line (unsupported
// syntax, raise_exception, runtime errors), malformed or hostile templates give errors not crashes,
// recursion and loops are bounded, one parsed template renders concurrently.
// The wide comparison against jinja2 itself is tests/tokenizer/test_chat_template_jinja2.py.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "test_util.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/jinja_error.h"

using namespace strata;
using ojson = nlohmann::ordered_json;

namespace {

std::string fix(const std::string& rel) { return test::fixtures_dir() + "/" + rel; }

const ojson& oracle() {
  static const ojson j = ojson::parse(test::read_text(fix("tokenizers/oracle.json")));
  return j;
}

ChatOptions gen_prompt() {
  ChatOptions o;
  o.add_generation_prompt = true;
  return o;
}

std::string render(const std::string& src, const ojson& vars = ojson::object(), const ojson& messages = ojson::array()) {
  ChatOptions o;
  o.vars = vars;
  return ChatTemplate::from_string(src).render(messages, o);
}

// The JinjaError a template raises (parsing or rendering); fails the test if none.
jinja::JinjaError error_of(const std::string& src, const ojson& vars = ojson::object()) {
  try {
    render(src, vars);
  } catch (const jinja::JinjaError& e) {
    return e;
  }
  ADD_FAILURE() << "no error from template: " << src;
  return jinja::JinjaError("none", "", 0);
}

const ojson kConversation = ojson::parse(R"([
  {"role": "system", "content": "You are a terse assistant."},
  {"role": "user", "content": "2+2?"},
  {"role": "assistant", "content": "4"},
  {"role": "user", "content": "And times 3? ünïcödé 🐋"}])");

}  // namespace

// ---- exact against transformers ---------------------------------------------------------------------
TEST(ChatTemplateOracle, EveryChatRenderInOracleJsonIsReproducedByteForByte) {
  const ojson& chat = oracle()["chat"];
  int checked = 0;
  for (auto it = chat.begin(); it != chat.end(); ++it) {
    const ojson& c = it.value();
    ChatTemplate t = ChatTemplate::from_file(fix(c["template"].get<std::string>()));
    ASSERT_EQ(c["conversations"].size(), c["rendered"].size());
    for (size_t i = 0; i < c["conversations"].size(); i++) {
      EXPECT_EQ(t.render(c["conversations"][i], gen_prompt()), c["rendered"][i].get<std::string>())
          << it.key() << " conversation " << i;
      checked++;
    }
  }
  EXPECT_EQ(checked, 8);
}

TEST(ChatTemplateOracle, Tiny512TokenizerConfigRendersTheOracleConversation) {
  const ojson o = ojson::parse(test::read_text(fix("tokenizers/tiny512/oracle.json")));
  ChatTemplate t = ChatTemplate::from_tokenizer_config(fix("tokenizers/tiny512"));
  EXPECT_EQ(t.render(o["conversation"], gen_prompt()), o["rendered"].get<std::string>());
}

TEST(ChatTemplateFixtures, TokenizerConfigsLoadTheirTemplateAndSpecialTokens) {
  const ojson conv = kConversation;
  ChatTemplate qwen = ChatTemplate::from_tokenizer_config(fix("tokenizers/qwen3"));
  EXPECT_EQ(qwen.special_tokens().at("eos_token"), "<|im_end|>");
  EXPECT_EQ(qwen.special_tokens().count("bos_token"), 0u);  // null in the config
  // Qwen3's tokenizer_config.json carries the same template as templates/Qwen-Qwen3-0.6B.jinja.
  ChatTemplate qwen_file = ChatTemplate::from_file(fix("templates/Qwen-Qwen3-0.6B.jinja"));
  EXPECT_EQ(qwen.render(conv, gen_prompt()), qwen_file.render(conv, gen_prompt()));

  // DeepSeek-V3's template starts with {{ bos_token }}, an AddedToken object in its config.
  ChatTemplate ds = ChatTemplate::from_tokenizer_config(fix("tokenizers/deepseek_v3/tokenizer_config.json"));
  const std::string bos = ds.special_tokens().at("bos_token");
  EXPECT_EQ(bos, ojson::parse(test::read_text(fix("tokenizers/deepseek_v3/tokenizer_config.json")))["bos_token"]["content"]);
  std::string out = ds.render(conv, gen_prompt());
  EXPECT_EQ(out.rfind(bos, 0), 0u) << out;
  ChatOptions o = gen_prompt();
  o.vars["bos_token"] = "";  // apply_chat_template kwargs override special tokens
  EXPECT_EQ(ds.render(conv, o), out.substr(bos.size()));

  // Mistral's config has no chat_template: a named error, not an empty prompt.
  try {
    ChatTemplate::from_tokenizer_config(fix("tokenizers/mistral"));
    ADD_FAILURE() << "mistral has no chat_template";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("chat_template"), std::string::npos) << e.what();
  }
}

TEST(ChatTemplateFixtures, KimiK2InstructRendersConversationsAndTools) {
  ChatTemplate t = ChatTemplate::from_file(fix("templates/Kimi-K2-Instruct.jinja"));
  std::string out = t.render(kConversation, gen_prompt());
  EXPECT_NE(out.find("<|im_user|>user<|im_middle|>And times 3? ünïcödé 🐋<|im_end|>"), std::string::npos) << out;
  const std::string tail = "<|im_assistant|>assistant<|im_middle|>";
  EXPECT_EQ(out.substr(out.size() - tail.size()), tail);
  ChatOptions o = gen_prompt();
  o.tools = ojson::parse(R"([{"type": "function", "function": {"name": "f", "parameters": {"b": 1, "a": 2}}}])");
  out = t.render(kConversation, o);
  // tools|tojson keeps the request's key order and Python's separators.
  EXPECT_NE(out.find(R"([{"type": "function", "function": {"name": "f", "parameters": {"b": 1, "a": 2}}}])"),
            std::string::npos)
      << out;
}

TEST(ChatTemplateFixtures, KimiToolCallsFailLikeTransformersSandbox) {
  // Kimi's templates call list.append(), which transformers' ImmutableSandboxedEnvironment refuses
  // ("access to attribute 'append' of 'list' object is unsafe"); the engine does the same.
  const ojson conv = ojson::parse(R"([{"role": "user", "content": "weather?"},
    {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "w", "arguments": "{}"}}]}])");
  for (const char* name : {"templates/Kimi-K2-Instruct.jinja", "templates/Kimi-K2-Thinking.jinja"}) {
    try {
      ChatTemplate::from_file(fix(name)).render(conv, gen_prompt());
      ADD_FAILURE() << name << " rendered a tool call";
    } catch (const jinja::JinjaError& e) {
      EXPECT_NE(e.message().find("'append' of 'list' object is unsafe"), std::string::npos) << e.what();
      EXPECT_GT(e.line(), 0);
    }
  }
}

TEST(ChatTemplateFixtures, NamedTemplateListsPickLikeTransformers) {
  test::TempDir d;
  ojson cfg = {{"eos_token", "</s>"},
               {"chat_template", ojson::array({{{"name", "default"}, {"template", "D{{ eos_token }}"}},
                                               {{"name", "tool_use"}, {"template", "T{{ tools|length }}"}}})}};
  test::write_text(d.path + "/tokenizer_config.json", cfg.dump());
  ChatTemplate t = ChatTemplate::from_tokenizer_config(d.path);
  EXPECT_EQ(t.render(ojson::array()), "D</s>");
  ChatOptions o;
  o.tools = ojson::array({ojson::object()});
  EXPECT_EQ(t.render(ojson::array(), o), "T1");
  o.template_name = "default";
  EXPECT_EQ(t.render(ojson::array(), o), "D</s>");
  // A chat_template.jinja next to the config takes priority, as in transformers 5.
  test::write_text(d.path + "/chat_template.jinja", "J");
  EXPECT_EQ(ChatTemplate::from_tokenizer_config(d.path).render(ojson::array()), "J");
}

// ---- errors name the line -----------------------------------------------------------------------------
TEST(ChatTemplateErrors, UnsupportedSyntaxIsAnErrorNamingTheLine) {
  struct Case {
    const char* src;
    int line;
  } cases[] = {
      {"a\n{% include 'x.jinja' %}", 2},
      {"{% extends 'base' %}", 1},
      {"\n\n{% block body %}{% endblock %}", 3},
      {"x\n{% import 'm' as m %}", 2},
      {"{{ 'a' }}\n{{ s|safe }}", 2},
      {"\n{{ s|urlize }}", 2},
      {"{% do x %}", 1},
      {"\n{{ x is escaped_or_what }}", 2},
      {"line\n\n\n{{ 'x'.encode() }}", 4},
  };
  for (const auto& c : cases) {
    jinja::JinjaError e = error_of(c.src, {{"s", "v"}});
    EXPECT_EQ(e.line(), c.line) << c.src << " -> " << e.what();
    EXPECT_NE(std::string(e.what()).find("line " + std::to_string(c.line)), std::string::npos) << e.what();
  }
}

TEST(ChatTemplateErrors, RaiseExceptionStopsTheRenderWithItsMessageAndLine) {
  jinja::JinjaError e = error_of("ok\n{% if messages|length == 0 %}\n  {{ raise_exception('No messages!') }}\n{% endif %}");
  EXPECT_EQ(e.kind(), "raise_exception");
  EXPECT_EQ(e.message(), "No messages!");
  EXPECT_EQ(e.line(), 3);
  // MiniMax-M2 raises on a tool message without a preceding tool call.
  ChatTemplate mm = ChatTemplate::from_file(fix("templates/MiniMax-M2.jinja"));
  try {
    mm.render(ojson::parse(R"([{"role": "user", "content": "x"}, {"role": "tool", "content": "r"}])"), gen_prompt());
    ADD_FAILURE() << "MiniMax-M2 should raise";
  } catch (const jinja::JinjaError& err) {
    EXPECT_EQ(err.kind(), "raise_exception");
    EXPECT_NE(err.message().find("tool role"), std::string::npos) << err.what();
  }
}

TEST(ChatTemplateErrors, SyntaxAndRuntimeErrorsNameTheLine) {
  struct Case {
    const char* src;
    int line;
  } cases[] = {
      {"{{ 1 +", 1},
      {"a\nb\n{% if x %}", 3},
      {"\n{% for %}{% endfor %}", 2},
      {"\n\n{{ 'unterminated }}", 3},
      {"{# never closed", 1},
      {"\n{% endif %}", 2},
      {"\n{% frobnicate %}", 2},
      {"{{ x }}\n{{ x.y.z }}", 2},
      {"\n{{ 1 / 0 }}", 2},
      {"\n\n{{ [1] + 'a' }}", 3},
      {"{% set ns = 3 %}\n{% set ns.a = 1 %}", 2},
      {"{% for a, b in [1] %}{% endfor %}", 1},
      {"\n{% break %}", 2},
      {"{{ x|tojson }}", 1},
      {"\n{{ 2 ** 100 }}", 2},
  };
  for (const auto& c : cases) {
    jinja::JinjaError e = error_of(c.src);
    EXPECT_EQ(e.line(), c.line) << c.src << " -> " << e.what();
  }
}

// ---- malformed and hostile templates --------------------------------------------------------------------
TEST(ChatTemplateRobustness, MutatedRealTemplatesGiveErrorsNotCrashes) {
  std::vector<std::string> sources;
  for (const char* n : {"Qwen-Qwen3-0.6B.jinja", "deepseek-ai-DeepSeek-V3.1.jinja", "Kimi-K2-Thinking.jinja",
                        "Kimi-K2-Instruct.jinja", "MiniMax-M2.jinja"})
    sources.push_back(test::read_text(fix(std::string("templates/") + n)));
  const std::string alphabet = "{}%#-+()[]|~.,:'\"\\ \n=<>!*/0123456789abcxyz_";
  std::mt19937 rng(12345);
  int rendered = 0, errors = 0;
  for (int iter = 0; iter < 3000; iter++) {
    std::string s = sources[size_t(iter) % sources.size()];
    const int n_edits = 1 + int(rng() % 4);
    for (int k = 0; k < n_edits && !s.empty(); k++) {
      size_t pos = rng() % s.size();
      switch (rng() % 4) {
        case 0: s.erase(pos, 1 + rng() % 8); break;
        case 1: s.insert(pos, 1, alphabet[rng() % alphabet.size()]); break;
        case 2: s[pos] = alphabet[rng() % alphabet.size()]; break;
        default: s.insert(pos, s.substr(rng() % s.size(), 1 + rng() % 20));
      }
    }
    try {
      ChatTemplate t = ChatTemplate::from_string(s);
      ChatOptions o = gen_prompt();
      o.tools = ojson::parse(R"([{"type": "function", "function": {"name": "f"}}])");
      t.render(kConversation, o);
      rendered++;
    } catch (const Error&) {  // JinjaError is an Error; anything else (or a crash) fails the test
      errors++;
    }
  }
  EXPECT_EQ(rendered + errors, 3000);
  EXPECT_GT(errors, 0);
  EXPECT_GT(rendered, 0);
}

TEST(ChatTemplateRobustness, GarbageInputsGiveErrors) {
  const char* garbage[] = {"{{", "{%", "{#", "}}", "{{}}", "{% %}", "{{ ( }}", "{{ ) }}", "{{ [ }}", "{{ {1:} }}",
                           "{% for %}", "{% if %}{% else %}{% else %}{% endif %}", "{% macro %}", "{% set %}",
                           "{{ a. }}", "{{ a[ }}", "{{ a | }}", "{{ a is }}", "{{ 'a' 'b }}", "{{ \"\\x4\" }}",
                           "{{ 99999999999999999999 }}", "{{ 1e999 }}", "{% raw %}", "{{ a(b=1, 2) }}",
                           "{% set a.b.c = 1 %}", "{{ ** }}", "{{ *a }}", "{% endfor %}", "\xff\xfe{{ x }}"};
  for (const char* g : garbage) {
    try {
      render(g);
    } catch (const Error&) {
    }
  }
  SUCCEED();
}

TEST(ChatTemplateRobustness, RecursionNestingLoopsAndSizesAreBounded) {
  // Unbounded macro recursion.
  EXPECT_NE(error_of("{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}").message().find("recursion"),
            std::string::npos);
  // Deep nesting in the source is an error, not a stack overflow.
  EXPECT_EQ(error_of("{{ " + std::string(100000, '(') + "1" + std::string(100000, ')') + " }}").kind(), "syntax error");
  std::string ifs;
  for (int k = 0; k < 5000; k++) ifs += "{% if true %}";
  EXPECT_EQ(error_of(ifs).kind(), "syntax error");
  EXPECT_EQ(error_of("{{ " + std::string(50000, '-') + "1 }}").kind(), "syntax error");
  // range() is capped like the sandbox's; nested loops run out of budget in bounded time.
  EXPECT_NE(error_of("{{ range(100001)|list }}").message().find("MAX_RANGE"), std::string::npos);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_NE(error_of("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
                .message()
                .find("budget"),
            std::string::npos);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 30.0);
  // Strings that double each step hit the size cap instead of exhausting memory.
  EXPECT_NE(error_of("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}")
                .message()
                .find("MiB"),
            std::string::npos);
  EXPECT_NE(error_of("{{ 'x' * 4000000000 }}").message().find("MiB"), std::string::npos);
  EXPECT_NE(error_of("{{ 'x'.ljust(10000000000) }}").message().find("MiB"), std::string::npos);
}

// ---- the value model --------------------------------------------------------------------------------------
TEST(ChatTemplateValues, PythonStrOfValuesAndOrderedDicts) {
  ojson vars = ojson::parse(R"({"d": {"z": 1, "a": [true, null, 1.5, "it's"]}, "f": 1e-7, "g": 1e16, "h": 0.1})");
  EXPECT_EQ(render("{{ d }}|{{ f }}|{{ g }}|{{ h }}|{{ d|tojson }}", vars),
            R"({'z': 1, 'a': [True, None, 1.5, "it's"]}|1e-07|1e+16|0.1|{"z": 1, "a": [true, null, 1.5, "it's"]})");
  // nlohmann::json (sorted keys) is accepted too; its objects arrive in sorted order.
  nlohmann::json sorted = nlohmann::json::parse(R"([{"role": "user", "content": "x"}])");
  EXPECT_EQ(ChatTemplate::from_string("{{ messages[0]|tojson }}").render(sorted), R"({"content": "x", "role": "user"})");
}

TEST(ChatTemplateValues, EmptyTemplateObjectRefusesToRender) {
  ChatTemplate t;
  EXPECT_THROW(t.render(ojson::array()), Error);
}

// ---- parse once, render many ---------------------------------------------------------------------------
TEST(ChatTemplateConcurrency, OneParsedTemplateRendersTheSameFromManyThreads) {
  ChatTemplate t = ChatTemplate::from_file(fix("templates/Kimi-K2-Thinking.jinja"));
  const std::string want = t.render(kConversation, gen_prompt());
  std::vector<std::thread> threads;
  std::vector<int> mismatches(8, 0);
  for (int k = 0; k < 8; k++)
    threads.emplace_back([&, k] {
      for (int i = 0; i < 200; i++) mismatches[size_t(k)] += t.render(kConversation, gen_prompt()) != want;
    });
  for (auto& th : threads) th.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

TEST(ChatTemplatePerformance, RendersALongConversationQuickly) {
  ChatTemplate t = ChatTemplate::from_file(fix("templates/Qwen-Qwen3-0.6B.jinja"));
  ojson msgs = ojson::array();
  msgs.push_back({{"role", "system"}, {"content", "You are helpful."}});
  for (int i = 0; i < 50; i++) {
    msgs.push_back({{"role", "user"}, {"content", std::string(200, 'u') + std::to_string(i)}});
    msgs.push_back({{"role", "assistant"}, {"content", "<think>r</think>" + std::string(300, 'a')}});
  }
  msgs.push_back({{"role", "user"}, {"content", "last"}});
  const int n = 200;
  auto t0 = std::chrono::steady_clock::now();
  size_t bytes = 0;
  for (int i = 0; i < n; i++) bytes += t.render(msgs, gen_prompt()).size();
  double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / n;
  std::printf("Qwen3 template, 102 messages (%zu bytes): %.0f us per render\n", bytes / n, us);
  EXPECT_LT(us, 50000.0);  // generous: a render must never cost a noticeable share of a request
}
