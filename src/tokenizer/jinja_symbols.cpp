// jinja2's compile-time symbol analysis (idtracking.py), transcribed to find which names each
// frame (template, loop body, macro, set/filter/with block...) starts with as "missing": names
// the frame assigns whose first reference is that assignment and that no enclosing frame knows.
// jinja2 compiles them to a local that reads as Undefined until assigned, so e.g. inside
// `{% set x %}...{% endset %}` the body sees x as undefined even when the context has an x, and
// a macro reading a top-level name that the template assigns later sees it undefined.
// Everything else resolves outward through the scope chain, which the interpreter does anyway.
#include <map>
#include <set>

#include "tokenizer/jinja_ast.h"

namespace strata::jinja {

namespace {

enum class Load { Param, Resolve, Alias, Undefined };

struct Symbols {
  const Symbols* parent = nullptr;
  std::map<std::string, Load> refs;
  std::set<std::string> stores;

  bool find_ref(const std::string& n) const {
    for (const Symbols* s = this; s; s = s->parent)
      if (s->refs.count(n)) return true;
    return false;
  }
  void load(const std::string& n) {
    if (!find_ref(n)) refs[n] = Load::Resolve;
  }
  void store(const std::string& n) {
    stores.insert(n);
    if (refs.count(n)) return;
    refs[n] = (parent && parent->find_ref(n)) ? Load::Alias : Load::Undefined;
  }
  void param(const std::string& n) {
    stores.insert(n);
    refs[n] = Load::Param;
  }
  void branch_update(const std::vector<Symbols>& branches) {
    std::set<std::string> branch_stores;
    for (const auto& b : branches) branch_stores.insert(b.stores.begin(), b.stores.end());
    for (const auto& n : stores) branch_stores.erase(n);
    for (const auto& b : branches) {
      for (const auto& kv : b.refs) refs[kv.first] = kv.second;
      stores.insert(b.stores.begin(), b.stores.end());
    }
    for (const auto& n : branch_stores) refs[n] = (parent && parent->find_ref(n)) ? Load::Alias : Load::Resolve;
  }
  Names missing() const {
    Names out;
    for (const auto& kv : refs)
      if (kv.second == Load::Undefined) out.push_back({kv.first, Value::undef("'" + kv.first + "' is undefined")});
    return out;
  }
};

// A frame still to analyse once its parent is complete (jinja2 analyses a nested frame when
// the code generator enters it, after the enclosing frame's analysis is finished).
struct Pending {
  enum Kind { ForBody, ForElse, Macro, AssignBlock, FilterBlock, With, Scope } kind;
  Stmt* stmt = nullptr;
  MacroDef* macro = nullptr;
};

class Analyzer {
 public:
  // FrameSymbolVisitor over one frame's statements; nested frames are queued in `pending`.
  void stmts(const Body& body, Symbols& sym, std::vector<Pending>& pending) {
    for (const auto& s : body) stmt(*s, sym, pending);
  }

  void frame(Pending p, const Symbols* parent) {
    Symbols sym;
    sym.parent = parent;
    std::vector<Pending> pending;
    switch (p.kind) {
      case Pending::ForBody: {
        auto& f = static_cast<ForStmt&>(*p.stmt);
        target(f.target, sym, /*as_param=*/true);
        sym.param("loop");
        stmts(f.body, sym, pending);
        f.body_missing = sym.missing();
        break;
      }
      case Pending::ForElse: {
        auto& f = static_cast<ForStmt&>(*p.stmt);
        stmts(f.else_body, sym, pending);
        f.else_missing = sym.missing();
        break;
      }
      case Pending::Macro: {
        MacroDef& d = *p.macro;
        for (const auto& n : d.params) sym.param(n);
        for (const auto& e : d.defaults) expr(e.get(), sym);
        if (d.uses_caller) sym.param("caller");
        if (d.uses_kwargs) sym.param("kwargs");
        if (d.uses_varargs) sym.param("varargs");
        stmts(d.body, sym, pending);
        d.missing = sym.missing();
        break;
      }
      case Pending::AssignBlock: {
        auto& a = static_cast<AssignBlockStmt&>(*p.stmt);
        stmts(a.body, sym, pending);
        a.body_missing = sym.missing();
        break;
      }
      case Pending::FilterBlock: {
        auto& f = static_cast<FilterBlockStmt&>(*p.stmt);
        expr(f.filter.get(), sym);
        stmts(f.body, sym, pending);
        f.body_missing = sym.missing();
        break;
      }
      case Pending::With: {
        auto& w = static_cast<WithStmt&>(*p.stmt);
        for (auto& a : w.assigns) target(a.first, sym, /*as_param=*/true);
        stmts(w.body, sym, pending);
        w.body_missing = sym.missing();
        break;
      }
      case Pending::Scope: {
        auto& sc = static_cast<ScopeStmt&>(*p.stmt);
        stmts(sc.body, sym, pending);
        sc.body_missing = sym.missing();
        break;
      }
    }
    for (auto& q : pending) frame(q, &sym);
  }

  void root(Template& t) {
    Symbols sym;
    std::vector<Pending> pending;
    stmts(t.body, sym, pending);
    t.missing = sym.missing();
    for (auto& q : pending) frame(q, &sym);
  }

 private:
  void target(const Target& t, Symbols& sym, bool as_param) {
    switch (t.kind) {
      case Target::Name:
        if (as_param)
          sym.param(t.name);
        else
          sym.store(t.name);
        return;
      case Target::NsAttr: sym.load(t.name); return;
      case Target::Tuple:
        for (const auto& i : t.items) target(i, sym, as_param);
        return;
    }
  }

  void site(const CallSite& c, Symbols& sym) {
    for (const auto& a : c.args) expr(a.get(), sym);
    for (const auto& kv : c.kwargs) expr(kv.second.get(), sym);
    expr(c.dyn_args.get(), sym);
    expr(c.dyn_kwargs.get(), sym);
  }

  void expr(const Expr* e, Symbols& sym) {
    if (!e) return;
    switch (e->kind) {
      case ExprKind::Name: sym.load(static_cast<const NameExpr*>(e)->name); return;
      case ExprKind::Const: return;
      case ExprKind::Getattr: expr(static_cast<const GetattrExpr*>(e)->obj.get(), sym); return;
      case ExprKind::Getitem: {
        auto* g = static_cast<const GetitemExpr*>(e);
        expr(g->obj.get(), sym);
        expr(g->index.get(), sym);
        return;
      }
      case ExprKind::Slice: {
        auto* s = static_cast<const SliceExpr*>(e);
        expr(s->start.get(), sym);
        expr(s->stop.get(), sym);
        expr(s->step.get(), sym);
        return;
      }
      case ExprKind::Call: {
        auto* c = static_cast<const CallExpr*>(e);
        expr(c->callee.get(), sym);
        site(c->site, sym);
        return;
      }
      case ExprKind::Filter: {
        auto* f = static_cast<const FilterExpr*>(e);
        expr(f->arg.get(), sym);
        site(f->site, sym);
        return;
      }
      case ExprKind::Test: {
        auto* t = static_cast<const TestExpr*>(e);
        expr(t->arg.get(), sym);
        site(t->site, sym);
        return;
      }
      case ExprKind::Not:
      case ExprKind::Neg:
      case ExprKind::Pos: expr(static_cast<const UnaryExpr*>(e)->operand.get(), sym); return;
      case ExprKind::Binary:
      case ExprKind::And:
      case ExprKind::Or: {
        auto* b = static_cast<const BinaryExpr*>(e);
        expr(b->left.get(), sym);
        expr(b->right.get(), sym);
        return;
      }
      case ExprKind::Concat:
        for (const auto& p : static_cast<const ConcatExpr*>(e)->parts) expr(p.get(), sym);
        return;
      case ExprKind::Compare: {
        auto* c = static_cast<const CompareExpr*>(e);
        expr(c->first.get(), sym);
        for (const auto& o : c->ops) expr(o.second.get(), sym);
        return;
      }
      case ExprKind::CondExpr: {
        auto* c = static_cast<const CondExpr*>(e);
        expr(c->test.get(), sym);
        expr(c->then.get(), sym);
        expr(c->otherwise.get(), sym);
        return;
      }
      case ExprKind::ListLit:
      case ExprKind::TupleLit:
        for (const auto& p : static_cast<const SeqLitExpr*>(e)->items) expr(p.get(), sym);
        return;
      case ExprKind::DictLit:
        for (const auto& kv : static_cast<const DictLitExpr*>(e)->items) {
          expr(kv.first.get(), sym);
          expr(kv.second.get(), sym);
        }
        return;
    }
  }

  void stmt(Stmt& s, Symbols& sym, std::vector<Pending>& pending) {
    switch (s.kind) {
      case StmtKind::Text:
      case StmtKind::Break:
      case StmtKind::Continue: return;
      case StmtKind::Print: expr(static_cast<PrintStmt&>(s).expr.get(), sym); return;
      case StmtKind::If: {
        auto& f = static_cast<IfStmt&>(s);
        expr(f.branches[0].first.get(), sym);
        // body, the elif chain, else: each on a copy, merged by branch_update
        std::vector<Symbols> branches;
        branches.push_back(sym);
        stmts(f.branches[0].second, branches.back(), pending);
        Symbols elifs = sym;
        for (size_t k = 1; k < f.branches.size(); k++) {
          expr(f.branches[k].first.get(), elifs);
          std::vector<Symbols> inner{elifs};
          stmts(f.branches[k].second, inner.back(), pending);
          inner.push_back(elifs);  // an elif node has empty elif/else lists
          inner.push_back(elifs);
          elifs.branch_update(inner);
        }
        branches.push_back(elifs);
        branches.push_back(sym);
        stmts(f.else_body, branches.back(), pending);
        sym.branch_update(branches);
        return;
      }
      case StmtKind::For: {
        auto& f = static_cast<ForStmt&>(s);
        expr(f.iter.get(), sym);
        pending.push_back({Pending::ForBody, &s, nullptr});
        if (!f.else_body.empty()) pending.push_back({Pending::ForElse, &s, nullptr});
        return;
      }
      case StmtKind::Assign: {
        auto& a = static_cast<AssignStmt&>(s);
        expr(a.value.get(), sym);
        target(a.target, sym, false);
        return;
      }
      case StmtKind::AssignBlock: {
        auto& a = static_cast<AssignBlockStmt&>(s);
        target(a.target, sym, false);
        pending.push_back({Pending::AssignBlock, &s, nullptr});
        return;
      }
      case StmtKind::Macro: {
        auto& m = static_cast<MacroStmt&>(s);
        sym.store(m.def->name);
        pending.push_back({Pending::Macro, &s, m.def.get()});
        return;
      }
      case StmtKind::CallBlock: {
        auto& c = static_cast<CallBlockStmt&>(s);
        expr(c.call.get(), sym);
        pending.push_back({Pending::Macro, &s, c.caller.get()});
        return;
      }
      case StmtKind::FilterBlock: {
        auto& f = static_cast<FilterBlockStmt&>(s);
        expr(f.filter.get(), sym);
        pending.push_back({Pending::FilterBlock, &s, nullptr});
        return;
      }
      case StmtKind::With: {
        auto& w = static_cast<WithStmt&>(s);
        for (auto& a : w.assigns) expr(a.second.get(), sym);
        pending.push_back({Pending::With, &s, nullptr});
        return;
      }
      case StmtKind::Scope: pending.push_back({Pending::Scope, &s, nullptr}); return;
    }
  }
};

}  // namespace

void analyze_symbols(Template& t) { Analyzer().root(t); }

}  // namespace strata::jinja
