// Jinja parser (see jinja_parser.h): a recursive-descent transcription of jinja2 3.1's
// parser.py, method for method, so precedence and corner cases (filters binding tighter than
// unary minus, `is` tests taking one bare argument, implicit tuples) match.
// Not evaluation; nesting is bounded so hostile input cannot overflow the stack.
#include "tokenizer/jinja_parser.h"

#include <set>

#include "tokenizer/jinja_error.h"
#include "tokenizer/jinja_interp.h"
#include "tokenizer/jinja_lexer.h"

namespace strata::jinja {

namespace {

constexpr int kMaxNesting = 200;  // expression + statement depth

// Valid Jinja that this engine does not implement: an "unsupported" error, not a syntax error.
const std::set<std::string> kUnsupportedTags = {"block", "extends", "include", "import", "from",
                                                "autoescape", "do", "trans", "pluralize", "raw"};
const std::set<std::string> kJinjaFilters = {
    "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
    "filesizeformat", "first", "float", "forceescape", "format", "groupby", "indent", "int", "items",
    "join", "last", "length", "list", "lower", "map", "max", "min", "pprint", "random", "reject",
    "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "slice", "sort",
    "string", "striptags", "sum", "title", "tojson", "trim", "truncate", "unique", "upper", "urlencode",
    "urlize", "wordcount", "wordwrap", "xmlattr"};
const std::set<std::string> kJinjaTests = {
    "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped", "even", "false",
    "filter", "float", "ge", "gt", "greaterthan", "in", "integer", "iterable", "le", "lower", "lt",
    "lessthan", "mapping", "ne", "none", "number", "odd", "sameas", "sequence", "string", "test",
    "true", "undefined", "upper", "==", "!=", ">", ">=", "<", "<="};

class Parser {
 public:
  explicit Parser(std::vector<Token> toks) : t_(std::move(toks)) {}

  std::unique_ptr<Template> run() {
    auto tpl = std::make_unique<Template>();
    tpl->body = subparse({});
    return tpl;
  }

 private:
  std::vector<Token> t_;
  size_t i_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;

  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& pp) : p(pp) {
      if (++p.depth_ > kMaxNesting) p.fail("template nesting is too deep (more than 200 levels)");
    }
    ~DepthGuard() { p.depth_--; }
  };

  // ---- token stream ----------------------------------------------------------------------------
  const Token& cur() const { return t_[i_]; }
  const Token& look() const { return t_[i_ + 1 < t_.size() ? i_ + 1 : i_]; }
  const Token& next() {
    const Token& tok = t_[i_];
    if (i_ + 1 < t_.size()) i_++;
    return tok;
  }
  bool is_op(const char* op) const { return cur().type == TokType::Op && cur().text == op; }
  bool is_name(const char* n) const { return cur().type == TokType::Name && cur().text == n; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }
  static std::string describe(const Token& tok) {
    switch (tok.type) {
      case TokType::Name:
      case TokType::Op: return "'" + tok.text + "'";
      case TokType::Integer:
      case TokType::Float: return "'" + tok.text + "'";
      case TokType::String: return "string";
      default: return std::string("'") + tok_type_name(tok.type) + "'";
    }
  }
  [[noreturn]] void fail(const std::string& msg, int line = -1) const {
    throw JinjaError("syntax error", msg, line < 0 ? cur().line : line);
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) fail(std::string("expected token '") + op + "', got " + describe(cur()));
  }
  const Token& expect(TokType type) {
    if (cur().type != type) fail(std::string("expected ") + tok_type_name(type) + ", got " + describe(cur()));
    return next();
  }
  std::string expect_name() { return expect(TokType::Name).text; }
  void expect_name(const char* n) {
    if (!skip_name(n)) fail(std::string("expected token '") + n + "', got " + describe(cur()));
  }

  // ---- statements ------------------------------------------------------------------------------
  Body subparse(const std::vector<std::string>& end_tokens) {
    Body body;
    for (;;) {
      const Token& tok = cur();
      if (tok.type == TokType::Eof) {
        if (!end_tokens.empty()) {
          std::string want;
          for (const auto& e : end_tokens) want += (want.empty() ? "'" : " or '") + e + "'";
          fail("unexpected end of template; looking for the tags " + want);
        }
        return body;
      }
      if (tok.type == TokType::Data) {
        body.push_back(std::make_unique<TextStmt>(tok.text, tok.line));
        next();
      } else if (tok.type == TokType::VarBegin) {
        int line = next().line;
        ExprPtr e = parse_tuple(false, true, {}, false, false);
        expect(TokType::VarEnd);
        body.push_back(std::make_unique<PrintStmt>(std::move(e), line));
      } else if (tok.type == TokType::BlockBegin) {
        next();
        if (cur().type == TokType::Name)
          for (const auto& e : end_tokens)
            if (cur().text == e) return body;
        parse_statement(body);
        expect(TokType::BlockEnd);
      } else {
        fail("unexpected " + describe(tok));
      }
    }
  }

  // jinja2's parse_statements: block_end, the body up to one of end_tokens (left current).
  Body parse_statements(const std::vector<std::string>& end_tokens, bool drop_needle) {
    skip_op(":");
    expect(TokType::BlockEnd);
    Body b = subparse(end_tokens);
    if (drop_needle) next();
    return b;
  }

  void parse_statement(Body& body) {
    DepthGuard g(*this);
    const Token& tok = cur();
    if (tok.type != TokType::Name) fail("tag name expected");
    const std::string& n = tok.text;
    const int line = tok.line;
    if (n == "for") return body.push_back(parse_for());
    if (n == "if") return body.push_back(parse_if());
    if (n == "set") return body.push_back(parse_set());
    if (n == "macro") return body.push_back(parse_macro());
    if (n == "call") return body.push_back(parse_call_block());
    if (n == "filter") return body.push_back(parse_filter_block());
    if (n == "with") return body.push_back(parse_with());
    if (n == "print") {
      next();
      bool first = true;
      while (cur().type != TokType::BlockEnd) {
        if (!first) expect_op(",");
        first = false;
        body.push_back(std::make_unique<PrintStmt>(parse_expression(true), line));
      }
      return;
    }
    if (n == "break" || n == "continue") {
      next();
      if (loop_depth_ == 0) fail("'" + n + "' outside of a loop", line);
      body.push_back(std::make_unique<Stmt>(n == "break" ? StmtKind::Break : StmtKind::Continue, line));
      return;
    }
    if (n == "generation") {
      next();
      auto s = std::make_unique<ScopeStmt>(line);
      s->body = parse_statements({"endgeneration"}, true);
      body.push_back(std::move(s));
      return;
    }
    if (kUnsupportedTags.count(n)) throw JinjaError("unsupported", "the '" + n + "' tag is not supported", line);
    fail("encountered unknown tag '" + n + "'", line);
  }

  StmtPtr parse_for() {
    auto s = std::make_unique<ForStmt>(next().line);
    s->target = parse_assign_target(true, false, {"in"}, false);
    expect_name("in");
    s->iter = parse_tuple(false, false, {"recursive"}, false, false);
    if (skip_name("if")) s->filter = parse_expression(true);
    s->recursive = skip_name("recursive");
    loop_depth_++;
    s->body = parse_statements({"endfor", "else"}, false);
    loop_depth_--;
    if (next().text != "endfor") s->else_body = parse_statements({"endfor"}, true);
    return s;
  }

  StmtPtr parse_if() {
    auto s = std::make_unique<IfStmt>(next().line);
    for (;;) {
      ExprPtr test = parse_tuple(false, false, {}, false, false);
      Body b = parse_statements({"elif", "else", "endif"}, false);
      s->branches.emplace_back(std::move(test), std::move(b));
      const std::string which = next().text;
      if (which == "elif") continue;
      if (which == "else") s->else_body = parse_statements({"endif"}, true);
      break;
    }
    return s;
  }

  StmtPtr parse_set() {
    const int line = next().line;
    Target target = parse_assign_target(true, false, {}, true);
    if (skip_op("=")) {
      auto s = std::make_unique<AssignStmt>(line);
      s->target = std::move(target);
      s->value = parse_tuple(false, true, {}, false, false);
      return s;
    }
    auto s = std::make_unique<AssignBlockStmt>(line);
    s->target = std::move(target);
    s->filter = parse_filter(nullptr, false);
    s->body = parse_statements({"endset"}, true);
    return s;
  }

  std::shared_ptr<MacroDef> parse_signature(std::shared_ptr<MacroDef> def) {
    expect_op("(");
    while (!is_op(")")) {
      if (!def->params.empty()) expect_op(",");
      def->params.push_back(expect_name());
      if (skip_op("="))
        def->defaults.push_back(parse_expression(true));
      else if (!def->defaults.empty())
        fail("non-default argument follows default argument");
    }
    expect_op(")");
    return def;
  }

  static void scan_names(const Expr* e, std::set<std::string>& out);
  static void scan_names(const Body& b, std::set<std::string>& out);
  static void mark_special_names(MacroDef& def) {
    std::set<std::string> names;
    scan_names(def.body, names);
    for (const auto& d : def.defaults) scan_names(d.get(), names);
    def.uses_caller = names.count("caller") != 0;
    def.uses_varargs = names.count("varargs") != 0;
    def.uses_kwargs = names.count("kwargs") != 0;
  }

  StmtPtr parse_macro() {
    auto s = std::make_unique<MacroStmt>(next().line);
    auto def = std::make_shared<MacroDef>();
    def->line = s->line;
    def->name = expect_name();
    parse_signature(def);
    const int saved = loop_depth_;
    loop_depth_ = 0;
    def->body = parse_statements({"endmacro"}, true);
    loop_depth_ = saved;
    mark_special_names(*def);
    s->def = def;
    return s;
  }

  StmtPtr parse_call_block() {
    auto s = std::make_unique<CallBlockStmt>(next().line);
    auto def = std::make_shared<MacroDef>();
    def->name = "caller";
    def->line = s->line;
    if (is_op("(")) parse_signature(def);
    s->call = parse_expression(true);
    if (s->call->kind != ExprKind::Call) fail("expected call", s->line);
    const int saved = loop_depth_;
    loop_depth_ = 0;
    def->body = parse_statements({"endcall"}, true);
    loop_depth_ = saved;
    mark_special_names(*def);
    s->caller = def;
    return s;
  }

  StmtPtr parse_filter_block() {
    auto s = std::make_unique<FilterBlockStmt>(next().line);
    s->filter = parse_filter(nullptr, true);
    s->body = parse_statements({"endfilter"}, true);
    return s;
  }

  StmtPtr parse_with() {
    auto s = std::make_unique<WithStmt>(next().line);
    while (cur().type != TokType::BlockEnd) {
      if (!s->assigns.empty()) expect_op(",");
      Target t = parse_assign_target(true, false, {}, false);
      expect_op("=");
      s->assigns.emplace_back(std::move(t), parse_expression(true));
    }
    s->body = parse_statements({"endwith"}, true);
    return s;
  }

  // ---- assignment targets ----------------------------------------------------------------------
  Target parse_assign_target(bool with_tuple, bool name_only, const std::vector<std::string>& extra_end,
                             bool with_namespace) {
    const int line = cur().line;
    if (name_only) {
      Target t;
      t.line = line;
      t.name = expect_name();
      return t;
    }
    std::vector<Target> items;
    bool is_tuple = false;
    for (;;) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      items.push_back(parse_target_primary(with_namespace));
      if (!with_tuple) break;
      if (is_op(","))
        is_tuple = true;
      else
        break;
    }
    if (!is_tuple) {
      if (items.empty()) fail("expected an assignment target");
      return std::move(items[0]);
    }
    Target t;
    t.kind = Target::Tuple;
    t.line = line;
    t.items = std::move(items);
    return t;
  }

  Target parse_target_primary(bool with_namespace) {
    Target t;
    t.line = cur().line;
    if (cur().type == TokType::Name) {
      const std::string n = next().text;
      if (n == "true" || n == "false" || n == "True" || n == "False" || n == "none" || n == "None")
        fail("can't assign to 'const'", t.line);
      if (with_namespace && is_op(".")) {
        next();
        t.kind = Target::NsAttr;
        t.name = n;
        t.attr = expect_name();
        return t;
      }
      t.name = n;
      return t;
    }
    if (skip_op("(")) {
      Target inner = parse_assign_target(true, false, {}, false);
      expect_op(")");
      return inner;
    }
    fail("can't assign to " + describe(cur()));
  }

  // ---- expressions -----------------------------------------------------------------------------
  bool is_tuple_end(const std::vector<std::string>& extra_end) const {
    if (cur().type == TokType::VarEnd || cur().type == TokType::BlockEnd || is_op(")")) return true;
    if (cur().type == TokType::Name)
      for (const auto& e : extra_end)
        if (cur().text == e) return true;
    return false;
  }

  ExprPtr parse_tuple(bool simplified, bool with_condexpr, const std::vector<std::string>& extra_end,
                      bool explicit_parens, bool /*with_namespace*/) {
    int line = cur().line;
    std::vector<ExprPtr> args;
    bool is_tuple = false;
    for (;;) {
      if (!args.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      if (simplified)
        args.push_back(parse_primary());
      else
        args.push_back(parse_expression(with_condexpr));
      if (is_op(","))
        is_tuple = true;
      else
        break;
      line = cur().line;
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parens) fail("expected an expression, got " + describe(cur()));
    }
    auto t = std::make_unique<SeqLitExpr>(ExprKind::TupleLit, line);
    t->items = std::move(args);
    return t;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    DepthGuard g(*this);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    int line = cur().line;
    ExprPtr e1 = parse_or();
    while (skip_name("if")) {
      auto c = std::make_unique<CondExpr>(line);
      c->test = parse_or();
      if (skip_name("else")) c->otherwise = parse_condexpr();
      c->then = std::move(e1);
      e1 = std::move(c);
      line = cur().line;
    }
    return e1;
  }

  ExprPtr parse_or() {
    int line = cur().line;
    ExprPtr left = parse_and();
    while (skip_name("or")) {
      ExprPtr right = parse_and();
      left = std::make_unique<BinaryExpr>(ExprKind::Or, "or", std::move(left), std::move(right), line);
      line = cur().line;
    }
    return left;
  }

  ExprPtr parse_and() {
    int line = cur().line;
    ExprPtr left = parse_not();
    while (skip_name("and")) {
      ExprPtr right = parse_not();
      left = std::make_unique<BinaryExpr>(ExprKind::And, "and", std::move(left), std::move(right), line);
      line = cur().line;
    }
    return left;
  }

  ExprPtr parse_not() {
    DepthGuard g(*this);
    if (is_name("not")) {
      int line = next().line;
      return std::make_unique<UnaryExpr>(ExprKind::Not, parse_not(), line);
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    int line = cur().line;
    ExprPtr e = parse_math1();
    std::unique_ptr<CompareExpr> cmp;
    for (;;) {
      std::string op;
      if (cur().type == TokType::Op &&
          (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == "<=" ||
           cur().text == ">" || cur().text == ">=")) {
        op = next().text;
      } else if (skip_name("in")) {
        op = "in";
      } else if (is_name("not") && look().type == TokType::Name && look().text == "in") {
        next();
        next();
        op = "notin";
      } else {
        break;
      }
      if (!cmp) cmp = std::make_unique<CompareExpr>(std::move(e), line);
      cmp->ops.emplace_back(op, parse_math1());
    }
    if (cmp) return cmp;
    return e;
  }

  ExprPtr parse_math1() {
    int line = cur().line;
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      std::string op = next().text;
      ExprPtr right = parse_concat();
      left = std::make_unique<BinaryExpr>(ExprKind::Binary, op, std::move(left), std::move(right), line);
      line = cur().line;
    }
    return left;
  }

  ExprPtr parse_concat() {
    int line = cur().line;
    ExprPtr first = parse_math2();
    if (!is_op("~")) return first;
    auto c = std::make_unique<ConcatExpr>(line);
    c->parts.push_back(std::move(first));
    while (skip_op("~")) c->parts.push_back(parse_math2());
    return c;
  }

  ExprPtr parse_math2() {
    int line = cur().line;
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = next().text;
      ExprPtr right = parse_pow();
      left = std::make_unique<BinaryExpr>(ExprKind::Binary, op, std::move(left), std::move(right), line);
      line = cur().line;
    }
    return left;
  }

  ExprPtr parse_pow() {
    int line = cur().line;
    ExprPtr left = parse_unary(true);
    while (skip_op("**")) {
      ExprPtr right = parse_unary(true);
      left = std::make_unique<BinaryExpr>(ExprKind::Binary, "**", std::move(left), std::move(right), line);
      line = cur().line;
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard g(*this);
    int line = cur().line;
    ExprPtr node;
    if (skip_op("-"))
      node = std::make_unique<UnaryExpr>(ExprKind::Neg, parse_unary(false), line);
    else if (skip_op("+"))
      node = std::make_unique<UnaryExpr>(ExprKind::Pos, parse_unary(false), line);
    else
      node = parse_primary();
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    DepthGuard g(*this);
    const Token& tok = cur();
    const int line = tok.line;
    if (tok.type == TokType::Name) {
      const std::string n = next().text;
      if (n == "true" || n == "True") return std::make_unique<ConstExpr>(Value::boolean(true), line);
      if (n == "false" || n == "False") return std::make_unique<ConstExpr>(Value::boolean(false), line);
      if (n == "none" || n == "None") return std::make_unique<ConstExpr>(Value::none(), line);
      return std::make_unique<NameExpr>(n, line);
    }
    if (tok.type == TokType::String) {
      std::string s = next().text;
      while (cur().type == TokType::String) s += next().text;  // adjacent literals concatenate
      return std::make_unique<ConstExpr>(Value::string(std::move(s)), line);
    }
    if (tok.type == TokType::Integer) return std::make_unique<ConstExpr>(Value::integer(next().ival), line);
    if (tok.type == TokType::Float) return std::make_unique<ConstExpr>(Value::number(next().fval), line);
    if (skip_op("(")) {
      ExprPtr e = parse_tuple(false, true, {}, true, false);
      expect_op(")");
      return e;
    }
    if (skip_op("[")) {
      auto l = std::make_unique<SeqLitExpr>(ExprKind::ListLit, line);
      while (!is_op("]")) {
        if (!l->items.empty()) expect_op(",");
        if (is_op("]")) break;
        l->items.push_back(parse_expression(true));
      }
      expect_op("]");
      return l;
    }
    if (skip_op("{")) {
      auto d = std::make_unique<DictLitExpr>(line);
      while (!is_op("}")) {
        if (!d->items.empty()) expect_op(",");
        if (is_op("}")) break;
        ExprPtr k = parse_expression(true);
        expect_op(":");
        d->items.emplace_back(std::move(k), parse_expression(true));
      }
      expect_op("}");
      return d;
    }
    fail("unexpected " + describe(tok));
  }

  ExprPtr parse_postfix(ExprPtr node) {
    for (;;) {
      if (is_op(".") || is_op("["))
        node = parse_subscript(std::move(node));
      else if (is_op("("))
        node = parse_call(std::move(node));
      else
        return node;
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    for (;;) {
      if (is_op("|"))
        node = parse_filter(std::move(node), false);
      else if (is_name("is"))
        node = parse_test(std::move(node));
      else if (is_op("("))
        node = parse_call(std::move(node));
      else
        return node;
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    DepthGuard g(*this);
    const Token& tok = next();
    const int line = tok.line;
    if (tok.text == ".") {
      const Token& attr = next();
      if (attr.type == TokType::Name) return std::make_unique<GetattrExpr>(std::move(node), attr.text, line);
      if (attr.type != TokType::Integer) fail("expected name or number", attr.line);
      return std::make_unique<GetitemExpr>(std::move(node),
                                           std::make_unique<ConstExpr>(Value::integer(attr.ival), line), line);
    }
    std::vector<ExprPtr> args;
    while (!is_op("]")) {
      if (!args.empty()) expect_op(",");
      args.push_back(parse_subscribed());
    }
    expect_op("]");
    ExprPtr index;
    if (args.size() == 1) {
      index = std::move(args[0]);
    } else {
      auto t = std::make_unique<SeqLitExpr>(ExprKind::TupleLit, line);
      t->items = std::move(args);
      index = std::move(t);
    }
    return std::make_unique<GetitemExpr>(std::move(node), std::move(index), line);
  }

  ExprPtr parse_subscribed() {
    const int line = cur().line;
    auto sl = std::make_unique<SliceExpr>(line);
    if (is_op(":")) {
      next();
    } else {
      ExprPtr e = parse_expression(true);
      if (!is_op(":")) return e;
      next();
      sl->start = std::move(e);
    }
    if (is_op(":")) {
      // no stop
    } else if (!is_op("]") && !is_op(",")) {
      sl->stop = parse_expression(true);
    }
    if (skip_op(":")) {
      if (!is_op("]") && !is_op(",")) sl->step = parse_expression(true);
    }
    return sl;
  }

  CallSite parse_call_args() {
    CallSite site;
    const int line = cur().line;
    expect_op("(");
    bool require_comma = false;
    auto ensure = [&](bool ok) {
      if (!ok) fail("invalid syntax for function call expression", line);
    };
    while (!is_op(")")) {
      if (require_comma) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (skip_op("*")) {
        ensure(!site.dyn_args && !site.dyn_kwargs);
        site.dyn_args = parse_expression(true);
      } else if (skip_op("**")) {
        ensure(!site.dyn_kwargs);
        site.dyn_kwargs = parse_expression(true);
      } else if (cur().type == TokType::Name && look().type == TokType::Op && look().text == "=") {
        ensure(!site.dyn_kwargs);
        std::string key = next().text;
        next();
        site.kwargs.emplace_back(key, parse_expression(true));
      } else {
        ensure(!site.dyn_args && !site.dyn_kwargs && site.kwargs.empty());
        site.args.push_back(parse_expression(true));
      }
      require_comma = true;
    }
    expect_op(")");
    return site;
  }

  ExprPtr parse_call(ExprPtr node) {
    DepthGuard g(*this);
    auto c = std::make_unique<CallExpr>(std::move(node), cur().line);
    c->site = parse_call_args();
    return c;
  }

  std::string dotted_name() {
    std::string name = expect_name();
    while (skip_op(".")) name += "." + expect_name();
    return name;
  }

  ExprPtr parse_filter(ExprPtr node, bool start_inline) {
    while (is_op("|") || start_inline) {
      if (!start_inline) next();
      start_inline = false;
      const int line = cur().line;
      std::string name = dotted_name();
      auto f = std::make_unique<FilterExpr>(std::move(node), name, line);
      if (is_op("(")) f->site = parse_call_args();
      node = std::move(f);
    }
    return node;
  }

  ExprPtr parse_test(ExprPtr node) {
    DepthGuard g(*this);
    const int line = next().line;  // 'is'
    const bool negated = skip_name("not");
    std::string name = dotted_name();
    auto t = std::make_unique<TestExpr>(std::move(node), name, line);
    const Token& c = cur();
    if (is_op("(")) {
      t->site = parse_call_args();
    } else if ((c.type == TokType::Name || c.type == TokType::String || c.type == TokType::Integer ||
                c.type == TokType::Float || is_op("[") || is_op("{")) &&
               !(c.type == TokType::Name && (c.text == "else" || c.text == "or" || c.text == "and"))) {
      if (is_name("is")) fail("You cannot chain multiple tests with is");
      ExprPtr arg = parse_postfix(parse_primary());
      t->site.args.push_back(std::move(arg));
    }
    if (negated) return std::make_unique<UnaryExpr>(ExprKind::Not, std::move(t), line);
    return t;
  }
};

void Parser::scan_names(const Expr* e, std::set<std::string>& out) {
  if (!e) return;
  auto site = [&](const CallSite& s) {
    for (const auto& a : s.args) scan_names(a.get(), out);
    for (const auto& kv : s.kwargs) scan_names(kv.second.get(), out);
    scan_names(s.dyn_args.get(), out);
    scan_names(s.dyn_kwargs.get(), out);
  };
  switch (e->kind) {
    case ExprKind::Name: out.insert(static_cast<const NameExpr*>(e)->name); return;
    case ExprKind::Getattr: scan_names(static_cast<const GetattrExpr*>(e)->obj.get(), out); return;
    case ExprKind::Getitem: {
      auto* g = static_cast<const GetitemExpr*>(e);
      scan_names(g->obj.get(), out);
      scan_names(g->index.get(), out);
      return;
    }
    case ExprKind::Slice: {
      auto* s = static_cast<const SliceExpr*>(e);
      scan_names(s->start.get(), out);
      scan_names(s->stop.get(), out);
      scan_names(s->step.get(), out);
      return;
    }
    case ExprKind::Call: {
      auto* c = static_cast<const CallExpr*>(e);
      scan_names(c->callee.get(), out);
      site(c->site);
      return;
    }
    case ExprKind::Filter: {
      auto* f = static_cast<const FilterExpr*>(e);
      scan_names(f->arg.get(), out);
      site(f->site);
      return;
    }
    case ExprKind::Test: {
      auto* t = static_cast<const TestExpr*>(e);
      scan_names(t->arg.get(), out);
      site(t->site);
      return;
    }
    case ExprKind::Not:
    case ExprKind::Neg:
    case ExprKind::Pos: scan_names(static_cast<const UnaryExpr*>(e)->operand.get(), out); return;
    case ExprKind::Binary:
    case ExprKind::And:
    case ExprKind::Or: {
      auto* b = static_cast<const BinaryExpr*>(e);
      scan_names(b->left.get(), out);
      scan_names(b->right.get(), out);
      return;
    }
    case ExprKind::Concat:
      for (const auto& p : static_cast<const ConcatExpr*>(e)->parts) scan_names(p.get(), out);
      return;
    case ExprKind::Compare: {
      auto* c = static_cast<const CompareExpr*>(e);
      scan_names(c->first.get(), out);
      for (const auto& o : c->ops) scan_names(o.second.get(), out);
      return;
    }
    case ExprKind::CondExpr: {
      auto* c = static_cast<const CondExpr*>(e);
      scan_names(c->test.get(), out);
      scan_names(c->then.get(), out);
      scan_names(c->otherwise.get(), out);
      return;
    }
    case ExprKind::ListLit:
    case ExprKind::TupleLit:
      for (const auto& p : static_cast<const SeqLitExpr*>(e)->items) scan_names(p.get(), out);
      return;
    case ExprKind::DictLit:
      for (const auto& kv : static_cast<const DictLitExpr*>(e)->items) {
        scan_names(kv.first.get(), out);
        scan_names(kv.second.get(), out);
      }
      return;
    case ExprKind::Const: return;
  }
}

void Parser::scan_names(const Body& body, std::set<std::string>& out) {
  for (const auto& sp : body) {
    const Stmt* s = sp.get();
    switch (s->kind) {
      case StmtKind::Print: scan_names(static_cast<const PrintStmt*>(s)->expr.get(), out); break;
      case StmtKind::For: {
        auto* f = static_cast<const ForStmt*>(s);
        scan_names(f->iter.get(), out);
        scan_names(f->filter.get(), out);
        scan_names(f->body, out);
        scan_names(f->else_body, out);
        break;
      }
      case StmtKind::If: {
        auto* f = static_cast<const IfStmt*>(s);
        for (const auto& br : f->branches) {
          scan_names(br.first.get(), out);
          scan_names(br.second, out);
        }
        scan_names(f->else_body, out);
        break;
      }
      case StmtKind::Assign: scan_names(static_cast<const AssignStmt*>(s)->value.get(), out); break;
      case StmtKind::AssignBlock: {
        auto* a = static_cast<const AssignBlockStmt*>(s);
        scan_names(a->filter.get(), out);
        scan_names(a->body, out);
        break;
      }
      case StmtKind::Macro: {
        auto* m = static_cast<const MacroStmt*>(s);
        scan_names(m->def->body, out);
        for (const auto& d : m->def->defaults) scan_names(d.get(), out);
        break;
      }
      case StmtKind::CallBlock: {
        auto* c = static_cast<const CallBlockStmt*>(s);
        scan_names(c->call.get(), out);
        scan_names(c->caller->body, out);
        break;
      }
      case StmtKind::FilterBlock: {
        auto* f = static_cast<const FilterBlockStmt*>(s);
        scan_names(f->filter.get(), out);
        scan_names(f->body, out);
        break;
      }
      case StmtKind::With: {
        auto* w = static_cast<const WithStmt*>(s);
        for (const auto& a : w->assigns) scan_names(a.second.get(), out);
        scan_names(w->body, out);
        break;
      }
      case StmtKind::Scope: scan_names(static_cast<const ScopeStmt*>(s)->body, out); break;
      default: break;
    }
  }
}

// Checks filter and test names the way jinja2's compiler does: an unknown name is an error at
// compile time, except in a "soft" frame (an if-statement's test and bodies, a conditional
// expression) where it becomes a runtime error if evaluated. Loops, macros, call/filter/set
// blocks and {% with %} open frames that are not soft again.
class NameChecker {
 public:
  // Whether jinja2's Expr.as_const can succeed: it fails on names, calls and context filters,
  // unless and/or/if-else skip them. The interpreter decides the rest while evaluating.
  static bool might_fold(const Expr* e) {
    if (!e) return true;
    auto site_ok = [](const CallSite& c) {
      for (const auto& a : c.args)
        if (!might_fold(a.get())) return false;
      for (const auto& kv : c.kwargs)
        if (!might_fold(kv.second.get())) return false;
      return might_fold(c.dyn_args.get()) && might_fold(c.dyn_kwargs.get());
    };
    switch (e->kind) {
      case ExprKind::Const: return true;
      case ExprKind::Name:
      case ExprKind::Call: return false;
      case ExprKind::Filter: {
        auto* f = static_cast<const FilterExpr*>(e);
        if (!f->arg || !f->deferred_error.empty() || is_context_filter(f->name)) return false;
        return might_fold(f->arg.get()) && site_ok(f->site);
      }
      case ExprKind::Test: {
        auto* t = static_cast<const TestExpr*>(e);
        return t->deferred_error.empty() && might_fold(t->arg.get()) && site_ok(t->site);
      }
      case ExprKind::Getattr: return might_fold(static_cast<const GetattrExpr*>(e)->obj.get());
      case ExprKind::Getitem: {
        auto* g = static_cast<const GetitemExpr*>(e);
        return might_fold(g->obj.get()) && might_fold(g->index.get());
      }
      case ExprKind::Slice: {
        auto* s = static_cast<const SliceExpr*>(e);
        return might_fold(s->start.get()) && might_fold(s->stop.get()) && might_fold(s->step.get());
      }
      case ExprKind::Not:
      case ExprKind::Neg:
      case ExprKind::Pos: return might_fold(static_cast<const UnaryExpr*>(e)->operand.get());
      case ExprKind::And:
      case ExprKind::Or: return might_fold(static_cast<const BinaryExpr*>(e)->left.get());
      case ExprKind::Binary: {
        auto* b = static_cast<const BinaryExpr*>(e);
        return might_fold(b->left.get()) && might_fold(b->right.get());
      }
      case ExprKind::Concat:
        for (const auto& p : static_cast<const ConcatExpr*>(e)->parts)
          if (!might_fold(p.get())) return false;
        return true;
      case ExprKind::Compare: {
        auto* c = static_cast<const CompareExpr*>(e);
        if (!might_fold(c->first.get())) return false;
        for (const auto& o : c->ops)
          if (!might_fold(o.second.get())) return false;
        return true;
      }
      case ExprKind::CondExpr: {
        auto* c = static_cast<const CondExpr*>(e);
        return might_fold(c->test.get()) && (might_fold(c->then.get()) || (c->otherwise && might_fold(c->otherwise.get())));
      }
      case ExprKind::ListLit:
      case ExprKind::TupleLit:
        for (const auto& p : static_cast<const SeqLitExpr*>(e)->items)
          if (!might_fold(p.get())) return false;
        return true;
      case ExprKind::DictLit:
        for (const auto& kv : static_cast<const DictLitExpr*>(e)->items)
          if (!might_fold(kv.first.get()) || !might_fold(kv.second.get())) return false;
        return true;
    }
    return false;
  }

  void body(Body& b, bool soft) {
    for (auto& s : b) stmt(*s, soft);
  }

 private:
  void check(const std::string& name, bool is_filter, int line, bool soft, std::string& kind, std::string& err) {
    if (is_filter ? is_known_filter(name) : is_known_test(name)) return;
    const char* what = is_filter ? "filter" : "test";
    const bool jinja_has = is_filter ? kJinjaFilters.count(name) != 0 : kJinjaTests.count(name) != 0;
    kind = jinja_has ? "unsupported" : "error";
    err = jinja_has ? "the '" + name + "' " + what + " is not supported" : "no " + std::string(what) + " named '" + name + "'";
    if (!soft) throw JinjaError(kind, err, line);
  }
  void site(CallSite& c, bool soft) {
    for (auto& a : c.args) expr(a.get(), soft);
    for (auto& kv : c.kwargs) expr(kv.second.get(), soft);
    expr(c.dyn_args.get(), soft);
    expr(c.dyn_kwargs.get(), soft);
  }
  void expr(Expr* e, bool soft) {
    if (!e) return;
    switch (e->kind) {
      case ExprKind::Filter: {
        auto* f = static_cast<FilterExpr*>(e);
        expr(f->arg.get(), soft);
        site(f->site, soft);
        check(f->name, true, f->line, soft, f->deferred_kind, f->deferred_error);
        return;
      }
      case ExprKind::Test: {
        auto* t = static_cast<TestExpr*>(e);
        expr(t->arg.get(), soft);
        site(t->site, soft);
        check(t->name, false, t->line, soft, t->deferred_kind, t->deferred_error);
        return;
      }
      case ExprKind::CondExpr: {
        auto* c = static_cast<CondExpr*>(e);
        expr(c->then.get(), true);
        expr(c->test.get(), true);
        expr(c->otherwise.get(), true);
        return;
      }
      case ExprKind::Getattr: expr(static_cast<GetattrExpr*>(e)->obj.get(), soft); return;
      case ExprKind::Getitem: {
        auto* g = static_cast<GetitemExpr*>(e);
        expr(g->obj.get(), soft);
        expr(g->index.get(), soft);
        return;
      }
      case ExprKind::Slice: {
        auto* s = static_cast<SliceExpr*>(e);
        expr(s->start.get(), soft);
        expr(s->stop.get(), soft);
        expr(s->step.get(), soft);
        return;
      }
      case ExprKind::Call: {
        auto* c = static_cast<CallExpr*>(e);
        expr(c->callee.get(), soft);
        site(c->site, soft);
        return;
      }
      case ExprKind::Not:
      case ExprKind::Neg:
      case ExprKind::Pos: expr(static_cast<UnaryExpr*>(e)->operand.get(), soft); return;
      case ExprKind::Binary:
      case ExprKind::And:
      case ExprKind::Or: {
        auto* b = static_cast<BinaryExpr*>(e);
        expr(b->left.get(), soft);
        expr(b->right.get(), soft);
        return;
      }
      case ExprKind::Concat:
        for (auto& p : static_cast<ConcatExpr*>(e)->parts) expr(p.get(), soft);
        return;
      case ExprKind::Compare: {
        auto* c = static_cast<CompareExpr*>(e);
        expr(c->first.get(), soft);
        for (auto& o : c->ops) expr(o.second.get(), soft);
        return;
      }
      case ExprKind::ListLit:
      case ExprKind::TupleLit:
        for (auto& p : static_cast<SeqLitExpr*>(e)->items) expr(p.get(), soft);
        return;
      case ExprKind::DictLit:
        for (auto& kv : static_cast<DictLitExpr*>(e)->items) {
          expr(kv.first.get(), soft);
          expr(kv.second.get(), soft);
        }
        return;
      case ExprKind::Const:
      case ExprKind::Name: return;
    }
  }
  void macro(MacroDef& d) {
    for (auto& x : d.defaults) expr(x.get(), false);
    body(d.body, false);
  }
  void stmt(Stmt& s, bool soft) {
    switch (s.kind) {
      case StmtKind::Print: {
        auto& p = static_cast<PrintStmt&>(s);
        expr(p.expr.get(), soft);

        return;
      }
      case StmtKind::If: {
        auto& f = static_cast<IfStmt&>(s);
        for (auto& br : f.branches) {
          expr(br.first.get(), true);
          body(br.second, true);
        }
        body(f.else_body, true);
        return;
      }
      case StmtKind::For: {
        auto& f = static_cast<ForStmt&>(s);
        expr(f.iter.get(), soft);
        expr(f.filter.get(), false);
        body(f.body, false);
        body(f.else_body, false);
        return;
      }
      case StmtKind::Assign: expr(static_cast<AssignStmt&>(s).value.get(), soft); return;
      case StmtKind::AssignBlock: {
        auto& a = static_cast<AssignBlockStmt&>(s);
        expr(a.filter.get(), false);
        body(a.body, false);
        return;
      }
      case StmtKind::Macro: macro(*static_cast<MacroStmt&>(s).def); return;
      case StmtKind::CallBlock: {
        auto& c = static_cast<CallBlockStmt&>(s);
        expr(c.call.get(), soft);
        macro(*c.caller);
        return;
      }
      case StmtKind::FilterBlock: {
        auto& f = static_cast<FilterBlockStmt&>(s);
        expr(f.filter.get(), false);
        body(f.body, false);
        return;
      }
      case StmtKind::With: {
        auto& w = static_cast<WithStmt&>(s);
        for (auto& a : w.assigns) expr(a.second.get(), soft);
        body(w.body, false);
        return;
      }
      case StmtKind::Scope: body(static_cast<ScopeStmt&>(s).body, false); return;
      default: return;
    }
  }
};

// jinja2's optimizer: every expression subtree whose as_const succeeds with a value that has a
// safe repr becomes a constant, bottom-up; a print statement whose expression folds at all is
// rendered at compile time. This matters beyond speed: constant slicing goes through the
// sandbox's getitem (a TypeError gives Undefined) while a run-time slice raises.
class Folder {
 public:
  void body(Body& b) {
    for (auto& s : b) stmt(*s);
  }

 private:
  Interp in_{Limits{}};

  static bool safe_repr(const Value& v) {
    switch (v.kind()) {
      case Kind::None:
      case Kind::Bool:
      case Kind::Int:
      case Kind::Float:
      case Kind::String: return true;
      case Kind::List: {
        const ListObj& l = v.l();
        if (l.kind == ListKind::Range) return true;
        if (l.kind != ListKind::List && l.kind != ListKind::Tuple) return false;
        for (const Value& e : l.items)
          if (!safe_repr(e)) return false;
        return true;
      }
      case Kind::Dict:
        for (const auto& kv : v.d().items)
          if (!safe_repr(kv.first) || !safe_repr(kv.second)) return false;
        return true;
      default: return false;
    }
  }

  bool try_const(const Expr& e, Value& out) {
    if (!NameChecker::might_fold(&e)) return false;
    try {
      out = in_.eval_const(e);
      return true;
    } catch (const strata::Error&) {
      return false;
    } catch (const std::bad_alloc&) {
      return false;
    }
  }

  void site(CallSite& c) {
    for (auto& a : c.args) expr(a);
    for (auto& kv : c.kwargs) expr(kv.second);
    expr(c.dyn_args);
    expr(c.dyn_kwargs);
  }

  void expr(ExprPtr& e) {
    if (!e || e->kind == ExprKind::Const) return;
    switch (e->kind) {
      case ExprKind::Getattr: expr(static_cast<GetattrExpr&>(*e).obj); break;
      case ExprKind::Getitem: {
        auto& g = static_cast<GetitemExpr&>(*e);
        expr(g.obj);
        if (g.index->kind == ExprKind::Slice) {
          auto& sl = static_cast<SliceExpr&>(*g.index);
          expr(sl.start);
          expr(sl.stop);
          expr(sl.step);
        } else {
          expr(g.index);
        }
        break;
      }
      case ExprKind::Call: {
        auto& c = static_cast<CallExpr&>(*e);
        expr(c.callee);
        site(c.site);
        break;
      }
      case ExprKind::Filter: {
        auto& f = static_cast<FilterExpr&>(*e);
        expr(f.arg);
        site(f.site);
        break;
      }
      case ExprKind::Test: {
        auto& t = static_cast<TestExpr&>(*e);
        expr(t.arg);
        site(t.site);
        break;
      }
      case ExprKind::Not:
      case ExprKind::Neg:
      case ExprKind::Pos: expr(static_cast<UnaryExpr&>(*e).operand); break;
      case ExprKind::Binary:
      case ExprKind::And:
      case ExprKind::Or: {
        auto& b = static_cast<BinaryExpr&>(*e);
        expr(b.left);
        expr(b.right);
        break;
      }
      case ExprKind::Concat:
        for (auto& p : static_cast<ConcatExpr&>(*e).parts) expr(p);
        break;
      case ExprKind::Compare: {
        auto& c = static_cast<CompareExpr&>(*e);
        expr(c.first);
        for (auto& o : c.ops) expr(o.second);
        break;
      }
      case ExprKind::CondExpr: {
        auto& c = static_cast<CondExpr&>(*e);
        expr(c.test);
        expr(c.then);
        expr(c.otherwise);
        break;
      }
      case ExprKind::ListLit:
      case ExprKind::TupleLit:
        for (auto& p : static_cast<SeqLitExpr&>(*e).items) expr(p);
        break;
      case ExprKind::DictLit:
        for (auto& kv : static_cast<DictLitExpr&>(*e).items) {
          expr(kv.first);
          expr(kv.second);
        }
        break;
      default: break;
    }
    if (e->kind == ExprKind::Slice) return;  // folded as part of its Getitem
    Value v;
    if (try_const(*e, v) && safe_repr(v)) e = std::make_unique<ConstExpr>(v, e->line);
  }

  void macro(MacroDef& d) {
    for (auto& x : d.defaults) expr(x);
    body(d.body);
  }

  void stmt(Stmt& s) {
    switch (s.kind) {
      case StmtKind::Print: {
        auto& p = static_cast<PrintStmt&>(s);
        expr(p.expr);
        Value v;
        if (try_const(*p.expr, v)) {
          p.folded = true;
          try {
            p.folded_text = to_str(v);
          } catch (const strata::Error& e) {  // jinja2 would print it; we refuse, at render time
            p.folded_error = e.what();
          }
        }
        return;
      }
      case StmtKind::If: {
        auto& f = static_cast<IfStmt&>(s);
        for (auto& br : f.branches) {
          expr(br.first);
          body(br.second);
        }
        body(f.else_body);
        return;
      }
      case StmtKind::For: {
        auto& f = static_cast<ForStmt&>(s);
        expr(f.iter);
        expr(f.filter);
        body(f.body);
        body(f.else_body);
        return;
      }
      case StmtKind::Assign: expr(static_cast<AssignStmt&>(s).value); return;
      case StmtKind::AssignBlock: {
        auto& a = static_cast<AssignBlockStmt&>(s);
        body(a.body);
        return;
      }
      case StmtKind::Macro: macro(*static_cast<MacroStmt&>(s).def); return;
      case StmtKind::CallBlock: {
        auto& c = static_cast<CallBlockStmt&>(s);
        expr(c.call);
        macro(*c.caller);
        return;
      }
      case StmtKind::FilterBlock: body(static_cast<FilterBlockStmt&>(s).body); return;
      case StmtKind::With: {
        auto& w = static_cast<WithStmt&>(s);
        for (auto& a : w.assigns) expr(a.second);
        body(w.body);
        return;
      }
      case StmtKind::Scope: body(static_cast<ScopeStmt&>(s).body); return;
      default: return;
    }
  }
};

}  // namespace

std::unique_ptr<Template> parse_template(std::string_view source) {
  std::unique_ptr<Template> t = Parser(lex(source)).run();
  NameChecker().body(t->body, false);
  Folder().body(t->body);
  analyze_symbols(*t);
  return t;
}

}  // namespace strata::jinja
