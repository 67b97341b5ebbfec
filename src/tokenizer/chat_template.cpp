// ChatTemplate (see chat_template.h): finds the template(s) and special tokens of a tokenizer
// the way transformers loads them, and renders with the variables apply_chat_template passes
// (messages, tools, documents, add_generation_prompt, special tokens, extra kwargs).
#include "tokenizer/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "tokenizer/jinja_interp.h"
#include "tokenizer/jinja_parser.h"

namespace strata {

namespace fs = std::filesystem;
using namespace jinja;

struct ChatTemplate::Impl {
  std::map<std::string, std::unique_ptr<Template>> templates;  // by name; one "default" for a single template
  std::map<std::string, std::string> sources;                  // their text, by the same names
  std::map<std::string, std::string> special_tokens;
  ScopePtr builtins;  // shared, never written after construction
};

namespace {

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  STRATA_CHECK(f.good(), "cannot read chat template file " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::unique_ptr<Template> parse_named(const std::string& source, const std::string& origin) {
  try {
    return parse_template(source);
  } catch (const JinjaError& e) {
    throw JinjaError(e.kind(), e.message() + " (in " + origin + ")", e.line());
  }
}

ScopePtr make_builtins() {
  auto s = std::make_shared<Scope>();
  install_globals(*s);
  return s;
}

}  // namespace

ChatTemplate ChatTemplate::from_string(const std::string& source) {
  auto impl = std::make_shared<Impl>();
  impl->templates["default"] = parse_template(source);
  impl->sources["default"] = source;
  impl->builtins = make_builtins();
  ChatTemplate t;
  t.impl_ = impl;
  return t;
}

ChatTemplate ChatTemplate::from_file(const std::string& path) {
  auto impl = std::make_shared<Impl>();
  impl->sources["default"] = read_file(path);
  impl->templates["default"] = parse_named(impl->sources["default"], path);
  impl->builtins = make_builtins();
  ChatTemplate t;
  t.impl_ = impl;
  return t;
}

ChatTemplate ChatTemplate::from_tokenizer_config(const std::string& dir_or_file) {
  std::string dir, config_path;
  if (fs::is_directory(dir_or_file)) {
    dir = dir_or_file;
    config_path = (fs::path(dir) / "tokenizer_config.json").string();
  } else {
    config_path = dir_or_file;
    dir = fs::path(dir_or_file).parent_path().string();
  }
  auto impl = std::make_shared<Impl>();
  impl->builtins = make_builtins();

  nlohmann::ordered_json cfg = nlohmann::ordered_json::object();
  if (fs::exists(config_path)) {
    try {
      cfg = nlohmann::ordered_json::parse(read_file(config_path));
    } catch (const nlohmann::json::exception& e) {
      throw Error(config_path + ": invalid JSON: " + e.what());
    }
    STRATA_CHECK(cfg.is_object(), config_path + ": not a JSON object");
  }
  for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}) {
    auto it = cfg.find(key);
    if (it == cfg.end() || it->is_null()) continue;
    if (it->is_string())
      impl->special_tokens[key] = it->get<std::string>();
    else if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
      impl->special_tokens[key] = (*it)["content"].get<std::string>();
    else
      throw Error(config_path + ": " + key + " is neither a string nor an AddedToken");
  }

  // Separate template files take priority over the config's chat_template (transformers 5).
  if (!dir.empty()) {
    fs::path main = fs::path(dir) / "chat_template.jinja";
    if (fs::exists(main)) {
      impl->sources["default"] = read_file(main.string());
      impl->templates["default"] = parse_named(impl->sources["default"], main.string());
    }
    fs::path extra = fs::path(dir) / "additional_chat_templates";
    if (fs::is_directory(extra))
      for (const auto& e : fs::directory_iterator(extra))
        if (e.path().extension() == ".jinja") {
          const std::string name = e.path().stem().string();
          impl->sources[name] = read_file(e.path().string());
          impl->templates[name] = parse_named(impl->sources[name], e.path().string());
        }
  }
  if (impl->templates.empty()) {
    auto it = cfg.find("chat_template");
    STRATA_CHECK(it != cfg.end() && !it->is_null(), config_path + " has no chat_template");
    if (it->is_string()) {
      impl->sources["default"] = it->get<std::string>();
      impl->templates["default"] = parse_named(impl->sources["default"], config_path + " chat_template");
    } else if (it->is_array()) {
      for (const auto& t : *it) {
        STRATA_CHECK(t.is_object() && t.contains("name") && t["name"].is_string() && t.contains("template") &&
                         t["template"].is_string(),
                     config_path + ": chat_template list entries need string 'name' and 'template'");
        const std::string name = t["name"].get<std::string>();
        impl->sources[name] = t["template"].get<std::string>();
        impl->templates[name] = parse_named(impl->sources[name], config_path + " chat_template '" + name + "'");
      }
    } else {
      throw Error(config_path + ": chat_template must be a string or a list of named templates");
    }
  }
  ChatTemplate t;
  t.impl_ = impl;
  return t;
}

const std::map<std::string, std::string>& ChatTemplate::special_tokens() const {
  static const std::map<std::string, std::string> none;
  return impl_ ? impl_->special_tokens : none;
}

std::vector<std::string> ChatTemplate::template_names() const {
  std::vector<std::string> names;
  if (!impl_) return names;
  for (const auto& kv : impl_->templates) names.push_back(kv.first);
  return names;
}

std::string ChatTemplate::source(bool tools) const {
  if (!impl_ || impl_->sources.empty()) return "";
  const auto& src = impl_->sources;
  if (src.size() == 1) return src.begin()->second;
  if (tools && src.count("tool_use")) return src.at("tool_use");
  return src.count("default") ? src.at("default") : "";
}

std::string ChatTemplate::render(const nlohmann::json& messages, const ChatOptions& opt) const {
  return render(nlohmann::ordered_json(messages), opt);
}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, const ChatOptions& opt) const {
  STRATA_CHECK(impl_, "no chat template loaded");
  const auto& tpls = impl_->templates;
  const Template* tpl = nullptr;
  if (!opt.template_name.empty()) {
    auto it = tpls.find(opt.template_name);
    STRATA_CHECK(it != tpls.end(), "no chat template named '" + opt.template_name + "'");
    tpl = it->second.get();
  } else if (tpls.size() == 1) {
    tpl = tpls.begin()->second.get();
  } else if (!opt.tools.is_null() && tpls.count("tool_use")) {
    tpl = tpls.at("tool_use").get();
  } else if (tpls.count("default")) {
    tpl = tpls.at("default").get();
  } else {
    std::string names;
    for (const auto& kv : tpls) names += (names.empty() ? "" : ", ") + kv.first;
    throw Error("this tokenizer has several chat templates and none is 'default'; pick one of: " + names);
  }
  STRATA_CHECK(messages.is_array(), "chat messages must be a JSON array");
  STRATA_CHECK(opt.tools.is_null() || opt.tools.is_array(), "tools must be a JSON array or null");
  STRATA_CHECK(opt.vars.is_object(), "template variables must be a JSON object");

  auto ctx = std::make_shared<Scope>();
  ctx->parent = impl_->builtins;
  for (const auto& [k, v] : impl_->special_tokens) ctx->vars[k] = Value::string(v);
  for (auto it = opt.vars.begin(); it != opt.vars.end(); ++it) {
    const std::string& k = it.key();
    STRATA_CHECK(k != "messages" && k != "tools" && k != "documents" && k != "add_generation_prompt",
                 "template variable '" + k + "' is set by the chat options, not by vars");
    ctx->vars[k] = from_json(it.value());
  }
  ctx->vars["messages"] = from_json(messages);
  ctx->vars["tools"] = from_json(opt.tools);
  ctx->vars["documents"] = from_json(opt.documents);
  ctx->vars["add_generation_prompt"] = Value::boolean(opt.add_generation_prompt);
  Interp in{Limits{}};
  return in.render(*tpl, ctx);
}

}  // namespace strata
