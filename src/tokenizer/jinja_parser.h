// Jinja parser: tokens -> syntax tree, with jinja2 3.1's grammar and precedence
// (or < and < not < compare < +,- < ~ < *,/,//,% < ** < unary < postfix/filters/tests).
// Statements: for/if/set/macro/call/filter/with/print, loop controls and transformers'
// {% generation %}. Anything else (include, extends, block, import...) is an error naming
// the line. Filters and tests are checked against the implemented ones here, at parse time.
#pragma once
#include <memory>
#include <string_view>

#include "tokenizer/jinja_ast.h"

namespace strata::jinja {

std::unique_ptr<Template> parse_template(std::string_view source);

// Names the interpreter implements (jinja_filters.cpp); the parser rejects others.
bool is_known_filter(const std::string& name);
bool is_known_test(const std::string& name);
// Filters jinja2 passes the render context (map, select, reject, selectattr, rejectattr): never
// constant-folded.
bool is_context_filter(const std::string& name);

}  // namespace strata::jinja
