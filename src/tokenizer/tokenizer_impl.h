// The tokenizer pipeline's parts, as plain data filled by the loaders (tokenizer_json.cpp,
// gguf_vocab.cpp) and run by tokenizer.cpp. Each part mirrors a Hugging Face tokenizers
// component of the same name, with its exact semantics.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/regex.h"

namespace strata {

// ---- added tokens: matched in the raw text before anything else (leftmost-longest) ----
struct AddedToken {
  int id = 0;
  std::string content;
  bool special = false, normalized = false, lstrip = false, rstrip = false, single_word = false;
};

// A byte trie over token contents; finds leftmost-longest matches.
class TokenTrie {
 public:
  void add(const std::string& s, int token_index);
  bool empty() const { return nodes_.size() <= 1; }
  // Longest token starting at text[pos]: returns its index and sets *len, or -1.
  int longest_at(std::string_view text, size_t pos, size_t* len) const;
  bool may_start(unsigned char c) const { return first_[c]; }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int>> next;  // sorted by byte
    int token = -1;
  };
  std::vector<Node> nodes_{Node{}};
  std::array<bool, 256> first_{};
};

// A piece of text to tokenize, or an already-resolved added token.
struct Segment {
  std::string text;
  int token_id = -1;              // >= 0: this segment is the added token itself
  bool at_start = false;     // begins at offset 0 of the original text (Metaspace "first")
};

// ---- normalizers ----
struct NormStep {
  enum Kind { NFC, NFD, NFKC, NFKD, Lowercase, Replace, Prepend, Strip } kind;
  std::string pattern, content;     // Replace (literal pattern when regex is null) / Prepend
  std::shared_ptr<Regex> regex;     // Replace with a Regex pattern
  bool strip_left = false, strip_right = false;
};

// ---- pre-tokenizers ----
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };
struct PreStep {
  enum Kind { Split, ByteLevel, Metaspace } kind;
  std::shared_ptr<Regex> regex;     // Split (literal patterns are escaped into a regex)
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
  bool add_prefix_space = false, use_regex = false;  // ByteLevel
  std::string replacement;                            // Metaspace
  enum Prepend { Always, First, Never } prepend = Always;
  bool split = true;
};

// ---- models ----
class TokenModel {
 public:
  virtual ~TokenModel() = default;
  // Appends the ids of one pre-tokenized piece. Byte-level models receive raw bytes.
  virtual void encode(std::string_view piece, std::vector<int>& out) const = 0;
};

// BPE by merge ranks (HF tokenizers' BPE model).
struct BpeOptions {
  bool byte_level = false;        // pieces are raw bytes; symbols start as single bytes
  bool byte_fallback = false;     // unknown chars become <0xXX> tokens
  bool fuse_unk = false;
  bool ignore_merges = false;     // a piece that is a whole vocab entry is taken as is
  std::optional<int> unk_id;
  std::string continuing_subword_prefix, end_of_word_suffix;
};
std::unique_ptr<TokenModel> make_bpe_model(std::unordered_map<std::string, int> model_vocab,
                                           const std::vector<std::pair<std::string, std::string>>& merges,
                                           const BpeOptions& opt);

// SentencePiece-style BPE by token scores (llama.cpp's llm_tokenizer_spm, used for GGUF llama vocabularies).
std::unique_ptr<TokenModel> make_spm_model(std::unordered_map<std::string, int> model_vocab, std::vector<float> scores,
                                           std::optional<int> unk_id);

// ---- post-processor: TemplateProcessing (single sequence) and friends ----
struct PostItem {
  bool is_sequence = false;
  std::vector<int> ids;  // special tokens' ids
};

// ---- decoders ----
struct DecStep {
  enum Kind { ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, BpeSuffix } kind;
  std::string pattern, content;    // Replace / Strip content / Metaspace replacement / BPE suffix
  std::shared_ptr<Regex> regex;
  size_t start = 0, stop = 0;      // Strip
  bool prepend_first = true;       // Metaspace: strip the first token's leading space
};

struct TokenizerImpl {
  std::string source;
  std::vector<std::string> id_to_token;            // every id (model vocab and added tokens)
  std::unordered_map<std::string, int> token_to_id;
  std::vector<uint8_t> special;                    // per id: 1 = special (skipped by skip_special)
  std::vector<AddedToken> added;
  TokenTrie raw_trie, normalized_trie;             // indices into `added`
  std::vector<NormStep> normalizer;
  std::vector<PreStep> pre;
  bool byte_level = false;                         // a ByteLevel pre-tokenizer maps pieces to bytes
  std::unique_ptr<TokenModel> model;
  std::vector<PostItem> post_single;               // empty: add_special adds nothing
  std::vector<DecStep> decoder;
  std::optional<int> bos, eos;

  void finish_added_tokens();                      // builds the tries; call after `added` is final
};

}  // namespace strata
