// Runs the pipeline of tokenizer_impl.h: added-token split -> normalize -> pre-tokenize ->
// model -> post-process, and the decoder chain back. Semantics follow HF tokenizers.
#include "tokenizer/tokenizer.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace strata {

// ------------------------------------------------------------------------------ added tokens
void TokenTrie::add(const std::string& s, int token_index) {
  if (s.empty()) return;
  first_[(unsigned char)s[0]] = true;
  int n = 0;
  for (unsigned char c : s) {
    auto& nx = nodes_[n].next;
    auto it = std::lower_bound(nx.begin(), nx.end(), std::make_pair(c, -1));
    if (it != nx.end() && it->first == c) {
      n = it->second;
    } else {
      int child = int(nodes_.size());
      nx.insert(it, {c, child});
      nodes_.push_back(Node{});
      n = child;
    }
  }
  if (nodes_[n].token < 0) nodes_[n].token = token_index;
}

int TokenTrie::longest_at(std::string_view text, size_t pos, size_t* len) const {
  int n = 0, best = -1;
  for (size_t i = pos; i < text.size(); i++) {
    const auto& nx = nodes_[n].next;
    unsigned char c = text[i];
    auto it = std::lower_bound(nx.begin(), nx.end(), std::make_pair(c, -1));
    if (it == nx.end() || it->first != c) break;
    n = it->second;
    if (nodes_[n].token >= 0) {
      best = nodes_[n].token;
      *len = i + 1 - pos;
    }
  }
  return best;
}

void TokenizerImpl::finish_added_tokens() {
  raw_trie = TokenTrie{};
  normalized_trie = TokenTrie{};
  for (size_t i = 0; i < added.size(); i++) {
    (added[i].normalized ? normalized_trie : raw_trie).add(added[i].content, int(i));
  }
}

namespace {

bool is_space_byte(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Word characters for single_word added tokens (alphanumeric or '_'; non-ASCII counts as word).
bool is_word_byte(unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; }

// Splits `text` on the added tokens of `trie` (HF AddedVocabulary::find_matches), appending
// segments (text pieces and resolved tokens) to `out`.
void split_added(const TokenizerImpl& t, const TokenTrie& trie, std::string_view text, bool at_start,
                 std::vector<Segment>& out) {
  if (trie.empty()) {
    if (!text.empty()) out.push_back({std::string(text), -1, at_start});
    return;
  }
  size_t emitted = 0;  // text[0, emitted) is already in `out`
  size_t pos = 0;
  while (pos < text.size()) {
    if (!trie.may_start((unsigned char)text[pos])) {
      pos++;
      continue;
    }
    size_t len = 0;
    int k = trie.longest_at(text, pos, &len);
    if (k < 0) {
      pos++;
      continue;
    }
    const AddedToken& a = t.added[size_t(k)];
    size_t start = pos, stop = pos + len;
    if (a.single_word) {
      bool left_ok = start == 0 || !is_word_byte((unsigned char)text[start - 1]);
      bool right_ok = stop == text.size() || !is_word_byte((unsigned char)text[stop]);
      if (!left_ok || !right_ok) {
        pos++;
        continue;
      }
    }
    if (a.lstrip)
      while (start > emitted && is_space_byte((unsigned char)text[start - 1])) start--;
    if (a.rstrip)
      while (stop < text.size() && is_space_byte((unsigned char)text[stop])) stop++;
    if (start > emitted) out.push_back({std::string(text.substr(emitted, start - emitted)), -1, at_start && emitted == 0});
    out.push_back({std::string(), a.id, false});
    emitted = pos = stop;
  }
  if (emitted < text.size()) out.push_back({std::string(text.substr(emitted)), -1, at_start && emitted == 0});
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  std::string out;
  size_t i = 0;
  while (true) {
    size_t j = s.find(from, i);
    if (j == std::string::npos) break;
    out.append(s, i, j - i);
    out += to;
    i = j + from.size();
  }
  if (i == 0) return;
  out.append(s, i, std::string::npos);
  s = std::move(out);
}

void regex_replace_all(std::string& s, const Regex& re, const std::string& to) {
  std::vector<std::pair<size_t, size_t>> m;
  re.find_all(s, m);
  if (m.empty()) return;
  std::string out;
  size_t i = 0;
  for (auto [b, e] : m) {
    out.append(s, i, b - i);
    out += to;
    i = e;
  }
  out.append(s, i, std::string::npos);
  s = std::move(out);
}

std::string normalize(const TokenizerImpl& t, std::string s) {
  for (const NormStep& n : t.normalizer) {
    switch (n.kind) {
      case NormStep::NFC: s = unicode::normalize(s, unicode::NormForm::NFC); break;
      case NormStep::NFD: s = unicode::normalize(s, unicode::NormForm::NFD); break;
      case NormStep::NFKC: s = unicode::normalize(s, unicode::NormForm::NFKC); break;
      case NormStep::NFKD: s = unicode::normalize(s, unicode::NormForm::NFKD); break;
      case NormStep::Lowercase: s = unicode::to_lower(s); break;
      case NormStep::Replace:
        if (n.regex) regex_replace_all(s, *n.regex, n.content);
        else replace_all(s, n.pattern, n.content);
        break;
      case NormStep::Prepend:
        if (!s.empty()) s.insert(0, n.content);
        break;
      case NormStep::Strip: {
        size_t b = 0, e = s.size();
        if (n.strip_left)
          while (b < e && is_space_byte((unsigned char)s[b])) b++;
        if (n.strip_right)
          while (e > b && is_space_byte((unsigned char)s[e - 1])) e--;
        s = s.substr(b, e - b);
        break;
      }
    }
  }
  return s;
}

struct Piece {
  std::string text;
  bool at_start;
};

// HF NormalizedString::split: matches and gaps, then the behavior decides what stays together.
void split_piece(const Piece& p, const std::vector<std::pair<size_t, size_t>>& matches, SplitBehavior behavior,
                 bool invert, std::vector<Piece>& out) {
  struct Part {
    size_t b, e;
    bool is_match;
  };
  std::vector<Part> parts;
  size_t prev = 0;
  for (auto [b, e] : matches) {
    if (b != prev) parts.push_back({prev, b, invert});
    parts.push_back({b, e, !invert});
    prev = e;
  }
  if (prev != p.text.size()) parts.push_back({prev, p.text.size(), invert});

  std::vector<std::pair<size_t, size_t>> spans;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::Removed:
      for (auto& q : parts)
        if (!q.is_match) spans.push_back({q.b, q.e});
      break;
    case SplitBehavior::Isolated:
      for (auto& q : parts) spans.push_back({q.b, q.e});
      break;
    case SplitBehavior::MergedWithPrevious:
      for (auto& q : parts) {
        if (q.is_match && !previous_match && !spans.empty()) spans.back().second = q.e;
        else spans.push_back({q.b, q.e});
        previous_match = q.is_match;
      }
      break;
    case SplitBehavior::MergedWithNext:
      for (size_t i = parts.size(); i-- > 0;) {
        auto& q = parts[i];
        if (q.is_match && !previous_match && !spans.empty()) spans.back().first = q.b;
        else spans.push_back({q.b, q.e});
        previous_match = q.is_match;
      }
      std::reverse(spans.begin(), spans.end());
      break;
    case SplitBehavior::Contiguous:
      for (auto& q : parts) {
        if (q.is_match == previous_match && !spans.empty()) spans.back().second = q.e;
        else spans.push_back({q.b, q.e});
        previous_match = q.is_match;
      }
      break;
  }
  for (auto [b, e] : spans)
    if (e > b) out.push_back({p.text.substr(b, e - b), p.at_start && b == 0});
}

const Regex& gpt2_regex() {
  static const Regex re(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)");
  return re;
}

void pre_tokenize(const TokenizerImpl& t, Piece seg, std::vector<Piece>& pieces) {
  pieces.clear();
  pieces.push_back(std::move(seg));
  std::vector<Piece> next;
  std::vector<std::pair<size_t, size_t>> m;
  for (const PreStep& st : t.pre) {
    next.clear();
    for (Piece& p : pieces) {
      m.clear();
      switch (st.kind) {
        case PreStep::Split:
          st.regex->find_all(p.text, m);
          split_piece(p, m, st.behavior, st.invert, next);
          break;
        case PreStep::ByteLevel:
          if (st.add_prefix_space && (p.text.empty() || p.text[0] != ' ')) p.text.insert(0, " ");
          if (st.use_regex) {
            gpt2_regex().find_all(p.text, m);
            split_piece(p, m, SplitBehavior::Isolated, false, next);
          } else {
            next.push_back(std::move(p));
          }
          break;
        case PreStep::Metaspace: {
          replace_all(p.text, " ", st.replacement);
          bool starts = p.text.compare(0, st.replacement.size(), st.replacement) == 0;
          if (!starts && (st.prepend == PreStep::Always || (st.prepend == PreStep::First && p.at_start)))
            p.text.insert(0, st.replacement);
          if (st.split) {
            size_t i = 0;
            while ((i = p.text.find(st.replacement, i)) != std::string::npos) {
              m.push_back({i, i + st.replacement.size()});
              i += st.replacement.size();
            }
            split_piece(p, m, SplitBehavior::MergedWithNext, false, next);
          } else {
            next.push_back(std::move(p));
          }
          break;
        }
      }
    }
    pieces.swap(next);
  }
}

// Decoder chain over token strings (HF decode_chain semantics). Byte-level output is raw bytes.
std::string run_decoders(const TokenizerImpl& t, std::vector<std::string> toks) {
  for (const DecStep& d : t.decoder) {
    switch (d.kind) {
      case DecStep::ByteLevel: {
        std::string bytes;
        for (const std::string& tok : toks)
          if (!unicode::byte_level_to_raw(tok, bytes)) bytes += tok;  // outside the byte alphabet: as is
        toks.assign(1, std::move(bytes));
        break;
      }
      case DecStep::Replace:
        for (auto& tok : toks) {
          if (d.regex) regex_replace_all(tok, *d.regex, d.content);
          else replace_all(tok, d.pattern, d.content);
        }
        break;
      case DecStep::ByteFallback: {
        std::vector<std::string> out;
        std::string pending;
        size_t n_pending = 0;
        auto flush = [&] {
          if (!n_pending) return;
          if (unicode::is_valid_utf8(pending)) out.push_back(pending);
          else
            for (size_t i = 0; i < n_pending; i++) out.push_back("\xEF\xBF\xBD");
          pending.clear();
          n_pending = 0;
        };
        for (auto& tok : toks) {
          unsigned v;
          if (tok.size() == 6 && tok.compare(0, 3, "<0x") == 0 && tok[5] == '>' &&
              std::sscanf(tok.c_str() + 3, "%2x", &v) == 1 && std::isxdigit((unsigned char)tok[3]) &&
              std::isxdigit((unsigned char)tok[4])) {
            pending += char(v);
            n_pending++;
          } else {
            flush();
            out.push_back(std::move(tok));
          }
        }
        flush();
        toks = std::move(out);
        break;
      }
      case DecStep::Fuse: {
        std::string all;
        for (auto& tok : toks) all += tok;
        toks.assign(1, std::move(all));
        break;
      }
      case DecStep::Strip:
        for (auto& tok : toks) {
          size_t b = 0, e = tok.size();
          for (size_t k = 0; k < d.start && b < e && tok.compare(b, d.content.size(), d.content) == 0; k++)
            b += d.content.size();
          for (size_t k = 0; k < d.stop && e >= b + d.content.size() &&
                             tok.compare(e - d.content.size(), d.content.size(), d.content) == 0;
               k++)
            e -= d.content.size();
          tok = tok.substr(b, e - b);
        }
        break;
      case DecStep::Metaspace:
        for (size_t i = 0; i < toks.size(); i++) {
          replace_all(toks[i], d.content, " ");
          if (i == 0 && d.prepend_first && !toks[i].empty() && toks[i][0] == ' ') toks[i].erase(0, 1);
        }
        break;
      case DecStep::BpeSuffix:
        for (size_t i = 0; i < toks.size(); i++) replace_all(toks[i], d.content, i + 1 == toks.size() ? "" : " ");
        break;
    }
  }
  std::string out;
  for (auto& tok : toks) out += tok;
  return out;
}

}  // namespace

// ------------------------------------------------------------------------------ Tokenizer
Tokenizer::Tokenizer(std::unique_ptr<TokenizerImpl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

std::vector<int> Tokenizer::encode(std::string_view text, bool add_special) const {
  const TokenizerImpl& t = *impl_;
  size_t bad = unicode::first_invalid_utf8(text);
  STRATA_CHECK(bad == text.size(), "text is not valid UTF-8 (at byte " + std::to_string(bad) + ")");
  std::vector<Segment> raw, segs;
  split_added(t, t.raw_trie, text, true, raw);
  for (Segment& s : raw) {
    if (s.token_id >= 0) {
      segs.push_back(std::move(s));
      continue;
    }
    std::string norm = normalize(t, std::move(s.text));
    split_added(t, t.normalized_trie, norm, s.at_start, segs);
  }
  std::vector<int> ids;
  std::vector<Piece> pieces;
  for (Segment& s : segs) {
    if (s.token_id >= 0) {
      ids.push_back(s.token_id);
      continue;
    }
    pre_tokenize(t, {std::move(s.text), s.at_start}, pieces);
    for (const Piece& p : pieces) t.model->encode(p.text, ids);
  }
  if (add_special && !t.post_single.empty()) {
    std::vector<int> out;
    for (const PostItem& it : t.post_single) {
      if (it.is_sequence) out.insert(out.end(), ids.begin(), ids.end());
      else out.insert(out.end(), it.ids.begin(), it.ids.end());
    }
    return out;
  }
  return ids;
}

std::string Tokenizer::decode(std::span<const int> ids, bool skip_special) const {
  const TokenizerImpl& t = *impl_;
  std::vector<std::string> toks;
  toks.reserve(ids.size());
  for (int id : ids) {
    STRATA_CHECK(id >= 0 && size_t(id) < t.id_to_token.size(), "token id " + std::to_string(id) +
                                                                    " is outside the vocabulary (size " +
                                                                    std::to_string(t.id_to_token.size()) + ")");
    if (skip_special && t.special[size_t(id)]) continue;
    toks.push_back(t.id_to_token[size_t(id)]);
  }
  return unicode::utf8_lossy(run_decoders(t, std::move(toks)));
}

int Tokenizer::vocab_size() const { return int(impl_->id_to_token.size()); }

std::optional<int> Tokenizer::token_to_id(std::string_view token) const {
  auto it = impl_->token_to_id.find(std::string(token));
  if (it == impl_->token_to_id.end()) return std::nullopt;
  return it->second;
}

std::string Tokenizer::id_to_token(int id) const {
  STRATA_CHECK(id >= 0 && size_t(id) < impl_->id_to_token.size(), "token id " + std::to_string(id) + " out of range");
  return impl_->id_to_token[size_t(id)];
}

bool Tokenizer::is_special(int id) const {
  return id >= 0 && size_t(id) < impl_->special.size() && impl_->special[size_t(id)];
}
std::optional<int> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<int> Tokenizer::eos_id() const { return impl_->eos; }
std::string Tokenizer::bos_token() const { return impl_->bos ? impl_->id_to_token[size_t(*impl_->bos)] : ""; }
std::string Tokenizer::eos_token() const { return impl_->eos ? impl_->id_to_token[size_t(*impl_->eos)] : ""; }

std::shared_ptr<const Tokenizer> tokenizer_from_impl(std::unique_ptr<TokenizerImpl> impl) {
  return std::shared_ptr<const Tokenizer>(new Tokenizer(std::move(impl)));
}

std::shared_ptr<const Tokenizer> Tokenizer::load(const std::string& path) {
  struct stat st;
  STRATA_CHECK(::stat(path.c_str(), &st) == 0, "cannot open tokenizer " + path + ": no such file or directory");
  if (S_ISDIR(st.st_mode)) {
    std::string json = path + "/tokenizer.json";
    struct stat st2;
    STRATA_CHECK(::stat(json.c_str(), &st2) == 0, "directory " + path + " holds no tokenizer.json");
    return load(json);
  }
  STRATA_CHECK(S_ISREG(st.st_mode), "tokenizer " + path + " is not a regular file");
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".gguf") == 0) return from_gguf(path);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  STRATA_CHECK(f, "cannot open tokenizer " + path);
  std::string text;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  std::fclose(f);
  if (text.size() >= 4 && text.compare(0, 4, "GGUF") == 0) return from_gguf(path);
  return from_json_text(text, path);
}

// ------------------------------------------------------------------------------ streaming
StreamDecoder::StreamDecoder(std::shared_ptr<const Tokenizer> tok, bool skip_special, std::span<const int> prompt_ids)
    : tok_(std::move(tok)), skip_special_(skip_special) {
  // Keep a few prompt tokens as left context so context-dependent decoders (leading-space
  // stripping) treat the first generated token as a continuation, as decode(prompt + gen) would.
  size_t keep = std::min<size_t>(prompt_ids.size(), 4);
  ids_.assign(prompt_ids.end() - keep, prompt_ids.end());
  prefix_ = 0;
  read_ = ids_.size();
}

std::string StreamDecoder::push(int id) {
  ids_.push_back(id);
  std::span<const int> all(ids_);
  std::string prev = tok_->decode(all.subspan(prefix_, read_ - prefix_), skip_special_);
  std::string text = tok_->decode(all.subspan(prefix_), skip_special_);
  // A trailing U+FFFD means a character is still incomplete: wait for more tokens (bounded, so
  // truly invalid output is still shown).
  bool incomplete = text.size() >= 3 && text.compare(text.size() - 3, 3, "\xEF\xBF\xBD") == 0;
  if ((incomplete && ids_.size() - read_ < 4) || text.size() <= prev.size() ||
      text.compare(0, prev.size(), prev) != 0) {
    if (!incomplete && text.compare(0, prev.size(), prev) != 0) {
      // The decoder rewrote earlier text (rare): emit nothing and restart the window here.
      prefix_ = read_;
      read_ = ids_.size();
    }
    return "";
  }
  std::string out = text.substr(prev.size());
  prefix_ = read_;
  read_ = ids_.size();
  return out;
}

std::string StreamDecoder::finish() {
  if (read_ >= ids_.size()) return "";
  std::span<const int> all(ids_);
  std::string prev = tok_->decode(all.subspan(prefix_, read_ - prefix_), skip_special_);
  std::string text = tok_->decode(all.subspan(prefix_), skip_special_);
  read_ = ids_.size();
  return text.size() > prev.size() && text.compare(0, prev.size(), prev) == 0 ? text.substr(prev.size()) : "";
}

}  // namespace strata
