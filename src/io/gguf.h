// GGUF (v2/v3): memory-mapped, fully validated metadata and tensor infos; zero-copy tensor data.
// Layout: magic "GGUF", u32 version, u64 n_tensors, u64 n_kv, then n_kv key/value pairs,
// n_tensors tensor infos, padding to `general.alignment` (default 32), then tensor data.
// Every read is bounds-checked: a corrupt or hostile file is an Error naming the file and field.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"  // MappedFile

namespace strata {

enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_type_name(GgufType t);

// One metadata value. Scalars keep their exact integer or float value; arrays are stored
// flattened per kind (strings / integers / floats) with `elem` naming the element type.
struct GgufValue {
  GgufType type = GgufType::U8;
  GgufType elem = GgufType::U8;  // arrays only
  int64_t i = 0;                 // integer and bool scalars (u64 values above 2^63 are rejected)
  double f = 0;                  // float scalars
  std::string s;                 // string scalar
  std::vector<std::string> strs; // array of strings
  std::vector<int64_t> ints;     // array of integers / bools
  std::vector<double> floats;    // array of floats
  size_t array_size() const { return strs.size() + ints.size() + floats.size(); }
  bool is_int() const;
  bool is_float() const;
};

// ggml tensor types this reader knows the block layout of.
struct GgmlTypeInfo {
  uint32_t id;
  const char* name;
  int64_t block_elems;  // elements per block
  int64_t block_bytes;  // bytes per block
};
const GgmlTypeInfo* ggml_type_info(uint32_t id);  // nullptr when unknown

struct GgufTensor {
  std::string name;
  uint32_t type = 0;            // ggml type id (ggml_type_info(type) is non-null)
  std::vector<int64_t> dims;    // ggml order: dims[0] is the contiguous (innermost) axis
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  int64_t numel() const;
};

class GgufFile {
 public:
  // Maps and validates `path`; throws Error on any defect.
  static GgufFile open(const std::string& path);

  uint32_t version() const { return version_; }
  const std::string& path() const { return path_; }
  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  bool has(const std::string& key) const { return kv_.count(key) != 0; }
  const GgufValue* find(const std::string& key) const;
  // Typed getters: throw Error naming the key when missing or of another type.
  const GgufValue& get(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_float(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  const std::vector<std::string>& get_strings(const std::string& key) const;
  const GgufTensor* find_tensor(const std::string& name) const;

 private:
  std::string path_;
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  std::map<std::string, GgufValue> kv_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

// Writing GGUF v3 (for `strata convert`): metadata in the given order, then tensor infos and
// data aligned to 32 bytes. Tensor dims are in ggml order (innermost first).
struct GgufWriteValue {
  GgufType type = GgufType::STRING;
  std::string s;
  int64_t i = 0;
  double f = 0;
};
struct GgufWriteTensor {
  std::string name;
  uint32_t type = 0;
  std::vector<int64_t> dims;
  const void* data = nullptr;
  size_t nbytes = 0;
};
void write_gguf(const std::string& path, const std::vector<std::pair<std::string, GgufWriteValue>>& metadata,
                const std::vector<GgufWriteTensor>& tensors);

}  // namespace strata
