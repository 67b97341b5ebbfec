// Tokenizers against outside oracles: HF tokenizers' ids and decodes (tokenizers/oracle.json),
// llama.cpp's golden vectors for GGUF vocabularies (tokenizers/golden/), and the streaming
// detokenizer against whole-sequence decode.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

using namespace strata;
using nlohmann::json;

namespace {

std::string tok_dir() { return test::fixtures_dir() + "/tokenizers"; }

const json& oracle() {
  static const json j = json::parse(test::read_text(tok_dir() + "/oracle.json"));
  return j;
}

std::shared_ptr<const Tokenizer> load_cached(const std::string& path) {
  static std::map<std::string, std::shared_ptr<const Tokenizer>> cache;
  auto& t = cache[path];
  if (!t) t = Tokenizer::load(path);
  return t;
}

std::string show(const std::vector<int>& v) { return json(v).dump(); }

class HfOracle : public ::testing::TestWithParam<std::string> {};

TEST_P(HfOracle, EveryCaseGivesTheReferenceIdsAndText) {
  const std::string name = GetParam();
  auto tok = load_cached(tok_dir() + "/" + name);
  const json& cases = oracle()["cases"];
  const json& enc = oracle()["encodings"][name];
  ASSERT_EQ(cases.size(), enc["no_special"].size());
  int checked = 0;
  for (size_t i = 0; i < cases.size(); i++) {
    const std::string text = cases[i].get<std::string>();
    auto want_plain = enc["no_special"][i].get<std::vector<int>>();
    auto want_special = enc["with_special"][i].get<std::vector<int>>();
    auto got_plain = tok->encode(text, false);
    auto got_special = tok->encode(text, true);
    EXPECT_EQ(got_plain, want_plain) << name << " case " << i << " " << json(text).dump() << "\n got  "
                                     << show(got_plain) << "\n want " << show(want_plain);
    EXPECT_EQ(got_special, want_special) << name << " case " << i << " " << json(text).dump();
    EXPECT_EQ(tok->decode(want_special, /*skip_special=*/true), enc["decoded"][i].get<std::string>())
        << name << " case " << i;
    checked++;
  }
  EXPECT_EQ(checked, 62);
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, HfOracle, ::testing::Values("qwen3", "deepseek_v3", "mistral"));

// llama.cpp's test-tokenizer-0 vectors: cases split by "\n__ggml_vocab_test__\n", ids per line.
struct Golden {
  std::vector<std::string> inputs;
  std::vector<std::vector<int>> ids;
};

Golden read_golden(const std::string& stem) {
  Golden g;
  std::string inp = test::read_text(tok_dir() + "/golden/" + stem + ".gguf.inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  size_t i = 0;
  while (true) {
    size_t j = inp.find(sep, i);
    if (j == std::string::npos) break;
    g.inputs.push_back(inp.substr(i, j - i));
    i = j + sep.size();
  }
  std::istringstream out(test::read_text(tok_dir() + "/golden/" + stem + ".gguf.out"));
  std::string line;
  while (std::getline(out, line)) {
    std::istringstream ls(line);
    std::vector<int> v;
    int x;
    while (ls >> x) v.push_back(x);
    g.ids.push_back(v);
  }
  return g;
}

void check_golden(const Tokenizer& tok, const std::string& stem) {
  Golden g = read_golden(stem);
  ASSERT_GT(g.inputs.size(), 30u);
  ASSERT_EQ(g.inputs.size(), g.ids.size());
  for (size_t i = 0; i < g.inputs.size(); i++) {
    auto got = tok.encode(g.inputs[i], false);
    EXPECT_EQ(got, g.ids[i]) << stem << " case " << i << " " << json(g.inputs[i]).dump() << "\n got  " << show(got)
                             << "\n want " << show(g.ids[i]);
  }
}

TEST(GgufVocab, Qwen2GoldenVectors) {
  auto tok = load_cached(tok_dir() + "/golden/ggml-vocab-qwen2.gguf");
  check_golden(*tok, "ggml-vocab-qwen2");
}

TEST(GgufVocab, LlamaSpmGoldenVectors) {
  auto tok = load_cached(tok_dir() + "/golden/ggml-vocab-llama-spm.gguf");
  check_golden(*tok, "ggml-vocab-llama-spm");
}

TEST(TokenizerJson, Qwen3TokenizerPassesQwen2GoldenVectors) {
  auto tok = load_cached(tok_dir() + "/qwen3");
  check_golden(*tok, "ggml-vocab-qwen2");
}

TEST(TokenizerJson, Tiny512MatchesItsOracle) {
  auto tok = load_cached(tok_dir() + "/tiny512");
  json o = json::parse(test::read_text(tok_dir() + "/tiny512/oracle.json"));
  int checked = 0;
  for (auto it = o["text_ids"].begin(); it != o["text_ids"].end(); ++it) {
    EXPECT_EQ(tok->encode(it.key()), it.value().get<std::vector<int>>()) << it.key();
    checked++;
  }
  // The rendered chat prompt carries ChatML specials that must come out as their ids.
  EXPECT_EQ(tok->encode(o["rendered"].get<std::string>()), o["ids"].get<std::vector<int>>());
  EXPECT_EQ(checked, 3);
}

// Streaming: one token at a time, each chunk valid UTF-8, all chunks == decode(all).
class Streaming : public ::testing::TestWithParam<std::string> {};

TEST_P(Streaming, ChunksAreValidUtf8AndConcatenateToDecode) {
  auto tok = load_cached(tok_dir() + "/" + GetParam());
  const json& cases = oracle()["cases"];
  for (size_t i = 0; i < cases.size(); i++) {
    auto ids = tok->encode(cases[i].get<std::string>(), false);
    StreamDecoder sd(tok, /*skip_special=*/false);
    std::string acc;
    for (int id : ids) {
      std::string chunk = sd.push(id);
      EXPECT_TRUE(unicode::is_valid_utf8(chunk)) << GetParam() << " case " << i;
      EXPECT_EQ(chunk.find("\xEF\xBF\xBD"), std::string::npos) << GetParam() << " case " << i;
      acc += chunk;
    }
    acc += sd.finish();
    EXPECT_EQ(acc, tok->decode(ids, false)) << GetParam() << " case " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, Streaming, ::testing::Values("qwen3", "deepseek_v3", "mistral"));

TEST(Tokenizer, InvalidUtf8InputIsAnError) {
  auto tok = load_cached(tok_dir() + "/qwen3");
  EXPECT_THROW(tok->encode("abc\xC3"), Error);
  EXPECT_THROW(tok->encode("\xED\xA0\x80"), Error);  // a UTF-16 surrogate
  EXPECT_THROW(tok->encode("\xC0\xAF"), Error);      // overlong
}

TEST(Tokenizer, DecodeRejectsIdsOutsideTheVocabulary) {
  auto tok = load_cached(tok_dir() + "/qwen3");
  std::vector<int> bad = {tok->vocab_size()};
  EXPECT_THROW(tok->decode(bad), Error);
  std::vector<int> neg = {-1};
  EXPECT_THROW(tok->decode(neg), Error);
}

TEST(Tokenizer, SpecialTokensAreSplitOutAndSkippable) {
  auto tok = load_cached(tok_dir() + "/qwen3");
  auto im_start = tok->token_to_id("<|im_start|>");
  ASSERT_TRUE(im_start.has_value());
  auto ids = tok->encode("<|im_start|>user");
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], *im_start);
  EXPECT_TRUE(tok->is_special(*im_start));
  EXPECT_EQ(tok->decode(ids, /*skip_special=*/true), "user");
  EXPECT_EQ(tok->decode(ids, /*skip_special=*/false), "<|im_start|>user");
}

TEST(Tokenizer, MalformedFilesGiveErrors) {
  test::TempDir d;
  auto bad = [&](const std::string& body) {
    test::write_text(d.path + "/tokenizer.json", body);
    return Tokenizer::load(d.path + "/tokenizer.json");
  };
  EXPECT_THROW(bad("{"), Error);
  EXPECT_THROW(bad("[]"), Error);
  EXPECT_THROW(bad(R"({"model": {"type": "Unigram", "vocab": []}})"), Error);
  EXPECT_THROW(bad(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}})"), Error);
  EXPECT_THROW(bad(R"({"model": {"type": "BPE", "vocab": {"a": "x"}, "merges": []}})"), Error);
  EXPECT_THROW(bad(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Nope"}})"), Error);
  EXPECT_THROW(bad(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "("}, "behavior": "Isolated"}})"), Error);
  EXPECT_THROW(Tokenizer::load(d.path + "/missing.json"), Error);
  EXPECT_THROW(Tokenizer::load(d.path), Error);  // a directory without tokenizer.json
}

TEST(Tokenizer, CorruptGgufVocabulariesGiveErrors) {
  std::string good = test::read_text(tok_dir() + "/golden/ggml-vocab-qwen2.gguf");
  test::TempDir d;
  const std::string p = d.path + "/v.gguf";
  // Truncations at many points, and single-byte corruptions in the header region.
  for (size_t cut : {size_t(0), size_t(3), size_t(8), size_t(23), size_t(100), size_t(5000), good.size() / 2,
                     good.size() - 1}) {
    test::write_text(p, good.substr(0, cut));
    EXPECT_THROW(Tokenizer::load(p), Error) << "cut at " << cut;
  }
  for (size_t pos : {size_t(4), size_t(8), size_t(16), size_t(24), size_t(30)}) {
    std::string s = good;
    s[pos] = char(0xFF);
    s[pos + 1] = char(0xFF);
    test::write_text(p, s);
    EXPECT_THROW(Tokenizer::load(p), Error) << "corrupted at " << pos;
  }
}

}  // namespace
