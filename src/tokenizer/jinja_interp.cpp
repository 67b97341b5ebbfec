// The Jinja interpreter (see jinja_interp.h): statements, expressions, scopes, macros, loops,
// attribute and item lookup. Errors from values and builtins surface as JinjaError with the
// line being evaluated. Not the builtins themselves (filters, methods, globals, operators).
#include "tokenizer/jinja_interp.h"

#include "tokenizer/jinja_parser.h"
#include "tokenizer/jinja_unicode.h"

namespace strata::jinja {

namespace {

// Names a frame declares but has not assigned yet read as Undefined (jinja_symbols.cpp).
void declare_missing(Scope& s, const Names& names) {
  for (const auto& n : names) s.vars.emplace(n.name, n.undefined);  // keeps parameters already bound
}

std::string type_obj(const Value& v) {
  return v.is_none() ? "None" : type_name(v) + " object";  // jinja2's object_type_repr
}

// A macro bound to the scope it was defined in (jinja2 macros are closures).
// The closure is weak: the scope holds the macro, and Interp::keep() holds the scope until the
// render ends, so the macro can always be called but no cycle outlives the render.
struct MacroObj : Object {
  std::shared_ptr<MacroDef> def;
  std::weak_ptr<Scope> closure;
  std::string type_name() const override { return "Macro"; }
  bool is_callable() const override { return true; }
  Value call(Interp& in, CallArgs& args) override {
    ScopePtr scope = closure.lock();
    if (!scope) fail("macro '" + def->name + "' outlived its scope");
    return Value::string(in.render_macro(*def, scope, args));
  }
  bool get_attr(const std::string& name, Value& out) const override {
    if (name == "name") {
      out = Value::string(def->name);
    } else if (name == "arguments") {
      std::vector<Value> names;
      for (const auto& p : def->params) names.push_back(Value::string(p));
      out = Value::list(std::move(names), ListKind::Tuple);
    } else if (name == "catch_kwargs") {
      out = Value::boolean(def->uses_kwargs);
    } else if (name == "catch_varargs") {
      out = Value::boolean(def->uses_varargs);
    } else if (name == "caller") {
      out = Value::boolean(def->uses_caller);
    } else {
      return false;
    }
    return true;
  }
  std::string repr() const override { return "<Macro " + py_str_repr(def->name) + ">"; }
};

// jinja2's LoopContext: one per loop, advanced per iteration.
struct LoopObj : Object, std::enable_shared_from_this<LoopObj> {
  std::vector<Value> items;
  size_t index0 = 0;
  int depth = 1;
  const ForStmt* stmt = nullptr;
  ScopePtr scope;  // where the loop runs, for loop(...) in recursive loops
  std::optional<std::vector<Value>> last_changed;

  std::string type_name() const override { return "LoopContext"; }
  bool is_callable() const override { return true; }
  Value call(Interp& in, CallArgs& args) override {
    if (!stmt->recursive) fail("The loop must have the 'recursive' marker to be called recursively.");
    if (args.pos.size() != 1 || !args.kw.empty()) fail("loop() takes exactly one argument");
    return Value::string(in.render_loop(*stmt, scope, args.pos[0], depth + 1));
  }
  bool get_attr(const std::string& name, Value& out) const override;
  std::string repr() const override {
    return "<LoopContext " + std::to_string(index0 + 1) + "/" + std::to_string(items.size()) + ">";
  }
};

struct LoopMethod : Object {
  std::shared_ptr<LoopObj> loop;
  std::string name;  // cycle | changed
  std::string type_name() const override { return "method"; }
  bool is_callable() const override { return true; }
  Value call(Interp&, CallArgs& args) override {
    if (!args.kw.empty()) fail("loop." + name + "() takes no keyword arguments");
    if (name == "cycle") {
      if (args.pos.empty()) fail("no items for cycling given");
      return args.pos[loop->index0 % args.pos.size()];
    }
    bool changed = !loop->last_changed || loop->last_changed->size() != args.pos.size();
    if (!changed)
      for (size_t k = 0; k < args.pos.size(); k++) changed = changed || !py_eq((*loop->last_changed)[k], args.pos[k]);
    if (changed) loop->last_changed = args.pos;
    return Value::boolean(changed);
  }
};

bool LoopObj::get_attr(const std::string& name, Value& out) const {
  const int64_t n = int64_t(items.size()), i = int64_t(index0);
  if (name == "index") out = Value::integer(i + 1);
  else if (name == "index0") out = Value::integer(i);
  else if (name == "revindex") out = Value::integer(n - i);
  else if (name == "revindex0") out = Value::integer(n - i - 1);
  else if (name == "first") out = Value::boolean(i == 0);
  else if (name == "last") out = Value::boolean(i == n - 1);
  else if (name == "length") out = Value::integer(n);
  else if (name == "depth") out = Value::integer(depth);
  else if (name == "depth0") out = Value::integer(depth - 1);
  else if (name == "previtem")
    out = i > 0 ? items[size_t(i - 1)] : Value::undef("there is no previous item");
  else if (name == "nextitem")
    out = i + 1 < n ? items[size_t(i + 1)] : Value::undef("there is no next item");
  else if (name == "cycle" || name == "changed") {
    auto m = std::make_shared<LoopMethod>();
    m->loop = std::const_pointer_cast<LoopObj>(shared_from_this());
    m->name = name;
    out = Value::object(m);
  } else {
    return false;
  }
  return true;
}

bool is_dunder(const std::string& n) { return n.size() > 4 && n.rfind("__", 0) == 0 && n.compare(n.size() - 2, 2, "__") == 0; }

Value unsafe_attr(const Value& obj, const std::string& name) {
  return Value::undef("access to attribute '" + name + "' of '" + type_name(obj) + "' object is unsafe.", true);
}

}  // namespace

[[noreturn]] void undefined_error(const Value& u) {
  std::string h = u.undef_hint();
  fail(h.empty() ? "value is undefined" : h);
}

// ---- ArgBinder ------------------------------------------------------------------------------------
ArgBinder::ArgBinder(const std::string& fname, CallArgs& args, std::vector<std::string> names,
                     bool allow_extra_pos, bool allow_extra_kw)
    : fname_(fname), names_(std::move(names)), vals_(names_.size()) {
  for (size_t k = 0; k < args.pos.size(); k++) {
    if (k < names_.size()) {
      vals_[k] = args.pos[k];
    } else if (allow_extra_pos) {
      extra_pos.push_back(args.pos[k]);
    } else {
      fail(fname_ + "() takes at most " + std::to_string(names_.size()) + " argument(s) (" +
           std::to_string(args.pos.size()) + " given)");
    }
  }
  for (auto& kv : args.kw) {
    size_t k = 0;
    while (k < names_.size() && names_[k] != kv.first) k++;
    if (k == names_.size()) {
      if (!allow_extra_kw) fail(fname_ + "() got an unexpected keyword argument '" + kv.first + "'");
      extra_kw.push_back(kv);
      continue;
    }
    if (vals_[k]) fail(fname_ + "() got multiple values for argument '" + kv.first + "'");
    vals_[k] = kv.second;
  }
}

const Value& ArgBinder::get(size_t i) const {
  if (!vals_[i]) fail(fname_ + "() missing required argument '" + names_[i] + "'");
  return *vals_[i];
}

Value ArgBinder::get_or(size_t i, Value fallback) const { return vals_[i] ? *vals_[i] : fallback; }

// ---- rendering --------------------------------------------------------------------------------------
Interp::~Interp() {
  for (auto& o : kept_objects_) o->release();
  for (auto& s : kept_scopes_) s->vars.clear();
}

std::string Interp::render(const Template& tpl, const ScopePtr& globals) {
  auto top = std::make_shared<Scope>();
  top->parent = globals;
  declare_missing(*top, tpl.missing);
  std::string out;
  try {
    exec(tpl.body, top, out);
  } catch (const JinjaError&) {
    throw;
  } catch (const ValueError& e) {
    throw JinjaError(e.unsupported() ? "unsupported" : "error", e.what(), line_);
  } catch (const strata::Error& e) {
    throw JinjaError("error", e.what(), line_);
  } catch (const std::bad_alloc&) {
    throw JinjaError("error", "out of memory", line_);
  }
  return out;
}

void Interp::step() {
  if (++steps_ > limits_.max_steps)
    fail("template exceeded its work budget (" + std::to_string(limits_.max_steps) + " steps)");
}

void Interp::check_size(size_t bytes) const {
  if (bytes > limits_.max_bytes)
    fail("template output or value exceeds " + std::to_string(limits_.max_bytes >> 20) + " MiB");
}

void Interp::emit(std::string& out, const std::string& text) {
  check_size(out.size() + text.size());
  out += text;
}

Interp::Flow Interp::exec(const Body& body, const ScopePtr& scope, std::string& out) {
  for (const auto& s : body) {
    Flow f = exec_stmt(*s, scope, out);
    if (f != Flow::Normal) return f;
  }
  return Flow::Normal;
}

Interp::Flow Interp::exec_stmt(const Stmt& s, const ScopePtr& scope, std::string& out) {
  line_ = s.line;
  auto child = [&] {
    auto c = std::make_shared<Scope>();
    c->parent = scope;
    return c;
  };
  switch (s.kind) {
    case StmtKind::Text: emit(out, static_cast<const TextStmt&>(s).text); return Flow::Normal;
    case StmtKind::Print: {
      const auto& p = static_cast<const PrintStmt&>(s);
      if (p.folded && !p.folded_error.empty()) throw JinjaError("unsupported", p.folded_error, s.line);
      emit(out, p.folded ? p.folded_text : to_str(eval(*p.expr, scope)));
      return Flow::Normal;
    }
    case StmtKind::If: {
      const auto& st = static_cast<const IfStmt&>(s);
      for (const auto& br : st.branches)
        if (truthy(eval(*br.first, scope))) return exec(br.second, scope, out);
      return exec(st.else_body, scope, out);
    }
    case StmtKind::For: exec_for(static_cast<const ForStmt&>(s), scope, out, nullptr, 1); return Flow::Normal;
    case StmtKind::Assign: {
      const auto& st = static_cast<const AssignStmt&>(s);
      assign(st.target, eval(*st.value, scope), scope);
      return Flow::Normal;
    }
    case StmtKind::AssignBlock: {
      const auto& st = static_cast<const AssignBlockStmt&>(s);
      std::string buf;
      auto c = child();
      declare_missing(*c, st.body_missing);
      exec(st.body, c, buf);
      line_ = s.line;
      Value v = Value::string(std::move(buf));
      if (st.filter) v = eval_filter_chain(*st.filter, scope, &v);
      assign(st.target, v, scope);
      return Flow::Normal;
    }
    case StmtKind::Macro: {
      const auto& st = static_cast<const MacroStmt&>(s);
      auto m = std::make_shared<MacroObj>();
      m->def = st.def;
      m->closure = scope;
      keep(scope);
      scope->vars[st.def->name] = Value::object(m);
      return Flow::Normal;
    }
    case StmtKind::CallBlock: {
      const auto& st = static_cast<const CallBlockStmt&>(s);
      const auto& call = static_cast<const CallExpr&>(*st.call);
      auto caller = std::make_shared<MacroObj>();
      caller->def = st.caller;
      caller->closure = scope;
      keep(scope);
      Value callee = eval(*call.callee, scope);
      CallArgs args;
      eval_site(call.site, scope, args);
      args.kw.emplace_back("caller", Value::object(caller));
      line_ = s.line;
      emit(out, to_str(this->call(callee, args)));
      return Flow::Normal;
    }
    case StmtKind::FilterBlock: {
      const auto& st = static_cast<const FilterBlockStmt&>(s);
      std::string buf;
      auto c = child();
      declare_missing(*c, st.body_missing);
      exec(st.body, c, buf);
      line_ = s.line;
      const Value body = Value::string(std::move(buf));
      emit(out, to_str(eval_filter_chain(*st.filter, scope, &body)));
      return Flow::Normal;
    }
    case StmtKind::With: {
      const auto& st = static_cast<const WithStmt&>(s);
      auto c = child();
      std::vector<Value> vals;
      for (const auto& a : st.assigns) vals.push_back(eval(*a.second, scope));
      for (size_t k = 0; k < vals.size(); k++) assign(st.assigns[k].first, vals[k], c);
      declare_missing(*c, st.body_missing);
      return exec(st.body, c, out);
    }
    case StmtKind::Scope: {
      const auto& st = static_cast<const ScopeStmt&>(s);
      auto c = child();
      declare_missing(*c, st.body_missing);
      return exec(st.body, c, out);
    }
    case StmtKind::Break: return Flow::Break;
    case StmtKind::Continue: return Flow::Continue;
  }
  return Flow::Normal;
}

void Interp::exec_for(const ForStmt& s, const ScopePtr& scope, std::string& out, const Value* iterable, int depth) {
  if (depth > limits_.max_depth) fail("maximum recursion depth exceeded in a recursive loop");
  Value iterv = iterable ? *iterable : eval(*s.iter, scope);
  line_ = s.line;
  std::vector<Value> items = py_iter(iterv);
  if (s.filter) {  // {% for x in xs if cond %}: filtered before the loop, so loop.length counts the kept
    std::vector<Value> kept;
    for (auto& item : items) {
      step();
      auto c = std::make_shared<Scope>();
      c->parent = scope;
      assign(s.target, item, c);
      if (truthy(eval(*s.filter, c))) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  auto loop = std::make_shared<LoopObj>();
  loop->items = std::move(items);
  loop->depth = depth;
  loop->stmt = &s;
  loop->scope = scope;
  const Value loopv = Value::object(loop);
  // jinja2 runs the else block unless an iteration reached the end of the body: a loop whose
  // every iteration ends in break or continue runs it too.
  bool completed_an_iteration = false;
  for (size_t k = 0; k < loop->items.size(); k++) {
    step();
    loop->index0 = k;
    auto c = std::make_shared<Scope>();
    c->parent = scope;
    assign(s.target, loop->items[k], c);
    c->vars["loop"] = loopv;
    declare_missing(*c, s.body_missing);
    Flow f = exec(s.body, c, out);
    if (f == Flow::Break) break;
    if (f == Flow::Normal) completed_an_iteration = true;
  }
  if (!completed_an_iteration && !s.else_body.empty()) {
    auto c = std::make_shared<Scope>();
    c->parent = scope;
    declare_missing(*c, s.else_missing);
    exec(s.else_body, c, out);
  }
}

std::string Interp::render_loop(const ForStmt& loop, const ScopePtr& scope, const Value& iterable, int depth) {
  std::string buf;
  exec_for(loop, scope, buf, &iterable, depth);
  return buf;
}

std::string Interp::render_macro(const MacroDef& def, const ScopePtr& closure, CallArgs& args) {
  step();
  if (depth_ >= limits_.max_depth) fail("maximum recursion depth exceeded in macro '" + def.name + "'");
  auto scope = std::make_shared<Scope>();
  scope->parent = closure;
  const size_t n = def.params.size(), n_def = def.defaults.size();
  std::vector<std::pair<std::string, Value>> kw = args.kw;
  auto take_kw = [&](const std::string& name, Value& out) {
    for (auto it = kw.begin(); it != kw.end(); ++it)
      if (it->first == name) {
        out = it->second;
        kw.erase(it);
        return true;
      }
    return false;
  };
  for (size_t k = 0; k < n; k++) {
    Value v;
    if (k < args.pos.size()) {
      v = args.pos[k];
    } else if (!take_kw(def.params[k], v)) {
      if (k + n_def >= n) {
        v = eval(*def.defaults[k + n_def - n], scope);
      } else {
        v = Value::undef("parameter '" + def.params[k] + "' was not provided");
      }
    }
    scope->vars[def.params[k]] = v;
  }
  if (def.uses_caller && !scope->vars.count("caller")) {
    Value c;
    if (!take_kw("caller", c)) c = Value::undef("No caller defined");
    scope->vars["caller"] = c;
  }
  if (def.uses_kwargs) {
    Value d = Value::dict();
    for (auto& kv : kw) d.d().set(Value::string(kv.first), kv.second);
    scope->vars["kwargs"] = d;
  } else if (!kw.empty()) {
    if (kw[0].first == "caller")
      fail("macro '" + def.name + "' was invoked with two values for the special caller argument");
    fail("macro '" + def.name + "' takes no keyword argument '" + kw[0].first + "'");
  }
  if (def.uses_varargs) {
    std::vector<Value> rest;
    for (size_t k = n; k < args.pos.size(); k++) rest.push_back(args.pos[k]);
    scope->vars["varargs"] = Value::list(std::move(rest), ListKind::Tuple);
  } else if (args.pos.size() > n) {
    fail("macro '" + def.name + "' takes not more than " + std::to_string(n) + " argument(s)");
  }
  declare_missing(*scope, def.missing);
  depth_++;
  std::string out;
  struct Leave {
    int& d;
    ~Leave() { d--; }
  } leave{depth_};
  exec(def.body, scope, out);
  return out;
}

void Interp::assign(const Target& t, const Value& v, const ScopePtr& scope) {
  switch (t.kind) {
    case Target::Name: scope->vars[t.name] = v; return;
    case Target::NsAttr: {
      Value ns = lookup(t.name, scope);
      if (!ns.is_object() || !ns.o().set_attr(t.attr, v)) {
        line_ = t.line;
        fail("cannot assign attribute on non-namespace object");
      }
      return;
    }
    case Target::Tuple: {
      std::vector<Value> items = py_iter(v);
      if (items.size() != t.items.size()) {
        line_ = t.line;
        if (items.size() > t.items.size())
          fail("too many values to unpack (expected " + std::to_string(t.items.size()) + ")");
        fail("not enough values to unpack (expected " + std::to_string(t.items.size()) + ", got " +
             std::to_string(items.size()) + ")");
      }
      for (size_t k = 0; k < items.size(); k++) assign(t.items[k], items[k], scope);
      return;
    }
  }
}

// ---- expressions ----------------------------------------------------------------------------------
Value Interp::lookup(const std::string& name, const ScopePtr& scope) {
  if (const Value* v = scope->find(name)) return *v;
  return Value::undef("'" + name + "' is undefined");
}

void Interp::eval_site(const CallSite& site, const ScopePtr& scope, CallArgs& out) {
  for (const auto& a : site.args) out.pos.push_back(eval(*a, scope));
  for (const auto& kv : site.kwargs) out.kw.emplace_back(kv.first, eval(*kv.second, scope));
  if (site.dyn_args)
    for (auto& v : py_iter(eval(*site.dyn_args, scope))) out.pos.push_back(std::move(v));
  if (site.dyn_kwargs) {
    Value d = eval(*site.dyn_kwargs, scope);
    if (!d.is_dict()) fail("argument after ** must be a mapping, not " + type_name(d));
    for (const auto& kv : d.d().items) {
      if (!kv.first.is_string()) fail("keywords must be strings");
      out.kw.emplace_back(kv.first.s(), kv.second);
    }
  }
}

Value Interp::call(const Value& callee, CallArgs& args) {
  if (callee.is_undefined()) undefined_error(callee);
  if (!callee.is_object() || !callee.o().is_callable()) fail("'" + type_name(callee) + "' object is not callable");
  step();
  return callee.o().call(*this, args);
}

Value Interp::filter(const std::string& name, const Value& v, CallArgs& args) {
  step();
  return apply_filter(*this, name, v, args);
}

bool Interp::test(const std::string& name, const Value& v, CallArgs& args) { return apply_test(*this, name, v, args); }

Value Interp::getattr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) undefined_error(obj);
  if (obj.is_object()) {
    Value out;
    if (obj.o().get_attr(name, out)) return out;
    return Value::undef("'" + obj.o().type_name() + " object' has no attribute '" + name + "'");
  }
  if (is_dunder(name)) return unsafe_attr(obj, name);
  if (auto m = method_attr(obj, name)) return *m;
  if (obj.is_dict())
    if (const Value* v = obj.d().find(name)) return *v;
  return Value::undef("'" + type_obj(obj) + "' has no attribute '" + name + "'");
}

Value Interp::getitem(const Value& obj, const Value& key) {
  if (obj.is_undefined()) undefined_error(obj);
  if (obj.is_dict() && py_hashable(key)) {
    if (const Value* v = obj.d().find(key)) return *v;
  } else if (obj.is_list() && key.is_integral()) {
    const ListObj& l = obj.l();
    if (l.kind == ListKind::List || l.kind == ListKind::Tuple || l.kind == ListKind::Range) {
      int64_t n = int64_t(l.items.size()), i = key.i();
      if (i < 0) i += n;
      if (i >= 0 && i < n) return l.items[size_t(i)];
    }
  } else if (obj.is_string() && key.is_integral()) {
    const std::string& s = obj.s();
    int64_t i = key.i();
    if (i < 0) i += int64_t(utf8_length(s));
    if (i >= 0) {
      int64_t k = 0;
      for (size_t p = 0; p < s.size();) {
        size_t len = 1;
        while (p + len < s.size() && (static_cast<unsigned char>(s[p + len]) & 0xC0) == 0x80) len++;
        if (k == i) return Value::string(s.substr(p, len));
        k++;
        p += len;
      }
    }
  }
  if (key.is_string()) {
    if (obj.is_dict()) {
      if (is_dunder(key.s())) return unsafe_attr(obj, key.s());
      if (auto m = method_attr(obj, key.s())) return *m;
      return Value::undef("'" + type_obj(obj) + "' has no attribute '" + key.s() + "'");
    }
    return getattr(obj, key.s());
  }
  return Value::undef(type_obj(obj) + " has no element " + to_repr(key));
}

Value Interp::eval_getitem(const GetitemExpr& e, const ScopePtr& scope) {
  Value obj = eval(*e.obj, scope);
  if (e.index->kind == ExprKind::Slice) {
    const auto& sl = static_cast<const SliceExpr&>(*e.index);
    Value a = sl.start ? eval(*sl.start, scope) : Value::none();
    Value b = sl.stop ? eval(*sl.stop, scope) : Value::none();
    Value c = sl.step ? eval(*sl.step, scope) : Value::none();
    line_ = e.line;
    return slice_value(obj, a, b, c, const_mode_);
  }
  Value key = eval(*e.index, scope);
  line_ = e.line;
  return getitem(obj, key);
}

Value Interp::eval_filter_chain(const Expr& e, const ScopePtr& scope, const Value* input) {
  const auto& f = static_cast<const FilterExpr&>(e);
  Value v;
  if (!f.arg) {
    if (!input) fail("filter without a value");
    v = *input;
  } else if (f.arg->kind == ExprKind::Filter) {
    v = eval_filter_chain(*f.arg, scope, input);
  } else {
    v = eval(*f.arg, scope);
  }
  CallArgs args;
  eval_site(f.site, scope, args);
  line_ = f.line;
  if (!f.deferred_error.empty()) throw JinjaError(f.deferred_kind, f.deferred_error, f.line);
  if (const_mode_ && is_context_filter(f.name)) fail("not constant");
  return filter(f.name, v, args);
}

Value Interp::eval_compare(const CompareExpr& e, const ScopePtr& scope) {
  Value left = eval(*e.first, scope);
  for (const auto& [op, rexpr] : e.ops) {
    Value right = eval(*rexpr, scope);
    line_ = e.line;
    bool r;
    if (op == "==") r = py_eq(left, right);
    else if (op == "!=") r = !py_eq(left, right);
    else if (op == "<") r = py_lt(left, right);
    else if (op == ">") r = py_lt(right, left);
    else if (op == "<=") r = py_lt(left, right) || py_eq(left, right);
    else if (op == ">=") r = py_lt(right, left) || py_eq(left, right);
    else if (op == "in") r = py_contains(right, left);
    else r = !py_contains(right, left);  // notin
    if (!r) return Value::boolean(false);
    left = std::move(right);
  }
  return Value::boolean(true);
}

Value Interp::eval_const(const Expr& e) {
  const_mode_ = true;
  struct Reset {
    bool& b;
    ~Reset() { b = false; }
  } reset{const_mode_};
  return eval(e, std::make_shared<Scope>());
}

Value Interp::eval(const Expr& e, const ScopePtr& scope) {
  line_ = e.line;
  switch (e.kind) {
    case ExprKind::Const: return static_cast<const ConstExpr&>(e).value;
    case ExprKind::Name:
      if (const_mode_) fail("not constant");  // jinja2's Name.as_const: Impossible
      return lookup(static_cast<const NameExpr&>(e).name, scope);
    case ExprKind::Getattr: {
      const auto& g = static_cast<const GetattrExpr&>(e);
      Value obj = eval(*g.obj, scope);
      line_ = e.line;
      return getattr(obj, g.attr);
    }
    case ExprKind::Getitem: return eval_getitem(static_cast<const GetitemExpr&>(e), scope);
    case ExprKind::Slice: fail("a slice is only valid inside []");
    case ExprKind::Call: {
      if (const_mode_) fail("not constant");
      const auto& c = static_cast<const CallExpr&>(e);
      Value callee = eval(*c.callee, scope);
      CallArgs args;
      eval_site(c.site, scope, args);
      line_ = e.line;
      return call(callee, args);
    }
    case ExprKind::Filter: return eval_filter_chain(e, scope, nullptr);
    case ExprKind::Test: {
      const auto& t = static_cast<const TestExpr&>(e);
      Value v = eval(*t.arg, scope);
      CallArgs args;
      eval_site(t.site, scope, args);
      line_ = e.line;
      if (!t.deferred_error.empty()) throw JinjaError(t.deferred_kind, t.deferred_error, t.line);
      return Value::boolean(test(t.name, v, args));
    }
    case ExprKind::Not: return Value::boolean(!truthy(eval(*static_cast<const UnaryExpr&>(e).operand, scope)));
    case ExprKind::Neg:
    case ExprKind::Pos: {
      Value v = eval(*static_cast<const UnaryExpr&>(e).operand, scope);
      line_ = e.line;
      return unary_minus(v, e.kind == ExprKind::Neg);
    }
    case ExprKind::And:
    case ExprKind::Or: {  // Python's and/or return an operand, not a bool
      const auto& b = static_cast<const BinaryExpr&>(e);
      Value l = eval(*b.left, scope);
      if (truthy(l) == (e.kind == ExprKind::Or)) return l;
      return eval(*b.right, scope);
    }
    case ExprKind::Binary: {
      const auto& b = static_cast<const BinaryExpr&>(e);
      Value l = eval(*b.left, scope);
      Value r = eval(*b.right, scope);
      line_ = e.line;
      return binary_op(*this, b.op, l, r);
    }
    case ExprKind::Concat: {
      std::string s;
      for (const auto& p : static_cast<const ConcatExpr&>(e).parts) {
        s += to_str(eval(*p, scope));
        check_size(s.size());
      }
      return Value::string(std::move(s));
    }
    case ExprKind::Compare: return eval_compare(static_cast<const CompareExpr&>(e), scope);
    case ExprKind::CondExpr: {
      const auto& c = static_cast<const CondExpr&>(e);
      if (truthy(eval(*c.test, scope))) return eval(*c.then, scope);
      if (c.otherwise) return eval(*c.otherwise, scope);
      if (const_mode_) fail("not constant");  // jinja2's CondExpr.as_const: Impossible
      return Value::undef("the inline if-expression on line " + std::to_string(e.line) +
                          " evaluated to false and no else section was defined.");
    }
    case ExprKind::ListLit:
    case ExprKind::TupleLit: {
      std::vector<Value> items;
      for (const auto& p : static_cast<const SeqLitExpr&>(e).items) items.push_back(eval(*p, scope));
      return Value::list(std::move(items), e.kind == ExprKind::ListLit ? ListKind::List : ListKind::Tuple);
    }
    case ExprKind::DictLit: {
      Value d = Value::dict();
      for (const auto& kv : static_cast<const DictLitExpr&>(e).items) {
        Value k = eval(*kv.first, scope);
        Value v = eval(*kv.second, scope);
        line_ = e.line;
        if (!py_hashable(k)) fail("unhashable type: '" + type_name(k) + "'");
        d.d().set(k, std::move(v));
      }
      return d;
    }
  }
  fail("unknown expression");
}

}  // namespace strata::jinja
