// safetensors: memory-mapped, validated, zero-copy tensor views; single file or sharded
// (model.safetensors.index.json). Not a converter: tensors are handed out as stored.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace strata {

// A read-only mapping of a whole file; unmapped on destruction.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws Error naming the file
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// One tensor inside a mapped file. `data` stays valid while the owning store lives.
struct TensorView {
  std::string name;
  std::string file;  // file it lives in, for error messages
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const;
  std::string shape_str() const;  // "[512, 128]"
};

// All tensors of a checkpoint: one .safetensors file, or the shards named by an index.
class TensorStore {
 public:
  // `path` is a .safetensors file or a directory holding model.safetensors or
  // model.safetensors.index.json. Validates every header fully; throws Error on any defect.
  static TensorStore open(const std::string& path);

  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // Throws Error("missing tensor NAME in SOURCE") when absent.
  const TensorView& get(const std::string& name) const;
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::string& source() const { return source_; }

 private:
  void add_file(const std::string& path, const std::vector<std::string>* expected);
  std::string source_;
  std::vector<std::shared_ptr<MappedFile>> files_;
  std::map<std::string, TensorView> tensors_;
};

// A tensor to write: raw little-endian bytes of `shape` in `dtype`.
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
};

// Writes a safetensors file (header padded to 8 bytes, tensors in the given order).
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors);

}  // namespace strata
