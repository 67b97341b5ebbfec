#include "io/gguf.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "core/error.h"

namespace strata {

const char* gguf_type_name(GgufType t) {
  static const char* names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool",
                                "string", "array", "u64", "i64", "f64"};
  uint32_t i = uint32_t(t);
  return i < 13 ? names[i] : "?";
}

bool GgufValue::is_int() const {
  switch (type) {
    case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16: case GgufType::U32:
    case GgufType::I32: case GgufType::U64: case GgufType::I64: case GgufType::BOOL: return true;
    default: return false;
  }
}
bool GgufValue::is_float() const { return type == GgufType::F32 || type == GgufType::F64; }

const GgmlTypeInfo* ggml_type_info(uint32_t id) {
  // ggml.h type ids with their block sizes (ggml-common.h block structs).
  static const GgmlTypeInfo table[] = {
      {0, "F32", 1, 4},       {1, "F16", 1, 2},       {2, "Q4_0", 32, 18},    {3, "Q4_1", 32, 20},
      {6, "Q5_0", 32, 22},    {7, "Q5_1", 32, 24},    {8, "Q8_0", 32, 34},    {9, "Q8_1", 32, 36},
      {10, "Q2_K", 256, 84},  {11, "Q3_K", 256, 110}, {12, "Q4_K", 256, 144}, {13, "Q5_K", 256, 176},
      {14, "Q6_K", 256, 210}, {15, "Q8_K", 256, 292}, {24, "I8", 1, 1},       {25, "I16", 1, 2},
      {26, "I32", 1, 4},      {27, "I64", 1, 8},      {28, "F64", 1, 8},      {30, "BF16", 1, 2},
  };
  for (const auto& t : table)
    if (t.id == id) return &t;
  return nullptr;
}

int64_t GgufTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

namespace {

// Bounds-checked little-endian reader over the mapped bytes.
struct Reader {
  const uint8_t* p;
  size_t size, pos = 0;
  const std::string& path;

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(path + ": corrupt GGUF: " + what + " (at byte " + std::to_string(pos) + " of " +
                std::to_string(size) + ")");
  }
  void need(size_t n, const char* what) const {
    if (n > size - pos) fail(std::string("truncated ") + what);
  }
  template <class T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string str(const char* what) {
    uint64_t n = read<uint64_t>(what);
    if (n > size - pos) fail(std::string(what) + " length " + std::to_string(n) + " runs past the end");
    std::string s(reinterpret_cast<const char*>(p + pos), size_t(n));
    pos += size_t(n);
    return s;
  }
};

size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    default: return 0;
  }
}

// Reads one scalar of type t into v (integers into v.i / ints, floats into v.f / floats).
void read_scalar(Reader& r, GgufType t, const std::string& key, int64_t* iv, double* fv) {
  switch (t) {
    case GgufType::U8: *iv = r.read<uint8_t>("u8"); return;
    case GgufType::I8: *iv = r.read<int8_t>("i8"); return;
    case GgufType::U16: *iv = r.read<uint16_t>("u16"); return;
    case GgufType::I16: *iv = r.read<int16_t>("i16"); return;
    case GgufType::U32: *iv = r.read<uint32_t>("u32"); return;
    case GgufType::I32: *iv = r.read<int32_t>("i32"); return;
    case GgufType::I64: *iv = r.read<int64_t>("i64"); return;
    case GgufType::U64: {
      uint64_t u = r.read<uint64_t>("u64");
      if (u > uint64_t(INT64_MAX)) r.fail("value of " + key + " does not fit in int64");
      *iv = int64_t(u);
      return;
    }
    case GgufType::BOOL: {
      uint8_t b = r.read<uint8_t>("bool");
      if (b > 1) r.fail("bool value " + std::to_string(b) + " of " + key);
      *iv = b;
      return;
    }
    case GgufType::F32: *fv = r.read<float>("f32"); return;
    case GgufType::F64: *fv = r.read<double>("f64"); return;
    default: r.fail("bad scalar type of " + key);
  }
}

GgufValue read_value(Reader& r, GgufType t, const std::string& key) {
  GgufValue v;
  v.type = t;
  if (t == GgufType::STRING) {
    v.s = r.str("string value");
  } else if (t == GgufType::ARRAY) {
    uint32_t et = r.read<uint32_t>("array type");
    if (et > 12 || et == uint32_t(GgufType::ARRAY))
      r.fail("array " + key + " has element type " + std::to_string(et) + " (nested arrays are not GGUF)");
    v.elem = GgufType(et);
    uint64_t n = r.read<uint64_t>("array length");
    // Each element needs at least one byte (a string at least its 8-byte length): bound n first.
    size_t min_elem = v.elem == GgufType::STRING ? 8 : scalar_size(v.elem);
    if (n > (r.size - r.pos) / min_elem)
      r.fail("array " + key + " of " + std::to_string(n) + " elements runs past the end");
    if (v.elem == GgufType::STRING) {
      v.strs.reserve(size_t(n));
      for (uint64_t i = 0; i < n; i++) v.strs.push_back(r.str("array string"));
    } else if (v.elem == GgufType::F32 || v.elem == GgufType::F64) {
      v.floats.resize(size_t(n));
      int64_t dummy;
      for (uint64_t i = 0; i < n; i++) read_scalar(r, v.elem, key, &dummy, &v.floats[i]);
    } else {
      v.ints.resize(size_t(n));
      double dummy;
      for (uint64_t i = 0; i < n; i++) read_scalar(r, v.elem, key, &v.ints[i], &dummy);
    }
  } else if (t <= GgufType::F64) {
    read_scalar(r, t, key, &v.i, &v.f);
  } else {
    r.fail("key " + key + " has unknown value type " + std::to_string(uint32_t(t)));
  }
  return v;
}

}  // namespace

GgufFile GgufFile::open(const std::string& path) {
  GgufFile g;
  g.path_ = path;
  g.file_ = std::make_shared<MappedFile>(path);
  Reader r{g.file_->data(), g.file_->size(), 0, g.path_};

  r.need(4, "magic");
  if (std::memcmp(r.p, "GGUF", 4) != 0) r.fail("bad magic (not a GGUF file)");
  r.pos = 4;
  g.version_ = r.read<uint32_t>("version");
  if (g.version_ != 2 && g.version_ != 3)
    r.fail("version " + std::to_string(g.version_) + " is not supported (GGUF v2 and v3 are)");
  uint64_t n_tensors = r.read<uint64_t>("tensor count");
  uint64_t n_kv = r.read<uint64_t>("metadata count");
  // A key/value pair takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor info 8 + 4 + 4 + 8.
  if (n_kv > (r.size - r.pos) / 13) r.fail("metadata count " + std::to_string(n_kv) + " is impossible");
  if (n_tensors > (r.size - r.pos) / 24) r.fail("tensor count " + std::to_string(n_tensors) + " is impossible");

  for (uint64_t i = 0; i < n_kv; i++) {
    std::string key = r.str("metadata key");
    uint32_t t = r.read<uint32_t>("metadata type");
    if (t > 12) r.fail("key " + key + " has unknown value type " + std::to_string(t));
    GgufValue v = read_value(r, GgufType(t), key);
    if (!g.kv_.emplace(key, std::move(v)).second) r.fail("duplicate metadata key " + key);
  }

  uint64_t alignment = 32;
  if (const GgufValue* a = g.find("general.alignment")) {
    if (!a->is_int() || a->i <= 0 || (a->i & (a->i - 1)) != 0 || a->i > (1 << 20))
      r.fail("general.alignment must be a power of two integer");
    alignment = uint64_t(a->i);
  }

  struct Info {
    uint64_t offset;
  };
  std::vector<Info> infos;
  for (uint64_t i = 0; i < n_tensors; i++) {
    GgufTensor t;
    t.name = r.str("tensor name");
    uint32_t nd = r.read<uint32_t>("tensor dims");
    if (nd == 0 || nd > 4) r.fail("tensor " + t.name + " has " + std::to_string(nd) + " dims (1..4 allowed)");
    int64_t numel = 1;
    for (uint32_t d = 0; d < nd; d++) {
      uint64_t n = r.read<uint64_t>("tensor dim");
      if (n == 0 || n > (uint64_t(1) << 40) || uint64_t(numel) > (uint64_t(1) << 50) / n)
        r.fail("tensor " + t.name + " has an impossible shape");
      t.dims.push_back(int64_t(n));
      numel *= int64_t(n);
    }
    t.type = r.read<uint32_t>("tensor type");
    const GgmlTypeInfo* ti = ggml_type_info(t.type);
    if (!ti) r.fail("tensor " + t.name + " has unsupported ggml type " + std::to_string(t.type));
    if (t.dims[0] % ti->block_elems != 0)
      r.fail("tensor " + t.name + " row of " + std::to_string(t.dims[0]) + " is not a multiple of the " +
             ti->name + " block (" + std::to_string(ti->block_elems) + ")");
    t.nbytes = size_t(numel / ti->block_elems * ti->block_bytes);
    uint64_t off = r.read<uint64_t>("tensor offset");
    if (off % alignment != 0) r.fail("tensor " + t.name + " offset is not aligned");
    infos.push_back({off});
    if (g.tensor_index_.count(t.name)) r.fail("duplicate tensor " + t.name);
    g.tensor_index_[t.name] = g.tensors_.size();
    g.tensors_.push_back(std::move(t));
  }

  uint64_t data_start = (r.pos + alignment - 1) / alignment * alignment;
  if (n_tensors > 0 && data_start > r.size) r.fail("tensor data section is missing");
  // Bounds and overlap: sort by offset, each tensor must end before the next begins.
  std::vector<size_t> order(g.tensors_.size());
  for (size_t i = 0; i < order.size(); i++) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return infos[a].offset < infos[b].offset; });
  uint64_t prev_end = 0;
  std::string prev_name;
  for (size_t k : order) {
    GgufTensor& t = g.tensors_[k];
    uint64_t off = infos[k].offset;
    if (off > r.size - data_start || t.nbytes > r.size - data_start - off)
      r.fail("tensor " + t.name + " data runs past the end of the file");
    if (off < prev_end) r.fail("tensors " + prev_name + " and " + t.name + " overlap");
    prev_end = off + t.nbytes;
    prev_name = t.name;
    t.data = g.file_->data() + data_start + off;
  }
  return g;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

const GgufValue& GgufFile::get(const std::string& key) const {
  const GgufValue* v = find(key);
  STRATA_CHECK(v, path_ + ": missing GGUF key " + key);
  return *v;
}

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = get(key);
  STRATA_CHECK(v.type == GgufType::STRING, path_ + ": GGUF key " + key + " is " + gguf_type_name(v.type) +
                                               ", expected string");
  return v.s;
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue& v = get(key);
  STRATA_CHECK(v.is_int(), path_ + ": GGUF key " + key + " is " + gguf_type_name(v.type) + ", expected an integer");
  return v.i;
}

int64_t GgufFile::get_int(const std::string& key, int64_t fallback) const {
  return has(key) ? get_int(key) : fallback;
}

double GgufFile::get_float(const std::string& key, double fallback) const {
  const GgufValue* v = find(key);
  if (!v) return fallback;
  STRATA_CHECK(v->is_float() || v->is_int(), path_ + ": GGUF key " + key + " is not a number");
  return v->is_float() ? v->f : double(v->i);
}

bool GgufFile::get_bool(const std::string& key, bool fallback) const {
  const GgufValue* v = find(key);
  if (!v) return fallback;
  STRATA_CHECK(v->type == GgufType::BOOL, path_ + ": GGUF key " + key + " is not a bool");
  return v->i != 0;
}

const std::vector<std::string>& GgufFile::get_strings(const std::string& key) const {
  const GgufValue& v = get(key);
  STRATA_CHECK(v.type == GgufType::ARRAY && v.elem == GgufType::STRING,
               path_ + ": GGUF key " + key + " is not an array of strings");
  return v.strs;
}

const GgufTensor* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

void write_gguf(const std::string& path, const std::vector<std::pair<std::string, GgufWriteValue>>& metadata,
                const std::vector<GgufWriteTensor>& tensors) {
  std::string h;
  auto put = [&](const void* p, size_t n) { h.append(static_cast<const char*>(p), n); };
  auto u32 = [&](uint32_t v) { put(&v, 4); };
  auto u64 = [&](uint64_t v) { put(&v, 8); };
  auto str = [&](const std::string& s) {
    u64(s.size());
    h += s;
  };
  const uint64_t align = 32;
  put("GGUF", 4);
  u32(3);
  u64(tensors.size());
  u64(metadata.size());
  for (const auto& [k, v] : metadata) {
    str(k);
    u32(uint32_t(v.type));
    switch (v.type) {
      case GgufType::STRING: str(v.s); break;
      case GgufType::U32: u32(uint32_t(v.i)); break;
      case GgufType::I64: case GgufType::U64: u64(uint64_t(v.i)); break;
      case GgufType::F32: { float f = float(v.f); put(&f, 4); break; }
      case GgufType::BOOL: { uint8_t b = v.i != 0; put(&b, 1); break; }
      default: throw Error("write_gguf: metadata type " + std::string(gguf_type_name(v.type)) + " not supported");
    }
  }
  uint64_t off = 0;
  for (const auto& t : tensors) {
    const GgmlTypeInfo* ti = ggml_type_info(t.type);
    STRATA_CHECK(ti && !t.dims.empty() && t.dims.size() <= 4, "write_gguf: bad tensor " + t.name);
    int64_t n = 1;
    for (int64_t d : t.dims) n *= d;
    STRATA_CHECK(t.dims[0] % ti->block_elems == 0 && size_t(n / ti->block_elems * ti->block_bytes) == t.nbytes,
                 "write_gguf: tensor " + t.name + " size does not match its type and dims");
    str(t.name);
    u32(uint32_t(t.dims.size()));
    for (int64_t d : t.dims) u64(uint64_t(d));
    u32(t.type);
    u64(off);
    off += (t.nbytes + align - 1) / align * align;
  }
  h.resize((h.size() + align - 1) / align * align, '\0');
  std::FILE* f = std::fopen(path.c_str(), "wb");
  STRATA_CHECK(f, "cannot write " + path);
  bool ok = std::fwrite(h.data(), 1, h.size(), f) == h.size();
  static const char zeros[32] = {};
  for (const auto& t : tensors) {
    ok = ok && std::fwrite(t.data, 1, t.nbytes, f) == t.nbytes;
    size_t pad = (align - t.nbytes % align) % align;
    ok = ok && std::fwrite(zeros, 1, pad, f) == pad;
  }
  ok = (std::fclose(f) == 0) && ok;
  STRATA_CHECK(ok, "write error on " + path);
}

}  // namespace strata
