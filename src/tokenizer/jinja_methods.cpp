// Python's str, list and dict methods as templates call them (s.split(), d.get(), l.index()),
// plus str % args and str.format. The sandbox's rule applies: methods that mutate a list or
// dict (append, pop, update...) resolve to an Undefined that fails when called, exactly as
// transformers' ImmutableSandboxedEnvironment does. Unimplemented methods fail loudly.
#include <algorithm>
#include <cstdio>
#include <set>

#include "tokenizer/jinja_interp.h"
#include "tokenizer/jinja_unicode.h"

namespace strata::jinja {

namespace {

const std::set<std::string> kStrMethods = {
    "capitalize", "center", "count", "endswith", "find", "format", "index", "isalnum", "isalpha", "isascii",
    "isdecimal", "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper", "join", "ljust", "lower",
    "lstrip", "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition",
    "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title", "upper", "zfill"};
// Python str methods not implemented here: referencing one is an error, not Undefined.
const std::set<std::string> kStrUnsupported = {"casefold", "encode", "expandtabs", "format_map", "isidentifier",
                                               "isprintable", "maketrans", "translate"};
const std::set<std::string> kListMethods = {"count", "index", "copy"};
const std::set<std::string> kListMutators = {"append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"};
const std::set<std::string> kDictMethods = {"get", "items", "keys", "values", "copy"};
const std::set<std::string> kDictMutators = {"clear", "pop", "popitem", "setdefault", "update"};
const std::set<std::string> kNumberAttrs = {"real", "imag", "numerator", "denominator", "conjugate", "bit_length",
                                            "bit_count", "to_bytes", "from_bytes", "as_integer_ratio", "is_integer",
                                            "hex", "fromhex"};

struct BoundMethod : Object {
  Value self;
  std::string name;
  std::string type_name() const override { return "builtin_function_or_method"; }
  bool is_callable() const override { return true; }
  Value call(Interp& in, CallArgs& args) override { return call_method(in, self, name, args); }
};

Value bound(const Value& self, const std::string& name) {
  auto m = std::make_shared<BoundMethod>();
  m->self = self;
  m->name = name;
  return Value::object(m);
}

const std::string& need_str(const Value& v, const std::string& what) {
  if (!v.is_string()) fail(what + " must be str, not " + type_name(v));
  return v.s();
}

int64_t need_int(const Value& v, const std::string& what) {
  if (!v.is_integral()) fail("'" + type_name(v) + "' object cannot be interpreted as an integer (" + what + ")");
  return v.i();
}

// Byte offset of code point index cp (clamped Python-style to [0, n]).
size_t cp_to_byte(const std::string& s, int64_t cp) {
  int64_t n = int64_t(utf8_length(s));
  if (cp < 0) cp = std::max<int64_t>(0, cp + n);
  if (cp > n) cp = n;
  size_t p = 0;
  for (int64_t k = 0; k < cp; k++) {
    p++;
    while (p < s.size() && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80) p++;
  }
  return p;
}

// s[start:end] per Python's optional start/end arguments of find/count/startswith.
std::pair<size_t, size_t> byte_range(const std::string& s, const ArgBinder& b, size_t i_start, size_t i_end) {
  size_t lo = 0, hi = s.size();
  if (b.has(i_start) && !b.get(i_start).is_none()) lo = cp_to_byte(s, need_int(b.get(i_start), "start"));
  if (b.has(i_end) && !b.get(i_end).is_none()) hi = cp_to_byte(s, need_int(b.get(i_end), "end"));
  return {lo, hi};
}

Value str_list(std::vector<std::string> parts) {
  std::vector<Value> out;
  out.reserve(parts.size());
  for (auto& p : parts) out.push_back(Value::string(std::move(p)));
  return Value::list(std::move(out));
}

std::vector<std::string> split_ws(const std::string& s, int64_t maxsplit, bool from_right) {
  std::u32string cps = utf8_decode(s);
  std::vector<std::string> out;
  if (!from_right) {
    size_t i = 0, n = cps.size();
    while (true) {
      while (i < n && py_isspace(cps[i])) i++;
      if (i >= n) break;
      if (maxsplit >= 0 && int64_t(out.size()) == maxsplit) {
        out.push_back(utf8_encode(std::u32string_view(cps).substr(i)));
        break;
      }
      size_t j = i;
      while (j < n && !py_isspace(cps[j])) j++;
      out.push_back(utf8_encode(std::u32string_view(cps).substr(i, j - i)));
      i = j;
    }
    return out;
  }
  int64_t i = int64_t(cps.size()) - 1;
  while (true) {
    while (i >= 0 && py_isspace(cps[size_t(i)])) i--;
    if (i < 0) break;
    if (maxsplit >= 0 && int64_t(out.size()) == maxsplit) {
      out.push_back(utf8_encode(std::u32string_view(cps).substr(0, size_t(i + 1))));
      break;
    }
    int64_t j = i;
    while (j >= 0 && !py_isspace(cps[size_t(j)])) j--;
    out.push_back(utf8_encode(std::u32string_view(cps).substr(size_t(j + 1), size_t(i - j))));
    i = j;
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<std::string> split_sep(const std::string& s, const std::string& sep, int64_t maxsplit, bool from_right) {
  if (sep.empty()) fail("empty separator");
  std::vector<std::string> out;
  if (!from_right) {
    size_t p = 0;
    while (maxsplit < 0 || int64_t(out.size()) < maxsplit) {
      size_t q = s.find(sep, p);
      if (q == std::string::npos) break;
      out.push_back(s.substr(p, q - p));
      p = q + sep.size();
    }
    out.push_back(s.substr(p));
    return out;
  }
  size_t end = s.size();
  while (maxsplit < 0 || int64_t(out.size()) < maxsplit) {
    if (end < sep.size()) break;
    size_t q = s.rfind(sep, end - sep.size());
    if (q == std::string::npos) break;
    out.push_back(s.substr(q + sep.size(), end - q - sep.size()));
    end = q;
  }
  out.push_back(s.substr(0, end));
  std::reverse(out.begin(), out.end());
  return out;
}

bool is_line_break(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E || c == 0x85 ||
         c == 0x2028 || c == 0x2029;
}

std::string pad(const std::string& s, int64_t width, const std::string& fill, char align) {
  int64_t len = int64_t(utf8_length(s));
  if (width <= len) return s;
  int64_t marg = width - len, left = 0;
  if (align == '>') left = marg;
  else if (align == '^') left = marg / 2 + (marg & width & 1);  // Python's str.center
  std::string out;
  for (int64_t k = 0; k < left; k++) out += fill;
  out += s;
  for (int64_t k = 0; k < marg - left; k++) out += fill;
  return out;
}

std::string fill_char(const ArgBinder& b, size_t i) {
  if (!b.has(i)) return " ";
  const std::string& f = need_str(b.get(i), "fill character");
  if (utf8_length(f) != 1) fail("The fill character must be exactly one character long");
  return f;
}

Value call_str_method(Interp& in, const std::string& s, const std::string& name, CallArgs& args) {
  auto B = [&](std::vector<std::string> names, bool extra_pos = false) {
    return ArgBinder("str." + name, args, std::move(names), extra_pos);
  };
  if (name == "startswith" || name == "endswith") {
    ArgBinder b = B({"prefix", "start", "end"});
    auto [lo, hi] = byte_range(s, b, 1, 2);
    std::string_view sub = lo <= hi ? std::string_view(s).substr(lo, hi - lo) : std::string_view();
    std::vector<Value> cands = b.get(0).is_list() && b.get(0).l().kind == ListKind::Tuple ? b.get(0).l().items
                                                                                          : std::vector<Value>{b.get(0)};
    for (const Value& c : cands) {
      const std::string& p = need_str(c, name + " first arg");
      if (lo > hi) continue;
      bool ok = name == "startswith" ? sub.substr(0, p.size()) == p
                                     : sub.size() >= p.size() && sub.substr(sub.size() - p.size()) == p;
      if (ok) return Value::boolean(true);
    }
    return Value::boolean(false);
  }
  if (name == "split" || name == "rsplit") {
    ArgBinder b = B({"sep", "maxsplit"});
    Value sep = b.get_or(0, Value::none());
    int64_t maxsplit = need_int(b.get_or(1, Value::integer(-1)), "maxsplit");
    if (sep.is_none()) return str_list(split_ws(s, maxsplit, name == "rsplit"));
    return str_list(split_sep(s, need_str(sep, "sep"), maxsplit, name == "rsplit"));
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    ArgBinder b = B({"chars"});
    Value chars = b.get_or(0, Value::none());
    const std::string* c = chars.is_none() ? nullptr : &need_str(chars, name + " arg");
    return Value::string(py_strip(s, c, name != "rstrip", name != "lstrip"));
  }
  if (name == "replace") {
    ArgBinder b = B({"old", "new", "count"});
    const std::string& o = need_str(b.get(0), "replace() old");
    const std::string& n = need_str(b.get(1), "replace() new");
    int64_t count = need_int(b.get_or(2, Value::integer(-1)), "count");
    std::string out;
    if (o.empty()) {  // inserts `new` around every character
      std::u32string cps = utf8_decode(s);
      int64_t done = 0;
      for (size_t k = 0; k <= cps.size(); k++) {
        if (count < 0 || done < count) {
          out += n;
          done++;
        }
        if (k < cps.size()) utf8_append(out, cps[k]);
      }
    } else {
      size_t p = 0;
      int64_t done = 0;
      while (count < 0 || done < count) {
        size_t q = s.find(o, p);
        if (q == std::string::npos) break;
        out.append(s, p, q - p);
        out += n;
        in.check_size(out.size());
        p = q + o.size();
        done++;
      }
      out.append(s, p, std::string::npos);
    }
    return Value::string(std::move(out));
  }
  if (name == "lower" || name == "upper" || name == "title" || name == "capitalize" || name == "swapcase") {
    B({});
    if (name == "lower") return Value::string(py_lower(s));
    if (name == "upper") return Value::string(py_upper(s));
    if (name == "title") return Value::string(py_title(s));
    if (name == "capitalize") return Value::string(py_capitalize(s));
    return Value::string(py_swapcase(s));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    ArgBinder b = B({"sub", "start", "end"});
    const std::string& sub = need_str(b.get(0), name + " arg");
    auto [lo, hi] = byte_range(s, b, 1, 2);
    if (name == "count") {
      if (lo > hi) return Value::integer(0);
      if (sub.empty()) return Value::integer(int64_t(utf8_length(std::string_view(s).substr(lo, hi - lo))) + 1);
      int64_t c = 0;
      for (size_t p = s.find(sub, lo); p != std::string::npos && p + sub.size() <= hi; p = s.find(sub, p + sub.size())) c++;
      return Value::integer(c);
    }
    size_t pos = std::string::npos;
    if (lo <= hi && hi - lo >= sub.size()) {
      std::string_view hay = std::string_view(s).substr(lo, hi - lo);
      size_t r = name[0] == 'r' ? hay.rfind(sub) : hay.find(sub);
      if (r != std::string_view::npos) pos = lo + r;
    }
    if (pos == std::string::npos) {
      if (name == "index" || name == "rindex") fail("substring not found");
      return Value::integer(-1);
    }
    return Value::integer(int64_t(utf8_length(std::string_view(s).substr(0, pos))));
  }
  if (name == "join") {
    ArgBinder b = B({"iterable"});
    std::string out;
    size_t k = 0;
    for (const Value& v : py_iter(b.get(0))) {
      if (!v.is_string())
        fail("sequence item " + std::to_string(k) + ": expected str instance, " + type_name(v) + " found");
      if (k++) out += s;
      out += v.s();
      in.check_size(out.size());
    }
    return Value::string(std::move(out));
  }
  if (name == "format") return Value::string(format_braces(in, s, args));
  if (name == "removeprefix" || name == "removesuffix") {
    ArgBinder b = B({"affix"});
    const std::string& a = need_str(b.get(0), name + " arg");
    if (name == "removeprefix" && s.compare(0, a.size(), a) == 0) return Value::string(s.substr(a.size()));
    if (name == "removesuffix" && !a.empty() && s.size() >= a.size() && s.compare(s.size() - a.size(), a.size(), a) == 0)
      return Value::string(s.substr(0, s.size() - a.size()));
    return Value::string(s);
  }
  if (name == "ljust" || name == "rjust" || name == "center") {
    ArgBinder b = B({"width", "fillchar"});
    char align = name == "ljust" ? '<' : name == "rjust" ? '>' : '^';
    int64_t w = need_int(b.get(0), "width");
    in.check_size(size_t(std::max<int64_t>(w, 0)));
    return Value::string(pad(s, w, fill_char(b, 1), align));
  }
  if (name == "zfill") {
    ArgBinder b = B({"width"});
    int64_t w = need_int(b.get(0), "width"), len = int64_t(utf8_length(s));
    in.check_size(size_t(std::max<int64_t>(w, 0)));
    if (w <= len) return Value::string(s);
    size_t sign = (!s.empty() && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
    return Value::string(s.substr(0, sign) + std::string(size_t(w - len), '0') + s.substr(sign));
  }
  if (name == "partition" || name == "rpartition") {
    ArgBinder b = B({"sep"});
    const std::string& sep = need_str(b.get(0), "sep");
    if (sep.empty()) fail("empty separator");
    size_t q = name == "partition" ? s.find(sep) : s.rfind(sep);
    std::vector<Value> parts;
    if (q == std::string::npos) {
      if (name == "partition")
        parts = {Value::string(s), Value::string(""), Value::string("")};
      else
        parts = {Value::string(""), Value::string(""), Value::string(s)};
    } else {
      parts = {Value::string(s.substr(0, q)), Value::string(sep), Value::string(s.substr(q + sep.size()))};
    }
    return Value::list(std::move(parts), ListKind::Tuple);
  }
  if (name == "splitlines") {
    ArgBinder b = B({"keepends"});
    bool keep = truthy(b.get_or(0, Value::boolean(false)));
    std::u32string cps = utf8_decode(s);
    std::vector<std::string> lines;
    size_t i = 0;
    while (i < cps.size()) {
      size_t j = i;
      while (j < cps.size() && !is_line_break(cps[j])) j++;
      size_t eol = j;
      if (j < cps.size()) j += (cps[j] == '\r' && j + 1 < cps.size() && cps[j + 1] == '\n') ? 2 : 1;
      lines.push_back(utf8_encode(std::u32string_view(cps).substr(i, (keep ? j : eol) - i)));
      i = j;
    }
    return str_list(std::move(lines));
  }
  // predicates
  B({});
  std::u32string cps = utf8_decode(s);
  auto all = [&](bool (*pred)(char32_t)) {
    if (cps.empty()) return false;
    for (char32_t c : cps)
      if (!pred(c)) return false;
    return true;
  };
  if (name == "isalpha") return Value::boolean(all(py_isalpha));
  if (name == "isdecimal") return Value::boolean(all(py_isdecimal));
  if (name == "isdigit") return Value::boolean(all(py_isdigit));
  if (name == "isnumeric") return Value::boolean(all(py_isnumeric));
  if (name == "isspace") return Value::boolean(all(py_isspace));
  if (name == "isalnum")
    return Value::boolean(all([](char32_t c) { return py_isalpha(c) || py_isnumeric(c); }));
  if (name == "isascii") {
    for (char32_t c : cps)
      if (c > 0x7F) return Value::boolean(false);
    return Value::boolean(true);
  }
  if (name == "islower" || name == "isupper") {
    const bool lower = name == "islower";
    bool cased = false;
    for (char32_t c : cps) {
      if ((lower ? py_isupper_c(c) : py_islower_c(c)) || py_istitle_c(c)) return Value::boolean(false);
      cased = cased || (lower ? py_islower_c(c) : py_isupper_c(c));
    }
    return Value::boolean(cased);
  }
  if (name == "istitle") {
    bool cased = false, prev_cased = false;
    for (char32_t c : cps) {
      if (py_isupper_c(c) || py_istitle_c(c)) {
        if (prev_cased) return Value::boolean(false);
        prev_cased = cased = true;
      } else if (py_islower_c(c)) {
        if (!prev_cased) return Value::boolean(false);
        prev_cased = cased = true;
      } else {
        prev_cased = false;
      }
    }
    return Value::boolean(cased);
  }
  unsupported("str." + name + "() is not supported");
}

Value call_list_method(const Value& self, const std::string& name, CallArgs& args) {
  const std::vector<Value>& items = self.l().items;
  if (name == "copy") {
    ArgBinder b("list.copy", args, {});
    return Value::list(items, ListKind::List);
  }
  if (name == "count") {
    ArgBinder b(type_name(self) + ".count", args, {"value"});
    int64_t c = 0;
    for (const Value& v : items) c += py_eq(v, b.get(0));
    return Value::integer(c);
  }
  ArgBinder b(type_name(self) + ".index", args, {"value", "start", "stop"});
  int64_t n = int64_t(items.size());
  auto norm = [&](const Value& v, int64_t d) {
    if (v.is_none()) return d;
    int64_t x = need_int(v, "index");
    if (x < 0) x = std::max<int64_t>(0, x + n);
    return std::min(x, n);
  };
  int64_t lo = norm(b.get_or(1, Value::none()), 0), hi = norm(b.get_or(2, Value::none()), n);
  for (int64_t k = lo; k < hi; k++)
    if (py_eq(items[size_t(k)], b.get(0))) return Value::integer(k);
  fail(to_repr(b.get(0)) + " is not in " + type_name(self));
}

Value call_dict_method(const Value& self, const std::string& name, CallArgs& args) {
  const DictObj& d = self.d();
  if (name == "get") {
    ArgBinder b("dict.get", args, {"key", "default"});
    if (!py_hashable(b.get(0))) fail("unhashable type: '" + type_name(b.get(0)) + "'");
    if (const Value* v = d.find(b.get(0))) return *v;
    return b.get_or(1, Value::none());
  }
  ArgBinder b("dict." + name, args, {});
  if (name == "copy") {
    Value c = Value::dict();
    c.d().items = d.items;
    return c;
  }
  std::vector<Value> out;
  out.reserve(d.items.size());
  for (const auto& kv : d.items) {
    if (name == "keys") out.push_back(kv.first);
    else if (name == "values") out.push_back(kv.second);
    else out.push_back(Value::list({kv.first, kv.second}, ListKind::Tuple));
  }
  return Value::list(std::move(out), name == "keys" ? ListKind::DictKeys
                                     : name == "values" ? ListKind::DictValues : ListKind::DictItems);
}

}  // namespace

std::optional<Value> method_attr(const Value& self, const std::string& name) {
  switch (self.kind()) {
    case Kind::String:
      if (kStrMethods.count(name)) return bound(self, name);
      if (kStrUnsupported.count(name)) unsupported("str." + name + " is not supported");
      return std::nullopt;
    case Kind::List: {
      ListKind k = self.l().kind;
      if (k == ListKind::Range) {
        if (name == "index" || name == "count") return bound(self, name);
        if (name == "start") return Value::integer(self.l().r_start);
        if (name == "stop") return Value::integer(self.l().r_stop);
        if (name == "step") return Value::integer(self.l().r_step);
        return std::nullopt;
      }
      if (k != ListKind::List && k != ListKind::Tuple) return std::nullopt;
      if (kListMethods.count(name) && (k == ListKind::List || name != "copy")) return bound(self, name);
      if (k == ListKind::List && kListMutators.count(name))
        return Value::undef("access to attribute '" + name + "' of 'list' object is unsafe.", true);
      return std::nullopt;
    }
    case Kind::Dict:
      if (kDictMethods.count(name)) return bound(self, name);
      if (kDictMutators.count(name))
        return Value::undef("access to attribute '" + name + "' of 'dict' object is unsafe.", true);
      if (name == "fromkeys") unsupported("dict.fromkeys is not supported");
      return std::nullopt;
    case Kind::Bool:
    case Kind::Int:
    case Kind::Float:
      if (kNumberAttrs.count(name)) unsupported(type_name(self) + "." + name + " is not supported");
      return std::nullopt;
    default: return std::nullopt;
  }
}

Value call_method(Interp& in, const Value& self, const std::string& name, CallArgs& args) {
  in.step();
  if (self.is_string()) return call_str_method(in, self.s(), name, args);
  if (self.is_list()) return call_list_method(self, name, args);
  if (self.is_dict()) return call_dict_method(self, name, args);
  fail("'" + type_name(self) + "' object has no method '" + name + "'");
}

}  // namespace strata::jinja
