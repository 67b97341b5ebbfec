// Python's arithmetic operators and slicing on Jinja values: int/float promotion, floor
// division and modulo signs, str/list concatenation and repetition, str % args, [a:b:c].
// Integers are 64-bit: where Python would grow a big int this raises instead of wrapping.
#include <cmath>

#include "tokenizer/jinja_interp.h"
#include "tokenizer/jinja_unicode.h"

namespace strata::jinja {

namespace {

[[noreturn]] void bad_operands(const std::string& op, const Value& a, const Value& b) {
  if (a.is_undefined()) undefined_error(a);
  if (b.is_undefined()) undefined_error(b);
  if (op == "+" && a.is_string())
    fail("can only concatenate str (not \"" + type_name(b) + "\") to str");
  fail("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'");
}

[[noreturn]] void overflow() { unsupported("integer result does not fit in 64 bits (Python would use a big int)"); }

Value repeat(Interp& in, const Value& seq, int64_t n) {
  if (n < 0) n = 0;
  if (seq.is_string()) {
    in.check_size(seq.s().size() * size_t(n));
    std::string out;
    out.reserve(seq.s().size() * size_t(n));
    for (int64_t k = 0; k < n; k++) out += seq.s();
    return Value::string(std::move(out));
  }
  const ListObj& l = seq.l();
  in.check_size(l.items.size() * size_t(n) * sizeof(Value));
  std::vector<Value> out;
  for (int64_t k = 0; k < n; k++) out.insert(out.end(), l.items.begin(), l.items.end());
  return Value::list(std::move(out), l.kind);
}

bool is_seq(const Value& v) {
  return v.is_list() && (v.l().kind == ListKind::List || v.l().kind == ListKind::Tuple);
}

// Python's float divmod (Objects/floatobject.c), for // and % on floats.
void float_divmod(double vx, double wx, double& floordiv, double& mod) {
  if (wx == 0.0) fail("float division by zero");
  mod = std::fmod(vx, wx);
  double div = (vx - mod) / wx;
  if (mod != 0.0) {
    if ((wx < 0) != (mod < 0)) {
      mod += wx;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, wx);
  }
  if (div != 0.0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, vx / wx);
  }
}

Value int_pow(int64_t base, int64_t exp) {
  if (base == 0) return Value::integer(exp == 0 ? 1 : 0);
  if (base == 1) return Value::integer(1);
  if (base == -1) return Value::integer(exp % 2 ? -1 : 1);
  if (exp > 64) overflow();  // |base| >= 2
  int64_t result = 1;
  for (int64_t k = 0; k < exp; k++)
    if (__builtin_mul_overflow(result, base, &result)) overflow();
  return Value::integer(result);
}

}  // namespace

Value binary_op(Interp& in, const std::string& op, const Value& a, const Value& b) {
  const bool nums = a.is_number() && b.is_number();
  const bool ints = a.is_integral() && b.is_integral();
  const char o = op[0];
  if (op == "+") {
    if (ints) {
      int64_t r;
      if (__builtin_add_overflow(a.i(), b.i(), &r)) overflow();
      return Value::integer(r);
    }
    if (nums) return Value::number(a.f() + b.f());
    if (a.is_string() && b.is_string()) {
      in.check_size(a.s().size() + b.s().size());
      return Value::string(a.s() + b.s());
    }
    if (is_seq(a) && is_seq(b) && a.l().kind == b.l().kind) {
      std::vector<Value> items = a.l().items;
      items.insert(items.end(), b.l().items.begin(), b.l().items.end());
      in.check_size(items.size() * sizeof(Value));
      return Value::list(std::move(items), a.l().kind);
    }
    bad_operands(op, a, b);
  }
  if (op == "-") {
    if (ints) {
      int64_t r;
      if (__builtin_sub_overflow(a.i(), b.i(), &r)) overflow();
      return Value::integer(r);
    }
    if (nums) return Value::number(a.f() - b.f());
    bad_operands(op, a, b);
  }
  if (op == "*") {
    if (ints) {
      int64_t r;
      if (__builtin_mul_overflow(a.i(), b.i(), &r)) overflow();
      return Value::integer(r);
    }
    if (nums) return Value::number(a.f() * b.f());
    if ((a.is_string() || is_seq(a)) && b.is_integral()) return repeat(in, a, b.i());
    if (a.is_integral() && (b.is_string() || is_seq(b))) return repeat(in, b, a.i());
    bad_operands(op, a, b);
  }
  if (op == "/") {
    if (!nums) bad_operands(op, a, b);
    if (b.f() == 0.0) fail("division by zero");
    return Value::number(a.f() / b.f());
  }
  if (op == "//" || o == '%') {
    if (o == '%' && a.is_string()) return Value::string(format_percent(a.s(), b));
    if (!nums) bad_operands(op, a, b);
    if (ints) {
      if (b.i() == 0) fail(op == "//" ? "integer division by zero" : "integer modulo by zero");
      if (a.i() == INT64_MIN && b.i() == -1) overflow();
      int64_t q = a.i() / b.i(), r = a.i() % b.i();
      if (r != 0 && ((r < 0) != (b.i() < 0))) {
        q -= 1;
        r += b.i();
      }
      return Value::integer(op == "//" ? q : r);
    }
    double fd, md;
    float_divmod(a.f(), b.f(), fd, md);
    return Value::number(op == "//" ? fd : md);
  }
  if (op == "**") {
    if (!nums) bad_operands(op, a, b);
    if (ints && b.i() >= 0) return int_pow(a.i(), b.i());
    double x = a.f(), y = b.f();
    if (x == 0.0 && y < 0) fail("0.0 cannot be raised to a negative power");
    if (x < 0 && y != std::floor(y)) unsupported("a negative number to a fractional power is complex in Python");
    return Value::number(std::pow(x, y));
  }
  fail("unknown operator " + op);
}

Value unary_minus(const Value& v, bool negate) {
  if (v.is_undefined()) undefined_error(v);
  if (v.is_integral()) {
    if (!negate) return Value::integer(v.i());
    if (v.i() == INT64_MIN) overflow();
    return Value::integer(-v.i());
  }
  if (v.is_float()) return Value::number(negate ? -v.f() : v.f());
  fail(std::string("bad operand type for unary ") + (negate ? "-" : "+") + ": '" + type_name(v) + "'");
}

// obj[start:stop:step]. jinja2 compiles slices to a plain Python subscript (not the sandbox's
// getitem), so a TypeError surfaces as an error -- except in constant-folded print statements,
// where jinja2's optimizer goes through getitem and gets Undefined (type_error_undefined).
Value slice_value(const Value& obj, const Value& start, const Value& stop, const Value& step,
                  bool type_error_undefined) {
  if (obj.is_undefined()) undefined_error(obj);
  if (type_error_undefined) {
    const bool sliceable = obj.is_string() || (obj.is_list() && (obj.l().kind == ListKind::List ||
                                                                 obj.l().kind == ListKind::Tuple ||
                                                                 obj.l().kind == ListKind::Range));
    bool ints = true;
    for (const Value* v : {&start, &stop, &step}) ints = ints && (v->is_none() || v->is_integral());
    if (!sliceable || !ints) return Value::undef(type_name(obj) + " object has no element slice");
  }
  const bool seq = obj.is_string() || (obj.is_list() && (obj.l().kind == ListKind::List ||
                                                         obj.l().kind == ListKind::Tuple ||
                                                         obj.l().kind == ListKind::Range));
  if (!seq) {
    if (obj.is_dict()) fail("unhashable type: 'slice'");
    fail("'" + type_name(obj) + "' object is not subscriptable");
  }
  for (const Value* v : {&start, &stop, &step})
    if (!v->is_none() && !v->is_integral()) {
      if (v->is_undefined()) undefined_error(*v);
      fail("slice indices must be integers or None or have an __index__ method");
    }
  const int64_t st = step.is_none() ? 1 : step.i();
  if (st == 0) fail("slice step cannot be zero");
  std::u32string cps;
  int64_t n;
  if (obj.is_string()) {
    cps = utf8_decode(obj.s());
    n = int64_t(cps.size());
  } else {
    n = int64_t(obj.l().items.size());
  }
  // PySlice_AdjustIndices
  auto adjust = [&](const Value& v, int64_t dflt) {
    if (v.is_none()) return dflt;
    int64_t x = v.i();
    if (x < 0) {
      x += n;
      if (x < 0) x = st < 0 ? -1 : 0;
    } else if (x >= n) {
      x = st < 0 ? n - 1 : n;
    }
    return x;
  };
  int64_t b = adjust(start, st < 0 ? n - 1 : 0);
  int64_t e = adjust(stop, st < 0 ? -1 : n);
  std::vector<int64_t> idx;
  if (st > 0)
    for (int64_t k = b; k < e; k += st) idx.push_back(k);
  else
    for (int64_t k = b; k > e; k += st) idx.push_back(k);
  if (obj.is_string()) {
    std::u32string out;
    for (int64_t k : idx) out += cps[size_t(k)];
    return Value::string(utf8_encode(out));
  }
  std::vector<Value> out;
  for (int64_t k : idx) out.push_back(obj.l().items[size_t(k)]);
  Value r = Value::list(std::move(out), obj.l().kind);
  if (obj.l().kind == ListKind::Range) {  // range[a:b:c] is a range: start + index * step
    const ListObj& src = obj.l();
    r.l().r_start = src.r_start + b * src.r_step;
    r.l().r_stop = src.r_start + e * src.r_step;
    r.l().r_step = src.r_step * st;
  }
  return r;
}

}  // namespace strata::jinja
