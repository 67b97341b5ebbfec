// Jinja lexer: template source -> tokens, with jinja2's whitespace control exactly as
// transformers configures it (trim_blocks, lstrip_blocks, {%- -%}, {%+, keep_trailing_newline
// off, newlines normalised to \n). Comments are dropped and {% raw %} becomes text.
// Not the grammar (jinja_parser.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace strata::jinja {

enum class TokType { Data, BlockBegin, BlockEnd, VarBegin, VarEnd, Name, String, Integer, Float, Op, Eof };

struct Token {
  TokType type;
  std::string text;  // Data/Name/Op: as written; String: the decoded value
  int line = 1;
  int64_t ival = 0;
  double fval = 0;
};

// Throws JinjaError ("syntax error", line) on unterminated tags, comments, strings, bad chars.
std::vector<Token> lex(std::string_view source);

const char* tok_type_name(TokType t);

}  // namespace strata::jinja
