// UTF-8 helpers and the Unicode services the tokenizer needs, backed by ICU (Debian libicu):
// normalization forms, lowercase, and GPT-2's byte <-> printable-char map for byte-level BPE.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace strata::unicode {

// Length in bytes of the UTF-8 sequence starting with lead byte `c` (1 for invalid leads).
inline size_t utf8_len(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) return 2;
  if ((c & 0xF0) == 0xE0) return 3;
  if ((c & 0xF8) == 0xF0) return 4;
  return 1;
}

// True when `s` is well-formed UTF-8 (no overlongs, surrogates or values above U+10FFFF).
bool is_valid_utf8(std::string_view s);
// Byte offset of the first ill-formed sequence, or s.size() when valid.
size_t first_invalid_utf8(std::string_view s);
// Rust's String::from_utf8_lossy: each maximal ill-formed subsequence becomes U+FFFD.
std::string utf8_lossy(std::string_view bytes);
// Length of the longest prefix of `s` that does not end inside an incomplete (but so far
// valid) multi-byte sequence: what can be shown before more bytes arrive.
size_t complete_utf8_prefix(std::string_view s);

void append_utf8(std::string& out, uint32_t cp);

enum class NormForm { NFC, NFD, NFKC, NFKD };
std::string normalize(std::string_view s, NormForm form);  // s must be valid UTF-8
std::string to_lower(std::string_view s);                 // full Unicode lowercase (ICU, root locale)

// GPT-2 bytes_to_unicode: each byte maps to one printable code point (UTF-8 encoded).
const std::array<std::string, 256>& byte_to_char();
// Inverse: code point -> byte, -1 when the code point is not in the map.
int char_to_byte(uint32_t cp);
// A byte-level token spelling back to its raw bytes; false (raw untouched) when a char of
// `token` is outside the byte alphabet (e.g. an added token like "<|im_start|>" with no such char).
bool byte_level_to_raw(std::string_view token, std::string& raw);

}  // namespace strata::unicode
