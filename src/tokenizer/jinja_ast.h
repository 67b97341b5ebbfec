// The Jinja syntax tree: expressions and statements as jinja2's parser builds them (same node
// kinds, same precedence encoded by the parser). Immutable after parsing, so one parsed template
// renders concurrently. Not the evaluation (jinja_interp.cpp).
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja_value.h"

namespace strata::jinja {

enum class ExprKind {
  Const, Name, Getattr, Getitem, Slice, Call, Filter, Test, Not, Neg, Pos, Binary, And, Or,
  Concat, Compare, CondExpr, ListLit, TupleLit, DictLit
};

struct Expr {
  Expr(ExprKind k, int l) : kind(k), line(l) {}
  virtual ~Expr() = default;
  ExprKind kind;
  int line;
};
using ExprPtr = std::unique_ptr<Expr>;

// Arguments at a call site: f(a, b, k=v, *args, **kwargs).
struct CallSite {
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  ExprPtr dyn_args, dyn_kwargs;
};

struct ConstExpr : Expr {
  ConstExpr(Value v, int l) : Expr(ExprKind::Const, l), value(std::move(v)) {}
  Value value;
};
struct NameExpr : Expr {
  NameExpr(std::string n, int l) : Expr(ExprKind::Name, l), name(std::move(n)) {}
  std::string name;
};
struct GetattrExpr : Expr {  // obj.attr
  GetattrExpr(ExprPtr o, std::string a, int l) : Expr(ExprKind::Getattr, l), obj(std::move(o)), attr(std::move(a)) {}
  ExprPtr obj;
  std::string attr;
};
struct GetitemExpr : Expr {  // obj[index]; index may be a SliceExpr
  GetitemExpr(ExprPtr o, ExprPtr i, int l) : Expr(ExprKind::Getitem, l), obj(std::move(o)), index(std::move(i)) {}
  ExprPtr obj, index;
};
struct SliceExpr : Expr {  // start:stop:step, each may be null
  explicit SliceExpr(int l) : Expr(ExprKind::Slice, l) {}
  ExprPtr start, stop, step;
};
struct CallExpr : Expr {
  CallExpr(ExprPtr c, int l) : Expr(ExprKind::Call, l), callee(std::move(c)) {}
  ExprPtr callee;
  CallSite site;
};
// value|name(args). In filter blocks and `{% set x | f %}` the value is the block's output:
// `arg` is null there and the interpreter supplies the value.
// An unknown (or unimplemented) filter or test is a parse error, except inside an if-statement
// or a conditional expression, where jinja2 raises only if it is evaluated: there the parser
// leaves the error in `deferred_kind`/`deferred_error` for the interpreter.
struct FilterExpr : Expr {
  FilterExpr(ExprPtr a, std::string n, int l) : Expr(ExprKind::Filter, l), arg(std::move(a)), name(std::move(n)) {}
  ExprPtr arg;
  std::string name;
  CallSite site;
  std::string deferred_kind, deferred_error;
};
struct TestExpr : Expr {  // value is [not] name(args)
  TestExpr(ExprPtr a, std::string n, int l) : Expr(ExprKind::Test, l), arg(std::move(a)), name(std::move(n)) {}
  ExprPtr arg;
  std::string name;
  CallSite site;
  std::string deferred_kind, deferred_error;
};
struct UnaryExpr : Expr {  // Not, Neg, Pos
  UnaryExpr(ExprKind k, ExprPtr x, int l) : Expr(k, l), operand(std::move(x)) {}
  ExprPtr operand;
};
struct BinaryExpr : Expr {  // Binary (op: + - * / // % **), And, Or
  BinaryExpr(ExprKind k, std::string o, ExprPtr a, ExprPtr b, int l)
      : Expr(k, l), op(std::move(o)), left(std::move(a)), right(std::move(b)) {}
  std::string op;
  ExprPtr left, right;
};
struct ConcatExpr : Expr {  // a ~ b ~ c
  explicit ConcatExpr(int l) : Expr(ExprKind::Concat, l) {}
  std::vector<ExprPtr> parts;
};
struct CompareExpr : Expr {  // a < b == c ... (op: == != < <= > >= in notin)
  CompareExpr(ExprPtr f, int l) : Expr(ExprKind::Compare, l), first(std::move(f)) {}
  ExprPtr first;
  std::vector<std::pair<std::string, ExprPtr>> ops;
};
struct CondExpr : Expr {  // then if test else otherwise (otherwise may be null -> Undefined)
  explicit CondExpr(int l) : Expr(ExprKind::CondExpr, l) {}
  ExprPtr test, then, otherwise;
};
struct SeqLitExpr : Expr {  // ListLit, TupleLit
  SeqLitExpr(ExprKind k, int l) : Expr(k, l) {}
  std::vector<ExprPtr> items;
};
struct DictLitExpr : Expr {
  explicit DictLitExpr(int l) : Expr(ExprKind::DictLit, l) {}
  std::vector<std::pair<ExprPtr, ExprPtr>> items;
};

// Assignment targets: a name, ns.attr (namespace), or a (nested) tuple of targets.
struct Target {
  enum Kind { Name, NsAttr, Tuple } kind = Name;
  std::string name, attr;
  std::vector<Target> items;
  int line = 0;
};

enum class StmtKind {
  Text, Print, For, If, Assign, AssignBlock, Macro, CallBlock, FilterBlock, With, Break, Continue, Scope
};

struct Stmt {
  Stmt(StmtKind k, int l) : kind(k), line(l) {}
  virtual ~Stmt() = default;
  StmtKind kind;
  int line;
};
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct TextStmt : Stmt {
  TextStmt(std::string t, int l) : Stmt(StmtKind::Text, l), text(std::move(t)) {}
  std::string text;
};
struct PrintStmt : Stmt {
  PrintStmt(ExprPtr e, int l) : Stmt(StmtKind::Print, l), expr(std::move(e)) {}
  ExprPtr expr;
  // jinja2 renders a print statement whose expression folds to a constant at compile time;
  // the parser does the same and keeps the text here.
  bool folded = false;
  std::string folded_text;
  std::string folded_error;  // the folded value cannot be printed (e.g. a generator): raised at render
};
// Frames (a loop body, a macro, a block...) list `missing`: names jinja2's symbol analysis
// declares local to the frame but unset at its start, so they read as Undefined until assigned
// instead of falling through to an outer scope (see jinja_symbols.cpp).
struct MissingName {
  std::string name;
  Value undefined;  // built once at parse time: frames are entered per loop iteration
};
using Names = std::vector<MissingName>;

struct ForStmt : Stmt {
  explicit ForStmt(int l) : Stmt(StmtKind::For, l) {}
  Target target;
  ExprPtr iter, filter;
  bool recursive = false;
  Body body, else_body;
  Names body_missing, else_missing;
};
struct IfStmt : Stmt {
  explicit IfStmt(int l) : Stmt(StmtKind::If, l) {}
  std::vector<std::pair<ExprPtr, Body>> branches;  // if, elif...
  Body else_body;
};
struct AssignStmt : Stmt {
  explicit AssignStmt(int l) : Stmt(StmtKind::Assign, l) {}
  Target target;
  ExprPtr value;
};
struct AssignBlockStmt : Stmt {  // {% set x | filters %}body{% endset %}
  explicit AssignBlockStmt(int l) : Stmt(StmtKind::AssignBlock, l) {}
  Target target;
  ExprPtr filter;  // null or a FilterExpr chain whose innermost arg is null
  Body body;
  Names body_missing;
};
struct MacroDef {  // shared by {% macro %} and the caller of {% call %}
  std::string name;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // for the last defaults.size() params
  Body body;
  bool uses_caller = false, uses_varargs = false, uses_kwargs = false;
  int line = 0;
  Names missing;
};
struct MacroStmt : Stmt {
  explicit MacroStmt(int l) : Stmt(StmtKind::Macro, l) {}
  std::shared_ptr<MacroDef> def;
};
struct CallBlockStmt : Stmt {  // {% call(params) f(args) %}body{% endcall %}
  explicit CallBlockStmt(int l) : Stmt(StmtKind::CallBlock, l) {}
  ExprPtr call;  // a CallExpr
  std::shared_ptr<MacroDef> caller;
};
struct FilterBlockStmt : Stmt {
  explicit FilterBlockStmt(int l) : Stmt(StmtKind::FilterBlock, l) {}
  ExprPtr filter;  // FilterExpr chain whose innermost arg is null
  Body body;
  Names body_missing;
};
struct WithStmt : Stmt {
  explicit WithStmt(int l) : Stmt(StmtKind::With, l) {}
  std::vector<std::pair<Target, ExprPtr>> assigns;
  Body body;
  Names body_missing;
};
struct ScopeStmt : Stmt {  // transformers' {% generation %}: renders its body in a new scope
  explicit ScopeStmt(int l) : Stmt(StmtKind::Scope, l) {}
  Body body;
  Names body_missing;
};

struct Template {
  Body body;
  Names missing;
};

// jinja2's per-frame symbol analysis; fills the `missing` lists (jinja_symbols.cpp).
void analyze_symbols(Template& t);

}  // namespace strata::jinja
