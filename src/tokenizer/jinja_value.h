// Values of the Jinja engine: Python's data model as jinja2 templates see it (Undefined, None,
// bool, int, float, str, list/tuple, insertion-ordered dict, callables) with Python's str(),
// repr(), ==, <, truthiness and json.dumps. Not a general object model: only what templates use.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja_error.h"

namespace strata::jinja {

class Interp;
class Value;

enum class Kind : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Object };

struct HeapObj {
  virtual ~HeapObj() = default;
};

// Python's sequence-like types share one representation; the flavour decides repr, equality,
// subscripting and json.dumps (dict views, ranges and generators are not JSON serialisable).
enum class ListKind : uint8_t { List, Tuple, DictKeys, DictValues, DictItems, Generator, Range };

struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
};

// Objects that are not plain data: macros, bound methods, namespace(), loop, builtins.
struct Object : HeapObj {
  virtual std::string type_name() const = 0;
  // Attribute lookup (obj.name); false when absent (jinja2 then yields Undefined).
  virtual bool get_attr(const std::string& name, Value& out) const;
  // `{% set obj.name = v %}`: only namespace() accepts it.
  virtual bool set_attr(const std::string& name, const Value& v);
  virtual bool is_callable() const { return false; }
  virtual Value call(Interp& in, CallArgs& args);
  // str()/repr(); objects whose Python repr holds a memory address refuse (no silent output).
  virtual std::string repr() const;
  // Drops references to other values (called when a render ends, to break cycles).
  virtual void release() {}
};

class Value {
 public:
  Value() = default;  // Undefined
  static Value undef(std::string hint = {}, bool unsafe = false);
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value number(double f);
  static Value string(std::string s);
  static Value list(std::vector<Value> items = {}, ListKind kind = ListKind::List);
  static Value dict();
  static Value object(std::shared_ptr<Object> o);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::Undefined; }
  bool is_none() const { return kind_ == Kind::None; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  bool is_int() const { return kind_ == Kind::Int; }
  bool is_float() const { return kind_ == Kind::Float; }
  bool is_number() const { return kind_ == Kind::Bool || kind_ == Kind::Int || kind_ == Kind::Float; }
  bool is_integral() const { return kind_ == Kind::Bool || kind_ == Kind::Int; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_list() const { return kind_ == Kind::List; }
  bool is_dict() const { return kind_ == Kind::Dict; }
  bool is_object() const { return kind_ == Kind::Object; }

  bool b() const { return b_; }
  int64_t i() const { return kind_ == Kind::Bool ? int64_t(b_) : i_; }  // bool is an int
  double f() const { return kind_ == Kind::Float ? f_ : double(i()); }
  const std::string& s() const;
  struct ListObj& l() const;
  struct DictObj& d() const;
  Object& o() const;
  std::shared_ptr<Object> obj_ptr() const;
  // Undefined details: the error its use raises ("'x' is undefined", "'dict object' has no
  // attribute 'y'"), and whether it stands for an unsafe attribute (the sandbox's "access to
  // attribute ... is unsafe": any use other than printing or testing fails).
  std::string undef_hint() const;
  bool undef_unsafe() const;

 private:
  Kind kind_ = Kind::Undefined;
  union {
    bool b_;
    int64_t i_ = 0;
    double f_;
  };
  std::shared_ptr<HeapObj> p_;
};

struct StrObj : HeapObj {
  std::string s;
};

struct UndefObj : HeapObj {
  std::string hint;
  bool unsafe = false;
};

struct ListObj : HeapObj {
  std::vector<Value> items;
  ListKind kind = ListKind::List;
  size_t pos = 0;  // Generator: items before pos were consumed (generators iterate once)
  // Generator: the error Python's lazy generator raises once iteration gets past `items`.
  std::string pending_error;
  bool pending_unsupported = false;
  int64_t r_start = 0, r_stop = 0, r_step = 1;  // Range: for repr
};

// Insertion-ordered like Python's dict; keys compare like Python (1 == 1.0 == True).
struct DictObj : HeapObj {
  std::vector<std::pair<Value, Value>> items;
  const Value* find(const Value& key) const;
  const Value* find(const std::string& key) const;
  void set(const Value& key, Value v);
};

// ---- Python semantics --------------------------------------------------------------------
std::string type_name(const Value& v);  // Python's type(v).__name__
bool truthy(const Value& v);
std::string to_str(const Value& v);   // str(v) as {{ v }} prints it
std::string to_repr(const Value& v);  // repr(v)
bool py_eq(const Value& a, const Value& b);
// a < b under Python's rules; throws for unorderable types (TypeError in Python).
bool py_lt(const Value& a, const Value& b);
bool py_hashable(const Value& v);
// len(v); throws for unsized values (Undefined has length 0, like jinja2's Undefined).
int64_t py_len(const Value& v);
// iter(v) materialised: str -> characters, dict -> keys, generator -> what is left (consumed).
std::vector<Value> py_iter(const Value& v);
bool py_contains(const Value& container, const Value& item);  // `item in container`

// ---- JSON ----------------------------------------------------------------------------------
Value from_json(const nlohmann::ordered_json& j);
Value from_json(const nlohmann::json& j);
// json.dumps(v, ensure_ascii, indent, separators, sort_keys) as transformers' tojson calls it.
struct JsonOptions {
  bool ensure_ascii = false;
  bool has_indent = false;
  std::string indent;
  bool has_separators = false;
  std::string item_sep, key_sep;
  bool sort_keys = false;
};
std::string to_json(const Value& v, const JsonOptions& opt);

}  // namespace strata::jinja
