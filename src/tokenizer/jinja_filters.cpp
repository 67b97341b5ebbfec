// jinja2's builtin filters and tests, transcribed from jinja2 3.1's filters.py/tests.py with
// transformers' tojson (json.dumps with ensure_ascii=False, indent, separators, sort_keys).
// Filters that jinja2 returns as generators (map, select, items, unique, reverse...) return
// one-shot generator values here too, so `|length` on them fails as it does in Python.
// Not implemented (parse-time "unsupported" errors): escape/safe/forceescape (Markup), groupby,
// slice, striptags, urlize, urlencode, wordwrap, xmlattr, filesizeformat, pprint, random.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <functional>
#include <unordered_map>

#include "tokenizer/jinja_interp.h"
#include "tokenizer/jinja_parser.h"
#include "tokenizer/jinja_unicode.h"

namespace strata::jinja {

namespace {

using FilterFn = Value (*)(Interp&, const Value&, CallArgs&);
using TestFn = bool (*)(Interp&, const Value&, CallArgs&);

Value generator(std::vector<Value> items) { return Value::list(std::move(items), ListKind::Generator); }

// jinja2's generator filters (items, map, select..., unique, batch) run their body lazily: an
// error surfaces only when iteration reaches it. `fill` computes the items eagerly; an error
// it raises is kept in the generator and raised after the items produced before it.
Value lazy_generator(const std::function<void(std::vector<Value>&)>& fill) {
  std::vector<Value> items;
  std::string err;
  bool unsup = false;
  try {
    fill(items);
  } catch (const ValueError& e) {
    err = e.what();
    unsup = e.unsupported();
    if (err.empty()) err = "error";
  }
  Value g = generator(std::move(items));
  g.l().pending_error = err;
  g.l().pending_unsupported = unsup;
  return g;
}

Value ignore_case(const Value& v) { return v.is_string() ? Value::string(py_lower(v.s())) : v; }

// jinja2's _prepare_attribute_parts: "a.0.b" -> ["a", 0, "b"].
std::vector<Value> attribute_parts(const Value& attr) {
  std::vector<Value> parts;
  if (attr.is_none()) return parts;
  if (!attr.is_string()) return {attr};
  size_t p = 0;
  const std::string& s = attr.s();
  for (;;) {
    size_t q = s.find('.', p);
    std::string part = s.substr(p, q == std::string::npos ? std::string::npos : q - p);
    bool digits = !part.empty() && part.find_first_not_of("0123456789") == std::string::npos;
    parts.push_back(digits ? Value::integer(std::stoll(part)) : Value::string(part));
    if (q == std::string::npos) break;
    p = q + 1;
  }
  return parts;
}

// jinja2's make_attrgetter.
std::function<Value(const Value&)> attrgetter(Interp& in, const Value& attr, bool lower, const Value& dflt) {
  std::vector<Value> parts = attribute_parts(attr);
  return [&in, parts, lower, dflt](const Value& item) {
    Value v = item;
    for (const Value& p : parts) {
      v = in.getitem(v, p);
      if (!dflt.is_none() && v.is_undefined()) v = dflt;
    }
    return lower ? ignore_case(v) : v;
  };
}

// sorted(..., reverse=x) takes only an int/bool.
bool reverse_flag(const Value& v) {
  if (!v.is_integral()) fail("'" + type_name(v) + "' object cannot be interpreted as an integer");
  return v.i() != 0;
}

int64_t need_int(const Value& v, const char* what) {
  if (!v.is_integral()) fail(std::string(what) + " must be an integer, not " + type_name(v));
  return v.i();
}

// ---- filters ----------------------------------------------------------------------------------------
Value f_abs(Interp&, const Value& v, CallArgs& a) {
  ArgBinder b("abs", a, {});
  if (v.is_integral()) {
    if (v.i() == INT64_MIN) unsupported("abs() overflows 64 bits");
    return Value::integer(v.i() < 0 ? -v.i() : v.i());
  }
  if (v.is_float()) return Value::number(std::fabs(v.f()));
  if (v.is_undefined()) undefined_error(v);
  fail("bad operand type for abs(): '" + type_name(v) + "'");
}

Value f_attr(Interp& in, const Value& v, CallArgs& a) {
  ArgBinder b("attr", a, {"name"});
  std::string name = to_str(b.get(0));
  if (v.is_undefined()) undefined_error(v);
  if (v.is_object()) {
    Value out;
    if (v.o().get_attr(name, out)) return out;
  } else if (name.rfind("__", 0) == 0) {
    return Value::undef("access to attribute '" + name + "' of '" + type_name(v) + "' object is unsafe.", true);
  } else if (auto m = method_attr(v, name)) {
    return *m;
  }
  (void)in;
  return Value::undef("'" + type_name(v) + " object' has no attribute '" + name + "'");
}

Value f_batch(Interp&, const Value& v, CallArgs& a) {
  ArgBinder b("batch", a, {"linecount", "fill_with"});
  const Value count = b.get(0);
  const Value fill = b.get_or(1, Value::none());
  return lazy_generator([&](std::vector<Value>& out) {
    int64_t n = need_int(count, "linecount");
    std::vector<Value> tmp;
    for (Value& item : py_iter(v)) {
      if (int64_t(tmp.size()) == n) {
        out.push_back(Value::list(std::move(tmp)));
        tmp.clear();
      }
      tmp.push_back(std::move(item));
    }
    if (!tmp.empty()) {
      if (!fill.is_none())
        while (int64_t(tmp.size()) < n) tmp.push_back(fill);
      out.push_back(Value::list(std::move(tmp)));
    }
  });
}

Value f_capitalize(Interp&, const Value& v, CallArgs& a) {
  ArgBinder b("capitalize", a, {});
  return Value::string(py_capitalize(to_str(v)));
}

Value f_center(Interp& in, const Value& v, CallArgs& a) {
  ArgBinder b("center", a, {"width"});
  CallArgs m;
  m.pos.push_back(b.get_or(0, Value::integer(80)));
  return call_method(in, Value::string(to_str(v)), "center", m);
}

Value f_length(Interp&, const Value& v, CallArgs& a) {
  ArgBinder b("length", a, {});
  return Value::integer(py_len(v));
}

Value f_default(Interp&, const Value& v, CallArgs& a) {
  ArgBinder b("default", a, {"default_value", "boolean"});
  if (v.is_undefined() || (truthy(b.get_or(1, Value::boolean(false))) && !truthy(v)))
    return b.get_or(0, Value::string(""));
  return v;
}

Value f_dictsort(Interp&, const Value& v, CallArgs& a) {
  ArgBinder b("dictsort", a, {"case_sensitive", "by", "reverse"});
  if (v.is_undefined()) undefined_error(v);
  if (!v.is_dict()) fail("'" + type_name(v) + "' object has no attribute 'items'");
  const bool cs = truthy(b.get_or(0, Value::boolean(false)));
  const std::string by = to_str(b.get_or(1, Value::string("key")));
  if (by != "key" && by != "value") fail("You can only sort by either \"key\" or \"value\"");
  const size_t pos = by == "key" ? 0 : 1;
  const bool rev = reverse_flag(b.get_or(2, Value::boolean(false)));
  std::vector<Value> items;
  for (const auto& kv : v.d().items) items.push_back(Value::list({kv.first, kv.second}, ListKind::Tuple));
  auto key = [&](const Value& t) { return cs ? t.l().items[pos] : ignore_case(t.l().items[pos]); };
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    return rev ? py_lt(key(y), key(x)) : py_lt(key(x), key(y));
  });
  return Value::list(std::move(items));
}

Value f_first(Interp&, const Value& v, CallArgs& a) {
  ArgBinder b("first", a, {});
  if (v.is_list() && v.l().kind == ListKind::Generator) {
    ListObj& l = v.l();
    if (l.pos < l.items.size()) return l.items[l.pos++];
    if (!l.pending_error.empty()) throw ValueError(l.pending_error, l.pending_unsupported);
  } else {
    std::vector<Value> items = py_iter(v);
    if (!items.empty()) return items[0];
  }
  return Value::undef("No first item, sequence was empty.");
}

Value f_last(Interp&, const Value& v, CallArgs& a) {
  ArgBinder b("last", a, {});
  if (v.is_list() && v.l().kind == ListKind::Generator) fail("'generator' object is not reversible");
  std::vector<Value> items = py_iter(v);
  if (!items.empty()) return items.back();
  return Value::undef("No last item, sequence was empty.");
}

// Python's float(str): surrounding whitespace, underscores between digits, inf/nan words.
bool parse_py_float(const std::string& raw, double& out) {
  std::string s = py_strip(raw, nullptr, true, true);
  std::string t;
  for (size_t k = 0; k < s.size(); k++) {
    if (s[k] == '_') {
      if (k == 0 || k + 1 >= s.size() || !std::isdigit(static_cast<unsigned char>(s[k - 1])) ||
          !std::isdigit(static_cast<unsigned char>(s[k + 1])))
        return false;
      continue;
    }
    t += s[k];
  }
  std::string low = py_lower(t);
  std::string body = (!low.empty() && (low[0] == '+' || low[0] == '-')) ? low.substr(1) : low;
  if (body == "inf" || body == "infinity" || body == "nan") {
    out = body == "nan" ? NAN : INFINITY;
    if (low[0] == '-') out = -out;
    return true;
  }
  if (body.empty() || body.find_first_not_of("0123456789.e+-") != std::string::npos) return false;
  char* end = nullptr;
  out = std::strtod(t.c_str(), &end);
  return end && *end == 0;
}

// Python's int(str, base) for base 10 (and 0/2/8/16 prefixes).
bool parse_py_int(const std::string& raw, int base, int64_t& out) {
  std::string s = py_strip(raw, nullptr, true, true);
  bool neg = false;
  size_t k = 0;
  if (k < s.size() && (s[k] == '+' || s[k] == '-')) neg = s[k++] == '-';
  std::string digits;
  if (base == 0 || base == 16 || base == 8 || base == 2) {
    if (s.size() >= k + 2 && s[k] == '0') {
      char p = char(std::tolower(static_cast<unsigned char>(s[k + 1])));
      int pb = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
      if (pb && (base == 0 || base == pb)) {
        base = pb;
        k += 2;
        if (k < s.size() && s[k] == '_') k++;
      }
    }
    if (base == 0) base = 10;
  }
  if (base < 2 || base > 36) fail("int() base must be >= 2 and <= 36, or 0");
  for (size_t q = k; q < s.size(); q++) {
    if (s[q] == '_') {
      if (q == k || q + 1 >= s.size() || s[q + 1] == '_') return false;
      continue;
    }
    digits += s[q];
  }
  if (digits.empty()) return false;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(digits.c_str(), &end, base);
  if (!end || *end || digits[0] == '-' || digits[0] == '+' || std::isspace(static_cast<unsigned char>(digits[0])))
    return false;
  if (errno == ERANGE) unsupported("int() result does not fit in 64 bits");
  out = neg ? -v : v;
  return true;
}

Value f_float(Interp&, const Value& v, CallArgs& a) {
  ArgBinder b("float", a, {"default"});
  if (v.is_undefined()) undefined_error(v);  // jinja2's Undefined raises in __float__
  if (v.is_number()) return Value::number(v.f());
  double x;
  if (v.is_string() && parse_py_float(v.s(), x)) return Value::number(x);
  return b.get_or(0, Value::number(0.0));
}

Value f_int(Interp&, const Value& v, CallArgs& a) {
  ArgBinder b("int", a, {"default", "base"});
  Value dflt = b.get_or(0, Value::integer(0));
  const Value base = b.get_or(1, Value::integer(10));
  if (v.is_undefined()) undefined_error(v);  // jinja2's Undefined raises in __int__
  if (v.is_integral()) return Value::integer(v.i());
  auto from_float = [&](double x) -> Value {
    if (std::isnan(x)) return dflt;
    if (std::isinf(x)) fail("cannot convert float infinity to integer");
    if (std::fabs(x) >= 9.2e18) unsupported("int() result does not fit in 64 bits");
    return Value::integer(int64_t(std::trunc(x)));
  };
  if (v.is_float()) return from_float(v.f());
  if (v.is_string()) {
    // int(value, base); a bad base is a TypeError/ValueError that jinja2 swallows like a bad value
    const bool base_ok = base.is_integral() && (base.i() == 0 || (base.i() >= 2 && base.i() <= 36));
    int64_t i;
    if (base_ok && parse_py_int(v.s(), int(base.i()), i)) return Value::integer(i);
    double x;
    if (parse_py_float(v.s(), x)) return from_float(x);  // the "42.23"|int quirk
  }
  return dflt;
}

Value f_format(Interp&, const Value& v, CallArgs& a) {
  if (!a.pos.empty() && !a.kw.empty()) fail("can't handle positional and keyword arguments at the same time");
  if (!a.kw.empty()) {
    Value d = Value::dict();
    for (auto& kv : a.kw) d.d().set(Value::string(kv.first), kv.second);
    return Value::string(format_percent(to_str(v), d));
  }
  return Value::string(format_percent(to_str(v), Value::list(a.pos, ListKind::Tuple)));
}

Value f_indent(Interp& in, const Value& v, CallArgs& a) {
  ArgBinder b("indent", a, {"width", "first", "blank"});
  Value w = b.get_or(0, Value::integer(4));
  std::string ind = w.is_string() ? w.s() : std::string(size_t(std::max<int64_t>(0, need_int(w, "width"))), ' ');
  const bool first = truthy(b.get_or(1, Value::boolean(false)));
  const bool blank = truthy(b.get_or(2, Value::boolean(false)));
  if (!v.is_string()) fail("unsupported operand type(s) for +=: '" + type_name(v) + "' and 'str'");
  CallArgs none;
  Value lines_v = call_method(in, Value::string(v.s() + "\n"), "splitlines", none);
  std::vector<Value>& lines = lines_v.l().items;
  std::string rv;
  if (blank) {
    for (size_t k = 0; k < lines.size(); k++) rv += (k ? "\n" + ind : "") + lines[k].s();
  } else {
    rv = lines.empty() ? "" : lines[0].s();
    for (size_t k = 1; k < lines.size(); k++) rv += "\n" + (lines[k].s().empty() ? "" : ind + lines[k].s());
  }
  if (first) rv = ind + rv;
  return Value::string(rv);
}

Value f_items(Interp&, const Value& v, CallArgs& a) {
  ArgBinder b("items", a, {});
  return lazy_generator([&](std::vector<Value>& out) {
    if (v.is_undefined()) return;
    if (!v.is_dict()) fail("Can only get item pairs from a mapping.");
    for (const auto& kv : v.d().items) out.push_back(Value::list({kv.first, kv.second}, ListKind::Tuple));
  });
}

Value f_join(Interp& in, const Value& v, CallArgs& a) {
  ArgBinder b("join", a, {"d", "attribute"});
  std::string sep = to_str(b.get_or(0, Value::string("")));
  Value attr = b.get_or(1, Value::none());
  auto get = attrgetter(in, attr, false, Value::none());
  std::string out;
  bool first = true;
  for (const Value& item : py_iter(v)) {
    if (!first) out += sep;
    first = false;
    out += to_str(attr.is_none() ? item : get(item));
    in.check_size(out.size());
  }
  return Value::string(std::move(out));
}

Value f_list(Interp&, const Value& v, CallArgs& a) {
  ArgBinder b("list", a, {});
  return Value::list(py_iter(v));
}

Value f_lower(Interp&, const Value& v, CallArgs& a) {
  ArgBinder b("lower", a, {});
  return Value::string(py_lower(to_str(v)));
}

Value f_upper(Interp&, const Value& v, CallArgs& a) {
  ArgBinder b("upper", a, {});
  return Value::string(py_upper(to_str(v)));
}

Value f_map(Interp& in, const Value& v, CallArgs& a) {
  return lazy_generator([&](std::vector<Value>& out) {
    if (!truthy(v)) return;  // jinja2 looks at the arguments only for a non-empty value
    std::function<Value(const Value&)> fn;
    if (a.pos.empty() && !a.kw.empty() && a.kw[0].first == "attribute") {
      Value attr, dflt = Value::none();
      for (auto& kv : a.kw) {
        if (kv.first == "attribute") attr = kv.second;
        else if (kv.first == "default") dflt = kv.second;
        else fail("Unexpected keyword argument '" + kv.first + "'");
      }
      fn = attrgetter(in, attr, false, dflt);
    } else {
      if (a.pos.empty()) fail("map requires a filter argument");
      std::string name = to_str(a.pos[0]);
      if (!is_known_filter(name)) fail("No filter named '" + name + "'");
      CallArgs rest;
      rest.pos.assign(a.pos.begin() + 1, a.pos.end());
      rest.kw = a.kw;
      fn = [&in, name, rest](const Value& item) {
        CallArgs c = rest;
        return in.filter(name, item, c);
      };
    }
    for (const Value& item : py_iter(v)) out.push_back(fn(item));
  });
}

Value min_max(Interp& in, const Value& v, CallArgs& a, bool is_max) {
  ArgBinder b(is_max ? "max" : "min", a, {"case_sensitive", "attribute"});
  const bool cs = truthy(b.get_or(0, Value::boolean(false)));
  auto key = attrgetter(in, b.get_or(1, Value::none()), !cs, Value::none());
  std::vector<Value> items = py_iter(v);
  if (items.empty()) return Value::undef("No aggregated item, sequence was empty.");
  size_t best = 0;
  Value best_key = key(items[0]);
  for (size_t k = 1; k < items.size(); k++) {
    Value kk = key(items[k]);
    if (is_max ? py_lt(best_key, kk) : py_lt(kk, best_key)) best = k, best_key = kk;
  }
  return items[best];
}
Value f_max(Interp& in, const Value& v, CallArgs& a) { return min_max(in, v, a, true); }
Value f_min(Interp& in, const Value& v, CallArgs& a) { return min_max(in, v, a, false); }

// jinja2's select_or_reject (+ the attr variants).
Value select_reject(Interp& in, const Value& v, CallArgs& a, bool keep_if, bool lookup_attr) {
  return lazy_generator([&](std::vector<Value>& out) {
    if (!truthy(v)) return;
    std::function<Value(const Value&)> trans = [](const Value& x) { return x; };
    size_t off = 0;
    if (lookup_attr) {
      if (a.pos.empty()) fail("Missing parameter for attribute name");
      trans = attrgetter(in, a.pos[0], false, Value::none());
      off = 1;
    }
    std::function<bool(const Value&)> pred;
    if (a.pos.size() > off) {
      std::string name = to_str(a.pos[off]);
      if (!is_known_test(name)) fail("No test named '" + name + "'");
      CallArgs rest;
      rest.pos.assign(a.pos.begin() + long(off) + 1, a.pos.end());
      rest.kw = a.kw;
      pred = [&in, name, rest](const Value& x) {
        CallArgs c = rest;
        return in.test(name, x, c);
      };
    } else {
      pred = [](const Value& x) { return truthy(x); };
    }
    for (const Value& item : py_iter(v))
      if (pred(trans(item)) == keep_if) out.push_back(item);
  });
}

Value f_select(Interp& in, const Value& v, CallArgs& a) { return select_reject(in, v, a, true, false); }
Value f_reject(Interp& in, const Value& v, CallArgs& a) { return select_reject(in, v, a, false, false); }
Value f_selectattr(Interp& in, const Value& v, CallArgs& a) { return select_reject(in, v, a, true, true); }
Value f_rejectattr(Interp& in, const Value& v, CallArgs& a) { return select_reject(in, v, a, false, true); }

Value f_replace(Interp& in, const Value& v, CallArgs& a) {
  ArgBinder b("replace", a, {"old", "new", "count"});
  CallArgs m;
  m.pos = {Value::string(to_str(b.get(0))), Value::string(to_str(b.get(1)))};
  Value count = b.get_or(2, Value::none());
  if (!count.is_none()) m.pos.push_back(count);
  return call_method(in, Value::string(to_str(v)), "replace", m);
}

Value f_reverse(Interp&, const Value& v, CallArgs& a) {
  ArgBinder b("reverse", a, {});
  if (v.is_string()) {
    std::u32string cps = utf8_decode(v.s());
    std::reverse(cps.begin(), cps.end());
    return Value::string(utf8_encode(cps));
  }
  if (v.is_undefined()) return generator({});
  if (v.is_list() && v.l().kind == ListKind::Generator) {  // not reversible: list() then reverse
    std::vector<Value> items = py_iter(v);
    std::reverse(items.begin(), items.end());
    return Value::list(std::move(items));
  }
  if (!v.is_list() && !v.is_dict()) fail("argument must be iterable");
  std::vector<Value> items = py_iter(v);
  std::reverse(items.begin(), items.end());
  return generator(std::move(items));  // reversed(...) is an iterator
}

// Python's round(x, n) for floats: correctly rounded through the decimal expansion.
double py_round(double x, int64_t n) {
  if (!std::isfinite(x)) return x;
  if (n >= 0) {
    if (n > 300) return x;
    char buf[512];
    std::snprintf(buf, sizeof buf, "%.*f", int(n), x);
    return std::strtod(buf, nullptr);
  }
  double p = std::pow(10.0, double(-n));
  double y = x / p, r = std::nearbyint(y);  // half to even
  return r * p;
}

Value f_round(Interp&, const Value& v, CallArgs& a) {
  ArgBinder b("round", a, {"precision", "method"});
  int64_t prec = need_int(b.get_or(0, Value::integer(0)), "precision");
  std::string method = to_str(b.get_or(1, Value::string("common")));
  if (method != "common" && method != "ceil" && method != "floor") fail("method must be common, ceil or floor");
  if (!v.is_number()) fail("type " + type_name(v) + " doesn't define __round__ method");
  if (method == "common") {
    if (v.is_integral()) {
      if (prec >= 0) return Value::integer(v.i());
      unsupported("round() of an integer to negative digits");
    }
    return Value::number(py_round(v.f(), prec));
  }
  double p = std::pow(10.0, double(prec));
  double r = method == "ceil" ? std::ceil(v.f() * p) : std::floor(v.f() * p);
  return Value::number(r / p);
}

Value f_sort(Interp& in, const Value& v, CallArgs& a) {
  ArgBinder b("sort", a, {"reverse", "case_sensitive", "attribute"});
  const bool rev = reverse_flag(b.get_or(0, Value::boolean(false)));
  const bool cs = truthy(b.get_or(1, Value::boolean(false)));
  Value attr = b.get_or(2, Value::none());
  std::vector<std::function<Value(const Value&)>> getters;
  if (attr.is_string()) {  // make_multi_attrgetter: "a,b" sorts by a then b
    const std::string& s = attr.s();
    size_t p = 0;
    for (;;) {
      size_t q = s.find(',', p);
      getters.push_back(attrgetter(in, Value::string(s.substr(p, q == std::string::npos ? q : q - p)), !cs, Value::none()));
      if (q == std::string::npos) break;
      p = q + 1;
    }
  } else {
    getters.push_back(attrgetter(in, attr, !cs, Value::none()));
  }
  std::vector<Value> items = py_iter(v);
  std::vector<std::pair<Value, Value>> keyed;
  for (auto& item : items) {
    std::vector<Value> k;
    for (auto& g : getters) k.push_back(g(item));
    keyed.emplace_back(Value::list(std::move(k)), std::move(item));
  }
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return rev ? py_lt(y.first, x.first) : py_lt(x.first, y.first);
  });
  std::vector<Value> out;
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return Value::list(std::move(out));
}

Value f_string(Interp&, const Value& v, CallArgs& a) {
  ArgBinder b("string", a, {});
  return Value::string(to_str(v));
}

Value f_sum(Interp& in, const Value& v, CallArgs& a) {
  ArgBinder b("sum", a, {"attribute", "start"});
  Value attr = b.get_or(0, Value::none());
  Value total = b.get_or(1, Value::integer(0));
  if (total.is_string()) fail("sum() can't sum strings [use ''.join(seq) instead]");
  auto get = attrgetter(in, attr, false, Value::none());
  for (const Value& item : py_iter(v)) total = binary_op(in, "+", total, attr.is_none() ? item : get(item));
  return total;
}

Value f_title(Interp&, const Value& v, CallArgs& a) {  // jinja2's do_title, not str.title
  ArgBinder b("title", a, {});
  std::u32string cps = utf8_decode(to_str(v));
  auto is_sep = [](char32_t c) { return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || py_isspace(c); };
  std::string out;
  size_t i = 0;
  while (i < cps.size()) {
    size_t j = i;
    const bool sep = is_sep(cps[i]);
    while (j < cps.size() && is_sep(cps[j]) == sep) j++;
    std::u32string_view item = std::u32string_view(cps).substr(i, j - i);
    out += py_upper(utf8_encode(item.substr(0, 1))) + py_lower(utf8_encode(item.substr(1)));
    i = j;
  }
  return Value::string(out);
}

Value f_tojson(Interp&, const Value& v, CallArgs& a) {
  ArgBinder b("tojson", a, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonOptions o;
  o.ensure_ascii = truthy(b.get_or(0, Value::boolean(false)));
  Value ind = b.get_or(1, Value::none());
  if (!ind.is_none()) {
    o.has_indent = true;
    if (ind.is_string())
      o.indent = ind.s();
    else
      o.indent = std::string(size_t(std::max<int64_t>(0, need_int(ind, "indent"))), ' ');
  }
  Value sep = b.get_or(2, Value::none());
  if (!sep.is_none()) {
    std::vector<Value> parts = py_iter(sep);
    if (parts.size() != 2 || !parts[0].is_string() || !parts[1].is_string())
      fail("separators must be a pair of strings");
    o.has_separators = true;
    o.item_sep = parts[0].s();
    o.key_sep = parts[1].s();
  }
  o.sort_keys = truthy(b.get_or(3, Value::boolean(false)));
  return Value::string(to_json(v, o));
}

Value f_trim(Interp&, const Value& v, CallArgs& a) {
  ArgBinder b("trim", a, {"chars"});
  Value chars = b.get_or(0, Value::none());
  if (!chars.is_none() && !chars.is_string()) fail("strip arg must be None or str");
  return Value::string(py_strip(to_str(v), chars.is_none() ? nullptr : &chars.s(), true, true));
}

Value f_truncate(Interp&, const Value& v, CallArgs& a) {
  ArgBinder b("truncate", a, {"length", "killwords", "end", "leeway"});
  int64_t length = need_int(b.get_or(0, Value::integer(255)), "length");
  const bool killwords = truthy(b.get_or(1, Value::boolean(false)));
  const Value endv = b.get_or(2, Value::string("..."));
  Value lw = b.get_or(3, Value::none());
  int64_t leeway = lw.is_none() ? 5 : need_int(lw, "leeway");
  if (length < py_len(endv)) fail("expected length >= " + std::to_string(py_len(endv)) + ", got " + std::to_string(length));
  if (leeway < 0) fail("expected leeway >= 0, got " + std::to_string(leeway));
  if (py_len(v) <= length + leeway) return v;  // jinja2 measures the value itself, not str(value)
  if (!v.is_string() || !endv.is_string()) fail("truncate needs a string once it has to cut");
  std::u32string s = utf8_decode(v.s()), end = utf8_decode(endv.s());
  std::u32string head = s.substr(0, size_t(length - int64_t(end.size())));
  if (!killwords) {
    size_t sp = head.rfind(U' ');
    if (sp != std::u32string::npos) head = head.substr(0, sp);
  }
  return Value::string(utf8_encode(head + end));
}

Value f_unique(Interp& in, const Value& v, CallArgs& a) {
  ArgBinder b("unique", a, {"case_sensitive", "attribute"});
  const bool cs = truthy(b.get_or(0, Value::boolean(false)));
  const Value attr = b.get_or(1, Value::none());
  return lazy_generator([&](std::vector<Value>& out) {
    auto key = attrgetter(in, attr, !cs, Value::none());
    std::vector<Value> seen;
    for (const Value& item : py_iter(v)) {
      Value k = key(item);
      if (!py_hashable(k)) fail("unhashable type: '" + type_name(k) + "'");
      bool dup = false;
      for (const Value& s : seen) dup = dup || py_eq(s, k);
      if (!dup) {
        seen.push_back(k);
        out.push_back(item);
      }
    }
  });
}

Value f_wordcount(Interp&, const Value& v, CallArgs& a) {
  ArgBinder b("wordcount", a, {});
  int64_t n = 0;
  bool in_word = false;
  for (char32_t c : utf8_decode(to_str(v))) {
    bool w = c == '_' || py_isalpha(c) || py_isnumeric(c);  // Python's \w
    if (w && !in_word) n++;
    in_word = w;
  }
  return Value::integer(n);
}

const std::unordered_map<std::string, FilterFn>& filters() {
  static const std::unordered_map<std::string, FilterFn> m = {
      {"abs", f_abs}, {"attr", f_attr}, {"batch", f_batch}, {"capitalize", f_capitalize}, {"center", f_center},
      {"count", f_length}, {"d", f_default}, {"default", f_default}, {"dictsort", f_dictsort},
      {"first", f_first}, {"float", f_float}, {"format", f_format}, {"indent", f_indent}, {"int", f_int},
      {"items", f_items}, {"join", f_join}, {"last", f_last}, {"length", f_length}, {"list", f_list},
      {"lower", f_lower}, {"map", f_map}, {"max", f_max}, {"min", f_min}, {"reject", f_reject},
      {"rejectattr", f_rejectattr}, {"replace", f_replace}, {"reverse", f_reverse}, {"round", f_round},
      {"select", f_select}, {"selectattr", f_selectattr}, {"sort", f_sort}, {"string", f_string},
      {"sum", f_sum}, {"title", f_title}, {"tojson", f_tojson}, {"trim", f_trim}, {"truncate", f_truncate},
      {"unique", f_unique}, {"upper", f_upper}, {"wordcount", f_wordcount}};
  return m;
}

// ---- tests ------------------------------------------------------------------------------------------
Value arg1(const char* name, CallArgs& a, const char* pname) {
  ArgBinder b(name, a, {pname});
  return b.get(0);
}

bool t_defined(Interp&, const Value& v, CallArgs& a) { ArgBinder b("defined", a, {}); return !v.is_undefined(); }
bool t_undefined(Interp&, const Value& v, CallArgs& a) { ArgBinder b("undefined", a, {}); return v.is_undefined(); }
bool t_none(Interp&, const Value& v, CallArgs& a) { ArgBinder b("none", a, {}); return v.is_none(); }
bool t_boolean(Interp&, const Value& v, CallArgs& a) { ArgBinder b("boolean", a, {}); return v.is_bool(); }
bool t_false(Interp&, const Value& v, CallArgs& a) { ArgBinder b("false", a, {}); return v.is_bool() && !v.b(); }
bool t_true(Interp&, const Value& v, CallArgs& a) { ArgBinder b("true", a, {}); return v.is_bool() && v.b(); }
bool t_integer(Interp&, const Value& v, CallArgs& a) { ArgBinder b("integer", a, {}); return v.is_int(); }
bool t_float(Interp&, const Value& v, CallArgs& a) { ArgBinder b("float", a, {}); return v.is_float(); }
bool t_number(Interp&, const Value& v, CallArgs& a) { ArgBinder b("number", a, {}); return v.is_number(); }
bool t_string(Interp&, const Value& v, CallArgs& a) { ArgBinder b("string", a, {}); return v.is_string(); }
bool t_mapping(Interp&, const Value& v, CallArgs& a) { ArgBinder b("mapping", a, {}); return v.is_dict(); }
bool t_escaped(Interp&, const Value&, CallArgs& a) { ArgBinder b("escaped", a, {}); return false; }
bool t_callable(Interp&, const Value& v, CallArgs& a) {
  ArgBinder b("callable", a, {});
  return v.is_undefined() || (v.is_object() && v.o().is_callable());
}
bool t_iterable(Interp&, const Value& v, CallArgs& a) {
  ArgBinder b("iterable", a, {});
  return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict() ||
         (v.is_object() && v.o().type_name() == "LoopContext");
}
bool t_sequence(Interp&, const Value& v, CallArgs& a) {
  ArgBinder b("sequence", a, {});
  if (v.is_list()) {
    ListKind k = v.l().kind;
    return k == ListKind::List || k == ListKind::Tuple || k == ListKind::Range;
  }
  return v.is_undefined() || v.is_string() || v.is_dict();
}
bool t_lower(Interp& in, const Value& v, CallArgs& a) {
  ArgBinder b("lower", a, {});
  CallArgs none;
  return truthy(call_method(in, Value::string(to_str(v)), "islower", none));
}
bool t_upper(Interp& in, const Value& v, CallArgs& a) {
  ArgBinder b("upper", a, {});
  CallArgs none;
  return truthy(call_method(in, Value::string(to_str(v)), "isupper", none));
}
bool t_odd(Interp& in, const Value& v, CallArgs& a) {
  ArgBinder b("odd", a, {});
  return py_eq(binary_op(in, "%", v, Value::integer(2)), Value::integer(1));
}
bool t_even(Interp& in, const Value& v, CallArgs& a) {
  ArgBinder b("even", a, {});
  return py_eq(binary_op(in, "%", v, Value::integer(2)), Value::integer(0));
}
bool t_divisibleby(Interp& in, const Value& v, CallArgs& a) {
  return py_eq(binary_op(in, "%", v, arg1("divisibleby", a, "num")), Value::integer(0));
}
bool t_eq(Interp&, const Value& v, CallArgs& a) { return py_eq(v, arg1("eq", a, "other")); }
bool t_ne(Interp&, const Value& v, CallArgs& a) { return !py_eq(v, arg1("ne", a, "other")); }
bool t_lt(Interp&, const Value& v, CallArgs& a) { return py_lt(v, arg1("lt", a, "other")); }
bool t_gt(Interp&, const Value& v, CallArgs& a) { return py_lt(arg1("gt", a, "other"), v); }
bool t_le(Interp&, const Value& v, CallArgs& a) {
  const Value o = arg1("le", a, "other");
  return py_lt(v, o) || py_eq(v, o);
}
bool t_ge(Interp&, const Value& v, CallArgs& a) {
  const Value o = arg1("ge", a, "other");
  return py_lt(o, v) || py_eq(v, o);
}
bool t_in(Interp&, const Value& v, CallArgs& a) { return py_contains(arg1("in", a, "seq"), v); }
bool t_sameas(Interp&, const Value& v, CallArgs& a) {  // Python's `is`
  const Value o = arg1("sameas", a, "other");
  if (v.kind() != o.kind()) return false;
  switch (v.kind()) {
    case Kind::Undefined:
    case Kind::None: return true;
    case Kind::Bool: return v.b() == o.b();
    case Kind::Int: return v.i() == o.i() && v.i() >= -5 && v.i() <= 256;  // CPython's small-int cache
    case Kind::Float: return false;
    case Kind::String: return &v.s() == &o.s();
    case Kind::List: return &v.l() == &o.l();
    case Kind::Dict: return &v.d() == &o.d();
    case Kind::Object: return &v.o() == &o.o();
  }
  return false;
}
bool t_filter(Interp&, const Value& v, CallArgs& a) {
  ArgBinder b("filter", a, {});
  return v.is_string() && is_known_filter(v.s());
}
bool t_test(Interp&, const Value& v, CallArgs& a) {
  ArgBinder b("test", a, {});
  return v.is_string() && is_known_test(v.s());
}

const std::unordered_map<std::string, TestFn>& tests() {
  static const std::unordered_map<std::string, TestFn> m = {
      {"boolean", t_boolean}, {"callable", t_callable}, {"defined", t_defined}, {"divisibleby", t_divisibleby},
      {"eq", t_eq}, {"equalto", t_eq}, {"==", t_eq}, {"escaped", t_escaped}, {"even", t_even},
      {"false", t_false}, {"filter", t_filter}, {"float", t_float}, {"ge", t_ge}, {">=", t_ge},
      {"gt", t_gt}, {"greaterthan", t_gt}, {">", t_gt}, {"in", t_in}, {"integer", t_integer},
      {"iterable", t_iterable}, {"le", t_le}, {"<=", t_le}, {"lower", t_lower}, {"lt", t_lt},
      {"lessthan", t_lt}, {"<", t_lt}, {"mapping", t_mapping}, {"ne", t_ne}, {"!=", t_ne},
      {"none", t_none}, {"number", t_number}, {"odd", t_odd}, {"sameas", t_sameas},
      {"sequence", t_sequence}, {"string", t_string}, {"test", t_test}, {"true", t_true},
      {"undefined", t_undefined}, {"upper", t_upper}};
  return m;
}

}  // namespace

bool is_known_filter(const std::string& name) { return filters().count(name) != 0; }
bool is_known_test(const std::string& name) { return tests().count(name) != 0; }
bool is_context_filter(const std::string& name) {
  return name == "map" || name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr";
}

Value apply_filter(Interp& in, const std::string& name, const Value& v, CallArgs& args) {
  auto it = filters().find(name);
  if (it == filters().end()) fail("No filter named '" + name + "'");
  return it->second(in, v, args);
}

bool apply_test(Interp& in, const std::string& name, const Value& v, CallArgs& args) {
  auto it = tests().find(name);
  if (it == tests().end()) fail("No test named '" + name + "'");
  return it->second(in, v, args);
}

}  // namespace strata::jinja
