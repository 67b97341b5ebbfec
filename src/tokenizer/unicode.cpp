#include "tokenizer/unicode.h"

#include <unicode/bytestream.h>
#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>
#include <unicode/unistr.h>

#include <mutex>

#include "core/error.h"

namespace strata::unicode {

namespace {
// Decodes one code point at s[i]; returns its length, or 0 if ill-formed at i.
size_t decode_at(std::string_view s, size_t i, uint32_t* cp) {
  unsigned char c = s[i];
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t n;
  uint32_t v, min;
  if ((c & 0xE0) == 0xC0) n = 2, v = c & 0x1F, min = 0x80;
  else if ((c & 0xF0) == 0xE0) n = 3, v = c & 0x0F, min = 0x800;
  else if ((c & 0xF8) == 0xF0) n = 4, v = c & 0x07, min = 0x10000;
  else return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; k++) {
    unsigned char cc = s[i + k];
    if ((cc & 0xC0) != 0x80) return 0;
    v = (v << 6) | (cc & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return n;
}
}  // namespace

size_t first_invalid_utf8(std::string_view s) {
  size_t i = 0;
  uint32_t cp;
  while (i < s.size()) {
    if ((unsigned char)s[i] < 0x80) {
      i++;
      continue;
    }
    size_t n = decode_at(s, i, &cp);
    if (n == 0) return i;
    i += n;
  }
  return s.size();
}

bool is_valid_utf8(std::string_view s) { return first_invalid_utf8(s) == s.size(); }

std::string utf8_lossy(std::string_view s) {
  size_t bad = first_invalid_utf8(s);
  if (bad == s.size()) return std::string(s);
  std::string out(s.substr(0, bad));
  size_t i = bad;
  uint32_t cp;
  while (i < s.size()) {
    size_t n = decode_at(s, i, &cp);
    if (n) {
      out.append(s.substr(i, n));
      i += n;
      continue;
    }
    // Maximal subpart of an ill-formed sequence (the WHATWG / Rust rule): consume the lead byte
    // and the continuation bytes that could still have been part of a valid sequence.
    unsigned char c = s[i];
    size_t need = utf8_len(c);
    size_t k = 1;
    if (need > 1) {
      unsigned char lo = 0x80, hi = 0xBF;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
      if (c >= 0xC2 && c <= 0xF4) {
        while (k < need && i + k < s.size()) {
          unsigned char cc = s[i + k];
          if (cc < lo || cc > hi) break;
          lo = 0x80, hi = 0xBF;
          k++;
        }
      }
    }
    out += "\xEF\xBF\xBD";
    i += k;
  }
  return out;
}

size_t complete_utf8_prefix(std::string_view s) {
  // Look back at most 3 bytes for a lead byte whose sequence is not yet complete.
  size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; back++) {
    unsigned char c = s[n - back];
    if ((c & 0xC0) == 0x80) continue;  // continuation: keep looking for the lead
    size_t need = utf8_len(c);
    return need > back ? n - back : n;
  }
  return n;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

std::string normalize(std::string_view s, NormForm form) {
  UErrorCode st = U_ZERO_ERROR;
  const icu::Normalizer2* n = nullptr;
  switch (form) {
    case NormForm::NFC: n = icu::Normalizer2::getNFCInstance(st); break;
    case NormForm::NFD: n = icu::Normalizer2::getNFDInstance(st); break;
    case NormForm::NFKC: n = icu::Normalizer2::getNFKCInstance(st); break;
    case NormForm::NFKD: n = icu::Normalizer2::getNFKDInstance(st); break;
  }
  STRATA_CHECK(U_SUCCESS(st) && n, "ICU normalizer unavailable");
  icu::StringPiece sp(s.data(), int32_t(s.size()));
  // Fast path: most text is already normalized.
  if (n->isNormalizedUTF8(sp, st) && U_SUCCESS(st)) return std::string(s);
  st = U_ZERO_ERROR;
  std::string out;
  icu::StringByteSink<std::string> sink(&out);
  n->normalizeUTF8(0, sp, sink, nullptr, st);
  STRATA_CHECK(U_SUCCESS(st), std::string("ICU normalization failed: ") + u_errorName(st));
  return out;
}

std::string to_lower(std::string_view s) {
  icu::UnicodeString u = icu::UnicodeString::fromUTF8(icu::StringPiece(s.data(), int32_t(s.size())));
  u.toLower(icu::Locale::getRoot());
  std::string out;
  u.toUTF8String(out);
  return out;
}

namespace {
struct ByteMap {
  std::array<std::string, 256> to_char;
  std::array<int, 324> to_byte;  // code points used are below 256 + 68
  ByteMap() {
    to_byte.fill(-1);
    // Printable Latin-1 bytes map to themselves; the rest to 256, 257, ... in byte order.
    uint32_t next = 256;
    for (int b = 0; b < 256; b++) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      uint32_t cp = printable ? uint32_t(b) : next++;
      append_utf8(to_char[b], cp);
      to_byte[cp] = b;
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}
}  // namespace

const std::array<std::string, 256>& byte_to_char() { return byte_map().to_char; }

int char_to_byte(uint32_t cp) { return cp < 324 ? byte_map().to_byte[cp] : -1; }

bool byte_level_to_raw(std::string_view token, std::string& raw) {
  std::string out;
  out.reserve(token.size());
  uint32_t cp;
  for (size_t i = 0; i < token.size();) {
    size_t n = decode_at(token, i, &cp);
    int b = n ? char_to_byte(cp) : -1;
    if (b < 0) return false;
    out += char(b);
    i += n;
  }
  raw += out;
  return true;
}

}  // namespace strata::unicode
