// Python semantics of Jinja values (see jinja_value.h): str/repr, equality and ordering,
// truthiness, iteration, and json.dumps exactly as transformers' tojson filter calls it.
// Not the operators (jinja_ops.cpp) nor the filters (jinja_filters.cpp).
#include "tokenizer/jinja_value.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "tokenizer/jinja_unicode.h"

namespace strata::jinja {

// ---- Object defaults -------------------------------------------------------------------------
bool Object::get_attr(const std::string&, Value&) const { return false; }
bool Object::set_attr(const std::string&, const Value&) { return false; }
Value Object::call(Interp&, CallArgs&) { fail("'" + type_name() + "' object is not callable"); }
std::string Object::repr() const {
  unsupported("cannot print a " + type_name() + " object (its Python repr holds a memory address)");
}

// ---- Value construction and access ----------------------------------------------------------
Value Value::undef(std::string hint, bool unsafe) {
  Value v;
  if (!hint.empty() || unsafe) {
    auto u = std::make_shared<UndefObj>();
    u->hint = std::move(hint);
    u->unsafe = unsafe;
    v.p_ = std::move(u);
  }
  return v;
}
Value Value::none() {
  Value v;
  v.kind_ = Kind::None;
  return v;
}
Value Value::boolean(bool b) {
  Value v;
  v.kind_ = Kind::Bool;
  v.b_ = b;
  return v;
}
Value Value::integer(int64_t i) {
  Value v;
  v.kind_ = Kind::Int;
  v.i_ = i;
  return v;
}
Value Value::number(double f) {
  Value v;
  v.kind_ = Kind::Float;
  v.f_ = f;
  return v;
}
Value Value::string(std::string s) {
  Value v;
  v.kind_ = Kind::String;
  auto o = std::make_shared<StrObj>();
  o->s = std::move(s);
  v.p_ = std::move(o);
  return v;
}
Value Value::list(std::vector<Value> items, ListKind kind) {
  Value v;
  v.kind_ = Kind::List;
  auto o = std::make_shared<ListObj>();
  o->items = std::move(items);
  o->kind = kind;
  v.p_ = std::move(o);
  return v;
}
Value Value::dict() {
  Value v;
  v.kind_ = Kind::Dict;
  v.p_ = std::make_shared<DictObj>();
  return v;
}
Value Value::object(std::shared_ptr<Object> o) {
  Value v;
  v.kind_ = Kind::Object;
  v.p_ = std::move(o);
  return v;
}

const std::string& Value::s() const { return static_cast<const StrObj*>(p_.get())->s; }
ListObj& Value::l() const { return *static_cast<ListObj*>(p_.get()); }
DictObj& Value::d() const { return *static_cast<DictObj*>(p_.get()); }
Object& Value::o() const { return *static_cast<Object*>(p_.get()); }
std::shared_ptr<Object> Value::obj_ptr() const { return std::static_pointer_cast<Object>(p_); }
std::string Value::undef_hint() const {
  return kind_ == Kind::Undefined && p_ ? static_cast<const UndefObj*>(p_.get())->hint : std::string();
}
bool Value::undef_unsafe() const {
  return kind_ == Kind::Undefined && p_ && static_cast<const UndefObj*>(p_.get())->unsafe;
}

// ---- dict -------------------------------------------------------------------------------------
const Value* DictObj::find(const Value& key) const {
  if (key.is_string()) return find(key.s());
  for (const auto& kv : items)
    if (py_eq(kv.first, key)) return &kv.second;
  return nullptr;
}
const Value* DictObj::find(const std::string& key) const {
  for (const auto& kv : items)
    if (kv.first.is_string() && kv.first.s() == key) return &kv.second;
  return nullptr;
}
void DictObj::set(const Value& key, Value v) {
  for (auto& kv : items)
    if (py_eq(kv.first, key)) {
      kv.second = std::move(v);
      return;
    }
  items.emplace_back(key, std::move(v));
}

// ---- Python semantics ---------------------------------------------------------------------------
std::string type_name(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined: return "Undefined";
    case Kind::None: return "NoneType";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::String: return "str";
    case Kind::Dict: return "dict";
    case Kind::Object: return v.o().type_name();
    case Kind::List:
      switch (v.l().kind) {
        case ListKind::List: return "list";
        case ListKind::Tuple: return "tuple";
        case ListKind::DictKeys: return "dict_keys";
        case ListKind::DictValues: return "dict_values";
        case ListKind::DictItems: return "dict_items";
        case ListKind::Generator: return "generator";
        case ListKind::Range: return "range";
      }
  }
  return "object";
}

bool truthy(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined:
    case Kind::None: return false;
    case Kind::Bool: return v.b();
    case Kind::Int: return v.i() != 0;
    case Kind::Float: return v.f() != 0.0;
    case Kind::String: return !v.s().empty();
    case Kind::List: return v.l().kind == ListKind::Generator || !v.l().items.empty();
    case Kind::Dict: return !v.d().items.empty();
    case Kind::Object: return true;
  }
  return false;
}

namespace {

void repr_into(std::string& out, const Value& v, int depth);

void seq_repr(std::string& out, const std::vector<Value>& items, const char* open, const char* close,
              int depth, bool one_tuple) {
  out += open;
  for (size_t k = 0; k < items.size(); k++) {
    if (k) out += ", ";
    repr_into(out, items[k], depth + 1);
  }
  if (one_tuple && items.size() == 1) out += ",";
  out += close;
}

void repr_into(std::string& out, const Value& v, int depth) {
  if (depth > 200) fail("maximum recursion depth exceeded while getting the repr of an object");
  switch (v.kind()) {
    case Kind::Undefined: out += "Undefined"; return;
    case Kind::String: out += py_str_repr(v.s()); return;
    case Kind::Dict: {
      out += "{";
      const auto& items = v.d().items;
      for (size_t k = 0; k < items.size(); k++) {
        if (k) out += ", ";
        repr_into(out, items[k].first, depth + 1);
        out += ": ";
        repr_into(out, items[k].second, depth + 1);
      }
      out += "}";
      return;
    }
    case Kind::List: {
      const ListObj& l = v.l();
      switch (l.kind) {
        case ListKind::List: seq_repr(out, l.items, "[", "]", depth, false); return;
        case ListKind::Tuple: seq_repr(out, l.items, "(", ")", depth, true); return;
        case ListKind::DictKeys: seq_repr(out, l.items, "dict_keys([", "])", depth, false); return;
        case ListKind::DictValues: seq_repr(out, l.items, "dict_values([", "])", depth, false); return;
        case ListKind::DictItems: seq_repr(out, l.items, "dict_items([", "])", depth, false); return;
        case ListKind::Range: {
          out += "range(" + std::to_string(l.r_start) + ", " + std::to_string(l.r_stop);
          if (l.r_step != 1) out += ", " + std::to_string(l.r_step);
          out += ")";
          return;
        }
        case ListKind::Generator:
          unsupported("cannot print a generator object (its Python repr holds a memory address); add |list");
      }
      return;
    }
    default: out += to_str(v); return;
  }
}

// Exact comparison of two Python numbers (int vs float compares exactly, as Python does).
int num_cmp(const Value& a, const Value& b) {
  if (a.is_integral() && b.is_integral()) return a.i() < b.i() ? -1 : a.i() > b.i() ? 1 : 0;
  long double x = a.is_float() ? (long double)a.f() : (long double)a.i();
  long double y = b.is_float() ? (long double)b.f() : (long double)b.i();
  if (std::isnan(x) || std::isnan(y)) return 2;  // unordered
  return x < y ? -1 : x > y ? 1 : 0;
}


}  // namespace

std::string to_str(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined: return "";  // jinja2's Undefined prints as nothing
    case Kind::None: return "None";
    case Kind::Bool: return v.b() ? "True" : "False";
    case Kind::Int: return std::to_string(v.i());
    case Kind::Float: return py_float_repr(v.f());
    case Kind::String: return v.s();
    case Kind::Object: return v.o().repr();
    default: {
      std::string out;
      repr_into(out, v, 0);
      return out;
    }
  }
}

std::string to_repr(const Value& v) {
  std::string out;
  repr_into(out, v, 0);
  return out;
}

bool py_eq(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return num_cmp(a, b) == 0;
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::Undefined:
    case Kind::None: return true;
    case Kind::String: return a.s() == b.s();
    case Kind::Object: return &a.o() == &b.o();
    case Kind::Dict: {
      const auto& x = a.d().items;
      const auto& y = b.d();
      if (x.size() != y.items.size()) return false;
      for (const auto& kv : x) {
        const Value* o = y.find(kv.first);
        if (!o || !py_eq(kv.second, *o)) return false;
      }
      return true;
    }
    case Kind::List: {
      const ListObj& x = a.l();
      const ListObj& y = b.l();
      if (x.kind == ListKind::Generator || y.kind == ListKind::Generator || x.kind == ListKind::DictValues)
        return &x == &y;
      if (x.kind != y.kind) return false;
      if (x.items.size() != y.items.size()) return false;
      if (x.kind == ListKind::DictKeys || x.kind == ListKind::DictItems) {  // set semantics
        for (const Value& e : x.items) {
          bool found = false;
          for (const Value& f : y.items) found = found || py_eq(e, f);
          if (!found) return false;
        }
        return true;
      }
      for (size_t k = 0; k < x.items.size(); k++)
        if (!py_eq(x.items[k], y.items[k])) return false;
      return true;
    }
    default: return false;
  }
}

bool py_lt(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return num_cmp(a, b) == -1;
  if (a.is_string() && b.is_string()) return a.s() < b.s();  // UTF-8 byte order == code point order
  if (a.is_list() && b.is_list() && a.l().kind == b.l().kind &&
      (a.l().kind == ListKind::List || a.l().kind == ListKind::Tuple)) {
    const auto& x = a.l().items;
    const auto& y = b.l().items;
    for (size_t k = 0; k < x.size() && k < y.size(); k++)
      if (!py_eq(x[k], y[k])) return py_lt(x[k], y[k]);
    return x.size() < y.size();
  }
  if (a.is_undefined() || b.is_undefined()) fail((a.is_undefined() ? a : b).undef_hint());
  fail("'<' not supported between instances of '" + type_name(a) + "' and '" + type_name(b) + "'");
}

bool py_hashable(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined:  // jinja2's Undefined defines __hash__
    case Kind::None:
    case Kind::Bool:
    case Kind::Int:
    case Kind::Float:
    case Kind::String: return true;
    case Kind::Object: return true;  // identity hash
    case Kind::List:
      if (v.l().kind == ListKind::Range || v.l().kind == ListKind::Generator || v.l().kind == ListKind::DictValues)
        return true;
      if (v.l().kind != ListKind::Tuple) return false;
      for (const Value& e : v.l().items)
        if (!py_hashable(e)) return false;
      return true;
    default: return false;
  }
}

int64_t py_len(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined: return 0;
    case Kind::String: return int64_t(utf8_length(v.s()));
    case Kind::Dict: return int64_t(v.d().items.size());
    case Kind::List:
      if (v.l().kind == ListKind::Generator) fail("object of type 'generator' has no len()");
      return int64_t(v.l().items.size());
    default: fail("object of type '" + type_name(v) + "' has no len()");
  }
}

std::vector<Value> py_iter(const Value& v) {
  switch (v.kind()) {
    case Kind::Undefined:
      if (v.undef_unsafe()) fail(v.undef_hint());
      return {};
    case Kind::String: {
      std::vector<Value> out;
      for (char32_t c : utf8_decode(v.s())) {
        std::string s;
        utf8_append(s, c);
        out.push_back(Value::string(std::move(s)));
      }
      return out;
    }
    case Kind::Dict: {
      std::vector<Value> out;
      out.reserve(v.d().items.size());
      for (const auto& kv : v.d().items) out.push_back(kv.first);
      return out;
    }
    case Kind::List: {
      ListObj& l = v.l();
      if (l.kind == ListKind::Generator) {
        std::vector<Value> rest(l.items.begin() + long(l.pos), l.items.end());
        l.pos = l.items.size();
        if (!l.pending_error.empty()) throw ValueError(l.pending_error, l.pending_unsupported);
        return rest;
      }
      return l.items;
    }
    default: fail("'" + type_name(v) + "' object is not iterable");
  }
}

bool py_contains(const Value& c, const Value& item) {
  switch (c.kind()) {
    case Kind::Undefined: return false;
    case Kind::String:
      if (!item.is_string())
        fail("'in <string>' requires string as left operand, not " + type_name(item));
      return c.s().find(item.s()) != std::string::npos;
    case Kind::Dict:
      if (!py_hashable(item)) fail("unhashable type: '" + type_name(item) + "'");
      return c.d().find(item) != nullptr;
    case Kind::List: {
      ListObj& l = c.l();
      if (l.kind == ListKind::Generator) {  // consumes up to the match, like Python
        while (l.pos < l.items.size())
          if (py_eq(l.items[l.pos++], item)) return true;
        if (!l.pending_error.empty()) throw ValueError(l.pending_error, l.pending_unsupported);
        return false;
      }
      for (const Value& e : l.items)
        if (py_eq(e, item)) return true;
      return false;
    }
    default: fail("argument of type '" + type_name(c) + "' is not iterable");
  }
}

// ---- JSON ---------------------------------------------------------------------------------------
namespace {

template <class J>
Value from_json_impl(const J& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null: return Value::none();
    case nlohmann::json::value_t::boolean: return Value::boolean(j.template get<bool>());
    case nlohmann::json::value_t::number_integer: return Value::integer(j.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      uint64_t u = j.template get<uint64_t>();
      if (u > uint64_t(INT64_MAX)) throw strata::Error("JSON integer " + std::to_string(u) + " is too large");
      return Value::integer(int64_t(u));
    }
    case nlohmann::json::value_t::number_float: return Value::number(j.template get<double>());
    case nlohmann::json::value_t::string: return Value::string(j.template get<std::string>());
    case nlohmann::json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json_impl(e));
      return Value::list(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      Value d = Value::dict();
      d.d().items.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it)
        d.d().items.emplace_back(Value::string(it.key()), from_json_impl(it.value()));
      return d;
    }
    default: throw strata::Error("unsupported JSON value (binary or discarded)");
  }
}

void json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  char buf[16];
  auto esc = [&](unsigned c) {
    std::snprintf(buf, sizeof buf, "\\u%04x", c);
    out += buf;
  };
  for (char32_t c : utf8_decode(s)) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          esc(unsigned(c));
        } else if (ensure_ascii && c > 0x7E) {
          if (c >= 0x10000) {
            char32_t v = c - 0x10000;
            esc(0xD800 | unsigned(v >> 10));
            esc(0xDC00 | unsigned(v & 0x3FF));
          } else {
            esc(unsigned(c));
          }
        } else {
          utf8_append(out, c);
        }
    }
  }
  out += '"';
}

std::string json_float(double f) {
  if (std::isnan(f)) return "NaN";
  if (std::isinf(f)) return f > 0 ? "Infinity" : "-Infinity";
  return py_float_repr(f);
}

std::string json_key(const Value& k) {
  switch (k.kind()) {
    case Kind::String: return k.s();
    case Kind::Bool: return k.b() ? "true" : "false";
    case Kind::None: return "null";
    case Kind::Int: return std::to_string(k.i());
    case Kind::Float: return json_float(k.f());
    default: fail("keys must be str, int, float, bool or None, not " + type_name(k));
  }
}

void json_into(std::string& out, const Value& v, const JsonOptions& o, int level) {
  if (level > 500) fail("maximum recursion depth exceeded while encoding a JSON object");
  const std::string item_sep = o.has_separators ? o.item_sep : (o.has_indent ? "," : ", ");
  const std::string key_sep = o.has_separators ? o.key_sep : ": ";
  auto newline = [&](int lv) {
    if (!o.has_indent) return;
    out += '\n';
    for (int k = 0; k < lv; k++) out += o.indent;
  };
  switch (v.kind()) {
    case Kind::None: out += "null"; return;
    case Kind::Bool: out += v.b() ? "true" : "false"; return;
    case Kind::Int: out += std::to_string(v.i()); return;
    case Kind::Float: out += json_float(v.f()); return;
    case Kind::String: json_string(out, v.s(), o.ensure_ascii); return;
    case Kind::List: {
      const ListObj& l = v.l();
      if (l.kind != ListKind::List && l.kind != ListKind::Tuple)
        fail("Object of type " + type_name(v) + " is not JSON serializable");
      if (l.items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      newline(level + 1);
      for (size_t k = 0; k < l.items.size(); k++) {
        if (k) {
          out += item_sep;
          newline(level + 1);
        }
        json_into(out, l.items[k], o, level + 1);
      }
      newline(level);
      out += ']';
      return;
    }
    case Kind::Dict: {
      const auto& items = v.d().items;
      if (items.empty()) {
        out += "{}";
        return;
      }
      std::vector<size_t> order(items.size());
      for (size_t k = 0; k < order.size(); k++) order[k] = k;
      if (o.sort_keys)
        std::stable_sort(order.begin(), order.end(),
                         [&](size_t x, size_t y) { return py_lt(items[x].first, items[y].first); });
      out += '{';
      newline(level + 1);
      bool first = true;
      for (size_t k : order) {
        if (!first) {
          out += item_sep;
          newline(level + 1);
        }
        first = false;
        json_string(out, json_key(items[k].first), o.ensure_ascii);
        out += key_sep;
        json_into(out, items[k].second, o, level + 1);
      }
      newline(level);
      out += '}';
      return;
    }
    default: fail("Object of type " + type_name(v) + " is not JSON serializable");
  }
}

}  // namespace

Value from_json(const nlohmann::ordered_json& j) { return from_json_impl(j); }
Value from_json(const nlohmann::json& j) { return from_json_impl(j); }

std::string to_json(const Value& v, const JsonOptions& opt) {
  std::string out;
  json_into(out, v, opt, 0);
  return out;
}

}  // namespace strata::jinja
