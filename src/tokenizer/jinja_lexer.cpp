// Jinja lexer (see jinja_lexer.h). Follows jinja2 3.1's lexer rule by rule: the root rule
// finds the next {{ {% {#, strips the text before it ("-" sign: all whitespace; lstrip_blocks:
// spaces/tabs back to the line start, not for {{ }}), and the tag rules end a tag only while
// brackets are balanced. Not a regex engine: each rule is a small hand-written matcher.
#include "tokenizer/jinja_lexer.h"

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "tokenizer/jinja_error.h"
#include "tokenizer/jinja_unicode.h"

namespace strata::jinja {

const char* tok_type_name(TokType t) {
  switch (t) {
    case TokType::Data: return "template data";
    case TokType::BlockBegin: return "begin of statement block";
    case TokType::BlockEnd: return "end of statement block";
    case TokType::VarBegin: return "begin of print statement";
    case TokType::VarEnd: return "end of print statement";
    case TokType::Name: return "name";
    case TokType::String: return "string";
    case TokType::Integer: return "integer";
    case TokType::Float: return "float";
    case TokType::Op: return "operator";
    case TokType::Eof: return "end of template";
  }
  return "token";
}

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

// Python's str.rstrip() (Unicode whitespace).
std::string rstrip_ws(const std::string& s) { return py_strip(s, nullptr, false, true); }

// Python's string-literal decoding as jinja2 does it: .encode("ascii", "backslashreplace")
// .decode("unicode-escape"), so non-ASCII text survives and Python escapes apply.
std::string decode_string_literal(const std::string& raw, int line) {
  std::string ascii;
  char buf[16];
  for (char32_t c : utf8_decode(raw)) {
    if (c < 0x80) {
      ascii += char(c);
    } else {
      std::snprintf(buf, sizeof buf, c <= 0xFF ? "\\x%02x" : c <= 0xFFFF ? "\\u%04x" : "\\U%08x", unsigned(c));
      ascii += buf;
    }
  }
  std::string out;
  auto hex = [&](size_t at, int n) -> long {
    if (at + size_t(n) > ascii.size()) return -1;
    for (int k = 0; k < n; k++)
      if (!std::isxdigit(static_cast<unsigned char>(ascii[at + size_t(k)]))) return -1;
    return std::strtol(ascii.substr(at, size_t(n)).c_str(), nullptr, 16);
  };
  for (size_t i = 0; i < ascii.size(); i++) {
    char c = ascii[i];
    if (c != '\\') {
      out += c;  // ASCII: a byte is a code point
      continue;
    }
    if (i + 1 >= ascii.size()) throw JinjaError("syntax error", "string literal ends with a backslash", line);
    char e = ascii[++i];
    switch (e) {
      case '\n': break;
      case '\\': out += '\\'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'v': out += '\v'; break;
      case 'x':
      case 'u':
      case 'U': {
        int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
        long v = hex(i + 1, n);
        if (v < 0 || v > 0x10FFFF)
          throw JinjaError("syntax error", std::string("bad \\") + e + " escape in string literal", line);
        utf8_append(out, char32_t(v));
        i += size_t(n);
        break;
      }
      case 'N': throw JinjaError("unsupported", "\\N{...} escapes in string literals", line);
      default:
        if (e >= '0' && e <= '7') {
          int v = 0, n = 0;
          while (n < 3 && i < ascii.size() && ascii[i] >= '0' && ascii[i] <= '7') {
            v = v * 8 + (ascii[i] - '0');
            i++;
            n++;
          }
          i--;
          utf8_append(out, char32_t(v));
        } else {
          out += '\\';  // unknown escapes stay as written (Python keeps them, with a warning)
          out += e;
        }
    }
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string_view source) {
    // newline_re.split(source) joined with "\n"; one trailing newline dropped.
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); i++) {
      if (source[i] == '\r') {
        src_ += '\n';
        if (i + 1 < source.size() && source[i + 1] == '\n') i++;
      } else {
        src_ += source[i];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
  }

  std::vector<Token> run() {
    while (pos_ < src_.size()) root();
    push(TokType::Eof, "", line_);
    return std::move(out_);
  }

 private:
  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;
  std::vector<Token> out_;
  std::vector<char> balance_;

  [[noreturn]] void error(const std::string& msg) { throw JinjaError("syntax error", msg, line_); }

  void push(TokType t, std::string text, int line) {
    Token tok;
    tok.type = t;
    tok.text = std::move(text);
    tok.line = line;
    out_.push_back(std::move(tok));
  }

  bool at(size_t p, std::string_view s) const { return src_.compare(p, s.size(), s) == 0; }

  // Byte length of one whitespace character (Python's \s) at p, 0 if none.
  size_t space_len(size_t p) const {
    if (p >= src_.size()) return 0;
    unsigned char c = static_cast<unsigned char>(src_[p]);
    if (c < 0x80) return py_isspace(c) ? 1 : 0;
    size_t n = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    std::u32string cp = utf8_decode(std::string_view(src_).substr(p, n));
    return (cp.size() == 1 && py_isspace(cp[0])) ? n : 0;
  }
  size_t skip_spaces(size_t p) const {
    while (size_t n = space_len(p)) p += n;
    return p;
  }

  // Consume src_[pos_, end) as one regex match: advance the line count and line_starting.
  void consume_to(size_t end) {
    for (size_t k = pos_; k < end; k++)
      if (src_[k] == '\n') line_++;
    if (end > pos_) line_starting_ = src_[end - 1] == '\n';
    pos_ = end;
  }

  // The text before a tag, stripped the way jinja2's OptionalLStrip does.
  void emit_text(size_t begin, size_t end, char sign, bool lstrip_allowed) {
    std::string text = src_.substr(begin, end - begin);
    int line = line_;
    int newlines = 0;
    for (char c : text) newlines += c == '\n';
    if (sign == '-') {
      text = rstrip_ws(text);
    } else if (sign != '+' && lstrip_allowed) {
      size_t nl = text.rfind('\n');
      size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
      if (l_pos > 0 || line_starting_) {
        bool only_blank = text.find_first_not_of(" \t", l_pos) == std::string::npos;
        if (only_blank) text.resize(l_pos);
      }
    }
    if (!text.empty()) push(TokType::Data, std::move(text), line);
    line_ += newlines;
  }

  void root() {
    size_t t = pos_;
    for (;; t++) {
      t = src_.find('{', t);
      if (t == std::string::npos || t + 1 >= src_.size()) {
        t = std::string::npos;
        break;
      }
      char k = src_[t + 1];
      if (k == '{' || k == '%' || k == '#') break;
    }
    if (t == std::string::npos) {
      std::string text = src_.substr(pos_);
      push(TokType::Data, text, line_);
      consume_to(src_.size());
      return;
    }
    const char kind = src_[t + 1];
    size_t p = t + 2;
    const char sign = (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ? src_[p] : 0;
    if (sign) p++;
    if (kind == '%' && raw_begin(t, p, sign)) return;
    emit_text(pos_, t, sign, /*lstrip_allowed=*/kind != '{');
    pos_ = p;
    line_starting_ = false;  // the root match ends with the tag opener
    if (kind == '#')
      comment();
    else
      tag(kind == '%');
  }

  void comment() {
    for (size_t i = pos_; i < src_.size(); i++) {
      if (at(i, "+#}")) return consume_to(i + 3);
      if (at(i, "-#}")) return consume_to(skip_spaces(i + 3));
      if (at(i, "#}")) return consume_to(i + 2 + (at(i + 2, "\n") ? 1 : 0));
    }
    error("Missing end of comment tag");
  }

  // {% raw %}...{% endraw %}: the body is text, taken verbatim.
  bool raw_begin(size_t tag_start, size_t p, char sign) {
    size_t q = skip_spaces(p);
    if (!at(q, "raw")) return false;
    q = skip_spaces(q + 3);
    size_t body;
    if (at(q, "-%}"))
      body = skip_spaces(q + 3);
    else if (at(q, "%}"))
      body = q + 2;
    else
      return false;
    emit_text(pos_, tag_start, sign, true);
    pos_ = tag_start;
    consume_to(body);
    for (size_t i = pos_; i < src_.size(); i++) {
      if (!at(i, "{%")) continue;
      size_t r = i + 2;
      char esign = (r < src_.size() && (src_[r] == '-' || src_[r] == '+')) ? src_[r] : 0;
      if (esign) r++;
      r = skip_spaces(r);
      if (!at(r, "endraw")) continue;
      r = skip_spaces(r + 6);
      size_t end;
      if (at(r, "+%}"))
        end = r + 3;
      else if (at(r, "-%}"))
        end = skip_spaces(r + 3);
      else if (at(r, "%}"))
        end = r + 2 + (at(r + 2, "\n") ? 1 : 0);
      else
        continue;
      emit_text(pos_, i, esign, true);
      pos_ = i;
      consume_to(end);
      return true;
    }
    error("Missing end of raw directive");
  }

  // Inside {% %} or {{ }}: tokens until the closing tag (only while brackets are balanced).
  void tag(bool block) {
    push(block ? TokType::BlockBegin : TokType::VarBegin, "", line_);
    balance_.clear();
    for (;;) {
      if (pos_ >= src_.size())
        error(std::string("unexpected end of template, expected 'end of ") + (block ? "statement block'" : "print statement'"));
      if (balance_.empty() && tag_end(block)) return;
      if (size_t n = space_len(pos_)) {
        size_t e = skip_spaces(pos_ + n);
        consume_to(e);
        continue;
      }
      if (number() || name() || string_lit() || op()) continue;
      std::string ch = src_.substr(pos_, 1);
      error("unexpected char '" + ch + "' at " + std::to_string(pos_));
    }
  }

  bool tag_end(bool block) {
    const int line = line_;
    size_t end = 0;
    if (block) {
      if (at(pos_, "+%}"))
        end = pos_ + 3;
      else if (at(pos_, "-%}"))
        end = skip_spaces(pos_ + 3);
      else if (at(pos_, "%}"))
        end = pos_ + 2 + (at(pos_ + 2, "\n") ? 1 : 0);  // trim_blocks
    } else {
      if (at(pos_, "-}}"))
        end = skip_spaces(pos_ + 3);
      else if (at(pos_, "}}"))
        end = pos_ + 2;
    }
    if (!end) return false;
    consume_to(end);
    push(block ? TokType::BlockEnd : TokType::VarEnd, "", line);
    return true;
  }

  size_t digits_us(size_t p) const {  // (\d+_)*\d+ ; returns end or npos
    if (p >= src_.size() || !is_digit(src_[p])) return std::string::npos;
    size_t q = p;
    for (;;) {
      while (q < src_.size() && is_digit(src_[q])) q++;
      if (q + 1 < src_.size() && src_[q] == '_' && is_digit(src_[q + 1])) {
        q++;
        continue;
      }
      return q;
    }
  }

  size_t exponent(size_t p) const {  // [eE][+-]?(\d+_)*\d+
    if (p >= src_.size() || (src_[p] != 'e' && src_[p] != 'E')) return std::string::npos;
    size_t q = p + 1;
    if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) q++;
    return digits_us(q);
  }

  static std::string no_underscores(std::string s) {
    std::string out;
    for (char c : s)
      if (c != '_') out += c;
    return out;
  }

  bool number() {
    if (!is_digit(src_[pos_])) return false;
    const int line = line_;
    size_t d = digits_us(pos_);
    if (pos_ == 0 || src_[pos_ - 1] != '.') {  // float rule: (?<!\.)
      size_t end = std::string::npos;
      size_t frac = (d < src_.size() && src_[d] == '.') ? digits_us(d + 1) : std::string::npos;
      if (frac != std::string::npos && exponent(frac) != std::string::npos)
        end = exponent(frac);
      else if (exponent(d) != std::string::npos)
        end = exponent(d);
      else if (frac != std::string::npos)
        end = frac;
      if (end != std::string::npos) {
        std::string text = src_.substr(pos_, end - pos_);
        Token tok;
        tok.type = TokType::Float;
        tok.text = text;
        tok.line = line;
        tok.fval = std::strtod(no_underscores(text).c_str(), nullptr);
        out_.push_back(tok);
        consume_to(end);
        return true;
      }
    }
    // integer rule: 0b.. | 0o.. | 0x.. | [1-9](_?\d)* | 0(_?0)*
    size_t end = pos_ + 1;
    int base = 10;
    auto run = [&](size_t q, auto ok) {
      size_t r = q;
      for (;;) {
        if (r < src_.size() && ok(src_[r])) {
          r++;
        } else if (r + 1 < src_.size() && src_[r] == '_' && ok(src_[r + 1])) {
          r += 2;
        } else {
          return r;
        }
      }
    };
    char c1 = pos_ + 1 < src_.size() ? char(std::tolower(static_cast<unsigned char>(src_[pos_ + 1]))) : 0;
    auto bin = [](char c) { return c == '0' || c == '1'; };
    auto oct = [](char c) { return c >= '0' && c <= '7'; };
    auto hexd = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
    if (src_[pos_] == '0' && c1 == 'b' && run(pos_ + 2, bin) > pos_ + 2) {
      end = run(pos_ + 2, bin), base = 2;
    } else if (src_[pos_] == '0' && c1 == 'o' && run(pos_ + 2, oct) > pos_ + 2) {
      end = run(pos_ + 2, oct), base = 8;
    } else if (src_[pos_] == '0' && c1 == 'x' && run(pos_ + 2, hexd) > pos_ + 2) {
      end = run(pos_ + 2, hexd), base = 16;
    } else if (src_[pos_] == '0') {
      end = run(pos_ + 1, [](char c) { return c == '0'; });
    } else {
      end = run(pos_ + 1, is_digit);
    }
    std::string text = src_.substr(pos_, end - pos_);
    std::string digits = no_underscores(base == 10 ? text : text.substr(2));
    errno = 0;
    unsigned long long v = std::strtoull(digits.c_str(), nullptr, base);
    if (errno == ERANGE || v > uint64_t(INT64_MAX))
      throw JinjaError("unsupported", "integer literal " + text + " does not fit in 64 bits", line);
    Token tok;
    tok.type = TokType::Integer;
    tok.text = text;
    tok.line = line;
    tok.ival = int64_t(v);
    out_.push_back(tok);
    consume_to(end);
    return true;
  }

  bool name() {
    if (!is_name_start(src_[pos_])) return false;
    size_t e = pos_ + 1;
    while (e < src_.size() && is_name_char(src_[e])) e++;
    push(TokType::Name, src_.substr(pos_, e - pos_), line_);
    consume_to(e);
    return true;
  }

  bool string_lit() {
    const char q = src_[pos_];
    if (q != '\'' && q != '"') return false;
    size_t e = pos_ + 1;
    while (e < src_.size() && src_[e] != q) e += src_[e] == '\\' ? 2 : 1;
    if (e >= src_.size()) return false;  // unterminated: falls through to "unexpected char"
    const int line = line_;
    std::string raw = src_.substr(pos_ + 1, e - pos_ - 1);
    push(TokType::String, decode_string_literal(raw, line), line);
    consume_to(e + 1);
    return true;
  }

  bool op() {
    static const char* kOps2[] = {"**", "//", "==", "!=", ">=", "<="};
    for (const char* o : kOps2)
      if (at(pos_, o)) {
        push(TokType::Op, o, line_);
        consume_to(pos_ + 2);
        return true;
      }
    const char c = src_[pos_];
    if (std::string_view("+-/*%~[](){}><=.:|,;").find(c) == std::string_view::npos) return false;
    if (c == '(' || c == '[' || c == '{') {
      balance_.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    } else if (c == ')' || c == ']' || c == '}') {
      if (balance_.empty()) error(std::string("unexpected '") + c + "'");
      if (balance_.back() != c) error(std::string("unexpected '") + c + "', expected '" + balance_.back() + "'");
      balance_.pop_back();
    }
    push(TokType::Op, std::string(1, c), line_);
    consume_to(pos_ + 1);
    return true;
  }
};

}  // namespace

std::vector<Token> lex(std::string_view source) { return Lexer(source).run(); }

}  // namespace strata::jinja
