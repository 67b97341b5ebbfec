// Python string formatting for templates: printf-style `fmt % args` (and the |format filter)
// and str.format with the format-spec mini-language for str, int and float. Specs this does
// not implement are errors, never approximations.
#include <cctype>
#include <cmath>
#include <optional>
#include <cstdio>

#include "tokenizer/jinja_interp.h"
#include "tokenizer/jinja_unicode.h"

namespace strata::jinja {

namespace {

std::string pad_to(const std::string& s, int64_t width, const std::string& fill, char align) {
  int64_t len = int64_t(utf8_length(s));
  if (width <= len) return s;
  int64_t marg = width - len;
  int64_t left = align == '>' ? marg : align == '^' ? marg / 2 : 0;
  std::string out;
  for (int64_t k = 0; k < left; k++) out += fill;
  out += s;
  for (int64_t k = 0; k < marg - left; k++) out += fill;
  return out;
}

std::string group_digits(const std::string& digits, char sep, int every) {
  std::string out;
  int n = int(digits.size());
  for (int k = 0; k < n; k++) {
    if (k && (n - k) % every == 0) out += sep;
    out += digits[size_t(k)];
  }
  return out;
}

std::string c_format(const std::string& spec, double x) {
  char buf[512];
  int n = std::snprintf(buf, sizeof buf, spec.c_str(), x);
  if (n < 0 || n >= int(sizeof buf)) unsupported("formatted number is too long");
  return buf;
}

std::string c_format_int(const std::string& spec, long long x) {
  char buf[512];
  int n = std::snprintf(buf, sizeof buf, spec.c_str(), x);
  if (n < 0 || n >= int(sizeof buf)) unsupported("formatted number is too long");
  return buf;
}

// format(value, spec) for str.format fields.
std::string format_spec(const Value& v, const std::string& spec) {
  if (spec.empty()) return to_str(v);
  std::u32string cps = utf8_decode(spec);
  size_t i = 0;
  std::string fill = " ";
  char align = 0;
  auto is_align = [](char32_t c) { return c == '<' || c == '>' || c == '=' || c == '^'; };
  if (cps.size() >= 2 && is_align(cps[1])) {
    fill.clear();
    utf8_append(fill, cps[0]);
    align = char(cps[1]);
    i = 2;
  } else if (!cps.empty() && is_align(cps[0])) {
    align = char(cps[0]);
    i = 1;
  }
  char sign = 0;
  if (i < cps.size() && (cps[i] == '+' || cps[i] == '-' || cps[i] == ' ')) sign = char(cps[i++]);
  if (i < cps.size() && cps[i] == 'z') unsupported("the 'z' format option");
  bool alt = false;
  if (i < cps.size() && cps[i] == '#') alt = true, i++;
  if (i < cps.size() && cps[i] == '0') {
    if (!align) fill = "0", align = '=';
    i++;
  }
  int64_t width = 0;
  while (i < cps.size() && cps[i] >= '0' && cps[i] <= '9') width = width * 10 + (cps[i++] - '0');
  if (width > (1 << 20)) fail("format width too large");
  char grouping = 0;
  if (i < cps.size() && (cps[i] == ',' || cps[i] == '_')) grouping = char(cps[i++]);
  int precision = -1;
  if (i < cps.size() && cps[i] == '.') {
    i++;
    if (i >= cps.size() || cps[i] < '0' || cps[i] > '9') fail("Format specifier missing precision");
    precision = 0;
    while (i < cps.size() && cps[i] >= '0' && cps[i] <= '9') precision = precision * 10 + int(cps[i++] - '0');
    if (precision > 200) unsupported("format precision above 200");
  }
  char type = 0;
  if (i < cps.size()) type = char(cps[i++]);
  if (i != cps.size()) fail("Invalid format specifier '" + spec + "'");

  if (v.is_string()) {
    if (type && type != 's') fail(std::string("Unknown format code '") + type + "' for object of type 'str'");
    if (sign || alt || grouping || align == '=') fail("Invalid format specifier '" + spec + "' for object of type 'str'");
    std::string s = v.s();
    if (precision >= 0) s = utf8_encode(utf8_decode(s).substr(0, size_t(precision)));
    return pad_to(s, width, fill, align ? align : '<');
  }
  if (!v.is_number()) fail("unsupported format string passed to " + type_name(v) + ".__format__");

  std::string body, prefix;
  bool negative = false;
  const bool as_int = v.is_integral() && (type == 0 || type == 'd' || type == 'n' || type == 'b' || type == 'o' ||
                                          type == 'x' || type == 'X' || type == 'c');
  if (as_int) {
    if (precision >= 0) fail("Precision not allowed in integer format specifier");
    int64_t x = v.i();
    negative = x < 0;
    unsigned long long mag = negative ? 0ULL - (unsigned long long)x : (unsigned long long)x;
    if (type == 'c') return pad_to(utf8_encode(std::u32string(1, char32_t(x))), width, fill, align ? align : '<');
    int base = (type == 'b') ? 2 : (type == 'o') ? 8 : (type == 'x' || type == 'X') ? 16 : 10;
    if (mag == 0) body = "0";
    while (mag) {
      body.insert(body.begin(), "0123456789abcdef"[mag % unsigned(base)]);
      mag /= unsigned(base);
    }
    if (type == 'X')
      for (char& ch : body) ch = char(std::toupper(static_cast<unsigned char>(ch)));
    if (grouping) body = group_digits(body, grouping, base == 10 ? 3 : 4);
    if (alt && base != 10) prefix = base == 2 ? "0b" : base == 8 ? "0o" : (type == 'X' ? "0X" : "0x");
  } else {
    if (v.is_integral() && type != 'e' && type != 'E' && type != 'f' && type != 'F' && type != 'g' && type != 'G' && type != '%')
      fail(std::string("Unknown format code '") + type + "' for object of type 'int'");
    if (alt) unsupported("the '#' option for floats");
    double x = v.f();
    negative = std::signbit(x) && !std::isnan(x);
    double a = std::fabs(x);
    if (type == 0) {
      if (precision >= 0) unsupported("float format without a type but with a precision");
      body = py_float_repr(a);
    } else if (type == '%') {
      body = c_format("%." + std::to_string(precision < 0 ? 6 : precision) + "f", a * 100) + "%";
    } else if (type == 'f' || type == 'F' || type == 'e' || type == 'E' || type == 'g' || type == 'G') {
      body = c_format("%." + std::to_string(precision < 0 ? 6 : precision) + type, a);
    } else {
      fail(std::string("Unknown format code '") + type + "' for object of type 'float'");
    }
    if (grouping) {
      size_t end = body.find_first_not_of("0123456789");
      if (end == std::string::npos) end = body.size();
      body = group_digits(body.substr(0, end), grouping, 3) + body.substr(end);
    }
  }
  std::string sgn = negative ? "-" : sign == '+' ? "+" : sign == ' ' ? " " : "";
  if (!align) align = '>';
  if (align == '=') {
    std::string digits = prefix + body;
    int64_t w = width - int64_t(sgn.size());
    return sgn + pad_to(digits, w, fill, '>');
  }
  return pad_to(sgn + prefix + body, width, fill, align);
}

}  // namespace

std::string format_percent(const std::string& fmt, const Value& args) {
  std::vector<Value> pos;
  const bool is_tuple = args.is_list() && args.l().kind == ListKind::Tuple;
  if (is_tuple)
    pos = args.l().items;
  else
    pos = {args};
  const bool mapping_ok = args.is_dict();
  // Python skips the "not all arguments converted" check when the argument supports
  // __getitem__ (PyMapping_Check): dicts, lists, ranges, jinja2's Undefined.
  const bool getitem_arg = mapping_ok || args.is_undefined() ||
                           (args.is_list() && (args.l().kind == ListKind::List || args.l().kind == ListKind::Range));
  size_t argi = 0;
  std::string out;
  auto next_arg = [&]() -> Value {
    if (argi >= pos.size()) fail("not enough arguments for format string");
    return pos[argi++];
  };
  for (size_t i = 0; i < fmt.size(); i++) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) fail("incomplete format");
    std::optional<Value> keyed;
    if (fmt[i] == '(') {
      if (!mapping_ok) fail("format requires a mapping");
      int depth = 1;
      size_t j = i + 1;
      while (j < fmt.size() && depth) {
        depth += fmt[j] == '(' ? 1 : fmt[j] == ')' ? -1 : 0;
        j++;
      }
      if (depth) fail("incomplete format key");
      std::string key = fmt.substr(i + 1, j - i - 2);
      const Value* v = args.d().find(key);
      if (!v) fail("KeyError: " + py_str_repr(key));
      keyed = *v;
      i = j;
    }
    std::string flags;
    while (i < fmt.size() && std::string_view("-+ #0").find(fmt[i]) != std::string_view::npos) flags += fmt[i++];
    std::string width, prec;
    bool has_prec = false;
    if (i < fmt.size() && fmt[i] == '*') {
      Value w = next_arg();
      if (!w.is_integral()) fail("* wants int");
      width = std::to_string(w.i());
      i++;
    } else {
      while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) width += fmt[i++];
    }
    if (i < fmt.size() && fmt[i] == '.') {
      has_prec = true;
      i++;
      if (i < fmt.size() && fmt[i] == '*') {
        Value p = next_arg();
        if (!p.is_integral()) fail("* wants int");
        prec = std::to_string(p.i());
        i++;
      } else {
        while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) prec += fmt[i++];
      }
      if (prec.empty()) prec = "0";
    }
    while (i < fmt.size() && (fmt[i] == 'h' || fmt[i] == 'l' || fmt[i] == 'L')) i++;
    if (i >= fmt.size()) fail("incomplete format");
    const char type = fmt[i];
    if (type == '%') {
      out += '%';
      continue;
    }
    if (!width.empty() && std::stoll(width) > (1 << 20)) fail("format width too large");
    Value v = keyed ? *keyed : next_arg();
    const std::string cspec = "%" + flags + width + (has_prec ? "." + prec : "");
    if (type == 's' || type == 'r') {
      std::string s = type == 's' ? to_str(v) : to_repr(v);
      if (has_prec) s = utf8_encode(utf8_decode(s).substr(0, size_t(std::stoll(prec))));
      int64_t w = width.empty() ? 0 : std::stoll(width);
      out += pad_to(s, w, " ", flags.find('-') != std::string::npos ? '<' : '>');
    } else if (type == 'd' || type == 'i' || type == 'u') {
      if (!v.is_number()) fail(std::string("%") + type + " format: a real number is required, not " + type_name(v));
      if (v.is_float() && !std::isfinite(v.f())) fail("cannot convert float infinity or NaN to integer");
      long long x = v.is_float() ? (long long)std::trunc(v.f()) : (long long)v.i();
      out += c_format_int(cspec + "lld", x);
    } else if (type == 'x' || type == 'X' || type == 'o') {
      if (!v.is_integral()) fail(std::string("%") + type + " format: an integer is required, not " + type_name(v));
      if (type == 'o' && flags.find('#') != std::string::npos) unsupported("'%#o' formatting");
      if (v.i() < 0) unsupported("'%x'/'%o' formatting of a negative number");
      out += c_format_int(cspec + "ll" + type, (long long)v.i());
    } else if (std::string_view("eEfFgG").find(type) != std::string_view::npos) {
      if (!v.is_number()) fail(std::string("must be real number, not ") + type_name(v));
      out += c_format(cspec + type, v.f());
    } else if (type == 'c') {
      if (v.is_integral()) {
        utf8_append(out, char32_t(v.i()));
      } else if (v.is_string() && utf8_length(v.s()) == 1) {
        out += v.s();
      } else {
        fail("%c requires an int or a unicode character");
      }
    } else {
      fail(std::string("unsupported format character '") + type + "'");
    }
  }
  if (!getitem_arg && argi < pos.size()) fail("not all arguments converted during string formatting");
  return out;
}

std::string format_braces(Interp& in, const std::string& fmt, CallArgs& args) {
  std::string out;
  int auto_idx = 0;
  bool used_auto = false, used_manual = false;
  for (size_t i = 0; i < fmt.size(); i++) {
    const char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') {
        out += '}';
        i++;
        continue;
      }
      fail("Single '}' encountered in format string");
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      i++;
      continue;
    }
    size_t j = fmt.find('}', i + 1);
    if (j == std::string::npos) fail("expected '}' before end of string");
    std::string field = fmt.substr(i + 1, j - i - 1);
    if (field.find('{') != std::string::npos) unsupported("nested replacement fields in str.format");
    i = j;
    std::string spec, conv;
    size_t colon = field.find(':');
    if (colon != std::string::npos) {
      spec = field.substr(colon + 1);
      field.resize(colon);
    }
    size_t bang = field.find('!');
    if (bang != std::string::npos) {
      conv = field.substr(bang + 1);
      field.resize(bang);
      if (conv != "r" && conv != "s" && conv != "a") fail("Unknown conversion specifier " + conv);
    }
    size_t k = 0;
    while (k < field.size() && field[k] != '.' && field[k] != '[') k++;
    std::string head = field.substr(0, k);
    Value v;
    if (head.empty()) {
      if (used_manual) fail("cannot switch from manual field specification to automatic field numbering");
      used_auto = true;
      if (size_t(auto_idx) >= args.pos.size()) fail("Replacement index " + std::to_string(auto_idx) + " out of range");
      v = args.pos[size_t(auto_idx++)];
    } else if (std::isdigit(static_cast<unsigned char>(head[0]))) {
      if (used_auto) fail("cannot switch from automatic field numbering to manual field specification");
      used_manual = true;
      size_t idx = std::stoul(head);
      if (idx >= args.pos.size()) fail("Replacement index " + head + " out of range");
      v = args.pos[idx];
    } else {
      bool found = false;
      for (const auto& kv : args.kw)
        if (kv.first == head) v = kv.second, found = true;
      if (!found) fail("KeyError: " + py_str_repr(head));
    }
    while (k < field.size()) {  // .attr and [key] chains, through the sandbox's lookups
      if (field[k] == '.') {
        size_t e = k + 1;
        while (e < field.size() && field[e] != '.' && field[e] != '[') e++;
        v = in.getattr(v, field.substr(k + 1, e - k - 1));
        k = e;
      } else {
        size_t e = field.find(']', k);
        if (e == std::string::npos) fail("Missing ']' in format string");
        std::string key = field.substr(k + 1, e - k - 1);
        bool digits = !key.empty() && key.find_first_not_of("0123456789") == std::string::npos;
        v = in.getitem(v, digits ? Value::integer(std::stoll(key)) : Value::string(key));
        k = e + 1;
      }
      if (v.is_undefined()) undefined_error(v);
    }
    if (conv == "a") unsupported("!a conversion");
    if (conv == "r") v = Value::string(to_repr(v));
    if (conv == "s") v = Value::string(to_str(v));
    out += format_spec(v, spec);
    in.check_size(out.size());
  }
  return out;
}

}  // namespace strata::jinja
