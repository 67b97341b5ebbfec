// GGUF `tokenizer.ggml.*` vocabularies -> TokenizerImpl, following llama.cpp (llama-vocab.cpp):
//  - model "gpt2": byte-level BPE with merges; the pre-tokenizer regexes are not stored in the
//    file but chosen by `tokenizer.ggml.pre` (the table below mirrors llama.cpp's choices);
//  - model "llama": SentencePiece BPE by scores with <0xXX> byte fallback, spaces as U+2581 and
//    a leading space when `tokenizer.ggml.add_space_prefix` (default true).
// Token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte. Control tokens
// are special; user-defined tokens are matched in the raw text like HF added tokens.
#include "core/error.h"
#include "io/gguf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"

namespace strata {

namespace {

// Pre-tokenizer regexes by `tokenizer.ggml.pre` (applied in order, each splitting, Isolated).
std::vector<std::string> pre_regexes(const std::string& pre, const std::string& path) {
  const std::string gpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
  if (pre == "qwen2" || pre == "deepseek-r1-qwen")
    return {R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"};
  if (pre == "llama3" || pre == "llama-bpe" || pre == "smaug-bpe" || pre == "falcon3" || pre == "pixtral")
    return {R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"};
  if (pre == "default" || pre == "gpt-2" || pre == "gpt2" || pre == "phi-2" || pre == "jina-es" ||
      pre == "jina-de" || pre == "olmo" || pre == "jais")
    return {R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"};
  if (pre == "smollm" || pre == "starcoder" || pre == "refact" || pre == "command-r" || pre == "codeshell" ||
      pre == "exaone" || pre == "minerva")
    return {R"(\p{N})", R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"};
  if (pre == "deepseek-llm")
    return {R"([\r\n])", R"(\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+)",
            R"(\s?[!-/:-~！-／：-～‘-‟　-。]+)", R"(\s+$)", R"([一-龥ࠀ-一가-퟿]+)", R"(\p{N}+)"};
  if (pre == "deepseek-v3")
    return {R"(\p{N}{1,3})", R"([一-龥぀-ゟ゠-ヿ]+)",
            R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"};
  (void)gpt2;
  throw Error(path + ": tokenizer.ggml.pre \"" + pre + "\" is not supported");
}

}  // namespace

std::shared_ptr<const Tokenizer> Tokenizer::from_gguf(const std::string& path) {
  GgufFile g = GgufFile::open(path);
  auto t = std::make_unique<TokenizerImpl>();
  t->source = path;
  const std::string model = g.get_string("tokenizer.ggml.model");
  const auto& tokens = g.get_strings("tokenizer.ggml.tokens");
  STRATA_CHECK(!tokens.empty(), path + ": tokenizer.ggml.tokens is empty");
  const size_t n = tokens.size();
  std::vector<int64_t> types(n, 1);
  if (const GgufValue* tv = g.find("tokenizer.ggml.token_type")) {
    STRATA_CHECK(tv->type == GgufType::ARRAY && tv->ints.size() == n,
                 path + ": tokenizer.ggml.token_type must be an integer array with one entry per token");
    types = tv->ints;
  }
  t->id_to_token = tokens;
  t->special.assign(n, 0);
  std::unordered_map<std::string, int> vocab;
  vocab.reserve(n);
  for (size_t i = 0; i < n; i++) {
    vocab.emplace(tokens[i], int(i));  // first id wins for duplicate spellings
    t->token_to_id.emplace(tokens[i], int(i));
    if (types[i] == 3) t->special[i] = 1;
    if (types[i] == 3 || types[i] == 4) {
      AddedToken a;
      a.id = int(i);
      a.content = tokens[i];
      a.special = types[i] == 3;
      // llama.cpp matches control tokens only when asked to parse specials; user-defined always.
      if (!a.content.empty()) t->added.push_back(std::move(a));
    }
  }
  auto opt_id = [&](const char* key) -> std::optional<int> {
    if (!g.has(key)) return std::nullopt;
    int64_t v = g.get_int(key);
    STRATA_CHECK(v >= 0 && size_t(v) < n, path + ": " + key + " = " + std::to_string(v) + " is outside the vocabulary");
    return int(v);
  };
  t->bos = opt_id("tokenizer.ggml.bos_token_id");
  t->eos = opt_id("tokenizer.ggml.eos_token_id");
  std::optional<int> unk = opt_id("tokenizer.ggml.unknown_token_id");

  if (model == "gpt2") {
    const auto& merge_strs = g.get_strings("tokenizer.ggml.merges");
    std::vector<std::pair<std::string, std::string>> merges;
    merges.reserve(merge_strs.size());
    for (const std::string& m : merge_strs) {
      size_t sp = m.find(' ', 1);
      STRATA_CHECK(sp != std::string::npos, path + ": merge \"" + m + "\" is not two tokens");
      merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
    }
    std::string pre = g.has("tokenizer.ggml.pre") ? g.get_string("tokenizer.ggml.pre") : "default";
    for (const std::string& re : pre_regexes(pre, path)) {
      PreStep p{PreStep::Split, std::make_shared<Regex>(re), SplitBehavior::Isolated, false, false, false, "", PreStep::Always, true};
      t->pre.push_back(std::move(p));
    }
    t->pre.push_back({PreStep::ByteLevel, nullptr, SplitBehavior::Isolated, false, false, false, "", PreStep::Always, true});
    t->byte_level = true;
    BpeOptions opt;
    opt.byte_level = true;
    opt.ignore_merges = pre == "llama3" || pre == "llama-bpe";
    t->model = make_bpe_model(std::move(vocab), merges, opt);
    t->decoder.push_back({DecStep::ByteLevel, {}, {}, nullptr, 0, 0, true});
  } else if (model == "llama") {
    const GgufValue& sv = g.get("tokenizer.ggml.scores");
    STRATA_CHECK(sv.type == GgufType::ARRAY && sv.floats.size() == n,
                 path + ": tokenizer.ggml.scores must be a float array with one entry per token");
    std::vector<float> scores(sv.floats.begin(), sv.floats.end());
    if (g.get_bool("tokenizer.ggml.add_space_prefix", true))
      t->normalizer.push_back({NormStep::Prepend, {}, "\xE2\x96\x81", nullptr, false, false});
    t->normalizer.push_back({NormStep::Replace, " ", "\xE2\x96\x81", nullptr, false, false});
    t->model = make_spm_model(std::move(vocab), std::move(scores), unk);
    t->decoder.push_back({DecStep::Replace, "\xE2\x96\x81", " ", nullptr, 0, 0, true});
    t->decoder.push_back({DecStep::ByteFallback, {}, {}, nullptr, 0, 0, true});
    t->decoder.push_back({DecStep::Fuse, {}, {}, nullptr, 0, 0, true});
    if (g.get_bool("tokenizer.ggml.add_space_prefix", true))
      t->decoder.push_back({DecStep::Strip, {}, " ", nullptr, 1, 0, true});
  } else {
    throw Error(path + ": tokenizer.ggml.model \"" + model + "\" is not supported (gpt2 and llama are)");
  }
  if (g.get_bool("tokenizer.ggml.add_bos_token", model == "llama") && t->bos)
    t->post_single.push_back({false, {*t->bos}});
  if (!t->post_single.empty() || g.get_bool("tokenizer.ggml.add_eos_token", false)) t->post_single.push_back({true, {}});
  if (g.get_bool("tokenizer.ggml.add_eos_token", false) && t->eos) t->post_single.push_back({false, {*t->eos}});
  t->finish_added_tokens();
  return tokenizer_from_impl(std::move(t));
}

}  // namespace strata
