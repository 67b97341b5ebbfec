// Python's view of text for the Jinja engine: strings are UTF-8 bytes here but index, slice and
// case-map by code point like Python's str. Not a general Unicode library (ICU does the tables).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace strata::jinja {

// UTF-8 <-> code points. Invalid bytes decode as U+FFFD (template text and JSON input are valid).
std::u32string utf8_decode(std::string_view s);
std::string utf8_encode(std::u32string_view s);
void utf8_append(std::string& out, char32_t c);
size_t utf8_length(std::string_view s);  // number of code points

// Python's str predicates (same Unicode tables through ICU).
bool py_isspace(char32_t c);      // str.isspace: Zs, or bidi class WS/B/S
bool py_isprintable(char32_t c);  // str.isprintable (used by repr)
bool py_iscased(char32_t c);
bool py_islower_c(char32_t c);
bool py_isupper_c(char32_t c);
bool py_istitle_c(char32_t c);  // general category Lt
bool py_isalpha(char32_t c);
bool py_isdecimal(char32_t c);
bool py_isdigit(char32_t c);
bool py_isnumeric(char32_t c);

// Python's str methods with full (one-to-many) case mappings.
std::string py_lower(std::string_view s);
std::string py_upper(std::string_view s);
std::string py_title(std::string_view s);       // str.title
std::string py_capitalize(std::string_view s);  // str.capitalize (3.8+: first char titlecased)
std::string py_swapcase(std::string_view s);

// str.strip/lstrip/rstrip: chars == nullptr strips Python whitespace.
std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right);

// repr(float) and str(float): shortest round-trip digits, Python's exponent rules.
std::string py_float_repr(double x);
// repr(str): Python's quoting and escaping.
std::string py_str_repr(std::string_view s);

}  // namespace strata::jinja
