// Python's view of text for the Jinja engine (see jinja_unicode.h). Character properties and
// case mappings come from ICU, so they follow the same Unicode tables Python's str uses.
#include "tokenizer/jinja_unicode.h"

#include <unicode/uchar.h>
#include <unicode/ucasemap.h>
#include <unicode/ustring.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <memory>

namespace strata::jinja {

std::u32string utf8_decode(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + size_t(n) > s.size()) {
      out.push_back(0xFFFD);
      i++;
      continue;
    }
    char32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    bool ok = true;
    for (int k = 1; k < n; k++) {
      unsigned char d = static_cast<unsigned char>(s[i + size_t(k)]);
      if ((d & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if (!ok) {
      out.push_back(0xFFFD);
      i++;
      continue;
    }
    out.push_back(cp);
    i += size_t(n);
  }
  return out;
}

void utf8_append(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += char(c);
  } else if (c < 0x800) {
    out += char(0xC0 | (c >> 6));
    out += char(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += char(0xE0 | (c >> 12));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  } else {
    out += char(0xF0 | (c >> 18));
    out += char(0x80 | ((c >> 12) & 0x3F));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  }
}

std::string utf8_encode(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) utf8_append(out, c);
  return out;
}

size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (char c : s)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) n++;
  return n;
}

bool py_isspace(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
  if (u_charType(UChar32(c)) == U_SPACE_SEPARATOR) return true;
  UCharDirection d = u_charDirection(UChar32(c));
  return d == U_WHITE_SPACE_NEUTRAL || d == U_BLOCK_SEPARATOR || d == U_SEGMENT_SEPARATOR;
}

bool py_isprintable(char32_t c) {
  if (c == ' ') return true;
  switch (u_charType(UChar32(c))) {
    case U_CONTROL_CHAR:
    case U_FORMAT_CHAR:
    case U_SURROGATE:
    case U_PRIVATE_USE_CHAR:
    case U_UNASSIGNED:
    case U_LINE_SEPARATOR:
    case U_PARAGRAPH_SEPARATOR:
    case U_SPACE_SEPARATOR:
      return false;
    default:
      return true;
  }
}

bool py_iscased(char32_t c) { return u_hasBinaryProperty(UChar32(c), UCHAR_CASED); }
bool py_islower_c(char32_t c) { return u_hasBinaryProperty(UChar32(c), UCHAR_LOWERCASE); }
bool py_isupper_c(char32_t c) { return u_hasBinaryProperty(UChar32(c), UCHAR_UPPERCASE); }
bool py_istitle_c(char32_t c) { return u_charType(UChar32(c)) == U_TITLECASE_LETTER; }

bool py_isalpha(char32_t c) {
  switch (u_charType(UChar32(c))) {
    case U_UPPERCASE_LETTER:
    case U_LOWERCASE_LETTER:
    case U_TITLECASE_LETTER:
    case U_MODIFIER_LETTER:
    case U_OTHER_LETTER:
      return true;
    default:
      return false;
  }
}

static int numeric_type(char32_t c) { return u_getIntPropertyValue(UChar32(c), UCHAR_NUMERIC_TYPE); }
bool py_isdecimal(char32_t c) { return numeric_type(c) == U_NT_DECIMAL; }
bool py_isdigit(char32_t c) { return numeric_type(c) == U_NT_DECIMAL || numeric_type(c) == U_NT_DIGIT; }
bool py_isnumeric(char32_t c) { return numeric_type(c) != U_NT_NONE; }

namespace {

struct CaseMapCloser {
  void operator()(UCaseMap* m) const { ucasemap_close(m); }
};

// The root-locale case mapper (no Turkish/Lithuanian rules: Python's str has none).
UCaseMap* case_map() {
  thread_local std::unique_ptr<UCaseMap, CaseMapCloser> m([] {
    UErrorCode err = U_ZERO_ERROR;
    return ucasemap_open("", 0, &err);
  }());
  return m.get();
}

using Utf8CaseFn = int32_t (*)(const UCaseMap*, char*, int32_t, const char*, int32_t, UErrorCode*);

std::string map_case(std::string_view s, Utf8CaseFn fn) {
  if (s.empty()) return {};
  std::string out(s.size() + 16, '\0');
  for (int attempt = 0; attempt < 2; attempt++) {
    UErrorCode err = U_ZERO_ERROR;
    int32_t n = fn(case_map(), out.data(), int32_t(out.size()), s.data(), int32_t(s.size()), &err);
    if (err == U_BUFFER_OVERFLOW_ERROR) {
      out.assign(size_t(n) + 1, '\0');
      continue;
    }
    if (U_FAILURE(err)) return std::string(s);
    out.resize(size_t(n));
    return out;
  }
  return std::string(s);
}

// Full titlecase mapping of one character (str.title / str.capitalize use it for word starts).
std::string title_char(char32_t c) {
  UChar src[2];
  int32_t n = 0;
  U16_APPEND_UNSAFE(src, n, UChar32(c));
  UChar dst[8];
  UErrorCode err = U_ZERO_ERROR;
  int32_t m = u_strToTitle(dst, 8, src, n, nullptr, "", &err);
  if (U_FAILURE(err)) {
    std::string out;
    utf8_append(out, char32_t(u_totitle(UChar32(c))));
    return out;
  }
  std::string out;
  for (int32_t i = 0; i < m;) {
    UChar32 cp;
    U16_NEXT(dst, i, m, cp);
    utf8_append(out, char32_t(cp));
  }
  return out;
}

std::string char_str(char32_t c) {
  std::string s;
  utf8_append(s, c);
  return s;
}

}  // namespace

std::string py_lower(std::string_view s) {
  bool ascii = true;
  for (char c : s) ascii &= static_cast<unsigned char>(c) < 0x80;
  if (ascii) {
    std::string out(s);
    for (char& c : out)
      if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
    return out;
  }
  return map_case(s, ucasemap_utf8ToLower);
}

std::string py_upper(std::string_view s) {
  bool ascii = true;
  for (char c : s) ascii &= static_cast<unsigned char>(c) < 0x80;
  if (ascii) {
    std::string out(s);
    for (char& c : out)
      if (c >= 'a' && c <= 'z') c = char(c - 'a' + 'A');
    return out;
  }
  return map_case(s, ucasemap_utf8ToUpper);
}

std::string py_title(std::string_view s) {
  std::u32string cps = utf8_decode(s);
  std::string out;
  bool prev_cased = false;
  for (size_t i = 0; i < cps.size(); i++) {
    char32_t c = cps[i];
    out += prev_cased ? py_lower(char_str(c)) : title_char(c);
    prev_cased = py_iscased(c);
  }
  return out;
}

std::string py_capitalize(std::string_view s) {
  std::u32string cps = utf8_decode(s);
  if (cps.empty()) return {};
  return title_char(cps[0]) + py_lower(utf8_encode(std::u32string_view(cps).substr(1)));
}

std::string py_swapcase(std::string_view s) {
  std::string out;
  for (char32_t c : utf8_decode(s)) {
    if (py_isupper_c(c))
      out += py_lower(char_str(c));
    else if (py_islower_c(c))
      out += py_upper(char_str(c));
    else
      utf8_append(out, c);
  }
  return out;
}

namespace {

// The code point starting at byte i (and its length); invalid bytes read as U+FFFD of length 1.
char32_t cp_at(std::string_view s, size_t i, size_t& len) {
  std::u32string one = utf8_decode(s.substr(i, std::min<size_t>(4, s.size() - i)));
  unsigned char c = static_cast<unsigned char>(s[i]);
  len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
  if (one.empty() || one[0] == 0xFFFD) len = 1;
  return one.empty() ? 0xFFFD : one[0];
}

}  // namespace

std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right) {
  std::u32string set;
  if (chars) set = utf8_decode(*chars);
  auto strip_it = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : py_isspace(c); };
  size_t b = 0, e = s.size();
  if (left)
    while (b < e) {
      size_t len;
      if (!strip_it(cp_at(s, b, len))) break;
      b += len;
    }
  if (right)
    while (e > b) {
      size_t start = e - 1;  // back up to the lead byte of the last code point
      while (start > b && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80 && e - start < 4) start--;
      size_t len;
      char32_t c = cp_at(s, start, len);
      if (start + len != e) {  // not a whole code point: treat the last byte alone
        start = e - 1;
        c = 0xFFFD;
      }
      if (!strip_it(c)) break;
      e = start;
    }
  return std::string(s.substr(b, e - b));
}

std::string py_float_repr(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x < 0 ? "-inf" : "inf";
  if (x == 0) return std::signbit(x) ? "-0.0" : "0.0";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::scientific);
  std::string sci(buf, r.ptr);  // "-d.ddde+XX"
  bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  size_t epos = sci.find('e');
  std::string digits = sci.substr(0, epos);
  int exp10 = std::stoi(sci.substr(epos + 1));
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int decpt = exp10 + 1;  // value = 0.DIGITS * 10^decpt
  std::string out = neg ? "-" : "";
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0." + std::string(size_t(-decpt), '0') + digits;
    } else if (size_t(decpt) >= digits.size()) {
      out += digits + std::string(size_t(decpt) - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, size_t(decpt)) + "." + digits.substr(size_t(decpt));
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char e[16];
    std::snprintf(e, sizeof e, "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
    out += e;
  }
  return out;
}

std::string py_str_repr(std::string_view s) {
  bool has_sq = s.find('\'') != std::string_view::npos, has_dq = s.find('"') != std::string_view::npos;
  const char quote = (has_sq && !has_dq) ? '"' : '\'';
  std::string out(1, quote);
  char buf[16];
  for (char32_t c : utf8_decode(s)) {
    if (c == char32_t(quote) || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7F) {
      std::snprintf(buf, sizeof buf, "\\x%02x", unsigned(c));
      out += buf;
    } else if (c < 0x7F || py_isprintable(c)) {
      utf8_append(out, c);
    } else if (c <= 0xFF) {
      std::snprintf(buf, sizeof buf, "\\x%02x", unsigned(c));
      out += buf;
    } else if (c <= 0xFFFF) {
      std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(c));
      out += buf;
    } else {
      std::snprintf(buf, sizeof buf, "\\U%08x", unsigned(c));
      out += buf;
    }
  }
  out += quote;
  return out;
}

}  // namespace strata::jinja
