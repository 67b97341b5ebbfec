// The Jinja interpreter: walks a parsed Template and renders it with jinja2's semantics as
// transformers runs it (ImmutableSandboxedEnvironment: list/dict mutators are refused, range()
// is capped). Scopes are lexical like jinja2's: a for-loop iteration, a macro call and {% with %}
// open a scope, {% if %} does not, and `set` writes the innermost scope.
// Not the builtins (jinja_filters.cpp, jinja_methods.cpp, jinja_globals.cpp).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_value.h"

namespace strata::jinja {

struct Scope : std::enable_shared_from_this<Scope> {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Scope> parent;
  const Value* find(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent.get()) {
      auto it = s->vars.find(name);
      if (it != s->vars.end()) return &it->second;
    }
    return nullptr;
  }
};
using ScopePtr = std::shared_ptr<Scope>;

// Bounds that keep hostile templates from exhausting the server (jinja2 would hit Python's
// recursion limit or run out of memory instead).
struct Limits {
  int max_depth = 100;                // nested macro calls and recursive loops
  int64_t max_steps = 10'000'000;     // loop iterations + macro calls + filter/method calls
  size_t max_bytes = size_t(64) << 20;  // rendered output, and any one string or list built
};

class Interp {
 public:
  explicit Interp(Limits limits) : limits_(limits) {}
  ~Interp();  // breaks the reference cycles a render may have built (see keep())
  Interp(const Interp&) = delete;
  Interp& operator=(const Interp&) = delete;

  // Renders `tpl` with `globals` (builtins + render variables) as the outermost scope.
  // Throws JinjaError naming the line.
  std::string render(const Template& tpl, const ScopePtr& globals);

  // ---- used by builtins -------------------------------------------------------------------------
  Value call(const Value& callee, CallArgs& args);
  Value filter(const std::string& name, const Value& v, CallArgs& args);  // env.call_filter
  bool test(const std::string& name, const Value& v, CallArgs& args);     // env.call_test
  Value getattr(const Value& obj, const std::string& name);                // obj.name
  Value getitem(const Value& obj, const Value& key);                       // obj[key]
  void step();                                   // counts work against Limits::max_steps
  void check_size(size_t bytes) const;           // against Limits::max_bytes
  std::string render_macro(const MacroDef& def, const ScopePtr& closure, CallArgs& args);
  std::string render_loop(const ForStmt& loop, const ScopePtr& scope, const Value& iterable, int depth);
  int line() const { return line_; }
  // jinja2's Expr.as_const: evaluates without variables (names, calls and context filters
  // fail), slicing through the sandbox's getitem. Used by the parser's constant folding.
  Value eval_const(const Expr& e);
  // Objects that can end up in reference cycles (namespace() holding itself, a scope holding
  // a macro that closes over it) are kept here and released when the render ends, so a
  // server renders forever without leaking.
  void keep(std::shared_ptr<Object> o) { kept_objects_.push_back(std::move(o)); }
  void keep(ScopePtr s) { kept_scopes_.push_back(std::move(s)); }

 private:
  enum class Flow { Normal, Break, Continue };

  Flow exec(const Body& body, const ScopePtr& scope, std::string& out);
  Flow exec_stmt(const Stmt& s, const ScopePtr& scope, std::string& out);
  void exec_for(const ForStmt& s, const ScopePtr& scope, std::string& out, const Value* iterable, int depth);
  void assign(const Target& t, const Value& v, const ScopePtr& scope);
  void emit(std::string& out, const std::string& text);

  Value eval(const Expr& e, const ScopePtr& scope);
  Value eval_filter_chain(const Expr& e, const ScopePtr& scope, const Value* input);  // input: block filters
  Value eval_getitem(const GetitemExpr& e, const ScopePtr& scope);
  Value eval_compare(const CompareExpr& e, const ScopePtr& scope);
  void eval_site(const CallSite& site, const ScopePtr& scope, CallArgs& out);
  Value lookup(const std::string& name, const ScopePtr& scope);

  Limits limits_;
  std::vector<std::shared_ptr<Object>> kept_objects_;
  std::vector<ScopePtr> kept_scopes_;
  int line_ = 0;
  bool const_mode_ = false;  // evaluating a constant print statement as jinja2's optimizer does
  int depth_ = 0;
  int64_t steps_ = 0;
};

// Binds call arguments to a Python-style signature (positional, then by name).
class ArgBinder {
 public:
  // names: parameters in order; extra positional/keyword arguments are errors unless allowed.
  ArgBinder(const std::string& fname, CallArgs& args, std::vector<std::string> names,
            bool allow_extra_pos = false, bool allow_extra_kw = false);
  bool has(size_t i) const { return vals_[i].has_value(); }
  const Value& get(size_t i) const;            // throws "missing required argument"
  Value get_or(size_t i, Value fallback) const;
  std::vector<Value> extra_pos;
  std::vector<std::pair<std::string, Value>> extra_kw;

 private:
  std::string fname_;
  std::vector<std::string> names_;
  std::vector<std::optional<Value>> vals_;
};

// ---- builtins (jinja_filters.cpp, jinja_methods.cpp, jinja_globals.cpp, jinja_ops.cpp) ----------
Value apply_filter(Interp& in, const std::string& name, const Value& v, CallArgs& args);
bool apply_test(Interp& in, const std::string& name, const Value& v, CallArgs& args);

// obj.name for str/list/dict methods: a bound method, an unsafe Undefined for mutators (the
// sandbox's SecurityError on use), or nullopt when the type has no such attribute.
std::optional<Value> method_attr(const Value& self, const std::string& name);
Value call_method(Interp& in, const Value& self, const std::string& name, CallArgs& args);
std::string format_percent(const std::string& fmt, const Value& args);           // str % args
std::string format_braces(Interp& in, const std::string& fmt, CallArgs& args);  // str.format

void install_globals(Scope& scope);  // range, dict, namespace, joiner, cycler, raise_exception, strftime_now
Value make_namespace(Interp& in, CallArgs& args);

// Python operators on values.
Value binary_op(Interp& in, const std::string& op, const Value& a, const Value& b);
Value unary_minus(const Value& v, bool negate);
Value slice_value(const Value& obj, const Value& start, const Value& stop, const Value& step,
                  bool type_error_undefined = false);
[[noreturn]] void undefined_error(const Value& u);  // UndefinedError / SecurityError on use

}  // namespace strata::jinja
