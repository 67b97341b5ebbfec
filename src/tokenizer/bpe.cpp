// The two BPE flavours: merge ranks (HF tokenizers) and token scores (SentencePiece / llama.cpp).
// Both merge a doubly linked list of symbols driven by a heap, O(n log n) in the piece length,
// so one very long piece (SentencePiece-style tokenizers see whole lines as one piece) stays fast.
#include <cstdio>
#include <mutex>
#include <queue>
#include <shared_mutex>

#include "core/error.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace strata {

namespace {

struct Symbol {
  int id;
  int prev, next;
  size_t begin, len;  // byte span in the piece (len 0: merged away)
};

class BpeModel final : public TokenModel {
 public:
  BpeModel(std::unordered_map<std::string, int> model_vocab,
           const std::vector<std::pair<std::string, std::string>>& merges, const BpeOptions& opt)
      : opt_(opt), vocab_(std::move(model_vocab)) {
    const auto& vocab = vocab_;
    byte_ids_.fill(-1);
    if (opt_.byte_level) {
      // Byte-level vocabularies spell byte b as the printable char byte_to_char()[b].
      const auto& b2c = unicode::byte_to_char();
      for (int b = 0; b < 256; b++) {
        auto it = vocab.find(b2c[b]);
        if (it != vocab.end()) byte_ids_[b] = it->second;
      }
      if (opt_.ignore_merges) {
        for (const auto& [tok, id] : vocab) raw_vocab_.emplace(to_raw(tok), id);
      }
    }
    if (opt_.byte_fallback) {
      for (int b = 0; b < 256; b++) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        auto it = vocab.find(name);
        fallback_ids_[b] = it == vocab.end() ? -1 : it->second;
      }
    }
    if (!opt_.byte_level && !opt_.ignore_merges) {
      split_at_metaspace_ = true;
      for (const auto& [tok, id] : vocab) {
        for (size_t i = tok.find("\xE2\x96\x81", 1); i != std::string::npos; i = tok.find("\xE2\x96\x81", i + 1))
          if (tok.compare(i - 3, 3, "\xE2\x96\x81") != 0) split_at_metaspace_ = false;
        if (!split_at_metaspace_) break;
      }
    }
    const size_t plen = opt_.continuing_subword_prefix.size();
    merges_.reserve(merges.size() * 2);
    for (size_t rank = 0; rank < merges.size(); rank++) {
      const auto& [a, b] = merges[rank];
      auto ia = vocab.find(a), ib = vocab.find(b);
      STRATA_CHECK(ia != vocab.end() && ib != vocab.end(),
                   "merge " + std::to_string(rank) + " ('" + a + "' '" + b + "') uses a token not in the vocabulary");
      STRATA_CHECK(b.size() >= plen, "merge " + std::to_string(rank) + " lacks the continuing-subword prefix");
      std::string merged = a + b.substr(plen);
      auto im = vocab.find(merged);
      STRATA_CHECK(im != vocab.end(), "merge " + std::to_string(rank) + " makes '" + merged +
                                          "', which is not in the vocabulary");
      merges_.emplace(key(ia->second, ib->second), Merge{int(rank), im->second});
    }
  }

  void encode(std::string_view piece, std::vector<int>& out) const override {
    if (!split_at_metaspace_) return encode_word(piece, out);
    // No token has U+2581 after another character, so no merge crosses the boundary in front
    // of a U+2581 that follows a non-U+2581 char: the sub-words merge independently, and a
    // whole-line piece becomes cacheable words. Same ids as one big word.
    static constexpr std::string_view kMeta = "\xE2\x96\x81";
    size_t begin = 0, i = 0;
    while ((i = piece.find(kMeta, i + 1)) != std::string_view::npos) {
      if (i >= 3 && piece.substr(i - 3, 3) == kMeta) continue;
      encode_word(piece.substr(begin, i - begin), out);
      begin = i;
    }
    encode_word(piece.substr(begin), out);
  }

 private:
  void encode_word(std::string_view piece, std::vector<int>& out) const {
    if (piece.empty()) return;
    if (opt_.ignore_merges) {
      const auto& m = opt_.byte_level ? raw_vocab_ : vocab_;
      auto it = m.find(std::string(piece));
      if (it != m.end()) {
        out.push_back(it->second);
        return;
      }
    }
    // Pieces repeat a lot in natural text: a shared cache of their ids (HF does the same).
    const bool cacheable = piece.size() < 256;
    if (cacheable) {
      std::shared_lock lock(cache_mu_);
      auto it = cache_.find(std::string(piece));
      if (it != cache_.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    size_t first = out.size();
    merge_word(piece, out);
    if (cacheable) {
      std::unique_lock lock(cache_mu_);
      if (cache_.size() < kCacheCapacity) cache_.emplace(std::string(piece), std::vector<int>(out.begin() + first, out.end()));
    }
  }

  struct Merge {
    int rank, id;
  };
  static uint64_t key(int a, int b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  static std::string to_raw(const std::string& tok) {
    std::string raw;
    return unicode::byte_level_to_raw(tok, raw) ? raw : tok;  // not a byte-level spelling: keep as is
  }

  void push_symbol(std::vector<Symbol>& syms, int id, size_t begin, size_t len) const {
    if (opt_.fuse_unk && opt_.unk_id && id == *opt_.unk_id && !syms.empty() && syms.back().id == id) {
      syms.back().len += len;  // consecutive unknowns become one <unk>
      return;
    }
    int idx = int(syms.size());
    syms.push_back({id, idx - 1, -1, begin, len});
  }

  void merge_word(std::string_view w, std::vector<int>& out) const {
    std::vector<Symbol> syms;
    syms.reserve(w.size());
    if (opt_.byte_level) {
      for (size_t i = 0; i < w.size(); i++) {
        int id = byte_ids_[(unsigned char)w[i]];
        if (id >= 0) push_symbol(syms, id, i, 1);
        else if (opt_.unk_id) push_symbol(syms, *opt_.unk_id, i, 1);
      }
    } else {
      size_t i = 0;
      std::string s;
      while (i < w.size()) {
        size_t n = std::min(unicode::utf8_len((unsigned char)w[i]), w.size() - i);
        s.assign(w.substr(i, n));
        if (i > 0 && !opt_.continuing_subword_prefix.empty()) s.insert(0, opt_.continuing_subword_prefix);
        if (i + n == w.size() && !opt_.end_of_word_suffix.empty()) s += opt_.end_of_word_suffix;
        auto it = vocab_.find(s);
        if (it != vocab_.end()) {
          push_symbol(syms, it->second, i, n);
        } else if (opt_.byte_fallback && [&] {
                     for (size_t k = 0; k < n; k++)
                       if (fallback_ids_[(unsigned char)w[i + k]] < 0) return false;
                     return true;
                   }()) {
          for (size_t k = 0; k < n; k++) push_symbol(syms, fallback_ids_[(unsigned char)w[i + k]], i + k, 1);
        } else if (opt_.unk_id) {
          push_symbol(syms, *opt_.unk_id, i, n);
        }
        i += n;
      }
    }
    for (size_t k = 0; k < syms.size(); k++) syms[k].next = k + 1 < syms.size() ? int(k + 1) : -1;

    // Heap of candidate merges: lowest rank first, then leftmost position.
    struct Cand {
      int rank, pos, id;
      bool operator<(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Cand> heap;
    auto consider = [&](int l) {
      if (l < 0 || syms[l].next < 0) return;
      auto it = merges_.find(key(syms[l].id, syms[syms[l].next].id));
      if (it != merges_.end()) heap.push({it->second.rank, l, it->second.id});
    };
    for (size_t k = 0; k + 1 < syms.size(); k++) consider(int(k));
    while (!heap.empty()) {
      Cand c = heap.top();
      heap.pop();
      Symbol& l = syms[c.pos];
      if (l.len == 0 || l.next < 0) continue;
      Symbol& r = syms[l.next];
      auto it = merges_.find(key(l.id, r.id));
      if (it == merges_.end() || it->second.rank != c.rank || it->second.id != c.id) continue;  // stale
      l.id = c.id;
      l.len += r.len;
      r.len = 0;
      l.next = r.next;
      if (l.next >= 0) syms[l.next].prev = c.pos;
      consider(l.prev);
      consider(c.pos);
    }
    for (const Symbol& s : syms)
      if (s.len) out.push_back(s.id);
  }

  static constexpr size_t kCacheCapacity = 100000;
  BpeOptions opt_;
  bool split_at_metaspace_ = false;
  std::unordered_map<std::string, int> vocab_;  // the model's own vocabulary (not added tokens)
  std::unordered_map<std::string, int> raw_vocab_;
  std::array<int, 256> byte_ids_{};
  std::array<int, 256> fallback_ids_{};
  std::unordered_map<uint64_t, Merge> merges_;
  mutable std::shared_mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int>> cache_;
};

// llama.cpp's SentencePiece BPE: repeatedly merge the adjacent pair whose concatenation is the
// highest-scoring vocabulary entry (ties: leftmost); leftovers become <0xXX> byte tokens.
class SpmModel final : public TokenModel {
 public:
  SpmModel(std::unordered_map<std::string, int> model_vocab, std::vector<float> scores, std::optional<int> unk_id)
      : vocab_(std::move(model_vocab)), scores_(std::move(scores)), unk_(unk_id) {
    const auto& vocab = vocab_;
    for (int b = 0; b < 256; b++) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      auto it = vocab.find(name);
      if (it != vocab.end()) byte_ids_[b] = it->second;
      else {
        auto it1 = vocab.find(std::string(1, char(b)));
        byte_ids_[b] = it1 != vocab.end() ? it1->second : (unk_id ? *unk_id : -1);
      }
    }
  }

  void encode(std::string_view text, std::vector<int>& out) const override {
    std::vector<Symbol> syms;
    for (size_t i = 0; i < text.size();) {
      size_t n = std::min(unicode::utf8_len((unsigned char)text[i]), text.size() - i);
      int idx = int(syms.size());
      syms.push_back({-1, idx - 1, -1, i, n});
      i += n;
    }
    for (size_t k = 0; k < syms.size(); k++) syms[k].next = k + 1 < syms.size() ? int(k + 1) : -1;
    struct Bigram {
      int left, right;
      float score;
      size_t size;
      bool operator<(const Bigram& o) const { return score < o.score || (score == o.score && left > o.left); }
    };
    std::priority_queue<Bigram> heap;
    std::unordered_map<std::string, std::pair<int, int>> rev_merge;
    auto try_add = [&](int l, int r) {
      if (l < 0 || r < 0) return;
      std::string s(text.substr(syms[l].begin, syms[l].len + syms[r].len));
      auto it = vocab_.find(s);
      if (it == vocab_.end() || size_t(it->second) >= scores_.size()) return;
      heap.push({l, r, scores_[it->second], s.size()});
      rev_merge[s] = {l, r};
    };
    for (size_t k = 1; k < syms.size(); k++) try_add(int(k - 1), int(k));
    while (!heap.empty()) {
      Bigram b = heap.top();
      heap.pop();
      Symbol& l = syms[b.left];
      Symbol& r = syms[b.right];
      if (l.len == 0 || r.len == 0 || l.len + r.len != b.size) continue;
      l.len += r.len;
      r.len = 0;
      l.next = r.next;
      if (r.next >= 0) syms[r.next].prev = b.left;
      try_add(l.prev, b.left);
      try_add(b.left, l.next);
    }
    for (int k = 0; k != -1 && !syms.empty(); k = syms[k].next) resegment(text, syms, rev_merge, k, out);
  }

 private:
  void resegment(std::string_view text, const std::vector<Symbol>& syms,
                 const std::unordered_map<std::string, std::pair<int, int>>& rev_merge, int k,
                 std::vector<int>& out) const {
    std::string s(text.substr(syms[k].begin, syms[k].len));
    auto it = vocab_.find(s);
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
    auto rm = rev_merge.find(s);
    if (rm == rev_merge.end()) {
      for (unsigned char c : s)
        if (byte_ids_[c] >= 0) out.push_back(byte_ids_[c]);
      return;
    }
    resegment(text, syms, rev_merge, rm->second.first, out);
    resegment(text, syms, rev_merge, rm->second.second, out);
  }

  std::unordered_map<std::string, int> vocab_;
  std::vector<float> scores_;
  std::optional<int> unk_;
  std::array<int, 256> byte_ids_{};
};

}  // namespace

std::unique_ptr<TokenModel> make_bpe_model(std::unordered_map<std::string, int> model_vocab,
                                           const std::vector<std::pair<std::string, std::string>>& merges,
                                           const BpeOptions& opt) {
  return std::make_unique<BpeModel>(std::move(model_vocab), merges, opt);
}

std::unique_ptr<TokenModel> make_spm_model(std::unordered_map<std::string, int> model_vocab, std::vector<float> scores,
                                           std::optional<int> unk_id) {
  return std::make_unique<SpmModel>(std::move(model_vocab), std::move(scores), unk_id);
}

}  // namespace strata
