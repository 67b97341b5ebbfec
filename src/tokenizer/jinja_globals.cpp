// Global functions a chat template can call: jinja2's range (capped at 100000 items like the
// sandbox's safe_range), dict, namespace, joiner, cycler, and transformers' raise_exception and
// strftime_now. Not lipsum (calling it is an "unsupported" error).
#include <sys/time.h>

#include <ctime>
#include <functional>

#include "tokenizer/jinja_interp.h"
#include "tokenizer/jinja_unicode.h"

namespace strata::jinja {

namespace {

constexpr int64_t kMaxRange = 100000;  // jinja2.sandbox.MAX_RANGE

struct Builtin : Object {
  std::string name;
  std::function<Value(Interp&, CallArgs&)> fn;
  std::string type_name() const override { return "builtin_function_or_method"; }
  bool is_callable() const override { return true; }
  Value call(Interp& in, CallArgs& args) override { return fn(in, args); }
};

void add(Scope& s, const std::string& name, std::function<Value(Interp&, CallArgs&)> fn) {
  auto b = std::make_shared<Builtin>();
  b->name = name;
  b->fn = std::move(fn);
  s.vars[name] = Value::object(b);
}

struct Namespace : Object {
  DictObj attrs;
  std::string type_name() const override { return "Namespace"; }
  bool get_attr(const std::string& name, Value& out) const override {
    const Value* v = attrs.find(name);
    if (!v) return false;
    out = *v;
    return true;
  }
  bool set_attr(const std::string& name, const Value& v) override {
    attrs.set(Value::string(name), v);
    return true;
  }
  std::string repr() const override {
    Value d = Value::dict();
    d.d().items = attrs.items;
    return "<Namespace " + to_repr(d) + ">";
  }
  void release() override { attrs.items.clear(); }
};

struct Joiner : Object {
  std::string sep;
  bool used = false;
  std::string type_name() const override { return "Joiner"; }
  bool is_callable() const override { return true; }
  Value call(Interp&, CallArgs& args) override {
    ArgBinder b("joiner", args, {});
    if (!used) {
      used = true;
      return Value::string("");
    }
    return Value::string(sep);
  }
};

struct Cycler : Object, std::enable_shared_from_this<Cycler> {
  std::vector<Value> items;
  size_t pos = 0;
  std::string type_name() const override { return "Cycler"; }
  bool get_attr(const std::string& name, Value& out) const override {
    if (name == "current") {
      out = items[pos];
      return true;
    }
    if (name == "next" || name == "reset") {
      auto self = std::const_pointer_cast<Cycler>(shared_from_this());
      auto b = std::make_shared<Builtin>();
      b->name = name;
      b->fn = [self, name](Interp&, CallArgs& args) {
        ArgBinder ab("Cycler." + name, args, {});
        if (name == "reset") {
          self->pos = 0;
          return Value::none();
        }
        Value v = self->items[self->pos];
        self->pos = (self->pos + 1) % self->items.size();
        return v;
      };
      out = Value::object(b);
      return true;
    }
    return false;
  }
};

// dict(*args, **kwargs) as Python builds it: a mapping or an iterable of pairs, then keywords.
void fill_dict(DictObj& d, CallArgs& args, const std::string& fname) {
  if (args.pos.size() > 1) fail(fname + " expected at most 1 argument, got " + std::to_string(args.pos.size()));
  if (!args.pos.empty()) {
    const Value& src = args.pos[0];
    if (src.is_undefined()) undefined_error(src);  // dict() looks up .keys on it
    if (src.is_dict()) {
      for (const auto& kv : src.d().items) d.set(kv.first, kv.second);
    } else {
      for (const Value& pair : py_iter(src)) {
        std::vector<Value> kv = py_iter(pair);
        if (kv.size() != 2) fail("dictionary update sequence element has length " + std::to_string(kv.size()) + "; 2 is required");
        if (!py_hashable(kv[0])) fail("unhashable type: '" + type_name(kv[0]) + "'");
        d.set(kv[0], kv[1]);
      }
    }
  }
  for (auto& kv : args.kw) d.set(Value::string(kv.first), kv.second);
}

Value range_fn(Interp& in, CallArgs& args) {
  if (!args.kw.empty()) fail("range() takes no keyword arguments");
  if (args.pos.empty() || args.pos.size() > 3)
    fail("range expected at most 3 arguments, got " + std::to_string(args.pos.size()));
  for (const Value& v : args.pos)
    if (!v.is_integral()) fail("'" + type_name(v) + "' object cannot be interpreted as an integer");
  int64_t start = 0, stop, step = 1;
  if (args.pos.size() == 1) {
    stop = args.pos[0].i();
  } else {
    start = args.pos[0].i();
    stop = args.pos[1].i();
    if (args.pos.size() == 3) step = args.pos[2].i();
  }
  if (step == 0) fail("range() arg 3 must not be zero");
  __int128 n = 0;
  if (step > 0 && stop > start) n = ((__int128)stop - start + step - 1) / step;
  if (step < 0 && stop < start) n = ((__int128)start - stop - step - 1) / -step;
  if (n > kMaxRange)
    fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE (" + std::to_string(kMaxRange) + ").");
  std::vector<Value> items;
  items.reserve(size_t(n));
  for (int64_t k = 0; k < int64_t(n); k++) items.push_back(Value::integer(start + k * step));
  in.step();
  Value r = Value::list(std::move(items), ListKind::Range);
  r.l().r_start = start;
  r.l().r_stop = stop;
  r.l().r_step = step;
  return r;
}

// datetime.now().strftime(fmt): C strftime plus Python's %f (microseconds).
Value strftime_now(Interp&, CallArgs& args) {
  ArgBinder b("strftime_now", args, {"format"});
  const Value& f = b.get(0);
  if (!f.is_string()) fail("strftime() argument 1 must be str, not " + type_name(f));
  timeval tv;
  gettimeofday(&tv, nullptr);
  std::tm tm;
  localtime_r(&tv.tv_sec, &tm);
  std::string fmt;
  const std::string& src = f.s();
  for (size_t k = 0; k < src.size(); k++) {
    if (src[k] == '%' && k + 1 < src.size() && src[k + 1] == 'f') {
      char us[8];
      std::snprintf(us, sizeof us, "%06ld", long(tv.tv_usec));
      fmt += us;
      k++;
    } else if (src[k] == '%' && k + 1 < src.size() && src[k + 1] == '%') {
      fmt += "%%";
      k++;
    } else {
      fmt += src[k];
    }
  }
  if (fmt.empty()) return Value::string("");
  std::string out(256 + fmt.size() * 8, '\0');
  size_t n = std::strftime(out.data(), out.size(), fmt.c_str(), &tm);
  out.resize(n);
  return Value::string(out);
}

}  // namespace

Value make_namespace(Interp& in, CallArgs& args) {
  auto ns = std::make_shared<Namespace>();
  fill_dict(ns->attrs, args, "namespace");
  in.keep(ns);
  return Value::object(ns);
}

void install_globals(Scope& s) {
  add(s, "range", range_fn);
  add(s, "dict", [](Interp&, CallArgs& args) {
    Value d = Value::dict();
    fill_dict(d.d(), args, "dict");
    return d;
  });
  add(s, "namespace", [](Interp& in, CallArgs& args) { return make_namespace(in, args); });
  add(s, "joiner", [](Interp&, CallArgs& args) {
    ArgBinder b("joiner", args, {"sep"});
    auto j = std::make_shared<Joiner>();
    j->sep = to_str(b.get_or(0, Value::string(", ")));
    return Value::object(j);
  });
  add(s, "cycler", [](Interp&, CallArgs& args) {
    if (!args.kw.empty()) fail("cycler() takes no keyword arguments");
    if (args.pos.empty()) fail("at least one item has to be provided");
    auto c = std::make_shared<Cycler>();
    c->items = args.pos;
    return Value::object(c);
  });
  add(s, "lipsum", [](Interp&, CallArgs&) -> Value { unsupported("lipsum() is not supported"); });
  add(s, "raise_exception", [](Interp& in, CallArgs& args) -> Value {
    ArgBinder b("raise_exception", args, {"message"});
    throw JinjaError("raise_exception", to_str(b.get(0)), in.line());
  });
  add(s, "strftime_now", strftime_now);
}

}  // namespace strata::jinja
