// Hugging Face tokenizer.json -> TokenizerImpl. Every component type the file names is either
// built with HF's semantics or rejected with an error naming it (never silently ignored).
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"

namespace strata {

using nlohmann::json;

namespace {

struct Ctx {
  std::string source;
  [[noreturn]] void fail(const std::string& what) const { throw Error(source + ": " + what); }
  const json& need(const json& j, const char* key, const std::string& where) const {
    if (!j.is_object() || !j.contains(key)) fail(where + " has no \"" + key + "\"");
    return j.at(key);
  }
  std::string str(const json& j, const char* key, const std::string& where) const {
    const json& v = need(j, key, where);
    if (!v.is_string()) fail(where + "." + key + " must be a string");
    return v.get<std::string>();
  }
  bool flag(const json& j, const char* key, bool fallback) const {
    if (!j.contains(key) || j.at(key).is_null()) return fallback;
    if (!j.at(key).is_boolean()) fail(std::string(key) + " must be true or false");
    return j.at(key).get<bool>();
  }
};

// Oniguruma-escapes a literal pattern (HF escapes String patterns the same way).
std::string regex_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::strchr("\\^$.|?*+()[]{}-/#&~ \t\n", c) && c != 0) out += '\\';
    out += c;
  }
  return out;
}

// {"String": "x"} or {"Regex": "x"} -> (literal, regex)
std::pair<std::string, std::shared_ptr<Regex>> pattern_of(const Ctx& c, const json& j, const std::string& where) {
  const json& p = c.need(j, "pattern", where);
  if (p.is_object() && p.contains("String") && p["String"].is_string()) return {p["String"].get<std::string>(), nullptr};
  if (p.is_object() && p.contains("Regex") && p["Regex"].is_string())
    return {std::string(), std::make_shared<Regex>(p["Regex"].get<std::string>())};
  c.fail(where + ".pattern must be {\"String\": ...} or {\"Regex\": ...}");
}

void add_normalizer(const Ctx& c, const json& j, std::vector<NormStep>& out) {
  if (j.is_null()) return;
  std::string type = c.str(j, "type", "normalizer");
  NormStep n{NormStep::NFC, {}, {}, nullptr, false, false};
  if (type == "Sequence") {
    for (const json& x : c.need(j, "normalizers", "normalizer")) add_normalizer(c, x, out);
    return;
  } else if (type == "NFC") n.kind = NormStep::NFC;
  else if (type == "NFD") n.kind = NormStep::NFD;
  else if (type == "NFKC") n.kind = NormStep::NFKC;
  else if (type == "NFKD") n.kind = NormStep::NFKD;
  else if (type == "Lowercase") n.kind = NormStep::Lowercase;
  else if (type == "Replace") {
    n.kind = NormStep::Replace;
    std::tie(n.pattern, n.regex) = pattern_of(c, j, "Replace normalizer");
    n.content = c.str(j, "content", "Replace normalizer");
  } else if (type == "Prepend") {
    n.kind = NormStep::Prepend;
    n.content = c.str(j, "prepend", "Prepend normalizer");
  } else if (type == "Strip") {
    n.kind = NormStep::Strip;
    n.strip_left = c.flag(j, "strip_left", false);
    n.strip_right = c.flag(j, "strip_right", false);
  } else {
    c.fail("normalizer type \"" + type + "\" is not supported");
  }
  out.push_back(std::move(n));
}

SplitBehavior behavior_of(const Ctx& c, const std::string& b) {
  if (b == "Removed") return SplitBehavior::Removed;
  if (b == "Isolated") return SplitBehavior::Isolated;
  if (b == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (b == "Contiguous") return SplitBehavior::Contiguous;
  c.fail("split behavior \"" + b + "\" is not known");
}

void add_pre_tokenizer(const Ctx& c, const json& j, TokenizerImpl& t) {
  if (j.is_null()) return;
  std::string type = c.str(j, "type", "pre_tokenizer");
  // Pieces become raw bytes at the ByteLevel step; a later step would see bytes, not text.
  if (t.byte_level && type != "Sequence") c.fail("pre_tokenizer \"" + type + "\" after ByteLevel is not supported");
  PreStep p{PreStep::Split, nullptr, SplitBehavior::Isolated, false, false, false, "", PreStep::Always, true};
  if (type == "Sequence") {
    for (const json& x : c.need(j, "pretokenizers", "pre_tokenizer")) add_pre_tokenizer(c, x, t);
    return;
  } else if (type == "Split") {
    auto [lit, re] = pattern_of(c, j, "Split pre_tokenizer");
    p.regex = re ? re : std::make_shared<Regex>(regex_escape(lit));
    p.behavior = behavior_of(c, c.str(j, "behavior", "Split pre_tokenizer"));
    p.invert = c.flag(j, "invert", false);
  } else if (type == "ByteLevel") {
    p.kind = PreStep::ByteLevel;
    p.add_prefix_space = c.flag(j, "add_prefix_space", true);
    p.use_regex = c.flag(j, "use_regex", true);
    t.byte_level = true;
  } else if (type == "Metaspace") {
    p.kind = PreStep::Metaspace;
    p.replacement = c.str(j, "replacement", "Metaspace pre_tokenizer");
    std::string scheme = j.contains("prepend_scheme") && j["prepend_scheme"].is_string()
                             ? j["prepend_scheme"].get<std::string>()
                             : (c.flag(j, "add_prefix_space", true) ? "always" : "never");
    if (scheme == "always") p.prepend = PreStep::Always;
    else if (scheme == "first") p.prepend = PreStep::First;
    else if (scheme == "never") p.prepend = PreStep::Never;
    else c.fail("Metaspace prepend_scheme \"" + scheme + "\" is not known");
    p.split = c.flag(j, "split", true);
  } else if (type == "Whitespace") {
    p.regex = std::make_shared<Regex>(R"(\w+|[^\w\s]+)");
    p.behavior = SplitBehavior::Removed;
    p.invert = true;
  } else if (type == "WhitespaceSplit") {
    p.regex = std::make_shared<Regex>(R"(\s+)");
    p.behavior = SplitBehavior::Removed;
  } else if (type == "Digits") {
    p.regex = std::make_shared<Regex>(c.flag(j, "individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)");
    p.behavior = SplitBehavior::Isolated;
  } else if (type == "Punctuation") {
    p.regex = std::make_shared<Regex>(R"([\p{P}!-/:-@\[-`{-~])");
    p.behavior = j.contains("behavior") ? behavior_of(c, c.str(j, "behavior", "Punctuation")) : SplitBehavior::Isolated;
  } else {
    c.fail("pre_tokenizer type \"" + type + "\" is not supported");
  }
  t.pre.push_back(std::move(p));
}

void add_decoder(const Ctx& c, const json& j, std::vector<DecStep>& out) {
  if (j.is_null()) return;
  std::string type = c.str(j, "type", "decoder");
  DecStep d{DecStep::Fuse, {}, {}, nullptr, 0, 0, true};
  if (type == "Sequence") {
    for (const json& x : c.need(j, "decoders", "decoder")) add_decoder(c, x, out);
    return;
  } else if (type == "ByteLevel") d.kind = DecStep::ByteLevel;
  else if (type == "ByteFallback") d.kind = DecStep::ByteFallback;
  else if (type == "Fuse") d.kind = DecStep::Fuse;
  else if (type == "Replace") {
    d.kind = DecStep::Replace;
    std::tie(d.pattern, d.regex) = pattern_of(c, j, "Replace decoder");
    d.content = c.str(j, "content", "Replace decoder");
  } else if (type == "Strip") {
    d.kind = DecStep::Strip;
    d.content = c.str(j, "content", "Strip decoder");
    d.start = j.value("start", size_t(0));
    d.stop = j.value("stop", size_t(0));
  } else if (type == "Metaspace") {
    d.kind = DecStep::Metaspace;
    d.content = c.str(j, "replacement", "Metaspace decoder");
    std::string scheme = j.contains("prepend_scheme") && j["prepend_scheme"].is_string()
                             ? j["prepend_scheme"].get<std::string>()
                             : (c.flag(j, "add_prefix_space", true) ? "always" : "never");
    d.prepend_first = scheme != "never";
  } else if (type == "BPEDecoder") {
    d.kind = DecStep::BpeSuffix;
    d.content = j.contains("suffix") && j["suffix"].is_string() ? j["suffix"].get<std::string>() : "</w>";
  } else {
    c.fail("decoder type \"" + type + "\" is not supported");
  }
  out.push_back(std::move(d));
}

int special_id(const Ctx& c, const json& specials, const std::string& name) {
  if (!specials.is_object() || !specials.contains(name)) c.fail("post_processor names special token \"" + name + "\" it does not define");
  const json& ids = specials[name]["ids"];
  if (!ids.is_array() || ids.size() != 1 || !ids[0].is_number_integer())
    c.fail("post_processor special token \"" + name + "\" must have exactly one id");
  return ids[0].get<int>();
}

void add_post_processor(const Ctx& c, const json& j, TokenizerImpl& t) {
  if (j.is_null()) return;
  std::string type = c.str(j, "type", "post_processor");
  auto id_of = [&](const json& pair, const char* what) {
    if (!pair.is_array() || pair.size() != 2 || !pair[1].is_number_integer())
      c.fail(std::string("post_processor ") + what + " must be [token, id]");
    return pair[1].get<int>();
  };
  if (type == "Sequence") {
    for (const json& x : c.need(j, "processors", "post_processor")) add_post_processor(c, x, t);
  } else if (type == "ByteLevel") {
    // Only offsets change; ids are untouched.
  } else if (type == "TemplateProcessing") {
    STRATA_CHECK(t.post_single.empty(), c.source + ": more than one post_processor adds special tokens");
    const json& single = c.need(j, "single", "TemplateProcessing");
    const json& specials = j.value("special_tokens", json::object());
    for (const json& item : single) {
      if (item.contains("Sequence")) {
        std::string which = item["Sequence"].value("id", "A");
        if (which != "A") c.fail("TemplateProcessing single template uses sequence \"" + which + "\"");
        t.post_single.push_back({true, {}});
      } else if (item.contains("SpecialToken")) {
        t.post_single.push_back({false, {special_id(c, specials, item["SpecialToken"].value("id", ""))}});
      } else {
        c.fail("TemplateProcessing item is neither Sequence nor SpecialToken");
      }
    }
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    STRATA_CHECK(t.post_single.empty(), c.source + ": more than one post_processor adds special tokens");
    t.post_single = {{false, {id_of(c.need(j, "cls", type), "cls")}}, {true, {}}, {false, {id_of(c.need(j, "sep", type), "sep")}}};
  } else {
    c.fail("post_processor type \"" + type + "\" is not supported");
  }
}

// tokenizer_config.json beside tokenizer.json names bos/eos (strings or {"content": ...}).
std::optional<std::string> config_token(const json& cfg, const char* key) {
  if (!cfg.is_object() || !cfg.contains(key)) return std::nullopt;
  const json& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

}  // namespace

std::shared_ptr<const Tokenizer> Tokenizer::from_json_text(const std::string& json_text, const std::string& source) {
  Ctx c{source};
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    c.fail(std::string("not valid JSON: ") + e.what());
  }
  if (!j.is_object()) c.fail("tokenizer.json must be a JSON object");
  auto t = std::make_unique<TokenizerImpl>();
  t->source = source;
  try {
    const json& m = c.need(j, "model", "tokenizer.json");
    std::string mtype = m.value("type", "BPE");
    if (mtype != "BPE") c.fail("model type \"" + mtype + "\" is not supported (BPE is)");
    if (m.contains("dropout") && !m["dropout"].is_null() && m["dropout"].get<double>() != 0.0)
      c.fail("BPE dropout is not supported for inference");

    // Vocabulary: the model's, then added tokens (which may reuse or extend ids).
    std::unordered_map<std::string, int> model_vocab;
    const json& vocab = c.need(m, "vocab", "model");
    if (!vocab.is_object()) c.fail("model.vocab must be an object");
    int max_id = -1;
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      if (!it.value().is_number_integer()) c.fail("vocab entry \"" + it.key() + "\" has no integer id");
      long long id = it.value().get<long long>();
      if (id < 0 || id > 16 * 1024 * 1024) c.fail("vocab entry \"" + it.key() + "\" has id out of range");
      model_vocab[it.key()] = int(id);
      max_id = std::max(max_id, int(id));
    }
    const json& added = j.value("added_tokens", json::array());
    if (!added.is_array()) c.fail("added_tokens must be an array");
    for (const json& a : added) {
      AddedToken at;
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
          !a["content"].is_string())
        c.fail("added_tokens entries need an integer id and a string content");
      long long id = a["id"].get<long long>();
      if (id < 0 || id > 16 * 1024 * 1024) c.fail("added token id out of range");
      at.id = int(id);
      at.content = a["content"].get<std::string>();
      if (at.content.empty()) c.fail("added token " + std::to_string(id) + " is empty");
      at.special = c.flag(a, "special", false);
      at.normalized = c.flag(a, "normalized", !at.special);
      at.lstrip = c.flag(a, "lstrip", false);
      at.rstrip = c.flag(a, "rstrip", false);
      at.single_word = c.flag(a, "single_word", false);
      max_id = std::max(max_id, at.id);
      t->added.push_back(std::move(at));
    }
    t->id_to_token.assign(size_t(max_id + 1), std::string());
    t->special.assign(size_t(max_id + 1), 0);
    for (const auto& [tok, id] : model_vocab) {
      t->id_to_token[size_t(id)] = tok;
      t->token_to_id[tok] = id;
    }
    for (const AddedToken& a : t->added) {
      t->id_to_token[size_t(a.id)] = a.content;
      t->token_to_id[a.content] = a.id;
      t->special[size_t(a.id)] = a.special;
    }
    t->finish_added_tokens();

    add_normalizer(c, j.value("normalizer", json()), t->normalizer);
    add_pre_tokenizer(c, j.value("pre_tokenizer", json()), *t);
    add_post_processor(c, j.value("post_processor", json()), *t);
    add_decoder(c, j.value("decoder", json()), t->decoder);

    BpeOptions opt;
    opt.byte_level = t->byte_level;
    opt.byte_fallback = c.flag(m, "byte_fallback", false);
    opt.fuse_unk = c.flag(m, "fuse_unk", false);
    opt.ignore_merges = c.flag(m, "ignore_merges", false);
    if (m.contains("continuing_subword_prefix") && m["continuing_subword_prefix"].is_string())
      opt.continuing_subword_prefix = m["continuing_subword_prefix"].get<std::string>();
    if (m.contains("end_of_word_suffix") && m["end_of_word_suffix"].is_string())
      opt.end_of_word_suffix = m["end_of_word_suffix"].get<std::string>();
    if (m.contains("unk_token") && m["unk_token"].is_string()) {
      auto it = model_vocab.find(m["unk_token"].get<std::string>());
      if (it == model_vocab.end()) c.fail("unk_token \"" + m["unk_token"].get<std::string>() + "\" is not in the vocabulary");
      opt.unk_id = it->second;
    }
    std::vector<std::pair<std::string, std::string>> merges;
    const json& mj = m.value("merges", json::array());
    if (!mj.is_array()) c.fail("model.merges must be an array");
    merges.reserve(mj.size());
    for (const json& x : mj) {
      if (x.is_string()) {  // "a b": the first space separates (tokens never contain a space here)
        const std::string& s = x.get_ref<const std::string&>();
        size_t sp = s.find(' ');
        if (sp == std::string::npos || sp == 0 || sp + 1 == s.size() || s.find(' ', sp + 1) != std::string::npos)
          c.fail("merge \"" + s + "\" is not two tokens");
        merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      } else if (x.is_array() && x.size() == 2 && x[0].is_string() && x[1].is_string()) {
        merges.emplace_back(x[0].get<std::string>(), x[1].get<std::string>());
      } else {
        c.fail("merges entries must be \"a b\" or [\"a\", \"b\"]");
      }
    }
    t->model = make_bpe_model(std::move(model_vocab), merges, opt);
  } catch (const json::exception& e) {
    c.fail(std::string("malformed tokenizer.json: ") + e.what());
  }

  // bos/eos from tokenizer_config.json next to the file, when there is one.
  std::string dir = source.find('/') == std::string::npos ? "." : source.substr(0, source.rfind('/'));
  std::ifstream cf(dir + "/tokenizer_config.json");
  if (cf) {
    json cfg = json::parse(cf, nullptr, /*allow_exceptions=*/false);
    if (auto b = config_token(cfg, "bos_token"); b && t->token_to_id.count(*b)) t->bos = t->token_to_id[*b];
    if (auto e = config_token(cfg, "eos_token"); e && t->token_to_id.count(*e)) t->eos = t->token_to_id[*e];
  }
  return tokenizer_from_impl(std::move(t));
}

}  // namespace strata
